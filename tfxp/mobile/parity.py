"""The parity gate: a TFLite variant against the SavedModel's `predict_raw` on the same raw rows.

Run with the TFLite interpreter (LiteRT or tflite-runtime, as apps run it) on eval rows
and on the missing-value contract rows (`contract_rows`: one eval row edited per
input, blank or set to values the data never holds). Outputs are compared
elementwise whatever the task (binary `probability` [N], multiclass
`probabilities` [N, K], regression `prediction` [N]):

- `float`: every output value within MAX_ABS_DIFF x max(1, |predict_raw's|) of
  predict_raw's on the eval rows (regression: x max(|mean| + std of the
  predictions, |predict_raw's|)), FLOAT_CONTRACT_MAX_DIFF on the contract rows;
- every variant: the task's quality metric on the eval rows within a tolerance of
  the SavedModel's own value on the same rows and labels — binary AUC
  (MAX_AUC_DELTA), multiclass accuracy (MAX_ACCURACY_DELTA plus
  ACCURACY_NOISE_ROWS rows' worth), regression RMSE (MAX_RMSE_DELTA, relative).
  For `float` it follows from the elementwise gate; an undefined metric (e.g. one
  class only in the rows) fails only the quantized variants, which have no
  elementwise gate on the eval rows;
- quantized variants on the contract rows: each value within
  QUANT_CONTRACT_MAX_DIFF x max(spread, |predict_raw's - center|), where spread and
  center are 1 and 0 for probabilities, and the std and mean of predict_raw's
  predictions on the eval rows for regression (`output_scale`);
- every variant: NaN in every output value exactly where `predict_raw` has no
  answer (it refuses the row);
- `serving_bytes`, when present, gives `serving_default`'s answers (BYTES_MAX_DIFF).

The labels come from the SavedModel itself: its `transform_features` signature
runs the Trainer's tf.Transform graph (label hook included) on tf.Examples built
from the raw rows and returns the transformed label (`models.features.LABEL_KEY`),
so no label logic is re-implemented here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tfxp import rows as R
from tfxp.mobile import runtime
from tfxp.mobile.errors import ConversionError
from tfxp.mobile.graph import unanswerable
from tfxp.mobile.preprocessing_params import (
    DTYPE_NAMES,
    FeatureParams,
    contract_params,
    find_transform_output,
    input_spec,
    unseen_value,
)
from tfxp.mobile.runtime import BYTES_SIGNATURE, FLOAT, SIGNATURE
from tfxp.models import features as F

if TYPE_CHECKING:
    import tensorflow_transform as tft

# Float variant, elementwise, scaled by max(1, |reference|): float32 rounding grows with the
# value, and a regression output is in the label's units (measured on the test models: taxi
# probabilities 1.2e-7; multiclass probabilities <= 5.7e-7; regression predictions ~50: 7.6e-6
# absolute, <= 1.7e-7 scaled; contract rows with x = 1e30: 1e24 absolute, 1.5e-7 scaled).
MAX_ABS_DIFF = 1e-5
# Regression: float32 rounding follows the largest value inside the head (z * std + mean), not the
# output: a prediction near 0 from a label of mean ~150 differs by ~1e-4 (measured 9.2e-5, i.e.
# 1.1e-5 of max(1, |output|)), so the float scale also covers |mean| + std of the predictions.
# The contract rows are held to the same bound: their extreme numbers (1e30, 2**62), whose sums of
# huge terms cancelled in float32 (up to 4.6e-5 of the output) and overflowed in LiteRT's XNNPACK
# (NaN), are beyond features.Z_LIMIT now, so no variant answers them (measured on taxi: 6e-8).
FLOAT_CONTRACT_MAX_DIFF = MAX_ABS_DIFF
# Quality metrics of every variant against the SavedModel's on the same rows and labels.
# Binary: AUC (measured: 4e-5 for the quantized taxi model).
MAX_AUC_DELTA = 0.005
# Multiclass: accuracy, within MAX_ACCURACY_DELTA + ACCURACY_NOISE_ROWS / (labeled rows).
# Quantization moves probabilities by up to ~0.05 (mean ~1e-3), which changes the arg max of the
# rows whose top two classes are that close: measured, a net change of 0 or 1 row of 200 (|delta|
# <= 0.005) over four generated models. The 2 rows' allowance keeps that noise from failing the
# gate on small eval splits (a 334-row data set leaves ~110 eval rows, where one row is 0.009).
MAX_ACCURACY_DELTA = 0.01
ACCURACY_NOISE_ROWS = 2
# Regression: |RMSE - SavedModel's RMSE| <= this x SavedModel's RMSE (relative: RMSE is in the
# label's units). Measured: 9e-4 to 3.6e-3 for the quantized generated models (float: 6e-8).
MAX_RMSE_DELTA = 0.01
# serving_bytes must match serving_default: same ids, same graph after the lookups (measured: 0).
BYTES_MAX_DIFF = 1e-6
# Quantized variants on the rows with missing and invalid values (no metric on a hundred
# edited rows): each value within this x `output_scale` (probabilities: 1). Int8 weights move
# an output by a share of what the layers add to it: of the predictions' spread on ordinary
# rows, of the output itself on rows of extreme values (x = 1e30 gives predictions ~1e31).
# Measured on the contract rows: taxi probabilities 2.4e-4, multiclass <= 0.025, regression
# <= 0.008 of the scale; on eval rows, which any contract row could resemble: taxi 0.012,
# multiclass up to 0.053, regression up to 0.03. So 0.1: about twice the largest seen, while a
# wrong missing-value default or out-of-vocabulary id still shows.
QUANT_CONTRACT_MAX_DIFF = 0.1
# Rows per SavedModel call in parity checks.
_REFERENCE_BATCH = 1024

# The metrics `quality` measures per task, and the one each task is gated on (ParityReport.metric).
TASK_METRICS = {
    F.Task.BINARY: ("auc", "accuracy"),
    F.Task.MULTICLASS: ("accuracy",),
    F.Task.REGRESSION: ("rmse", "mae"),
}
GATED_METRIC = {F.Task.BINARY: "auc", F.Task.MULTICLASS: "accuracy", F.Task.REGRESSION: "rmse"}
METRIC_TEXT = {"auc": "AUC", "accuracy": "accuracy", "rmse": "RMSE"}  # GATED_METRIC names as printed
# A transformed label that could not be computed (the row failed transform_features) or is
# outside the classes (tfxp.models.preprocessing.transformed_label maps those to -1).
NO_CLASS = -1

# -- the task's metrics -----------------------------------------------------------------------


def auc(y: np.ndarray, p: np.ndarray) -> float | None:
    """ROC AUC of probabilities `p` (float [N]) against 0/1 labels `y` (int [N]) on the rows where p is
    finite and y is 0 or 1.

    None when no row is left or they hold one class only (AUC undefined).
    """
    from sklearn.metrics import roc_auc_score

    y, p = np.asarray(y), np.asarray(p)
    keep = np.isfinite(p) & ((y == 0) | (y == 1))
    if keep.sum() == 0 or len(set(y[keep].tolist())) < 2:
        return None
    return float(roc_auc_score(y[keep], p[keep]))


def labeled(task: F.Task, y: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    """bool [N]: rows with a label (`labels`) and an answer (every output value finite)."""
    answered = _per_row(np.isfinite(outputs)).all(axis=1)
    if task is F.Task.REGRESSION:
        return answered & np.isfinite(y)
    return answered & (y >= 0)


def quality(task: F.Task, y: np.ndarray, outputs: np.ndarray) -> dict[str, float | None]:
    """The task's metrics of `outputs` against labels `y`, on the labeled rows with an answer.

    `y`: `labels(...)` — int64 [N] (binary 0/1, multiclass class index; NO_CLASS: no label)
    or float32 [N] (regression; NaN: no label). `outputs`: float [N] (binary probability,
    regression prediction) or [N, K] (multiclass probabilities), NaN where there is no answer.
    Returns binary {"auc", "accuracy"} (threshold 0.5), multiclass {"accuracy"} (arg max),
    regression {"rmse", "mae"}; a metric without rows to measure is None.
    """
    y, outputs = np.asarray(y), np.asarray(outputs)
    keep = labeled(task, y, outputs)
    if task is F.Task.BINARY:
        accuracy = float(np.mean((outputs[keep] > 0.5) == (y[keep] == 1))) if keep.any() else None
        return {"auc": auc(y, outputs), "accuracy": accuracy}
    if task is F.Task.MULTICLASS:
        hits = np.argmax(outputs[keep], axis=1) == y[keep] if keep.any() else np.zeros([0], bool)
        return {"accuracy": float(np.mean(hits)) if keep.any() else None}
    if not keep.any():
        return {"rmse": None, "mae": None}
    error = outputs[keep].astype(np.float64) - y[keep].astype(np.float64)
    return {"rmse": float(np.sqrt(np.mean(error**2))), "mae": float(np.mean(np.abs(error)))}


def _metric_delta(metric: str, value: float | None, reference: float | None) -> float | None:
    """|value - reference|; relative to the reference for RMSE (it is in the label's units)."""
    if value is None or reference is None:
        return None
    if metric == "rmse":
        return abs(value - reference) / reference if reference > 0 else abs(value - reference)
    return abs(value - reference)


# -- the reference: the SavedModel's predict_raw and transform_features --------------------------


def raw_example_features(tft_output: tft.TFTransformOutput) -> dict[str, str]:
    """{column: "int64" | "float32" | "string"} of the raw schema (label and unused columns included):
    what a tf.Example for `transform_features` holds."""
    return {name: DTYPE_NAMES[_feature_dtype(spec.dtype)] for name, spec in tft_output.raw_feature_spec().items()}


def _feature_dtype(dtype: Any) -> F.DType:
    name = getattr(dtype, "name", str(dtype))
    try:
        return {"int64": F.DType.INT, "float32": F.DType.FLOAT, "string": F.DType.STRING}[name]
    except KeyError:
        raise ConversionError(f"raw schema dtype {name} is not one rows hold (int64, float32, string)") from None


class SavedModelReference:
    """The SavedModel side of the gate, loaded once: `predict_raw`'s outputs and `transform_features`' labels.

    `params`: `contract_params(...)` of the model's inputs; `problem`: the model's Problem;
    `raw_features`: `raw_example_features(...)`. Each defaults to what the SavedModel carries
    (`load_problem`, its copy of the Transform output; ConversionError if it has none).
    """

    def __init__(
        self,
        saved_model_dir: str | Path,
        params: Sequence[FeatureParams] | None = None,
        problem: F.Problem | None = None,
        raw_features: Mapping[str, str] | None = None,
    ):
        import tensorflow as tf

        from tfxp.models.signatures import PREDICT_RAW, TRANSFORM_FEATURES, load_problem

        self.problem = problem or load_problem(str(saved_model_dir))
        if params is None or raw_features is None:
            import tensorflow_transform as tft

            tft_output = tft.TFTransformOutput(find_transform_output(saved_model_dir))
            params = params if params is not None else contract_params(tft_output, self.problem)
            raw_features = raw_features if raw_features is not None else raw_example_features(tft_output)
        self.params = list(params)
        self.raw_features = dict(raw_features)
        # Keep the loaded object: its signatures read variables it owns.
        self._loaded = tf.saved_model.load(str(saved_model_dir))
        missing = {PREDICT_RAW, TRANSFORM_FEATURES} - set(self._loaded.signatures)
        if missing:
            raise ConversionError(
                f"{saved_model_dir} has no {', '.join(sorted(missing))} signature: "
                "not a SavedModel of this project's Trainer"
            )
        self._predict_raw = self._loaded.signatures[PREDICT_RAW]
        self._transform = self._loaded.signatures[TRANSFORM_FEATURES]

    def outputs(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """`predict_raw`'s output for raw rows: float32 [N] (binary, regression) or [N, K] (multiclass),
        NaN in every value of an `unanswerable` row.

        Those rows are not sent: `predict_raw` refuses them (InvalidArgumentError, a
        whole batch at a time), and the contract's answer for them is NaN. Raises
        RowError for a value that is not of its input's dtype.
        """
        import tensorflow as tf

        cols = runtime.columns(rows, input_spec(self.params))
        out = np.full(_output_shape(self.problem, len(rows)), np.nan, np.float32)
        keep = np.flatnonzero(~unanswerable(cols, self.params)) if rows else np.zeros([0], np.int64)
        for start in range(0, len(keep), _REFERENCE_BATCH):
            index = keep[start : start + _REFERENCE_BATCH]
            batch = {name: tf.constant(values[index]) for name, values in cols.items()}
            out[index] = self._predict_raw(**batch)[self.problem.output].numpy().reshape(out[index].shape)
        return out

    def labels(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """The transformed label of raw rows, by the model's own `transform_features` signature.

        Each row becomes a tf.Example of the raw schema's columns (`tfxp.rows.encode_examples`:
        blank cells are absent values), which the Trainer's tf.Transform graph turns into
        `F.LABEL_KEY`. Returns int64 [N] (binary 0/1, multiclass class index; NO_CLASS for a
        value outside the classes) or float32 [N] (regression). A row the transform refuses
        (a required column blank) has no label: NO_CLASS, or NaN for regression.
        Raises RowError for a cell its column's dtype cannot hold.
        """
        import tensorflow as tf

        regression = self.problem.label.task is F.Task.REGRESSION
        out = np.full([len(rows)], np.nan if regression else NO_CLASS, np.float32 if regression else np.int64)
        examples = R.encode_examples(rows, self.raw_features)
        for start in range(0, len(examples), _REFERENCE_BATCH):
            chunk = examples[start : start + _REFERENCE_BATCH]
            try:
                out[start : start + len(chunk)] = self._label(chunk)
            except tf.errors.InvalidArgumentError:
                # parse_example refuses the whole batch for one row lacking a required column:
                # label the rows one by one, leaving the refused ones without a label.
                for i, example in enumerate(chunk):
                    try:
                        out[start + i] = self._label([example])[0]
                    except tf.errors.InvalidArgumentError:
                        pass
        return out

    def _label(self, examples: list[bytes]) -> np.ndarray:
        import tensorflow as tf

        from tfxp.models.signatures import EXAMPLES_INPUT

        transformed = self._transform(**{EXAMPLES_INPUT: tf.constant(examples, tf.string)})
        if F.LABEL_KEY not in transformed:
            raise ConversionError(f"transform_features gives no {F.LABEL_KEY!r}: the Transform graph has no label")
        return transformed[F.LABEL_KEY].numpy().reshape(-1)


def _output_shape(problem: F.Problem, rows: int) -> list[int]:
    """[rows] or, for a multiclass problem, [rows, K]."""
    return [rows, problem.label.num_classes] if problem.label.task is F.Task.MULTICLASS else [rows]


def reference_outputs(
    saved_model_dir: str | Path, rows: Sequence[Mapping[str, Any]], params: Sequence[FeatureParams] | None = None
) -> np.ndarray:
    """The SavedModel's `predict_raw` outputs for raw rows (`SavedModelReference.outputs`):
    float32 [N] or [N, K], NaN for `unanswerable` rows."""
    return SavedModelReference(saved_model_dir, params).outputs(rows)


# Binary models answer one probability per row; the name callers of the binary-only gate used.
reference_probabilities = reference_outputs


def labels(saved_model_dir: str | Path, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """The transformed label of raw rows by the SavedModel's `transform_features` signature
    (`SavedModelReference.labels`): int64 [N] (NO_CLASS: none) or float32 [N] (regression; NaN: none)."""
    return SavedModelReference(saved_model_dir).labels(rows)


def check_label_column(rows: Sequence[Mapping[str, Any]], problem: F.Problem) -> None:
    """Raises ValueError naming the label column when no row holds it: the gate would measure
    every variant against labels of blank cells."""
    column = problem.label.column
    if rows and not any(column in row for row in rows):
        raise ValueError(
            f"the eval rows have no {column!r} column, the label the parity gate measures "
            f"the {GATED_METRIC[problem.label.task]} against"
        )


# -- the missing-value contract rows ------------------------------------------------------------


def contract_rows(rows: Sequence[Mapping[str, Any]], params: Sequence[FeatureParams]) -> list[dict]:
    """Rows with missing and invalid values, each one edit of the first answerable row.

    Per input: left blank; then values a client may send that the data never
    holds (infinities, huge and negative numbers, unseen and odd strings). The
    parity gate runs every variant on them besides the eval rows: rows the
    contract leaves unanswered must be NaN, the others must match `predict_raw`.
    Returns [] when `rows` has no answerable row.
    """
    if not rows:
        return []
    cols = runtime.columns(rows, input_spec(params))
    answerable = np.flatnonzero(~unanswerable(cols, params))
    if not len(answerable):
        return []
    base = dict(rows[int(answerable[0])])
    edits: list[dict] = [{p.name: "" for p in params if p.optional}, {p.name: "" for p in params if not p.optional}]
    for p in params:
        edits.append({p.name: ""})
        edits += [{p.name: value} for value in _odd_values(p)]
    return [dict(base, **edit) for edit in edits if edit]


def _odd_values(p: FeatureParams) -> list[str]:
    """Values of `p`'s dtype outside anything the training data holds (not its missing marker)."""
    if p.dtype is F.DType.FLOAT:
        return ["inf", "-inf", "1e30", "-1e30", "0", "-0.5"]
    if p.dtype is F.DType.INT:
        odd = ["0", "-7", str(2**62), str(-(2**62)), str(2**63 - 1)]
        return odd + ([str(p.size), "99"] if p.kind is F.Kind.CATEGORICAL_INT else [])
    # (A blank or all-whitespace cell is missing, as tfxp.rows.parse_value reads it.)
    near_key = (p.vocabulary[0] if p.vocabulary else "x") + " "
    return [unseen_value(p), "X" * 300, "Taxi Café 出租车", near_key]


# -- the gate -----------------------------------------------------------------------------------


@dataclass
class ParityReport:
    """A TFLite variant against the SavedModel's predict_raw on the same raw rows.

    `rows`: eval rows (the gate's metrics); `contract_rows`: `contract_rows(...)`
    checked besides them; `unanswered`: rows of both without an answer by the contract.
    Differences are over every output value (K per row for multiclass). `metric`: the
    task's gated metric (`GATED_METRIC`), `metrics` / `reference_metrics`: all of the
    task's metrics (`quality`) of the variant and of predict_raw, on `labeled_rows`.
    `auc`, `reference_auc`, `auc_delta`: binary only; `accuracy`: binary and multiclass.
    """

    variant: str
    gate: str
    rows: int
    passed: bool
    reasons: list[str]
    max_abs_diff: float | None
    mean_abs_diff: float | None
    auc: float | None
    reference_auc: float | None
    auc_delta: float | None
    accuracy: float | None
    task: str = F.Task.BINARY.value
    output: str = F.OUTPUTS[F.Task.BINARY]
    # max |d| / scale, the scale of the variant's gate: float, max(1, |reference|); quantized, `output_scale`.
    max_scaled_diff: float | None = None
    metric: str | None = None
    metric_value: float | None = None
    reference_metric_value: float | None = None
    metric_delta: float | None = None  # relative for rmse
    metrics: dict = field(default_factory=dict)
    reference_metrics: dict = field(default_factory=dict)
    labeled_rows: int = 0
    bytes_signature_max_abs_diff: float | None = None  # serving_bytes vs serving_default
    contract_rows: int = 0
    contract_max_abs_diff: float | None = None
    contract_max_scaled_diff: float | None = None  # what the contract-rows gate bounds
    unanswered: int = 0
    # The interpreter the gate ran on: {"package": "ai-edge-litert" | "tflite-runtime" | "tensorflow", "version"}.
    runtime: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-safe fields (non-finite floats as None, in nested metric dicts too)."""
        return {f.name: _json_safe(getattr(self, f.name)) for f in fields(self)}


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def parity(
    tflite_path: str | Path,
    saved_model_dir: str | Path,
    rows: Sequence[Mapping[str, Any]],
    *,
    params: Sequence[FeatureParams],
    problem: F.Problem | None = None,
    variant: str = FLOAT,
    reference: np.ndarray | None = None,
    contract: Sequence[Mapping[str, Any]] | None = None,
    contract_reference: np.ndarray | None = None,
    y: np.ndarray | None = None,
    saved_model: SavedModelReference | None = None,
    max_abs_diff: float = MAX_ABS_DIFF,
    max_auc_delta: float = MAX_AUC_DELTA,
    max_accuracy_delta: float = MAX_ACCURACY_DELTA,
    max_rmse_delta: float = MAX_RMSE_DELTA,
) -> ParityReport:
    """Runs the .tflite with the TFLite interpreter (`runtime.interpreter_class`: LiteRT, else tflite-runtime)
    on raw rows and compares with predict_raw.

    `rows`: raw eval rows (CSV strings or JSON values) holding the model's inputs and the
    label's columns; `params`: the model's inputs (`extract_preprocessing` /
    `contract_params`); `problem`: the model's Problem (default: the SavedModel's).
    The gate (module docstring): "float" -> every output value within max_abs_diff x
    max(1, |reference|) on eval and contract rows; every variant -> its task's metric
    within max_auc_delta (binary AUC), max_accuracy_delta + ACCURACY_NOISE_ROWS / labeled
    rows (multiclass accuracy) or max_rmse_delta x the SavedModel's RMSE (regression) of
    the SavedModel's on the same rows; NaN exactly where the reference is NaN (the missing-value contract); quantized
    variants on the contract rows within QUANT_CONTRACT_MAX_DIFF x `output_scale`.
    `reference` / `contract_reference` / `y`: precomputed `SavedModelReference.outputs`
    of `rows` / of `contract` and `.labels` of `rows`; `contract` defaults to
    `contract_rows(rows, params)`; `saved_model`: a loaded reference to compute missing ones.
    When the model also has `serving_bytes`, that signature must give the same outputs as
    `serving_default` (within BYTES_MAX_DIFF) on all rows. A failed gate is
    `passed=False` with `reasons`, not an exception. Raises RowError for a cell its
    column's dtype cannot hold.
    """
    rows = list(rows)
    contract = contract_rows(rows, params) if contract is None else list(contract)
    if reference is None or contract_reference is None or y is None:
        saved_model = saved_model or SavedModelReference(saved_model_dir, params, problem)
        problem = problem or saved_model.problem
        reference = saved_model.outputs(rows) if reference is None else reference
        contract_reference = saved_model.outputs(contract) if contract_reference is None else contract_reference
        y = saved_model.labels(rows) if y is None else y
    if problem is None:
        from tfxp.models.signatures import load_problem

        problem = load_problem(str(saved_model_dir))
    task, output = problem.label.task, problem.output
    model = runtime.TFLiteModel(tflite_path, output=output)
    cols = runtime.columns(rows + contract, input_spec(params))
    everything = _run(model, cols, problem)
    gate = _GateInputs(
        variant=variant,
        task=task,
        output=output,
        rows=len(rows),
        got=everything[: len(rows)],
        got_contract=everything[len(rows) :],
        reference=reference,
        contract_reference=contract_reference,
        y=y,
        scale=_variant_scale(variant, task, reference, max_abs_diff),
        metric_bounds={"auc": max_auc_delta, "accuracy": max_accuracy_delta, "rmse": max_rmse_delta},
    )
    if BYTES_SIGNATURE in model.signatures and len(everything):
        bytes_model = runtime.TFLiteModel(tflite_path, signature=BYTES_SIGNATURE, output=output, runtime=None)
        gate.as_bytes = _run(bytes_model, cols, problem)
    reasons = [reason for check in GATE_CHECKS for reason in check(gate)]
    return _report(gate, reasons, contract_rows=len(contract), ran_on=model.runtime)


# -- the gate as a list of checks ---------------------------------------------------------------


@dataclass
class _Scale:
    """How one variant's differences are measured (module docstring): float32 rounding for `float`
    (max(floor, |SavedModel's|)), the output's spread for quantized variants."""

    bound: float  # eval rows, per value
    contract_bound: float  # contract rows, per value
    text: str  # the scale as the gate's text shows it
    floor: float = 1.0
    spread: float | None = None  # quantized: output_scale's (spread, center)
    center: float = 0.0

    def of(self, values: np.ndarray) -> np.ndarray:
        if self.spread is None:
            return np.maximum(self.floor, _magnitude(values))
        return np.maximum(self.spread, np.abs(np.nan_to_num(np.asarray(values, np.float64)) - self.center))


def _variant_scale(variant: str, task: F.Task, reference: np.ndarray, max_abs_diff: float) -> _Scale:
    if variant == FLOAT:
        if task is not F.Task.REGRESSION:
            return _Scale(max_abs_diff, max(max_abs_diff, FLOAT_CONTRACT_MAX_DIFF), " x max(1, |SavedModel's|)")
        spread, center = output_scale(task, reference)
        floor = max(1.0, abs(center) + spread)
        text = f" x max({floor:.3g}, |SavedModel's|)"
        return _Scale(max_abs_diff, max(max_abs_diff, FLOAT_CONTRACT_MAX_DIFF), text, floor=floor)
    spread, center = output_scale(task, reference)
    text = f" x max({spread:.3g}, |SavedModel's - {center:.3g}|)" if task is F.Task.REGRESSION else ""
    return _Scale(QUANT_CONTRACT_MAX_DIFF, QUANT_CONTRACT_MAX_DIFF, text, spread=spread, center=center)


@dataclass
class _GateInputs:
    """What every check reads: the variant's and predict_raw's outputs on the eval rows ([N] or
    [N, K]) and on the contract rows, the eval rows' labels, and the variant's scale."""

    variant: str
    task: F.Task
    output: str
    rows: int
    got: np.ndarray
    got_contract: np.ndarray
    reference: np.ndarray
    contract_reference: np.ndarray
    y: np.ndarray
    scale: _Scale
    metric_bounds: dict[str, float]
    as_bytes: np.ndarray | None = None  # serving_bytes' outputs on eval + contract rows, when it has one
    _diffs: dict = field(default_factory=dict, repr=False)

    @cached_property
    def everything(self) -> np.ndarray:
        return np.concatenate([self.got, self.got_contract])

    def diff(self, contract: bool = False, scaled: bool = False) -> tuple[float | None, float | None]:
        """(max, mean) difference on the eval (or contract) rows, raw or in the variant's scale. Computed
        once per kind: the checks and the report read the same numbers."""
        key = (contract, scaled)
        if key not in self._diffs:
            got, want = (self.got_contract, self.contract_reference) if contract else (self.got, self.reference)
            self._diffs[key] = _diff(got, want, self.scale.of(want)) if scaled else _diff(got, want)
        return self._diffs[key]

    @cached_property
    def metric(self) -> dict[str, Any]:
        """The task's gated metric of the variant and of predict_raw on the labeled rows, and its bound
        (computed once: _check_metric and the report both read it)."""
        name = GATED_METRIC[self.task]
        metrics, reference_metrics = quality(self.task, self.y, self.got), quality(self.task, self.y, self.reference)
        labeled_rows = int(labeled(self.task, self.y, self.reference).sum())
        bound = self.metric_bounds[name]
        if name == "accuracy" and labeled_rows:
            bound += ACCURACY_NOISE_ROWS / labeled_rows
        value, reference_value = metrics[name], reference_metrics[name]
        return {
            "name": name,
            "value": value,
            "reference_value": reference_value,
            "delta": _metric_delta(name, value, reference_value),
            "bound": bound,
            "metrics": metrics,
            "reference_metrics": reference_metrics,
            "labeled_rows": labeled_rows,
            "relative": " x SavedModel's" if name == "rmse" else "",
        }


def _check_rows(gate: _GateInputs) -> list[str]:
    return [] if gate.rows else ["no rows to check parity on"]


def _check_float_values(gate: _GateInputs) -> list[str]:
    """The float variant, every output value on the eval rows within its bound x its scale."""
    max_diff, _ = gate.diff()
    scaled, _ = gate.diff(scaled=True)
    if gate.variant != FLOAT or scaled is None or scaled <= gate.scale.bound:
        return []
    shown = "" if scaled == max_diff else f"{gate.scale.text} (scaled: {scaled:.3g})"
    return [f"max |{gate.output} - SavedModel's| = {max_diff:.3g} > {gate.scale.bound:g}{shown}"]


def _check_contract_values(gate: _GateInputs) -> list[str]:
    """Every variant, every answered output value on the contract rows within its contract bound."""
    diff, _ = gate.diff(contract=True)
    scaled, _ = gate.diff(contract=True, scaled=True)
    if scaled is None or scaled <= gate.scale.contract_bound:
        return []
    shown = "" if scaled == diff else f"{gate.scale.text} (scaled: {scaled:.3g})"
    return [
        f"rows with missing and invalid values: max |{gate.output} - SavedModel's| = "
        f"{diff:.3g} > {gate.scale.contract_bound:g}{shown}"
    ]


def _check_no_answer(gate: _GateInputs) -> list[str]:
    """The missing-value contract: NaN exactly where predict_raw has no answer."""
    return _nan_mismatches(gate.everything, np.concatenate([gate.reference, gate.contract_reference]), gate.rows)


def _check_bytes_signature(gate: _GateInputs) -> list[str]:
    """serving_bytes gives serving_default's outputs (within BYTES_MAX_DIFF x max(1, |value|))."""
    if gate.as_bytes is None:
        return []
    scaled, _ = _diff(gate.as_bytes, gate.everything, _magnitude(gate.everything))
    if scaled is not None and scaled <= BYTES_MAX_DIFF:
        return []
    diff, _ = _diff(gate.as_bytes, gate.everything)
    return [f"{BYTES_SIGNATURE} differs from {SIGNATURE} by up to {diff:.3g}"]


def _check_metric(gate: _GateInputs) -> list[str]:
    """The task's metric within its bound of the SavedModel's; undefined fails a quantized variant."""
    m = gate.metric
    text = METRIC_TEXT[m["name"]]
    if m["delta"] is None:
        if not gate.rows or gate.variant == FLOAT:
            return []
        why = "both labels" if m["name"] == "auc" else "a label"
        rows = m["labeled_rows"]
        return [f"{text} undefined: the rows need {why} and finite outputs ({rows} labeled rows with an answer)"]
    if m["delta"] <= m["bound"]:
        return []
    return [
        f"{text} {m['value']:.5g} vs SavedModel {m['reference_value']:.5g}: |delta| {m['delta']:.5g} > "
        f"{m['bound']:.4g}{m['relative']}"
    ]


# In the order their reasons are listed; a variant is pushed only when none gives a reason.
GATE_CHECKS = (
    _check_bytes_signature,
    _check_no_answer,
    _check_rows,
    _check_metric,
    _check_float_values,
    _check_contract_values,
)


def _gate_text(gate: _GateInputs, metric: Mapping[str, Any]) -> str:
    text = f"|{METRIC_TEXT[metric['name']]} - SavedModel's| <= {metric['bound']:.4g}{metric['relative']}"
    if gate.variant == FLOAT:
        text = f"max |d{gate.output}| <= {gate.scale.bound:g}{gate.scale.text}; " + text
    return text + (
        f"; NaN exactly where predict_raw has no answer; contract rows max |d{gate.output}| <= "
        f"{gate.scale.contract_bound:g}{gate.scale.text}"
    )


def _report(gate: _GateInputs, reasons: list[str], contract_rows: int, ran_on: dict) -> ParityReport:
    metric = gate.metric
    max_diff, mean_diff = gate.diff()
    contract_diff, _ = gate.diff(contract=True)
    bytes_diff = _diff(gate.as_bytes, gate.everything)[0] if gate.as_bytes is not None else None
    binary = gate.task is F.Task.BINARY
    return ParityReport(
        variant=gate.variant,
        gate=_gate_text(gate, metric),
        rows=gate.rows,
        passed=not reasons,
        reasons=reasons,
        max_abs_diff=max_diff,
        mean_abs_diff=mean_diff,
        auc=metric["metrics"]["auc"] if binary else None,
        reference_auc=metric["reference_metrics"]["auc"] if binary else None,
        auc_delta=metric["delta"] if binary else None,
        accuracy=metric["metrics"].get("accuracy"),
        task=gate.task.value,
        output=gate.output,
        max_scaled_diff=gate.diff(scaled=True)[0],
        metric=metric["name"],
        metric_value=metric["value"],
        reference_metric_value=metric["reference_value"],
        metric_delta=metric["delta"],
        metrics=metric["metrics"],
        reference_metrics=metric["reference_metrics"],
        labeled_rows=metric["labeled_rows"],
        bytes_signature_max_abs_diff=bytes_diff,
        contract_rows=contract_rows,
        contract_max_abs_diff=contract_diff,
        contract_max_scaled_diff=gate.diff(contract=True, scaled=True)[0],
        unanswered=int(_nan_rows(gate.reference).sum() + _nan_rows(gate.contract_reference).sum()),
        runtime=ran_on,
    )


def output_scale(task: F.Task, reference: np.ndarray) -> tuple[float, float]:
    """(spread, center) a quantized variant's errors are measured against: (1, 0) for probabilities;
    for regression the std (1 when constant or absent) and mean of predict_raw's finite predictions
    on the eval rows, since quantization errors scale with what the layers add to the output, not
    with the label's mean."""
    if task is not F.Task.REGRESSION:
        return 1.0, 0.0
    finite = reference[np.isfinite(reference)].astype(np.float64)
    if not len(finite):
        return 1.0, 0.0
    std = float(np.std(finite))
    return (std if std > 0 else 1.0), float(np.mean(finite))


def _magnitude(values: np.ndarray) -> np.ndarray:
    """max(1, |values|): float32 rounding error grows with the value (NaN and inf count as 1)."""
    return np.maximum(1.0, np.abs(np.nan_to_num(np.asarray(values, np.float64), nan=0.0, posinf=0.0, neginf=0.0)))


def _run(model: runtime.TFLiteModel, cols: Mapping[str, np.ndarray], problem: F.Problem) -> np.ndarray:
    """The variant's output, [N] or [N, K] (the runtime may hand it back flattened)."""
    rows = len(next(iter(cols.values()))) if cols else 0
    return np.asarray(model.run(cols), np.float32).reshape(_output_shape(problem, rows))


def _per_row(values: np.ndarray) -> np.ndarray:
    """[N] or [N, K] -> [N, 1] or [N, K] (also for N = 0, where reshape(0, -1) is ambiguous)."""
    values = np.asarray(values)
    return values.reshape(len(values), -1) if values.size else values.reshape(len(values), 1)


def _nan_rows(outputs: np.ndarray) -> np.ndarray:
    """bool [N]: rows whose every output value is NaN (no answer)."""
    return _per_row(np.isnan(outputs)).all(axis=1)


def _nan_mismatches(got: np.ndarray, want: np.ndarray, eval_rows: int) -> list[str]:
    """The missing-value contract: a variant answers NaN (in every output value) exactly for the rows
    predict_raw leaves unanswered."""
    got_any = _per_row(np.isnan(got)).any(axis=1)
    got_all, want_none = _nan_rows(got), _nan_rows(want)
    reasons = []
    for name, bad in (
        ("NaN where predict_raw answers", got_any & ~want_none),
        ("a number where predict_raw has no answer", ~got_all & want_none),
    ):
        index = np.flatnonzero(bad)
        if len(index):
            where = ", ".join(f"eval row {i}" if i < eval_rows else f"contract row {i - eval_rows}" for i in index[:5])
            reasons.append(f"{name} in {len(index)} rows ({where}{', ...' if len(index) > 5 else ''})")
    return reasons


def _diff(got: np.ndarray, want: np.ndarray, scale: np.ndarray | float = 1.0) -> tuple[float | None, float | None]:
    """(max, mean) |got - want| / scale over every output value (`scale`: a number, or one per value).

    NaN in both, or the same infinity, counts as equal; NaN in one as infinitely different.
    """
    if not len(got):
        return None, None
    got, want = got.astype(np.float64), want.astype(np.float64)
    same = (np.isnan(got) & np.isnan(want)) | (got == want)
    with np.errstate(invalid="ignore"):
        diff = np.where(same, 0.0, np.abs(got - want) / scale)
    diff = np.where(np.isnan(diff), np.inf, diff)
    return float(diff.max()), float(diff.mean())
