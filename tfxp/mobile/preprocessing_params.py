"""Preprocessing parameters read off the tf.Transform output, in terms builtin TFLite ops can compute.

Why the preprocessing is rebuilt instead of converted: the tf.Transform graph
uses file-backed vocabulary tables and `Fingerprint64` hashing, which have no
TFLite builtin kernels, and the `serving_default` signature parses tf.Examples
(`ParseExample` is not a builtin either). So each feature's transform is
re-expressed (tfxp.mobile.graph) from parameters found here, each checked
against the real Transform on probe values (`TransformProbe`) before converting:

- NUMERIC (z-score): mean and standard deviation recovered from probes through
  the transform, to the float32 bit (each candidate reproduces every probe exactly).
- BUCKETIZED: the bucket thresholds found by binary search over the input's
  values (the smallest float32/int64 whose bucket is >= k, for each k);
  id = base + sum(x >= thresholds).
- CATEGORICAL_INT: id x + 1 for x in 0..size-1, else the OOV id size + 1.
- VOCABULARY: the vocabulary file, as constants: id = 1 + index of the key equal to
  the value, unseen values get the OOV id len(vocabulary) + 1. Int features (vocabularies of
  decimal strings) keep int64 keys, so no AsString is needed. The single OOV id
  needs `OOV_BUCKETS == 1` in models.features (several OOV buckets hash with
  Fingerprint64, which TFLite cannot run).
- Missing values: which features the raw schema lets be absent (`optional`) and
  which floats it keeps finite (`finite`): `contract_params`, without probing. A
  missing optional value is id MISSING_ID (0), or z = 0 and indicator 1.0 for NUMERIC
  (models.preprocessing.transform_feature), checked on probes too.

Which features there are, their kinds and dtypes come from the model's Problem
(`tfxp.models.signatures.load_problem`), never from a built-in feature list.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tfxp.mobile.errors import ConversionError
from tfxp.models import features as F

if TYPE_CHECKING:
    import tensorflow as tf
    import tensorflow_transform as tft

# Names of the raw dtypes in model_spec.json and TFLite's input details.
DTYPE_NAMES = {F.DType.INT: "int64", F.DType.FLOAT: "float32", F.DType.STRING: "string"}


def tf_dtype(dtype: F.DType) -> tf.DType:
    """The TF dtype of a raw feature's tensors: int64, float32 or string."""
    import tensorflow as tf

    return {F.DType.INT: tf.int64, F.DType.FLOAT: tf.float32, F.DType.STRING: tf.string}[dtype]


def np_dtype(dtype: F.DType) -> type:
    """The numpy dtype of a raw feature's column: np.int64, np.float32, or object (bytes) for strings."""
    return {F.DType.INT: np.int64, F.DType.FLOAT: np.float32, F.DType.STRING: object}[dtype]


def input_spec(params: Sequence[FeatureParams]) -> list[dict]:
    """name/dtype/missing marker of each model input, as `runtime.columns` and model_spec.json take them.

    `params`: one per raw input (`contract_params` / `extract_preprocessing`), in input order.
    """
    markers = {F.DType.INT: F.MISSING_INT, F.DType.FLOAT: "NaN", F.DType.STRING: F.MISSING_STRING}
    return [{"name": p.name, "dtype": DTYPE_NAMES[p.dtype], "missing_marker": markers[p.dtype]} for p in params]


def utf8(value: str) -> bytes:
    """A vocabulary key as the bytes the model compares (undecodable bytes round-trip via surrogateescape)."""
    return value.encode("utf-8", errors="surrogateescape")


def _json_number(value: Any) -> Any:
    return int(value) if isinstance(value, (int, np.integer)) else float(value)


@dataclass
class FeatureParams:
    """One raw feature's preprocessing, in terms builtin TFLite ops can compute."""

    name: str
    kind: F.Kind
    dtype: F.DType
    optional: bool  # the raw schema lets it be absent: the marker means "missing" -> MISSING_ID / z = 0
    finite: bool = False  # FLOAT whose schema disallows infinities: +-inf gets no answer, as in predict_raw
    mean: float | None = None  # NUMERIC: (x' - mean) / scale or (x' - mean) * scale, float32
    offset: int = 0  # NUMERIC int: x' = float32(x - offset), the difference taken in int64
    scale: float | None = None
    scale_op: str = "div"  # "div" | "mul" (1 / std): the op the transform's graph runs
    exact: bool = True  # NUMERIC: mean/std reproduce every probe bit for bit
    indicator: bool = False  # NUMERIC, optional: the model also takes indicator_name(name), 1.0 where missing
    base: int = 0  # BUCKETIZED: base + sum(x >= thresholds)
    thresholds: list = field(default_factory=list)
    size: int = 0  # CATEGORICAL_INT: id x + 1 for x in 0..size-1, else size + 1
    vocabulary: list = field(default_factory=list)  # VOCABULARY: str or int keys, id = index + 1

    @property
    def std(self) -> float | None:
        """NUMERIC: the standard deviation the transform divides by (None before fitting)."""
        if self.scale is None:
            return None
        return self.scale if self.scale_op == "div" else float(np.float32(1) / np.float32(self.scale))

    @property
    def oov_id(self) -> int | None:
        """CATEGORICAL_INT, VOCABULARY: the one id every unseen value gets (models.features.oov_id); else None."""
        return F.oov_id(F.Feature(self.name, self.kind, self.dtype, self.size), len(self.vocabulary))

    @property
    def byte_width(self) -> int:
        """String features in `serving_bytes`: one more byte than the longest UTF-8 key.

        A longer value, cut to this width, still ends in a non-zero byte where every
        key has padding, so it stays out of vocabulary.
        """
        return 1 + max([len(utf8(v)) for v in self.vocabulary if isinstance(v, str)], default=0)

    def describe(self) -> dict:
        """JSON-safe summary for model_spec.json (vocabularies by size only)."""
        out: dict[str, Any] = {"kind": self.kind.value}
        if self.kind is F.Kind.NUMERIC:
            out.update(mean=self.mean, std=self.std, missing_indicator=self.indicator)
            if self.dtype is F.DType.INT:
                out.update(offset=self.offset)
        elif self.kind is F.Kind.BUCKETIZED:
            out.update(
                buckets=self.base + len(self.thresholds) + 1, thresholds=[_json_number(t) for t in self.thresholds]
            )
        elif self.kind is F.Kind.CATEGORICAL_INT:
            out.update(size=self.size, oov_id=self.oov_id)
        else:
            out.update(vocabulary_size=len(self.vocabulary), oov_id=self.oov_id)
            if self.dtype is F.DType.STRING:
                out.update(byte_width=self.byte_width)
        return out


def find_transform_output(saved_model_dir: str | Path) -> str:
    """The Transform output folder a SavedModel carries (models.signatures.TRANSFORM_OUTPUT_DIR).

    Raises ConversionError if it has none (saved by an older trainer).
    """
    from tfxp.models.signatures import TRANSFORM_OUTPUT_DIR

    path = Path(saved_model_dir) / TRANSFORM_OUTPUT_DIR
    if not (path / "transform_fn").is_dir():
        raise ConversionError(
            f"{saved_model_dir} carries no Transform output ({TRANSFORM_OUTPUT_DIR}/); "
            "pass the Transform component's transform_graph folder explicitly"
        )
    return str(path)


class TransformProbe:
    """Runs the real tf.Transform graph on raw columns with `predict_raw`'s missing markers.

    Same path as the `predict_raw` signature minus the model: dense raw tensors ->
    `models.signatures.raw_tensors_to_features` -> the Transform layer.
    `problem`: the model's Problem (its `features` are the probed inputs).
    Raises ConversionError when a feature of the problem is not in the Transform
    output's raw schema (the SavedModel and the Transform output do not belong together).
    """

    def __init__(self, tft_output: tft.TFTransformOutput, problem: F.Problem):
        import tensorflow as tf

        from tfxp.models import signatures

        # The serving raw spec (label dropped, unused columns defaulted) that predict_raw uses.
        spec = signatures.raw_serving_spec(tft_output, problem)
        _check_features_in_schema(spec, problem)
        self.raw_spec = spec
        self.problem = problem
        features = problem.features
        layer = tft_output.transform_features_layer()
        inputs = {f.name: tf.TensorSpec([None], tf_dtype(f.dtype), name=f.name) for f in features}

        @tf.function(autograph=False, input_signature=[inputs])
        def transform(raw):
            out = layer(signatures.raw_tensors_to_features(raw, spec, problem))
            names = [F.transformed_name(f.name) for f in features]
            names += [F.indicator_name(f.name) for f in features if F.has_indicator(f)]
            return {name: tf.reshape(out[name], [-1]) for name in names}

        self._transform = transform

    def columns(self, cols: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Transformed features of raw columns.

        `cols`: {feature name: [batch] array} (int64, float32, or object of bytes, at
        least one column), as `runtime.columns` gives; absent columns are all-missing.
        Returns {`<name>_xf`: [batch] array} for every feature, in the transform's dtypes
        (float32 z-scores, int64 ids), and {`<name>_xf_missing`: float32 [batch]} for optional NUMERIC ones.
        """
        batch = len(next(iter(cols.values())))
        raw = {}
        for f in self.problem.features:
            if f.name in cols:
                raw[f.name] = np.asarray(cols[f.name], dtype=np_dtype(f.dtype))
            else:
                raw[f.name] = np.full([batch], F.missing_value(f.dtype), dtype=np_dtype(f.dtype))
        return {name: value.numpy() for name, value in self._transform(raw).items()}

    def __call__(self, feature: F.Feature, values: Sequence[Any]) -> np.ndarray:
        """The transformed value of each of `values` of one feature ([len(values)] array)."""
        values = [v.encode() if isinstance(v, str) else v for v in values]
        return self.columns({feature.name: np.asarray(values, dtype=np_dtype(feature.dtype))})[
            F.transformed_name(feature.name)
        ]


def _check_features_in_schema(raw_spec: Mapping[str, Any], problem: F.Problem) -> None:
    missing = [f.name for f in problem.features if f.name not in raw_spec]
    if missing:
        raise ConversionError(
            f"the model's features {', '.join(missing)} are not in the Transform output's raw "
            "schema: the SavedModel and the Transform output do not belong together"
        )


def extract_preprocessing(
    tft_output: tft.TFTransformOutput, problem: F.Problem, probe: TransformProbe | None = None
) -> list[FeatureParams]:
    """Each input feature's preprocessing parameters (in `problem.features` order), checked against the
    transform on probes.

    Raises ConversionError when a feature's transform is not the formula its kind
    promises (no z-score, thresholds or vocabulary reproduces it), OOV_BUCKETS != 1,
    or a feature of the problem is not in the Transform output.
    """
    probe = probe or TransformProbe(tft_output, problem)
    params = []
    for feature, p in zip(problem.features, contract_params(tft_output, problem), strict=True):
        if feature.kind is F.Kind.NUMERIC:
            p.offset, p.mean, p.scale, p.scale_op, p.exact = _fit_z_score(probe, feature)
        elif feature.kind is F.Kind.BUCKETIZED:
            p.base, p.thresholds = _find_thresholds(probe, feature)
        elif feature.kind is F.Kind.CATEGORICAL_INT:
            p.size = feature.size
            _check_categorical(probe, feature, p)
        else:
            p.vocabulary = _vocabulary(tft_output, feature)
            _check_vocabulary(probe, feature, p)
        if p.optional:
            _check_missing(probe, feature, p)
        params.append(p)
    return params


def contract_params(tft_output: tft.TFTransformOutput, problem: F.Problem) -> list[FeatureParams]:
    """Each input feature's FeatureParams (in `problem.features` order) with only what the missing-value
    contract needs (`optional`, `finite`, from the raw schema), before any probing of the transform.

    Raises ConversionError when a feature of the problem is not in the Transform output's raw schema.
    """
    import tensorflow as tf

    from tfxp.models.signatures import finite_features, raw_serving_spec

    spec = raw_serving_spec(tft_output, problem)
    _check_features_in_schema(spec, problem)
    finite = finite_features(tft_output.raw_metadata.schema)
    return [
        FeatureParams(
            f.name,
            f.kind,
            f.dtype,
            optional=not isinstance(spec[f.name], tf.io.FixedLenFeature),
            finite=f.dtype is F.DType.FLOAT and f.name in finite,
            indicator=F.has_indicator(f),
        )
        for f in problem.features
    ]


def _probe_values(feature: F.Feature, values) -> list:
    """Probe inputs of the feature's dtype, leaving out the int marker (it means 'missing')."""
    if feature.dtype is F.DType.INT:
        return sorted({int(v) for v in values if int(v) != F.MISSING_INT})
    return list(np.asarray(values, np.float32))


# -- NUMERIC: z-scores --------------------------------------------------------------------------


def _fit_z_score(probe: TransformProbe, feature: F.Feature) -> tuple[int, float, float, str, bool]:
    """(offset, mean, scale, op, exact): z = fl(fl(x' - mean) op scale) in float32 reproducing the
    transform, where x' = float32(x - offset) (int features, offset an int64 near the mean, as the
    transform centres them: models.preprocessing.int_z_score) or x (floats, offset 0).

    tf.Transform writes (x - mean) / sqrt(var) (a zero std leaves x - mean, which
    scale 1 reproduces), but TF's graph optimizer may turn the division by a
    constant into a multiplication by its reciprocal; both forms are tried.
    Estimates from far-apart probes and from probes next to the mean pin mean and
    std down to a few ulps; float32 neighbours are then tried until one
    (mean, scale, op) reproduces every probe bit for bit.
    """
    wide = [0, 1, 2, 3, 10, 100, 1000, 1e4, 1e5, 1e6, -2, -10, -100, -1000, -1e4, -1e5, -1e6]
    xs = _probe_values(feature, wide)
    zs = probe(feature, xs).astype(np.float64)
    lo, hi = int(np.argmin(xs)), int(np.argmax(xs))
    if zs[hi] == zs[lo]:
        raise ConversionError(f"{feature.name}: the transform output does not depend on the input")
    std = (float(xs[hi]) - float(xs[lo])) / (zs[hi] - zs[lo])
    i = int(np.argmin(np.abs(zs)))
    mean = float(xs[i]) - zs[i] * std
    for _ in range(3):
        # Re-probe next to the estimate (x - mean is then nearly exact), and 3 std either side of it:
        # for a column far from 0 (a timestamp ~1.4e9) the fixed probes above all sit ~80 std away,
        # where the z-scores' float32 rounding left std wrong by ~1e-4.
        near = _probe_values(feature, [mean] if feature.dtype is F.DType.FLOAT else [math.floor(mean), math.ceil(mean)])
        zn = probe(feature, near).astype(np.float64)
        i = int(np.argmin(np.abs(zn)))
        mean = float(near[i]) - zn[i] * std
        pair = _probe_values(feature, [mean - 3 * abs(std), mean + 3 * abs(std)])
        zp = probe(feature, pair).astype(np.float64)
        if len(pair) == 2 and zp[1] != zp[0]:
            std = (float(pair[1]) - float(pair[0])) / (zp[1] - zp[0])
    rng = np.random.default_rng(0)
    extra = list(np.linspace(-3, 3, 25) * abs(std) + mean) + [mean + d for d in range(-5, 6)]
    extra += list(rng.normal(mean, abs(std) * 2, 64))
    xs = _probe_values(feature, list(xs) + extra)
    zs = probe(feature, xs).astype(np.float64)
    offset = int(round(mean)) if feature.dtype is F.DType.INT else 0
    if offset:
        x32 = (np.asarray(xs, np.int64) - np.int64(offset)).astype(np.float32)
        mean -= offset
    else:
        x32 = np.asarray(xs, np.float64).astype(np.float32)
    best = None
    for op, estimate in (("div", std), ("mul", 1.0 / std)):
        for m in _float32_neighbours(mean, 8):
            numerator = x32 - m
            for s in _float32_neighbours(estimate, 8):
                if s == 0:
                    continue
                with np.errstate(all="ignore"):
                    z = numerator / s if op == "div" else numerator * s
                error = float(np.max(np.abs(z.astype(np.float64) - zs)))
                if best is None or error < best[0]:
                    best = (error, float(m), float(s), op)
                if error == 0:
                    return offset, float(m), float(s), op, True
    error, m, s, op = best
    if error > 1e-5 * max(1.0, float(np.max(np.abs(zs)))):
        raise ConversionError(f"{feature.name}: no (mean, std) reproduces the transform (max error {error})")
    return offset, m, s, op, False


def _float32_neighbours(value: float, count: int) -> list[np.float32]:
    center = np.float32(value)
    out = [center]
    up = down = center
    for _ in range(count):
        up = np.nextafter(up, np.float32(np.inf))
        down = np.nextafter(down, np.float32(-np.inf))
        out += [up, down]
    return out


# -- BUCKETIZED: thresholds, by binary search over each input's values in order ----------------


def _to_keys(values: np.ndarray, dtype: F.DType) -> list[int]:
    if dtype is F.DType.INT:
        return [int(v) for v in values]
    bits = np.asarray(values, np.float32).view(np.uint32).astype(np.int64)
    return [int(k) for k in np.where(bits >= 0x80000000, 0xFFFFFFFF - bits, bits + 0x80000000)]


def _from_keys(keys: Sequence[int], dtype: F.DType) -> np.ndarray:
    if dtype is F.DType.INT:
        return np.asarray(keys, np.int64)
    keys = np.asarray(keys, np.int64)
    bits = np.where(keys >= 0x80000000, keys - 0x80000000, 0xFFFFFFFF - keys)
    return bits.astype(np.uint32).view(np.float32)


def _find_thresholds(probe: TransformProbe, feature: F.Feature) -> tuple[int, list]:
    """(base, thresholds): bucket(x) == base + #{t in thresholds: x >= t} for every x.

    thresholds[j] is the smallest value (float32, or int64 for int features) whose
    bucket is >= base + j + 1: exact whatever the transform's boundary semantics.
    """
    if feature.dtype is F.DType.INT:
        lowest, highest = -(2**62), 2**62
    else:
        finfo = np.finfo(np.float32)
        lowest, highest = float(finfo.min), float(finfo.max)
    ends = probe(feature, _probe_values(feature, [lowest, highest]))
    base, top = int(ends[0]), int(ends[-1])
    targets = list(range(base + 1, top + 1))
    lo_key, hi_key = (
        _to_keys(_from_keys_value(lowest, feature.dtype), feature.dtype)[0],
        _to_keys(_from_keys_value(highest, feature.dtype), feature.dtype)[0],
    )
    lo = [lo_key] * len(targets)
    hi = [hi_key] * len(targets)
    while targets and any(high - low > 1 for low, high in zip(lo, hi, strict=True)):
        mid = [(low + high) // 2 for low, high in zip(lo, hi, strict=True)]
        buckets = probe(feature, list(_from_keys(mid, feature.dtype)))
        for j, (bucket, k) in enumerate(zip(buckets, targets, strict=True)):
            if hi[j] - lo[j] <= 1:
                continue
            if bucket >= k:
                hi[j] = mid[j]
            else:
                lo[j] = mid[j]
    thresholds = list(_from_keys(hi, feature.dtype))
    thresholds = [int(t) for t in thresholds] if feature.dtype is F.DType.INT else [float(t) for t in thresholds]
    _check_buckets(probe, feature, base, thresholds)
    return base, thresholds


def _from_keys_value(value, dtype: F.DType) -> np.ndarray:
    return np.asarray([value], np.int64 if dtype is F.DType.INT else np.float32)


def bucketize(x: np.ndarray, base: int, thresholds: Sequence) -> np.ndarray:
    """The bucket formula the TFLite graph computes, in numpy (for checks).

    `x`: [batch] values; returns int64 [batch]: base + #{t in thresholds: x >= t}.
    """
    if not len(thresholds):
        return np.full(np.shape(x), base, np.int64)
    return base + np.sum(np.asarray(x)[:, None] >= np.asarray(thresholds)[None, :], axis=1)


def _check_buckets(probe: TransformProbe, feature: F.Feature, base: int, thresholds: list) -> None:
    values = []
    for t in thresholds:
        if feature.dtype is F.DType.INT:
            values += [t - 1, t, t + 1]
        else:
            t32 = np.float32(t)
            values += [np.nextafter(t32, np.float32(-np.inf)), t32, np.nextafter(t32, np.float32(np.inf))]
    if thresholds:
        rng = np.random.default_rng(0)
        span = max(thresholds) - min(thresholds)
        values += list(rng.uniform(min(thresholds) - span - 1, max(thresholds) + span + 1, 512))
    values += [0, 1, -2]
    xs = _probe_values(feature, values)
    got = probe(feature, xs)
    want = bucketize(np.asarray(xs, np_dtype(feature.dtype)), base, thresholds)
    if not np.array_equal(got, want):
        bad = int(np.argmax(got != want))
        raise ConversionError(
            f"{feature.name}: bucket thresholds do not reproduce the transform "
            f"(x={xs[bad]!r}: transform {got[bad]}, thresholds {want[bad]})"
        )


def _check_missing(probe: TransformProbe, feature: F.Feature, p: FeatureParams) -> None:
    """A missing optional value is MISSING_ID, or z = 0 with indicator 1.0 (NUMERIC), in the transform."""
    out = probe.columns({feature.name: np.full([1], F.missing_value(feature.dtype), dtype=np_dtype(feature.dtype))})
    got = [float(out[F.transformed_name(feature.name)][0])]
    want = [0.0]
    if p.indicator:
        got.append(float(out[F.indicator_name(feature.name)][0]))
        want.append(1.0)
    if got != want:
        raise ConversionError(f"{feature.name}: a missing value transforms to {got}, not {want}")


# -- CATEGORICAL_INT and VOCABULARY ------------------------------------------------------------


def _check_categorical(probe: TransformProbe, feature: F.Feature, p: FeatureParams) -> None:
    xs = _probe_values(feature, [-5, -1, 0, 1, p.size - 1, p.size, p.size + 5, 10**6])
    got = probe(feature, xs)
    x = np.asarray(xs, np.int64)
    want = np.where((x >= 0) & (x < p.size), x + 1, p.size + 1)
    if not np.array_equal(got, want):
        raise ConversionError(
            f"{feature.name}: transform is not x + 1 for 0..{p.size - 1}, else {p.size + 1}: {xs} -> {got.tolist()}"
        )


def _as_bytes(entry: Any) -> bytes:
    return entry if isinstance(entry, bytes) else str(entry).encode()


def _empty_vocabulary_entry() -> bytes:
    """The entry tf.Transform writes into a string vocabulary that has no values."""
    import tensorflow as tf
    from tensorflow_transform import analyzers

    return analyzers.get_empy_vocabulary_dummy_value(tf.string)[1]


def _vocabulary(tft_output: tft.TFTransformOutput, feature: F.Feature) -> list:
    entries = tft_output.vocabulary_by_name(feature.name)
    if feature.dtype is F.DType.STRING:
        return [e.decode("utf-8", errors="surrogateescape") if isinstance(e, bytes) else e for e in entries]
    if len(entries) == 1 and _as_bytes(entries[0]) == _empty_vocabulary_entry():
        # No training value (a column missing in every training row): tf.Transform writes one dummy
        # entry, which no int matches. MISSING_INT is such a key: a present int never equals it.
        return [F.MISSING_INT]
    keys = []
    for entry in entries:
        text = entry.decode() if isinstance(entry, bytes) else entry
        try:
            key = int(text)
        except ValueError:
            raise ConversionError(f"{feature.name}: vocabulary entry {text!r} is not an integer") from None
        if str(key) != text:
            raise ConversionError(f"{feature.name}: vocabulary entry {text!r} is not as_string's form")
        keys.append(key)
    return keys


def unseen_value(p: FeatureParams) -> Any:
    """A value of `p`'s dtype (str or int) that is not in its vocabulary (its OOV id in the transform)."""
    if p.dtype is F.DType.STRING:
        taken = set(p.vocabulary)
        candidate = "\x01unseen value\x01"
        while candidate in taken:
            candidate += "\x01"
        return candidate
    return max([0, *p.vocabulary]) + 1


def _check_vocabulary(probe: TransformProbe, feature: F.Feature, p: FeatureParams) -> None:
    if F.OOV_BUCKETS != 1:
        raise ConversionError(
            f"tfxp.models.features.OOV_BUCKETS is {F.OOV_BUCKETS}: TFLite builtins cannot hash out-of-vocabulary "
            "values into several buckets (Fingerprint64); use 1"
        )
    if p.vocabulary and p.vocabulary != [F.MISSING_INT]:  # [MISSING_INT]: an empty vocabulary (see _vocabulary)
        values = [v.encode("utf-8", errors="surrogateescape") if isinstance(v, str) else v for v in p.vocabulary]
        got = probe.columns({feature.name: np.asarray(values, dtype=np_dtype(feature.dtype))})[
            F.transformed_name(feature.name)
        ]
        want = np.arange(1, len(values) + 1)
        if not np.array_equal(got, want):
            bad = int(np.argmax(got != want))
            raise ConversionError(
                f"{feature.name}: vocabulary entry {p.vocabulary[bad]!r} has id {got[bad]} in the transform, "
                f"not {want[bad]}"
            )
    unseen = unseen_value(p)
    got = int(probe(feature, [unseen])[0])
    if got != p.oov_id:
        raise ConversionError(f"{feature.name}: an unseen value gets id {got} in the transform, not {p.oov_id}")
