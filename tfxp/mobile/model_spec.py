"""`model_spec.json`: the contract apps integrate against (inputs, signatures, task, output, variants, parity).

Its fields are documented in tfxp/mobile/README.md and checked by SCHEMA_FILE (a JSON
Schema shipped beside this module); `tfxp.mobile.runtime.read_spec` reads it back.
Written last, after the variants it lists (tfxp.mobile.convert). Everything
task-specific (the output's name, shape, classes and meaning; the metrics) is
built from the model's Problem; every tensor name, index and the primary subgraph
is read off the converted flatbuffers by the TFLite interpreter (`tensor_map`),
never written by hand.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tfxp.mobile import runtime, web
from tfxp.mobile.converter import QUANTIZATION
from tfxp.mobile.errors import ConversionError
from tfxp.mobile.parity import (
    BYTES_MAX_DIFF,
    FLOAT_CONTRACT_MAX_DIFF,
    MAX_ABS_DIFF,
    QUANT_CONTRACT_MAX_DIFF,
    TASK_METRICS,
    ParityReport,
)
from tfxp.mobile.preprocessing_params import DTYPE_NAMES, FeatureParams
from tfxp.mobile.runtime import BYTES_SIGNATURE, FLOAT, QUANT, SIGNATURE
from tfxp.models import features as F

if TYPE_CHECKING:
    from tfxp.mobile.convert import VariantResult

# 2 (issue 17): ids 0 = missing, 1..n learned, n + 1 unknown (oov_id); int missing marker -2**63.
# Issue 18 only added keys (tensor names and indices, primary_subgraph, runtime, row_parsing,
# tolerances; byte_width/missing_marker/required in signatures.*.inputs): an app reading format 2
# reads them unchanged, so the format stays 2.
SPEC_FORMAT = 2
# The JSON Schema (draft 2020-12) every model_spec.json satisfies; shipped as package data.
SCHEMA_FILE = Path(__file__).with_name("model_spec.schema.json")

# Signature runners (Java/Kotlin Interpreter.runSignature, C++ and Python get_signature_runner) and the
# signature defs they read: "available on all the converter APIs starting from TensorFlow version 2.7.0"
# (TFLite/LiteRT guide "Signatures in TensorFlow Lite"). The guide's code feeds inputs by signature name,
# so an app needs a runtime of at least this version as well as the flatbuffer's min_runtime_version.
SIGNATURE_RUNNER_VERSION = "2.7.0"

# How an app must read a raw cell before writing it into an input tensor: what tfxp.rows.parse_value
# does for the server's clients, `tfxp predict` and `mobile-predict`. tests/mobile/test_spec_contract.py
# runs parse_value on every example, so the spec cannot drift from the code.
ROW_PARSING_RULES = (
    "A cell is missing when it is absent, null, empty or whitespace only: write the input's missing_marker.",
    "string: any other value is its text, as is (not trimmed); a JSON number is its decimal text.",
    "int64: an integer in decimal, or a number with a zero fraction ('300.0', '1e3'); a fraction ('3.5') "
    "is refused, never truncated; the text 'nan' is missing; 'inf', booleans, values outside int64 and "
    "int64's minimum (-9223372036854775808, the missing marker itself) are refused.",
    "float32: any decimal or exponent text ('1e5'); 'inf'/'-inf' are infinities (an input the schema "
    "keeps finite then makes the row's output NaN); the text 'nan' is missing; booleans are refused.",
    "Surrounding whitespace around a number is ignored ('  7 ' is 7).",
    "A refused cell is an error naming the row and column: the server's clients and mobile-predict "
    "stop there; an app must not send the row.",
)
# (dtype, cell, outcome, value): outcome "value" (value as JSON holds it: infinities as the strings
# "Infinity"/"-Infinity"), "missing" or "refused". A cell is a CSV text or a JSON value.
ROW_PARSING_EXAMPLES: tuple[tuple[str, Any, str, Any], ...] = (
    ("string", "", "missing", None),
    ("string", "  ", "missing", None),
    ("string", None, "missing", None),
    ("string", " Cash ", "value", " Cash "),
    ("string", 3, "value", "3"),
    ("int64", "300", "value", 300),
    ("int64", " 7 ", "value", 7),
    ("int64", "300.0", "value", 300),
    ("int64", "1e3", "value", 1000),
    ("int64", 17031081401, "value", 17031081401),
    ("int64", "3.5", "refused", None),
    ("int64", "nan", "missing", None),
    ("int64", "inf", "refused", None),
    ("int64", "-9223372036854775808", "refused", None),
    ("int64", "9223372036854775808", "refused", None),
    ("int64", True, "refused", None),
    ("int64", "abc", "refused", None),
    ("float32", "1.5", "value", 1.5),
    ("float32", "1e5", "value", 100000.0),
    ("float32", "inf", "value", "Infinity"),
    ("float32", "-inf", "value", "-Infinity"),
    ("float32", "nan", "missing", None),
    ("float32", "NaN", "missing", None),
    ("float32", " ", "missing", None),
    ("float32", True, "refused", None),
)


def row_parsing() -> dict:
    """model_spec.json's `row_parsing`: the rules (ROW_PARSING_RULES) and their examples."""
    return {
        "source": "tfxp/rows.py parse_value (the server's clients, tfxp predict, mobile-predict)",
        "rules": list(ROW_PARSING_RULES),
        "examples": [
            {"dtype": dtype, "cell": cell, "outcome": outcome, **({"value": value} if outcome == "value" else {})}
            for dtype, cell, outcome, value in ROW_PARSING_EXAMPLES
        ],
    }


def tolerances(max_abs_diff: float = MAX_ABS_DIFF) -> dict:
    """The parity gate's per-value bounds (tfxp.mobile.parity), as model_spec.json states them."""
    return {
        "float_eval_rows": max_abs_diff,
        "float_eval_rows_rule": "|TFLite - SavedModel| <= float_eval_rows x max(1, |SavedModel|)",
        "float_contract_rows": max(max_abs_diff, FLOAT_CONTRACT_MAX_DIFF),
        "quant_contract_rows": QUANT_CONTRACT_MAX_DIFF,
        "quant_contract_rows_rule": "x the output's scale (1 for probabilities)",
        "bytes_signature": BYTES_MAX_DIFF,
    }


def _checked_with(variants: Mapping[str, Any]) -> list[dict[str, str]]:
    """The distinct {"package", "version"} the variants' parity gates ran on, in variant order."""
    found: list[dict[str, str]] = []
    for variant in variants.values():
        ran_on = (variant.get("parity") or {}).get("runtime")
        if ran_on and ran_on not in found:
            found.append(dict(ran_on))
    return found


def min_runtime_version(content: bytes) -> str | None:
    """The `min_runtime_version` the converter wrote into a flatbuffer's metadata (e.g. "2.6.0"), else None."""
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.Model.GetRootAs(content, 0)  # read in place, not unpacked (see converter.operators)
    for i in range(model.MetadataLength()):
        item = model.Metadata(i)
        if item.Name() == b"min_runtime_version":
            buffer = model.Buffers(item.Buffer())
            return None if buffer.DataIsNone() else buffer.DataAsNumpy().tobytes().rstrip(b"\0").decode("ascii")
    return None


def _version_key(version: str | None) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".")) if version else ()


def tensor_map(content: bytes) -> dict:
    """Tensor names and indices of a .tflite file, as the TFLite interpreter reports them.

    Returns {"signatures": {key: {"inputs": {input: {"tensor", "tensor_index"}}, "outputs": {...}}},
    "primary_subgraph": {"subgraph": 0, "signature", "inputs": [{"position", "name", "tensor",
    "tensor_index"}], "outputs": [...]}}. The primary subgraph is what a runtime without signature
    support sees (classic Interpreter.run, the C API's input indices): the signature whose tensors are
    the interpreter's own get_input_details()/get_output_details(), in that (positional) order.
    Raises ConversionError when no signature owns subgraph 0's tensors.
    """
    found = runtime.boundary_details(content)
    signatures = {
        key: {
            side: {name: {"tensor": d["name"], "tensor_index": int(d["index"])} for name, d in details.items()}
            for side, details in sides.items()
        }
        for key, sides in found["signatures"].items()
    }
    primary_inputs = [(d["name"], int(d["index"])) for d in found["primary_inputs"]]
    primary_outputs = [(d["name"], int(d["index"])) for d in found["primary_outputs"]]
    primary = found["primary"]
    if primary is None:
        raise ConversionError(f"no signature of the converted model owns subgraph 0's tensors {primary_inputs}")

    def positional(side: str, tensors: list[tuple[str, int]]) -> list[dict]:
        by_tensor = {(t["tensor"], t["tensor_index"]): name for name, t in signatures[primary][side].items()}
        return [
            {"position": i, "name": by_tensor[t], "tensor": t[0], "tensor_index": t[1]} for i, t in enumerate(tensors)
        ]

    return {
        "signatures": signatures,
        "primary_subgraph": {
            "subgraph": 0,
            "signature": primary,
            "inputs": positional("inputs", primary_inputs),
            "outputs": positional("outputs", primary_outputs),
        },
    }


_NO_ANSWER = (
    "; NaN (in every value of the row) when the row has no answer: a required input missing, "
    f"a float input infinite, or a numeric input more than {F.Z_LIMIT:g} standard deviations from its "
    "training mean (preprocessing.mean, .std), where the server refuses the row"
)


def _label_text(label: F.Label) -> str:
    """The label as users know it: its column, and the hook that derives it when there is one."""
    if label.hook:
        return f"the label derived from the raw row by the label hook {label.hook} (column {label.column!r})"
    return f"the label column {label.column!r}"


def output_meaning(problem: F.Problem) -> str:
    """What the output's values mean, per task, from the problem's label."""
    label, task = problem.label, problem.label.task
    if task is F.Task.BINARY:
        negative, positive = label.classes if len(label.classes) == 2 else ("0", "1")
        text = (
            f"probability of the positive class ({positive!r}) of {_label_text(label)}; "
            f"1 - it is the probability of {negative!r}"
        )
    elif task is F.Task.MULTICLASS:
        text = (
            f"probability of each class of {_label_text(label)}, one column per class in the order of "
            f"output.classes ({', '.join(label.classes)}); each row sums to 1"
        )
    else:
        text = f"the predicted value of {_label_text(label)}, in its units"
    return text + _NO_ANSWER


def output_classes(problem: F.Problem) -> list[str] | None:
    """Class names in output order: multiclass, the K classes; binary, (negative, positive) — the
    output is P(positive); regression, None."""
    if problem.label.task is F.Task.REGRESSION:
        return None
    return list(problem.label.classes or ("0", "1"))


def output_shape(problem: F.Problem) -> list[int]:
    """[-1] (one value per row) or, for a multiclass problem, [-1, K]."""
    if problem.label.task is F.Task.MULTICLASS:
        return [-1, problem.label.num_classes]
    return [-1]


def _input_meaning(p: FeatureParams, output: str) -> str:
    what = {
        F.Kind.NUMERIC: "number; standardized inside the model",
        F.Kind.BUCKETIZED: f"number; bucketized inside the model into {p.base + len(p.thresholds)} quantile buckets",
        F.Kind.CATEGORICAL_INT: f"integer category 0..{p.size - 1}; any other integer is an unknown category "
        f"(id {p.oov_id}, trained as such), never clipped to a known one",
        F.Kind.VOCABULARY: f"category looked up in a {len(p.vocabulary)}-entry vocabulary; unseen values share "
        f"the unknown-category id {p.oov_id}, trained as such",
    }[p.kind]
    marker = runtime.missing_marker_json(p.dtype.value)
    marker_text = '""' if marker == "" else str(marker)
    if p.optional:
        learned = (
            "the training mean plus a missing indicator the model learned"
            if p.kind is F.Kind.NUMERIC
            else "its own category the model learned"
        )
        missing = f"may be missing: write {marker_text}, read as {learned} (never as 0)"
    else:
        missing = f"required: {marker_text} (missing) makes the {output} NaN, as the server refuses the row"
    if p.finite:
        missing += f"; +-infinity makes the {output} NaN"
    return f"{p.name} ({p.dtype.value}): {what}; {missing}"


def model_spec(
    params: Sequence[FeatureParams],
    problem: F.Problem,
    results: Mapping[str, VariantResult],
    contents: Mapping[str, bytes],
    *,
    model_version: Any = None,
    model_name: str | None = None,
    reference_metrics: Mapping[str, float | None] | None = None,
    rows: int | None = None,
    bytes_signature: bool = True,
    max_abs_diff: float = MAX_ABS_DIFF,
    web_file: Mapping[str, Any] | None = None,
) -> dict:
    """The JSON contract apps integrate against (see mobile/README.md).

    `params`: one per input, in input order; `problem`: the model's Problem (task,
    output, classes, label); `results`: every variant tried, by name ("float",
    "quant"); `contents`: the flatbuffer bytes of the written ones (hashed into
    `sha256`; a written variant must be there, else KeyError). `rows`: eval rows the
    parity gate ran on (None: not checked); `reference_metrics`: the SavedModel's
    metrics on them (`parity.quality`); `max_abs_diff`: the float gate's tolerance it ran with;
    `web_file`: {"content" (bytes or None), "parity", "reasons"} of model_web.tflite (tfxp.mobile.web).
    Tensor names and indices are read off `contents` by the interpreter (`tensor_map`).
    Returns a JSON-safe dict (see `dumps`) that satisfies SCHEMA_FILE. Raises
    ConversionError when the variants' subgraph 0 belong to different signatures.

    Long because it is the spec's one literal, key by key in the order model_spec.json is read (each
    part's facts come from its own function: tensor_map, row_parsing, tolerances, web.web_entry).
    """
    output_name = problem.output
    inputs = []
    for p in params:
        inputs.append(
            {
                "name": p.name,
                "dtype": DTYPE_NAMES[p.dtype],
                "shape": [-1],
                "required": not p.optional,
                "missing_marker": runtime.missing_marker_json(p.dtype.value),
                "meaning": _input_meaning(p, output_name),
                "preprocessing": p.describe(),
            }
        )
    signatures = {
        SIGNATURE: {
            "use": "runtimes with string tensors: Android/Java/Kotlin, C++, Python",
            "inputs": [{k: i[k] for k in ("name", "dtype", "shape", "missing_marker", "required")} for i in inputs],
        }
    }
    if bytes_signature and any(p.dtype is F.DType.STRING for p in params):
        signatures[BYTES_SIGNATURE] = {
            "use": "runtimes without string tensors (TensorFlowLiteSwift, the C API and the bindings on it): "
            "string inputs as UTF-8 bytes, cut to the width and zero-padded; a missing string is all zeros",
            "inputs": [_bytes_input(p, i) for p, i in zip(params, inputs, strict=True)],
        }
    variants, rejected = {}, {}
    for name, r in results.items():
        entry: dict[str, Any] = {
            "quantization": QUANTIZATION[name],
            "bytes": r.size_bytes,
            "ops": r.ops,
            "parity": r.parity.to_dict() if r.parity else None,
            "metrics": _metrics(r.parity),
        }
        if r.written:
            content = contents[name]
            entry = {
                "file": r.file,
                "sha256": hashlib.sha256(content).hexdigest(),
                **entry,
                "min_runtime_version": min_runtime_version(content),
                "tensors": tensor_map(content),
            }
            variants[name] = entry
        else:
            rejected[name] = {"reasons": r.reasons, **entry}
    default = QUANT if QUANT in variants else (FLOAT if FLOAT in variants else None)
    output: dict[str, Any] = {"name": output_name, "dtype": "float32", "shape": output_shape(problem)}
    classes = output_classes(problem)
    if classes is not None:
        output["classes"] = classes
    output["meaning"] = output_meaning(problem)
    primaries = {v["tensors"]["primary_subgraph"]["signature"] for v in variants.values()}
    if len(primaries) > 1:
        raise ConversionError(f"the variants' subgraph 0 are different signatures: {sorted(primaries)}")
    op_versions = [v["min_runtime_version"] for v in variants.values() if v["min_runtime_version"]]
    ops_version = max(op_versions, key=_version_key, default=None)
    return {
        "format": SPEC_FORMAT,
        "model_name": model_name,
        "model_version": model_version,
        "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "signature": SIGNATURE,
        "batch": "dynamic: the first dimension of every input is the row count (or run one row at a time)",
        "inputs": inputs,
        "signatures": signatures,
        # What a runtime without signature support sees (the same signature in every variant; its
        # tensors per variant under variants.<name>.tensors.primary_subgraph).
        "primary_subgraph": {"subgraph": 0, "signature": next(iter(primaries), None)},
        "runtime": {
            "min_runtime_version": ops_version,
            "signature_runner_version": SIGNATURE_RUNNER_VERSION,
            "required_version": max((ops_version or "0"), SIGNATURE_RUNNER_VERSION, key=_version_key),
            "why": "min_runtime_version: the operators' versions in the flatbuffers; signature_runner_version: "
            "Interpreter.runSignature / signatureRunner(with:) / get_signature_runner, which feeding inputs "
            "by name needs",
            # The interpreters the parity gate ran the variants on (variants.<name>.parity.runtime).
            "checked_with": _checked_with(variants),
        },
        "row_parsing": row_parsing(),
        "task": problem.label.task.value,
        "label": {"column": problem.label.column, "hook": problem.label.hook},
        "output": output,
        "vocabularies": {
            p.name: {"size": len(p.vocabulary), "oov_id": p.oov_id, "key_dtype": DTYPE_NAMES[p.dtype]}
            for p in params
            if p.kind is F.Kind.VOCABULARY
        },
        "default_variant": default,
        "variants": variants,
        "rejected": rejected,
        "reference": {"signature": "predict_raw", "rows": rows, **_reference_metrics(problem, reference_metrics)},
        "parity_checked": rows is not None,
        "tolerances": tolerances(max_abs_diff),
        # Which web runtimes can run the web file (else the default variant), read off its tensors.
        "web": web.web_entry(
            contents[default] if default else None,
            default,
            (web_file or {}).get("content"),
            (web_file or {}).get("parity"),
            params,
            (web_file or {}).get("reasons", ()),
        ),
    }


def _bytes_input(p: FeatureParams, item: Mapping[str, Any]) -> dict:
    """An input of serving_bytes: a string feature as uint8 [-1, byte_width] (missing: every byte 0)."""
    if p.dtype is not F.DType.STRING:
        return {k: item[k] for k in ("name", "dtype", "shape", "missing_marker", "required")}
    return {
        "name": p.name,
        "dtype": "uint8",
        "shape": [-1, p.byte_width],
        "byte_width": p.byte_width,
        "missing_marker": 0,
        "required": item["required"],
    }


def _metrics(report: ParityReport | None) -> dict | None:
    """A variant's metrics on the eval rows: binary auc, accuracy; multiclass accuracy; regression rmse, mae."""
    if report is None:
        return None
    return {"rows": report.rows, "labeled_rows": report.labeled_rows, **report.to_dict()["metrics"]}


def _reference_metrics(problem: F.Problem, metrics: Mapping[str, float | None] | None) -> dict:
    """The SavedModel's metrics on the eval rows, one key per metric of the task (None: not measured)."""
    return {name: (metrics or {}).get(name) for name in TASK_METRICS[problem.label.task]}


def load_schema() -> dict:
    """The JSON Schema of model_spec.json (SCHEMA_FILE)."""
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


def dumps(spec: Mapping[str, Any]) -> bytes:
    """model_spec.json's bytes: indented JSON, one trailing newline.

    Raises ValueError for a NaN or infinity (not JSON: apps' parsers refuse it).
    """
    return (json.dumps(spec, indent=2, allow_nan=False) + "\n").encode()
