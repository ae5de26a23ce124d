"""`model_spec.json`: the contract apps integrate against (inputs, signatures, task, output, variants, parity).

Its fields are documented in tfxp/mobile/README.md; `tfxp.mobile.runtime.read_spec`
reads it back. Written last, after the variants it lists (tfxp.mobile.convert).
Everything task-specific (the output's name, shape, classes and meaning; the
metrics) is built from the model's Problem.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tfxp.mobile import runtime
from tfxp.mobile.converter import QUANTIZATION
from tfxp.mobile.parity import TASK_METRICS, ParityReport
from tfxp.mobile.preprocessing_params import DTYPE_NAMES, FeatureParams
from tfxp.mobile.runtime import BYTES_SIGNATURE, FLOAT, QUANT, SIGNATURE
from tfxp.models import features as F

if TYPE_CHECKING:
    from tfxp.mobile.convert import VariantResult

# 2 (issue 17): ids 0 = missing, 1..n learned, n + 1 unknown (oov_id); int missing marker -2**63.
SPEC_FORMAT = 2

_NO_ANSWER = (
    "; NaN (in every value of the row) when the row has no answer: a required input missing "
    "or a float input infinite, where the server refuses the row"
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
) -> dict:
    """The JSON contract apps integrate against (see mobile/README.md).

    `params`: one per input, in input order; `problem`: the model's Problem (task,
    output, classes, label); `results`: every variant tried, by name ("float",
    "quant"); `contents`: the flatbuffer bytes of the written ones (hashed into
    `sha256`; a written variant must be there, else KeyError). `rows`: eval rows the
    parity gate ran on (None: not checked); `reference_metrics`: the SavedModel's
    metrics on them (`parity.quality`). Returns a JSON-safe dict (see `dumps`).
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
            "inputs": [{"name": i["name"], "dtype": i["dtype"], "shape": i["shape"]} for i in inputs],
        }
    }
    if bytes_signature and any(p.dtype is F.DType.STRING for p in params):
        signatures[BYTES_SIGNATURE] = {
            "use": "runtimes without string tensors (TensorFlowLiteSwift): string inputs as UTF-8 bytes, "
            "cut to the width and zero-padded; a missing string is all zeros",
            "inputs": [
                {"name": p.name, "dtype": "uint8", "shape": [-1, p.byte_width]}
                if p.dtype is F.DType.STRING
                else {"name": p.name, "dtype": DTYPE_NAMES[p.dtype], "shape": [-1]}
                for p in params
            ],
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
            entry = {"file": r.file, "sha256": hashlib.sha256(contents[name]).hexdigest(), **entry}
            variants[name] = entry
        else:
            rejected[name] = {"reasons": r.reasons, **entry}
    default = QUANT if QUANT in variants else (FLOAT if FLOAT in variants else None)
    output: dict[str, Any] = {"name": output_name, "dtype": "float32", "shape": output_shape(problem)}
    classes = output_classes(problem)
    if classes is not None:
        output["classes"] = classes
    output["meaning"] = output_meaning(problem)
    return {
        "format": SPEC_FORMAT,
        "model_name": model_name,
        "model_version": model_version,
        "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "signature": SIGNATURE,
        "batch": "dynamic: the first dimension of every input is the row count (or run one row at a time)",
        "inputs": inputs,
        "signatures": signatures,
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
    }


def _metrics(report: ParityReport | None) -> dict | None:
    """A variant's metrics on the eval rows: binary auc, accuracy; multiclass accuracy; regression rmse, mae."""
    if report is None:
        return None
    return {"rows": report.rows, "labeled_rows": report.labeled_rows, **report.to_dict()["metrics"]}


def _reference_metrics(problem: F.Problem, metrics: Mapping[str, float | None] | None) -> dict:
    """The SavedModel's metrics on the eval rows, one key per metric of the task (None: not measured)."""
    return {name: (metrics or {}).get(name) for name in TASK_METRICS[problem.label.task]}


def dumps(spec: Mapping[str, Any]) -> bytes:
    """model_spec.json's bytes: indented JSON, one trailing newline.

    Raises ValueError for a NaN or infinity (not JSON: apps' parsers refuse it).
    """
    return (json.dumps(spec, indent=2, allow_nan=False) + "\n").encode()
