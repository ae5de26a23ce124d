"""SavedModel + tf.Transform output -> TFLite models that take RAW features, builtin ops only.

`convert` runs the steps, each in its own module:

1. `preprocessing_params`: each feature's preprocessing (z-score mean/std, bucket
   thresholds, vocabularies, missing-value handling) read off the Transform
   output and checked against the real Transform on probe values.
2. `graph`: the tf.Module made of builtin-friendly ops: the preprocessing, the
   Keras model, and the missing-value contract (NaN where `predict_raw` refuses);
   signatures `serving_default` and `serving_bytes`.
3. `converter`: TFLiteConverter with `TFLITE_BUILTINS` only, a float32 variant
   and a dynamic-range quantized one; each checked for dropped signatures and
   non-builtin (Flex, custom) operators.
4. `parity`: given eval rows, each variant gated on parity with the SavedModel's
   `predict_raw` on them and on the contract rows (missing and invalid values),
   and on its task's metric against labels from the SavedModel's `transform_features`.
5. `web`: `model_web.tflite`, the float graph as one signature `serving_web` with
   one-row inputs every web runtime can feed (int64 as int32 halves), gated against
   the written float variant on the same rows.
6. `model_spec`: `model_spec.json`, written last, with the tensor names and indices
   the interpreter reads off each written flatbuffer. Only variants that pass are written.

What the model is — its input features, task, output and classes — comes from the
SavedModel (`tfxp.models.signatures.load_problem`), so any model this project's
Trainer saves converts: binary (`probability` [N]), multiclass (`probabilities`
[N, K]) or regression (`prediction` [N]).

The names those modules define stay importable from here (`from
tfxp.mobile.convert import parity, labels, ...`) for the callers written
against the single module.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tfxp.mobile.converter import VARIANTS, VariantConverter, check_builtins_only, operators
from tfxp.mobile.errors import ConversionError, NonBuiltinOpsError
from tfxp.mobile.graph import build_module, unanswerable
from tfxp.mobile.model_spec import SPEC_FORMAT, dumps, model_spec
from tfxp.mobile.parity import (
    ACCURACY_NOISE_ROWS,
    BYTES_MAX_DIFF,
    GATED_METRIC,
    MAX_ABS_DIFF,
    MAX_ACCURACY_DELTA,
    MAX_AUC_DELTA,
    MAX_RMSE_DELTA,
    NO_CLASS,
    QUANT_CONTRACT_MAX_DIFF,
    ParityReport,
    SavedModelReference,
    auc,
    check_label_column,
    contract_rows,
    labels,
    parity,
    quality,
    raw_example_features,
    reference_outputs,
    reference_probabilities,
)
from tfxp.mobile.preprocessing_params import (
    FeatureParams,
    TransformProbe,
    bucketize,
    contract_params,
    extract_preprocessing,
    find_transform_output,
    input_spec,
)
from tfxp.mobile.runtime import FLOAT, SPEC_FILE, VARIANT_FILES
from tfxp.models import features as F

# The former private name (bench/mobile.py and tests import it from here).
_auc = auc

__all__ = [
    "ACCURACY_NOISE_ROWS",
    "BYTES_MAX_DIFF",
    "ConversionError",
    "ConversionResult",
    "FeatureParams",
    "GATED_METRIC",
    "MAX_ABS_DIFF",
    "MAX_ACCURACY_DELTA",
    "MAX_AUC_DELTA",
    "MAX_RMSE_DELTA",
    "NO_CLASS",
    "NonBuiltinOpsError",
    "ParityReport",
    "QUANT_CONTRACT_MAX_DIFF",
    "SPEC_FORMAT",
    "SavedModelReference",
    "TransformProbe",
    "VariantResult",
    "auc",
    "bucketize",
    "build_module",
    "check_builtins_only",
    "check_label_column",
    "contract_params",
    "contract_rows",
    "convert",
    "extract_preprocessing",
    "find_transform_output",
    "input_spec",
    "labels",
    "model_spec",
    "operators",
    "parity",
    "quality",
    "raw_example_features",
    "reference_outputs",
    "reference_probabilities",
    "unanswerable",
]


@dataclass
class VariantResult:
    """One TFLite variant ("float" or "quant") of a conversion: written, or rejected with reasons."""

    name: str
    file: str  # file name inside the output dir
    size_bytes: int
    written: bool
    ops: list[str] = field(default_factory=list)
    parity: ParityReport | None = None
    reasons: list[str] = field(default_factory=list)  # why it was not written


@dataclass
class ConversionResult:
    """What `convert` wrote: the spec, each variant's outcome, the preprocessing it rebuilt and the
    model's Problem (task, output, classes, features) it was converted for."""

    output_dir: str
    spec_path: str
    spec: dict
    variants: dict[str, VariantResult]
    params: list[FeatureParams]
    problem: F.Problem

    @property
    def written(self) -> list[str]:
        """Names of the variants written to `output_dir`."""
        return [name for name, v in self.variants.items() if v.written]

    @property
    def rejected(self) -> dict[str, list[str]]:
        """{variant: reasons} of the variants not written."""
        return {name: v.reasons for name, v in self.variants.items() if not v.written}

    @property
    def ok(self) -> bool:
        """Every variant passed its checks and was written."""
        return all(v.written for v in self.variants.values())

    def to_dict(self) -> dict:
        """JSON-safe summary (`tfxp convert --json`, MobilePusher's report.json)."""
        return {
            "output_dir": self.output_dir,
            "spec": self.spec_path,
            "model_version": self.spec.get("model_version"),
            "task": self.problem.label.task.value,
            "output": self.spec.get("output"),
            "default_variant": self.spec.get("default_variant"),
            "variants": {
                name: {
                    "written": v.written,
                    "file": v.file if v.written else None,
                    "bytes": v.size_bytes,
                    "reasons": v.reasons,
                    "parity": v.parity.to_dict() if v.parity else None,
                }
                for name, v in self.variants.items()
            },
        }


def convert(
    saved_model_dir: str | Path,
    output_dir: str | Path,
    *,
    transform_output_dir: str | Path | None = None,
    eval_rows: Sequence[Mapping[str, Any]] | None = None,
    model_version: Any = None,
    model_name: str | None = None,
    max_abs_diff: float = MAX_ABS_DIFF,
    max_auc_delta: float = MAX_AUC_DELTA,
    max_accuracy_delta: float = MAX_ACCURACY_DELTA,
    max_rmse_delta: float = MAX_RMSE_DELTA,
    bytes_signature: bool = True,
    web_variant: bool = True,
) -> ConversionResult:
    """Converts a SavedModel saved by models.signatures into mobile models in `output_dir`.

    Long because of its keyword parameters and this docstring; the steps are _GateReference (the
    references, once), _convert_variant (per variant), _web_file, _write_files and model_spec.

    The model's Problem (features, task, output, classes) is read from the SavedModel
    (`models.signatures.load_problem`). Writes `model.tflite` (float32) and
    `model_quant.tflite` (dynamic-range quantized) when they hold only builtin ops
    and, if `eval_rows` are given (raw dict rows, CSV strings or JSON values, with
    the model's inputs and the label's columns), pass the parity gate (tfxp.mobile.parity;
    tolerances `max_abs_diff`, and per task `max_auc_delta`, `max_accuracy_delta`,
    `max_rmse_delta`); then `model_spec.json` (written last). Failing variants are
    not written (stale files of that name are removed); their reasons are in the
    result and under `rejected` in the spec. The preprocessing is rebuilt from
    `transform_output_dir`, by default the copy the SavedModel carries
    (models.signatures.TRANSFORM_OUTPUT_DIR). With `web_variant`, also `model_web.tflite`
    (tfxp.mobile.web: one row, inputs every web runtime can feed), written when the float
    variant is and, with `eval_rows`, it answers as the float variant does (`web.gate_web`).
    Raises ConversionError when the preprocessing cannot be rebuilt at all,
    ValueError when no eval row has the label column, and RowError (tfxp.rows) for
    an eval row value not of its column's dtype.
    """
    import tensorflow as tf
    import tensorflow_transform as tft

    from tfxp.models.signatures import load_problem

    saved_model_dir, output_dir = str(saved_model_dir), Path(output_dir)
    problem = load_problem(saved_model_dir)
    rows = list(eval_rows) if eval_rows is not None else None
    if rows is not None:
        check_label_column(rows, problem)  # before minutes of work
    tft_output = tft.TFTransformOutput(str(transform_output_dir or find_transform_output(saved_model_dir)))
    params = extract_preprocessing(tft_output, problem)
    keras_model = tf.keras.models.load_model(saved_model_dir, compile=False)
    module = build_module(keras_model, params, problem, bytes_signature=bytes_signature, web_signature=web_variant)
    signatures = module.signatures()

    gate = _GateReference.of(saved_model_dir, params, problem, tft_output, rows) if rows is not None else None
    limits = {
        "max_abs_diff": max_abs_diff,
        "max_auc_delta": max_auc_delta,
        "max_accuracy_delta": max_accuracy_delta,
        "max_rmse_delta": max_rmse_delta,
    }
    output_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, VariantResult] = {}
    contents: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory(prefix="tfxp-mobile-") as tmp:
        module_dir = os.path.join(tmp, "module")
        tf.saved_model.save(module, module_dir, signatures=signatures)
        converter = VariantConverter(module_dir, list(signatures))
        for name, quantize in VARIANTS:
            results[name], content = _convert_variant(name, quantize, converter, tmp, gate, limits)
            if content is not None:
                contents[name] = content
        contract = gate.contract if gate is not None else None
        web_file = _web_file(module, tmp, contents, rows, contract, params, problem) if web_variant else None
    _write_files(output_dir, results, contents, web_file)
    spec = model_spec(
        params,
        problem,
        results,
        contents,
        model_version=model_version,
        model_name=model_name,
        reference_metrics=quality(problem.label.task, gate.y, gate.reference) if gate is not None else None,
        rows=gate.rows_count if gate is not None else None,
        bytes_signature=bytes_signature,
        max_abs_diff=max_abs_diff,
        web_file=web_file,
    )
    spec_path = output_dir / SPEC_FILE
    _write_atomic(spec_path, dumps(spec))
    return ConversionResult(
        output_dir=str(output_dir),
        spec_path=str(spec_path),
        spec=spec,
        variants=results,
        params=params,
        problem=problem,
    )


@dataclass
class _GateReference:
    """What every variant's parity gate compares with, computed once: the eval rows, the contract
    rows, predict_raw's outputs on both and the eval rows' labels (transform_features)."""

    saved_model_dir: str
    params: list
    problem: F.Problem
    rows: list
    contract: list
    reference: Any
    contract_reference: Any
    y: Any

    @property
    def rows_count(self) -> int:
        return len(self.rows)

    @classmethod
    def of(cls, saved_model_dir: str, params, problem: F.Problem, tft_output, rows: list) -> _GateReference:
        saved_model = SavedModelReference(saved_model_dir, params, problem, raw_example_features(tft_output))
        # One predict_raw pass over both row sets and one transform_features pass for the labels.
        contract = contract_rows(rows, params)
        both = saved_model.outputs(rows + contract)
        return cls(
            saved_model_dir,
            params,
            problem,
            rows,
            contract,
            both[: len(rows)],
            both[len(rows) :],
            saved_model.labels(rows),
        )


def _convert_variant(
    name: str, quantize: bool, converter: VariantConverter, tmp: str, gate: _GateReference | None, limits: dict
) -> tuple[VariantResult, bytes | None]:
    """One variant: converted, checked for builtin ops only and, with a gate, parity-gated.
    Returns its result and its bytes (None when it is not to be written: `result.reasons` say why)."""
    result = VariantResult(name=name, file=VARIANT_FILES[name], size_bytes=0, written=False)
    try:
        content = converter.convert(quantize)
    except Exception as exc:  # noqa: BLE001 - the converter raises ConverterError and others: a reason
        result.reasons.append(f"conversion failed: {str(exc).strip().splitlines()[-1] if str(exc) else exc!r}")
        return result, None
    result.size_bytes = len(content)
    try:
        result.ops = check_builtins_only(content)
    except NonBuiltinOpsError as exc:
        result.ops = operators(content)
        result.reasons.append(str(exc))
        return result, None
    if gate is not None:
        candidate = os.path.join(tmp, result.file)
        Path(candidate).write_bytes(content)
        result.parity = parity(
            candidate,
            gate.saved_model_dir,
            gate.rows,
            params=gate.params,
            problem=gate.problem,
            variant=name,
            reference=gate.reference,
            contract=gate.contract,
            contract_reference=gate.contract_reference,
            y=gate.y,
            **limits,
        )
        result.reasons += result.parity.reasons
    return result, (None if result.reasons else content)


def _write_files(
    output_dir: Path, results: Mapping[str, VariantResult], contents: Mapping[str, bytes], web_file: dict | None
) -> None:
    """Writes the variants that passed (and the web file); removes stale files of those that did not."""
    from tfxp.mobile import web

    for name, result in results.items():
        target = output_dir / result.file
        if name in contents:
            _write_atomic(target, contents[name])
            result.written = True
        elif target.exists():
            target.unlink()  # a stale file from an earlier conversion must not pass for this one
    web_target = output_dir / web.WEB_FILE
    if web_file and web_file["content"] is not None:
        _write_atomic(web_target, web_file["content"])
    elif web_target.exists():
        web_target.unlink()


def _web_file(module, work_dir: str, contents: Mapping[str, bytes], rows, contract, params, problem) -> dict:
    """{"content" (None: not written), "parity", "reasons"} of model_web.tflite: converted from
    `module.web_fn`, gated against the written float variant on the eval and contract rows."""
    from tfxp.mobile import web

    if FLOAT not in contents:
        return {"content": None, "parity": None, "reasons": ["the float variant was not written"]}
    try:
        content = web.convert_web(module, os.path.join(work_dir, "web_module"))
        check_builtins_only(content)
    except Exception as exc:  # noqa: BLE001 - the converter's errors, NonBuiltinOpsError: a reason
        text = str(exc).strip().splitlines()[-1] if str(exc) else repr(exc)
        return {"content": None, "parity": None, "reasons": [f"conversion failed: {text}"]}
    report = None
    if rows is not None:
        report = web.gate_web(content, contents[FLOAT], list(rows) + list(contract), params, problem.output)
        if not report["passed"]:
            return {"content": None, "parity": report, "reasons": report["reasons"]}
    return {"content": content, "parity": report, "reasons": []}


def _write_atomic(path: Path, content: bytes) -> None:
    # A reader (or a crash) never sees half a file: write beside it, then rename over it.
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(content)
    os.replace(tmp, path)
