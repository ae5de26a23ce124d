"""SavedModel + tf.Transform output -> TFLite models that take RAW features, builtin ops only.

Why the preprocessing is rebuilt instead of converted: the tf.Transform graph
uses file-backed vocabulary tables and `Fingerprint64` hashing, which have no
TFLite builtin kernels, and the `serving_default` signature parses tf.Examples
(`ParseExample` is not a builtin either). So each feature's transform is
re-expressed with builtin-friendly ops, from parameters read off the Transform
output, and checked against the Transform on probe values before converting:

- NUMERIC (z-score): mean and standard deviation recovered from probes through
  the transform, to the float32 bit (each candidate reproduces every probe exactly).
- BUCKETIZED: the bucket thresholds found by binary search over the input's
  values (the smallest float32/int64 whose bucket is >= k, for each k);
  bucket = base + sum(x >= thresholds).
- CATEGORICAL_INT: clip to [0, size-1].
- VOCABULARY: the vocabulary file, as constants: id = index of the key equal to
  the value (EQUAL + ARG_MAX), unseen values get id len(vocabulary). Int features
  (vocabularies of decimal strings) match int64 keys, so no AsString is needed.
  No hash tables: TFLite's HASHTABLE has no int64->int64 kernel, and a SavedModel
  with table initializers made the converter drop all signatures but one. The
  single OOV id needs `OOV_BUCKETS == 1` in models.features (several OOV buckets
  hash with Fingerprint64, which TFLite cannot run).
- Missing values: the `predict_raw` markers (NaN / -1 / ""). For features the
  raw schema lets be absent they become the transform's default (0, 0.0, "")
  before the transform, as `predict_raw` does. Where `predict_raw` refuses
  (models.signatures.check_raw_inputs) every variant answers NaN: a required
  feature at its marker, an infinite float the schema disallows. Inputs of
  unequal lengths fail the call (RESHAPE), as they fail `predict_raw`. NaN is
  found as x != x (no IsNan builtin).

Then the Keras model (inputs `<name>_xf`, [batch, 1]) is called on the result and
the whole `serving_default(raw) -> probability` signature is converted with
`TFLITE_BUILTINS` only: a float32 model and a dynamic-range quantized one. A
second signature, `serving_bytes`, takes string features as zero-padded UTF-8
bytes (uint8 [batch, width]) for runtimes without string tensors
(TensorFlowLiteSwift); it shares the weights and gives the same results. Each
variant is checked for non-builtin operators and, given eval rows, gated on
parity with the SavedModel's `predict_raw` (float: max |dp| <= 1e-5; quantized:
AUC within 0.005), and on the missing-value contract: on the eval rows and on
rows with missing and invalid values (`contract_rows`), NaN exactly where
`predict_raw` has no answer, and the same answer elsewhere. Only variants that
pass are written.

A full-integer (int8 activations) variant is not produced: its inputs are
strings and int64 ids and its preprocessing is lookups and comparisons, so
little of the graph would be integer-quantized; dynamic-range quantization
already quantizes the weights (embeddings, dense layers).
"""
from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import tfxp.models  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
import numpy as np

from tfxp.mobile import runtime
from tfxp.mobile.runtime import BYTES_SIGNATURE, FLOAT, QUANT, SIGNATURE, SPEC_FILE, VARIANT_FILES, encode_bytes
from tfxp.models import features as F

MAX_ABS_DIFF = 1e-5
MAX_AUC_DELTA = 0.005
# serving_bytes must match serving_default: same ids, same graph after the lookups.
BYTES_MAX_DIFF = 1e-6
# The quantized variant on the rows with missing and invalid values (no AUC on a
# hundred edited rows): each probability within this of predict_raw's (measured:
# 2.4e-4 there, 0.012 at most on real rows).
QUANT_CONTRACT_MAX_DIFF = 0.05
SPEC_FORMAT = 1
# Rows per SavedModel call in parity checks.
_REFERENCE_BATCH = 1024


class ConversionError(RuntimeError):
    """The transform cannot be expressed with builtin ops, or does not behave as expected."""


class NonBuiltinOpsError(ConversionError):
    """A TFLite flatbuffer holds Flex (select TF) or custom operators."""

    def __init__(self, ops: Sequence[str]):
        super().__init__(f"non-builtin operators in the model: {', '.join(ops)}")
        self.ops = list(ops)


# -- preprocessing parameters -----------------------------------------------------------------


@dataclass
class FeatureParams:
    """One raw feature's preprocessing, in terms builtin TFLite ops can compute."""

    name: str
    kind: F.Kind
    dtype: F.DType
    optional: bool  # the raw schema lets it be absent: the marker means "missing" -> default
    finite: bool = False  # FLOAT whose schema disallows infinities: +-inf gets no answer, as in predict_raw
    mean: float | None = None  # NUMERIC: (x - mean) / scale or (x - mean) * scale, float32
    scale: float | None = None
    scale_op: str = "div"  # "div" | "mul" (1 / std): the op the transform's graph runs
    exact: bool = True  # NUMERIC: mean/std reproduce every probe bit for bit
    base: int = 0  # BUCKETIZED: base + sum(x >= thresholds)
    thresholds: list = field(default_factory=list)
    size: int = 0  # CATEGORICAL_INT: clip to [0, size-1]
    vocabulary: list = field(default_factory=list)  # VOCABULARY: str or int keys, id = index

    @property
    def std(self) -> float | None:
        if self.scale is None:
            return None
        return self.scale if self.scale_op == "div" else float(np.float32(1) / np.float32(self.scale))

    @property
    def oov_id(self) -> int:
        return len(self.vocabulary)

    @property
    def byte_width(self) -> int:
        """String features in `serving_bytes`: one more byte than the longest UTF-8 key.

        A longer value, cut to this width, still ends in a non-zero byte where every
        key has padding, so it stays out of vocabulary.
        """
        return 1 + max([len(_utf8(v)) for v in self.vocabulary if isinstance(v, str)], default=0)

    def describe(self) -> dict:
        """JSON-safe summary for model_spec.json (vocabularies by size only)."""
        out: dict[str, Any] = {"kind": self.kind.value}
        if self.kind is F.Kind.NUMERIC:
            out.update(mean=self.mean, std=self.std)
        elif self.kind is F.Kind.BUCKETIZED:
            out.update(buckets=self.base + len(self.thresholds) + 1, thresholds=[_json_number(t) for t in self.thresholds])
        elif self.kind is F.Kind.CATEGORICAL_INT:
            out.update(size=self.size)
        else:
            out.update(vocabulary_size=len(self.vocabulary), oov_id=self.oov_id)
            if self.dtype is F.DType.STRING:
                out.update(byte_width=self.byte_width)
        return out


def _json_number(value: Any) -> Any:
    return int(value) if isinstance(value, (int, np.integer)) else float(value)


_TF_DTYPE_NAMES = {F.DType.INT: "int64", F.DType.FLOAT: "float32", F.DType.STRING: "string"}


def _tf_dtype(dtype: F.DType):
    import tensorflow as tf

    return {F.DType.INT: tf.int64, F.DType.FLOAT: tf.float32, F.DType.STRING: tf.string}[dtype]


def _np_dtype(dtype: F.DType):
    return {F.DType.INT: np.int64, F.DType.FLOAT: np.float32, F.DType.STRING: object}[dtype]


class TransformProbe:
    """Runs the real tf.Transform graph on raw columns with `predict_raw`'s missing markers.

    Same path as the `predict_raw` signature minus the model: dense raw tensors ->
    `models.signatures.raw_tensors_to_features` -> the Transform layer.
    """

    def __init__(self, tft_output):
        import tensorflow as tf

        from tfxp.models import signatures

        # The serving raw spec (labels dropped, unused columns defaulted) that
        # predict_raw uses.
        spec = signatures.raw_serving_spec(tft_output)
        self.raw_spec = spec
        layer = tft_output.transform_features_layer()
        inputs = {f.name: tf.TensorSpec([None], _tf_dtype(f.dtype), name=f.name) for f in F.FEATURES}

        @tf.function(autograph=False, input_signature=[inputs])
        def transform(raw):
            out = layer(signatures.raw_tensors_to_features(raw, spec))
            return {F.transformed_name(f.name): tf.reshape(out[F.transformed_name(f.name)], [-1]) for f in F.FEATURES}

        self._transform = transform

    def columns(self, cols: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Transformed features ([batch] each) of raw columns; absent columns are all-missing."""
        batch = len(next(iter(cols.values())))
        raw = {}
        for f in F.FEATURES:
            if f.name in cols:
                raw[f.name] = np.asarray(cols[f.name], dtype=_np_dtype(f.dtype))
            else:
                raw[f.name] = np.full([batch], F.missing_value(f.dtype), dtype=_np_dtype(f.dtype))
        return {name: value.numpy() for name, value in self._transform(raw).items()}

    def __call__(self, feature: F.Feature, values: Sequence[Any]) -> np.ndarray:
        """The transformed value of each of `values` of one feature."""
        values = [v.encode() if isinstance(v, str) else v for v in values]
        return self.columns({feature.name: np.asarray(values, dtype=_np_dtype(feature.dtype))})[
            F.transformed_name(feature.name)]


def extract_preprocessing(tft_output, probe: TransformProbe | None = None) -> list[FeatureParams]:
    """Each feature's preprocessing parameters, checked against the transform on probe values."""
    probe = probe or TransformProbe(tft_output)
    params = []
    for feature, p in zip(F.FEATURES, contract_params(tft_output)):
        if feature.kind is F.Kind.NUMERIC:
            p.mean, p.scale, p.scale_op, p.exact = _fit_z_score(probe, feature)
        elif feature.kind is F.Kind.BUCKETIZED:
            p.base, p.thresholds = _find_thresholds(probe, feature)
        elif feature.kind is F.Kind.CATEGORICAL_INT:
            p.size = feature.size
            _check_categorical(probe, feature, p)
        else:
            p.vocabulary = _vocabulary(tft_output, feature)
            _check_vocabulary(probe, feature, p)
        params.append(p)
    return params


def contract_params(tft_output) -> list[FeatureParams]:
    """Each feature's FeatureParams with only what the missing-value contract needs
    (`optional`, `finite`, from the raw schema), before any probing of the transform."""
    import tensorflow as tf

    from tfxp.models.signatures import finite_features, raw_serving_spec

    spec = raw_serving_spec(tft_output)
    finite = finite_features(tft_output.raw_metadata.schema)
    return [FeatureParams(f.name, f.kind, f.dtype, optional=not isinstance(spec[f.name], tf.io.FixedLenFeature),
                          finite=f.dtype is F.DType.FLOAT and f.name in finite) for f in F.FEATURES]


def _probe_values(feature: F.Feature, values) -> list:
    """Probe inputs of the feature's dtype, leaving out the int marker (it means 'missing')."""
    if feature.dtype is F.DType.INT:
        return sorted({int(v) for v in values if int(v) != F.MISSING_INT})
    return list(np.asarray(values, np.float32))


def _fit_z_score(probe: TransformProbe, feature: F.Feature) -> tuple[float, float, str, bool]:
    """(mean, scale, op, exact): z = fl(fl(x - mean) op scale) in float32 reproducing the transform.

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
    for _ in range(2):  # re-probe next to the estimate: x - mean is then (nearly) exact
        near = _probe_values(feature, [mean] if feature.dtype is F.DType.FLOAT else [math.floor(mean), math.ceil(mean)])
        zn = probe(feature, near).astype(np.float64)
        i = int(np.argmin(np.abs(zn)))
        mean = float(near[i]) - zn[i] * std
    rng = np.random.default_rng(0)
    extra = list(np.linspace(-3, 3, 25) * abs(std) + mean) + [mean + d for d in range(-5, 6)]
    extra += list(rng.normal(mean, abs(std) * 2, 64))
    xs = _probe_values(feature, list(xs) + extra)
    zs = probe(feature, xs).astype(np.float64)
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
                    return float(m), float(s), op, True
    error, m, s, op = best
    if error > 1e-5 * max(1.0, float(np.max(np.abs(zs)))):
        raise ConversionError(f"{feature.name}: no (mean, std) reproduces the transform (max error {error})")
    return m, s, op, False


def _float32_neighbours(value: float, count: int) -> list[np.float32]:
    center = np.float32(value)
    out = [center]
    up = down = center
    for _ in range(count):
        up = np.nextafter(up, np.float32(np.inf))
        down = np.nextafter(down, np.float32(-np.inf))
        out += [up, down]
    return out


# Bucket thresholds: binary search over each input's values in order.
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
    lo_key, hi_key = _to_keys(_from_keys_value(lowest, feature.dtype), feature.dtype)[0], \
        _to_keys(_from_keys_value(highest, feature.dtype), feature.dtype)[0]
    lo = [lo_key] * len(targets)
    hi = [hi_key] * len(targets)
    while targets and any(h - l > 1 for l, h in zip(lo, hi)):
        mid = [(l + h) // 2 for l, h in zip(lo, hi)]
        buckets = probe(feature, list(_from_keys(mid, feature.dtype)))
        for j, (bucket, k) in enumerate(zip(buckets, targets)):
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
    """The bucket formula the TFLite graph computes, in numpy (for checks)."""
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
    want = bucketize(np.asarray(xs, _np_dtype(feature.dtype)), base, thresholds)
    if not np.array_equal(got, want):
        bad = int(np.argmax(got != want))
        raise ConversionError(f"{feature.name}: bucket thresholds do not reproduce the transform "
                              f"(x={xs[bad]!r}: transform {got[bad]}, thresholds {want[bad]})")


def _check_categorical(probe: TransformProbe, feature: F.Feature, p: FeatureParams) -> None:
    xs = _probe_values(feature, [-5, 0, 1, p.size - 1, p.size, p.size + 5, 10**6])
    got = probe(feature, xs)
    want = np.clip(np.asarray(xs, np.int64), 0, p.size - 1)
    if not np.array_equal(got, want):
        raise ConversionError(f"{feature.name}: transform is not clip(x, 0, {p.size - 1}): {xs} -> {got.tolist()}")


def _vocabulary(tft_output, feature: F.Feature) -> list:
    entries = tft_output.vocabulary_by_name(feature.name)
    if feature.dtype is F.DType.STRING:
        return [e.decode("utf-8", errors="surrogateescape") if isinstance(e, bytes) else e for e in entries]
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


def _unseen_value(p: FeatureParams) -> Any:
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
            "values into several buckets (Fingerprint64); use 1")
    if p.vocabulary:
        values = [v.encode("utf-8", errors="surrogateescape") if isinstance(v, str) else v for v in p.vocabulary]
        got = probe.columns({feature.name: np.asarray(values, dtype=_np_dtype(feature.dtype))})[
            F.transformed_name(feature.name)]
        if not np.array_equal(got, np.arange(len(values))):
            bad = int(np.argmax(got != np.arange(len(values))))
            raise ConversionError(f"{feature.name}: vocabulary entry {p.vocabulary[bad]!r} has id {got[bad]} "
                                  f"in the transform, not {bad}")
    unseen = _unseen_value(p)
    got = int(probe(feature, [unseen])[0])
    if got != p.oov_id:
        raise ConversionError(f"{feature.name}: an unseen value gets id {got} in the transform, not {p.oov_id}")


# -- the TFLite graph -------------------------------------------------------------------------


def build_module(keras_model, params: Sequence[FeatureParams], *, bytes_signature: bool = True):
    """A tf.Module with the mobile signatures, built from builtin-friendly ops only.

    - `raw_fn(raw) -> {probability}`: one [batch] tensor per raw feature (int64, float32, string).
    - `bytes_fn(raw)`: the same, but string features as UTF-8 bytes, uint8
      [batch, byte_width] zero-padded (for runtimes without string tensors, e.g.
      TensorFlowLiteSwift). Only when `bytes_signature` and some feature is a string.
    - `preprocess(raw)`: the transformed features, [batch, 1] each (for checks).

    (Not named `serve`: with an attribute of that name the TFLite converter kept
    only one of the two signatures.)
    """
    import tensorflow as tf

    string_features = [p for p in params if p.dtype is F.DType.STRING]

    class MobileModule(tf.Module):
        def __init__(self):
            super().__init__()
            # Only the weights are tracked, not the Keras model object: saving a
            # tracked Keras model re-traces it with autograph (12 of 18 s here).
            self.weights = list(keras_model.variables)
            spec = {p.name: tf.TensorSpec([None], _tf_dtype(p.dtype), name=p.name) for p in params}
            self.preprocess = tf.function(self._preprocess, input_signature=[spec], autograph=False)
            self.raw_fn = tf.function(self._serve, input_signature=[spec], autograph=False)
            self.bytes_fn = None
            if bytes_signature and string_features:
                bytes_spec = dict(spec)
                for p in string_features:
                    bytes_spec[p.name] = tf.TensorSpec([None, p.byte_width], tf.uint8, name=p.name)
                self.bytes_fn = tf.function(self._serve_bytes, input_signature=[bytes_spec], autograph=False)

        def signatures(self) -> dict:
            out = {SIGNATURE: self.raw_fn.get_concrete_function()}
            if self.bytes_fn is not None:
                out[BYTES_SIGNATURE] = self.bytes_fn.get_concrete_function()
            return out

        def _serve(self, raw):
            raw = _same_length(raw)
            return self._predict(self._preprocess(raw), _answerable(raw, params))

        def _serve_bytes(self, raw):
            raw = _same_length(raw)
            return self._predict(self._preprocess(raw, as_bytes=True), _answerable(raw, params, as_bytes=True))

        def _predict(self, transformed, answerable):
            probability = tf.reshape(keras_model(transformed, training=False), [-1])
            # The missing-value contract: no answer (NaN) for a row predict_raw refuses.
            return {F.OUTPUT: tf.where(answerable, probability, tf.constant(math.nan, tf.float32))}

        def _preprocess(self, raw, as_bytes: bool = False):
            out = {}
            for p in params:
                if as_bytes and p.dtype is F.DType.STRING:
                    ids = _bytes_lookup(raw[p.name], p)
                else:
                    ids = _feature(p, raw[p.name])
                out[F.transformed_name(p.name)] = tf.reshape(ids, [-1, 1])
            return out

    return MobileModule()


def _same_length(raw: dict) -> dict:
    """Every input reshaped to the first input's row count: unequal lengths fail the call.

    TFLite has no Assert builtin; RESHAPE to a size computed at run time refuses
    (the interpreter's invoke raises, naming RESHAPE) where elementwise ops would
    broadcast a 1-row input over the other rows. `predict_raw` refuses the same
    inputs with an assertion (models.signatures.check_raw_inputs).
    """
    import tensorflow as tf

    names = list(raw)
    rows = tf.shape(raw[names[0]])[:1]  # one shape tensor for every 1-D input: each operator costs bytes
    out = {names[0]: raw[names[0]]}
    for name in names[1:]:
        x = raw[name]
        out[name] = tf.reshape(x, rows if x.shape.rank == 1 else tf.concat([rows, x.shape[1:]], 0))
    return out


def _answerable(raw: dict, params: Sequence[FeatureParams], as_bytes: bool = False):
    """bool [batch] (or a scalar True): the row has an answer (`unanswerable` is the same rule in numpy).

    The mobile side of `predict_raw`'s refusals (models.signatures.check_raw_inputs):
    a row with a required input at its missing marker, or a `finite` float at
    +-inf, gets a NaN probability, since a TFLite graph cannot fail one row.
    `as_bytes`: string inputs are `serving_bytes`' zero-padded uint8 [batch, width],
    where "" is all zeros. One flag per checked input, stacked and reduced: few
    operators, since every operator costs flatbuffer bytes in each signature.
    """
    import tensorflow as tf

    flags = []  # bool [batch] each: the row has no answer because of this input
    for p in params:
        x = raw[p.name]
        if p.dtype is F.DType.FLOAT:
            if not p.optional:
                # x - x is 0 for a finite x; NaN for NaN and +-inf. No IsNan/IsInf builtins.
                flags.append(tf.not_equal(x - x, 0.0) if p.finite else tf.not_equal(x, x))
            elif p.finite:
                flags.append(tf.equal(tf.abs(x), math.inf))
        elif p.optional:
            continue
        elif as_bytes and p.dtype is F.DType.STRING:
            flags.append(tf.logical_not(tf.reduce_any(tf.not_equal(tf.cast(x, tf.int32), 0), axis=1)))  # no uint8 NOT_EQUAL
        else:
            flags.append(tf.equal(x, tf.constant(F.missing_value(p.dtype), _tf_dtype(p.dtype))))
    if not flags:
        return tf.constant(True)
    return tf.logical_not(tf.reduce_any(tf.stack(flags, axis=1), axis=1))


def unanswerable(cols: Mapping[str, np.ndarray], params: Sequence[FeatureParams]) -> np.ndarray:
    """bool [batch]: rows of `runtime.columns(...)` the contract gives no answer (see `_answerable`)."""
    batch = len(next(iter(cols.values()))) if cols else 0
    out = np.zeros([batch], bool)
    for p in params:
        x = cols[p.name]
        if not p.optional:
            if p.dtype is F.DType.FLOAT:
                out |= np.isnan(x)
            else:
                out |= np.asarray([v == (F.MISSING_STRING.encode() if p.dtype is F.DType.STRING else F.MISSING_INT)
                                   for v in x], bool)
        if p.finite:
            out |= np.isinf(x)
    return out


def _feature(p: FeatureParams, x):
    import tensorflow as tf

    if p.optional:
        x = _fill_missing(x, p.dtype)
    if p.kind is F.Kind.NUMERIC:
        x = tf.cast(x, tf.float32) - tf.constant(p.mean, tf.float32)
        scale = tf.constant(p.scale, tf.float32)
        return x / scale if p.scale_op == "div" else x * scale
    if p.kind is F.Kind.BUCKETIZED:
        if not p.thresholds:
            return tf.fill(tf.shape(x), tf.constant(p.base, tf.int64))
        t = tf.constant(p.thresholds, _tf_dtype(p.dtype))
        above = tf.cast(tf.greater_equal(tf.expand_dims(x, 1), tf.expand_dims(t, 0)), tf.int32)
        return tf.cast(tf.reduce_sum(above, axis=1), tf.int64) + tf.constant(p.base, tf.int64)
    if p.kind is F.Kind.CATEGORICAL_INT:
        x = tf.cast(x, tf.int64)
        return tf.minimum(tf.maximum(x, tf.constant(0, tf.int64)), tf.constant(p.size - 1, tf.int64))
    if not p.vocabulary:
        return tf.fill(tf.shape(x), tf.constant(p.oov_id, tf.int64))
    if p.dtype is F.DType.STRING:
        keys = tf.constant([_utf8(v) for v in p.vocabulary], tf.string)
        return _first_match(tf.equal(tf.expand_dims(x, 1), tf.expand_dims(keys, 0)), p.oov_id)
    keys = tf.constant(p.vocabulary, tf.int64)
    ids = _first_match(tf.equal(tf.expand_dims(x, 1), tf.expand_dims(keys, 0)), p.oov_id)
    if p.vocabulary != list(range(len(p.vocabulary))):
        return ids
    # Keys 0..k-1 in order make the converter fuse EQUAL into ONE_HOT, whose kernel
    # reads int64 values as int32: 2**62 then matched key 0. Values outside 0..k-1
    # are out of vocabulary whatever the lookup says. (Other fusions would show in
    # the parity gate's contract rows, which hold int64 values beyond int32.)
    inside = tf.logical_and(tf.greater_equal(x, tf.constant(0, tf.int64)),
                            tf.less(x, tf.constant(len(p.vocabulary), tf.int64)))
    return tf.where(inside, ids, tf.constant(p.oov_id, tf.int64))


def _fill_missing(x, dtype: F.DType):
    """predict_raw's markers -> the transform's fill-in default (0 / 0.0; "" stays "")."""
    import tensorflow as tf

    if dtype is F.DType.FLOAT:
        return tf.where(tf.not_equal(x, x), tf.zeros_like(x), x)  # NaN != NaN; no IsNan op in TFLite
    if dtype is F.DType.INT:
        return tf.where(tf.equal(x, tf.constant(F.MISSING_INT, tf.int64)), tf.zeros_like(x), x)
    return x


def _first_match(match, oov_id: int):
    """[batch, keys] bool -> index of the matching key, else oov_id (EQUAL/ARG_MAX/SELECT_V2, no hash table)."""
    import tensorflow as tf

    hits = tf.cast(match, tf.int32)
    index = tf.argmax(hits, axis=1, output_type=tf.int64)
    found = tf.reduce_max(hits, axis=1) > 0
    return tf.where(found, index, tf.fill(tf.shape(index), tf.constant(oov_id, tf.int64)))


def _bytes_lookup(x, p: FeatureParams):
    """uint8 [batch, width] zero-padded UTF-8 -> vocabulary id (rows equal to a padded key match it)."""
    import tensorflow as tf

    if not p.vocabulary:
        return tf.fill(tf.shape(x)[:1], tf.constant(p.oov_id, tf.int64))
    keys = tf.constant(encode_bytes([_utf8(v) for v in p.vocabulary], p.byte_width).astype(np.int32))
    # NOT_EQUAL has no uint8 kernel in TFLite: compare as int32.
    differ = tf.not_equal(tf.expand_dims(tf.cast(x, tf.int32), 1), tf.expand_dims(keys, 0))
    return _first_match(tf.logical_not(tf.reduce_any(differ, axis=2)), p.oov_id)


def _utf8(value: str) -> bytes:
    return value.encode("utf-8", errors="surrogateescape")


def _converter(saved_module_dir: str, signature_keys: Sequence[str], quantize: bool):
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(saved_module_dir, signature_keys=list(signature_keys))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    converter.allow_custom_ops = False
    if quantize:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return converter


def operators(tflite_bytes: bytes) -> list[str]:
    """Every operator code in the flatbuffer (all subgraphs); custom ops as 'CUSTOM:<name>'."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(tflite_bytes))
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    ops = []
    for code in model.operatorCodes:
        number = max(code.builtinCode, code.deprecatedBuiltinCode)
        if code.customCode or number == schema.BuiltinOperator.CUSTOM:
            custom = code.customCode.decode() if isinstance(code.customCode, bytes) else code.customCode
            ops.append(f"CUSTOM:{custom}")
        else:
            ops.append(names.get(number, f"UNKNOWN_{number}"))
    return sorted(set(ops))


def check_builtins_only(tflite_bytes: bytes) -> list[str]:
    """The model's operators; raises NonBuiltinOpsError on any Flex (select TF) or custom op.

    Reads the flatbuffer's operator codes (every subgraph, incl. the table
    initializer) and cross-checks the main subgraph's ops as the interpreter sees them.
    """
    ops = operators(tflite_bytes)
    bad = [op for op in ops if op.startswith("CUSTOM") or op.startswith("UNKNOWN") or "Flex" in op]
    if bad:
        raise NonBuiltinOpsError(bad)
    interpreter = runtime.interpreter_class()(model_content=tflite_bytes)
    seen = {d["op_name"] for d in interpreter._get_ops_details()}
    bad = sorted(op for op in seen if op.startswith("Flex") or op not in ops)
    if bad:
        raise NonBuiltinOpsError(bad)
    return ops


# -- parity ------------------------------------------------------------------------------------


def labels(rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """The training label of raw rows: tips > 0.2 * fare (missing tips 0; missing/NaN fare -> 0)."""
    from tfxp.serving.client import parse_value

    out = []
    for row in rows:
        fare = parse_value(row.get(F.FARE), F.DType.FLOAT)
        tips = parse_value(row.get(F.TIPS), F.DType.FLOAT)
        if fare is None:
            out.append(0)
            continue
        # float32, as the transform computes it: tips > fare * 0.2.
        out.append(int(np.float32(tips or 0.0) > np.float32(fare) * np.float32(F.TIP_FRACTION)))
    return np.asarray(out, np.int64)


def reference_probabilities(saved_model_dir: str | Path, rows: Sequence[Mapping[str, Any]],
                            params: Sequence[FeatureParams] | None = None) -> np.ndarray:
    """The SavedModel's `predict_raw` probabilities for raw rows; NaN for `unanswerable` rows.

    Those rows are not sent: `predict_raw` refuses them (InvalidArgumentError, a
    whole batch at a time), and the contract's answer for them is NaN. `params`:
    default, `contract_params` of the Transform output the SavedModel carries.
    """
    import tensorflow as tf

    if params is None:
        import tensorflow_transform as tft

        params = contract_params(tft.TFTransformOutput(find_transform_output(saved_model_dir)))

    fn = tf.saved_model.load(str(saved_model_dir)).signatures["predict_raw"]
    cols = runtime.columns(rows, runtime.input_spec_for_features())
    out = np.full([len(rows)], np.nan, np.float32)
    keep = np.flatnonzero(~unanswerable(cols, params))
    for start in range(0, len(keep), _REFERENCE_BATCH):
        index = keep[start:start + _REFERENCE_BATCH]
        batch = {name: tf.constant(values[index]) for name, values in cols.items()}
        out[index] = fn(**batch)[F.OUTPUT].numpy().reshape(-1)
    return out


def _auc(y: np.ndarray, p: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    keep = np.isfinite(p)
    if keep.sum() == 0 or len(set(y[keep].tolist())) < 2:
        return None
    return float(roc_auc_score(y[keep], p[keep]))


def contract_rows(rows: Sequence[Mapping[str, Any]], params: Sequence[FeatureParams]) -> list[dict]:
    """Rows with missing and invalid values, each one edit of the first answerable row.

    Per input: left blank; then values a client may send that the data never
    holds (infinities, huge and negative numbers, unseen and odd strings). The
    parity gate runs every variant on them besides the eval rows: rows the
    contract leaves unanswered must be NaN, the others must match `predict_raw`.
    """
    if not rows:
        return []
    cols = runtime.columns(rows, runtime.input_spec_for_features())
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
    # (A blank or all-whitespace cell is missing, as serving.client.parse_value reads it.)
    near_key = (p.vocabulary[0] if p.vocabulary else "Cash") + " "
    return [_unseen_value(p), "X" * 300, "Taxi Café 出租车", near_key]


@dataclass
class ParityReport:
    """A TFLite variant against the SavedModel's predict_raw on the same raw rows.

    `rows`: eval rows (the gate's metrics); `contract_rows`: `contract_rows(...)`
    checked besides them; `unanswered`: rows of both without an answer by the contract.
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
    bytes_signature_max_abs_diff: float | None = None  # serving_bytes vs serving_default
    contract_rows: int = 0
    contract_max_abs_diff: float | None = None
    unanswered: int = 0

    def to_dict(self) -> dict:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in dataclasses.asdict(self).items()}


def parity(tflite_path: str | Path, saved_model_dir: str | Path, rows: Sequence[Mapping[str, Any]], *,
           params: Sequence[FeatureParams], variant: str = FLOAT, reference: np.ndarray | None = None,
           contract: Sequence[Mapping[str, Any]] | None = None, contract_reference: np.ndarray | None = None,
           max_abs_diff: float = MAX_ABS_DIFF, max_auc_delta: float = MAX_AUC_DELTA) -> ParityReport:
    """Runs the .tflite with the TFLite interpreter (tflite_runtime) on raw rows and compares with predict_raw.

    Gate by `variant` on the eval `rows`: "float" -> max |probability difference|
    <= max_abs_diff; any other (quantized) -> |AUC - SavedModel AUC| <=
    max_auc_delta, AUC against labels tips > 0.2 * fare. Every variant, on eval
    and `contract` rows (default: `contract_rows(rows, params)`): NaN exactly
    where the reference is NaN (the missing-value contract), and on the contract
    rows |difference| <= max_abs_diff (float) or QUANT_CONTRACT_MAX_DIFF.
    `reference` / `contract_reference`: precomputed `reference_probabilities`.
    When the model also has `serving_bytes`, that signature must give the same
    probabilities as `serving_default` (within BYTES_MAX_DIFF) on all rows.
    """
    rows = list(rows)
    contract = contract_rows(rows, params) if contract is None else list(contract)
    if reference is None:
        reference = reference_probabilities(saved_model_dir, rows, params)
    if contract_reference is None:
        contract_reference = reference_probabilities(saved_model_dir, contract, params)
    model = runtime.TFLiteModel(tflite_path)
    spec = runtime.input_spec_for_features()
    cols = runtime.columns(rows + contract, spec)
    everything = model.run(cols)
    got, got_contract = everything[:len(rows)], everything[len(rows):]
    y = labels(rows)
    reasons: list[str] = []
    max_diff, mean_diff = _diff(got, reference)
    contract_diff, _ = _diff(got_contract, contract_reference)
    bytes_diff = None
    if BYTES_SIGNATURE in model.signatures and len(everything):
        bytes_diff, _ = _diff(runtime.TFLiteModel(tflite_path, signature=BYTES_SIGNATURE).run(cols), everything)
        if not bytes_diff <= BYTES_MAX_DIFF:
            reasons.append(f"{BYTES_SIGNATURE} differs from {SIGNATURE} by up to {bytes_diff:.3g}")
    reasons += _nan_mismatches(everything, np.concatenate([reference, contract_reference]), len(rows))
    auc, ref_auc = _auc(y, got), _auc(y, reference)
    delta = None if auc is None or ref_auc is None else abs(auc - ref_auc)
    accuracy = float(np.mean((got > 0.5) == (y == 1))) if len(rows) else None
    if not rows:
        reasons.append("no rows to check parity on")
    contract_bound = max_abs_diff if variant == FLOAT else QUANT_CONTRACT_MAX_DIFF
    if contract_diff is not None and not contract_diff <= contract_bound:
        reasons.append(f"rows with missing and invalid values: max |probability - SavedModel's| = "
                       f"{contract_diff:.3g} > {contract_bound:g}")
    if variant == FLOAT:
        gate = f"max |dp| <= {max_abs_diff:g}"
        if max_diff is not None and not max_diff <= max_abs_diff:
            reasons.append(f"max |probability - SavedModel's| = {max_diff:.3g} > {max_abs_diff:g}")
    else:
        gate = f"|AUC - SavedModel AUC| <= {max_auc_delta:g}"
        if delta is None and rows:
            reasons.append("AUC undefined: the rows need both labels (tips > 0.2 * fare) and finite outputs")
        elif delta is not None and not delta <= max_auc_delta:
            reasons.append(f"AUC {auc:.5f} vs SavedModel {ref_auc:.5f}: |delta| {delta:.5f} > {max_auc_delta:g}")
    gate += f"; NaN exactly where predict_raw has no answer; contract rows max |dp| <= {contract_bound:g}"
    return ParityReport(variant=variant, gate=gate, rows=len(rows), passed=not reasons, reasons=reasons,
                        max_abs_diff=max_diff, mean_abs_diff=mean_diff, auc=auc, reference_auc=ref_auc,
                        auc_delta=delta, accuracy=accuracy, bytes_signature_max_abs_diff=bytes_diff,
                        contract_rows=len(contract), contract_max_abs_diff=contract_diff,
                        unanswered=int(np.isnan(reference).sum() + np.isnan(contract_reference).sum()))


def _nan_mismatches(got: np.ndarray, want: np.ndarray, eval_rows: int) -> list[str]:
    """The missing-value contract: a variant answers NaN exactly for the rows predict_raw leaves unanswered."""
    reasons = []
    for name, bad in (("NaN where predict_raw answers", np.isnan(got) & ~np.isnan(want)),
                      ("a number where predict_raw has no answer", ~np.isnan(got) & np.isnan(want))):
        index = np.flatnonzero(bad)
        if len(index):
            where = ", ".join(f"eval row {i}" if i < eval_rows else f"contract row {i - eval_rows}"
                              for i in index[:5])
            reasons.append(f"{name} in {len(index)} rows ({where}{', ...' if len(index) > 5 else ''})")
    return reasons


def _diff(got: np.ndarray, want: np.ndarray) -> tuple[float | None, float | None]:
    """(max, mean) |got - want|; NaN in both counts as equal, NaN in one as infinite."""
    if not len(got):
        return None, None
    both_nan = np.isnan(got) & np.isnan(want)
    diff = np.where(both_nan, 0.0, np.abs(got.astype(np.float64) - want.astype(np.float64)))
    diff = np.where(np.isnan(diff), np.inf, diff)
    return float(diff.max()), float(diff.mean())


# -- convert ----------------------------------------------------------------------------------


@dataclass
class VariantResult:
    name: str
    file: str  # file name inside the output dir
    size_bytes: int
    written: bool
    ops: list[str] = field(default_factory=list)
    parity: ParityReport | None = None
    reasons: list[str] = field(default_factory=list)  # why it was not written


def find_transform_output(saved_model_dir: str | Path) -> str:
    """The Transform output a SavedModel carries; ConversionError if it has none (saved by an older trainer)."""
    from tfxp.models.signatures import TRANSFORM_OUTPUT_DIR

    path = Path(saved_model_dir) / TRANSFORM_OUTPUT_DIR
    if not (path / "transform_fn").is_dir():
        raise ConversionError(f"{saved_model_dir} carries no Transform output ({TRANSFORM_OUTPUT_DIR}/); "
                              "pass the Transform component's transform_graph folder explicitly")
    return str(path)


@dataclass
class ConversionResult:
    output_dir: str
    spec_path: str
    spec: dict
    variants: dict[str, VariantResult]
    params: list[FeatureParams]

    @property
    def written(self) -> list[str]:
        return [name for name, v in self.variants.items() if v.written]

    @property
    def rejected(self) -> dict[str, list[str]]:
        return {name: v.reasons for name, v in self.variants.items() if not v.written}

    @property
    def ok(self) -> bool:
        """Every variant passed its checks and was written."""
        return all(v.written for v in self.variants.values())

    def to_dict(self) -> dict:
        return {
            "output_dir": self.output_dir,
            "spec": self.spec_path,
            "model_version": self.spec.get("model_version"),
            "default_variant": self.spec.get("default_variant"),
            "variants": {name: {"written": v.written, "file": v.file if v.written else None, "bytes": v.size_bytes,
                                "reasons": v.reasons, "parity": v.parity.to_dict() if v.parity else None}
                         for name, v in self.variants.items()},
        }


def convert(saved_model_dir: str | Path, output_dir: str | Path, *,
            transform_output_dir: str | Path | None = None,
            eval_rows: Sequence[Mapping[str, Any]] | None = None, model_version: Any = None,
            model_name: str | None = None, max_abs_diff: float = MAX_ABS_DIFF,
            max_auc_delta: float = MAX_AUC_DELTA, bytes_signature: bool = True) -> ConversionResult:
    """Converts a SavedModel saved by models.signatures into mobile models in `output_dir`.

    Writes `model.tflite` (float32) and `model_quant.tflite` (dynamic-range
    quantized) when they hold only builtin ops and, if `eval_rows` (raw CSV dict
    rows with `tips`) are given, pass the parity gate; then `model_spec.json`
    (written last). Failing variants are not written (stale files of that name are
    removed); their reasons are in the result and under `rejected` in the spec.
    The preprocessing is rebuilt from `transform_output_dir`, by default the copy
    the SavedModel carries (models.signatures.TRANSFORM_OUTPUT_DIR).
    Raises ConversionError when the preprocessing cannot be rebuilt at all.
    """
    import tensorflow as tf
    import tensorflow_transform as tft

    saved_model_dir, output_dir = str(saved_model_dir), Path(output_dir)
    tft_output = tft.TFTransformOutput(str(transform_output_dir or find_transform_output(saved_model_dir)))
    params = extract_preprocessing(tft_output)
    keras_model = tf.keras.models.load_model(saved_model_dir, compile=False)
    module = build_module(keras_model, params, bytes_signature=bytes_signature)
    signatures = module.signatures()

    rows = list(eval_rows) if eval_rows is not None else None
    reference = contract = contract_reference = None
    if rows is not None:
        contract = contract_rows(rows, params)
        both = reference_probabilities(saved_model_dir, rows + contract, params)
        reference, contract_reference = both[:len(rows)], both[len(rows):]
    y = labels(rows) if rows is not None else None

    output_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, VariantResult] = {}
    contents: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory(prefix="tfxp-mobile-") as tmp:
        module_dir = os.path.join(tmp, "module")
        tf.saved_model.save(module, module_dir, signatures=signatures)
        for name, quantize in ((FLOAT, False), (QUANT, True)):
            file_name = VARIANT_FILES[name]
            result = VariantResult(name=name, file=file_name, size_bytes=0, written=False)
            results[name] = result
            try:
                content = _converter(module_dir, signatures, quantize).convert()
                _check_signatures(content, signatures)
            except Exception as exc:  # the converter raises ConverterError and others
                result.reasons.append(f"conversion failed: {str(exc).strip().splitlines()[-1] if str(exc) else exc!r}")
                continue
            result.size_bytes = len(content)
            try:
                result.ops = check_builtins_only(content)
            except NonBuiltinOpsError as exc:
                result.ops = operators(content)
                result.reasons.append(str(exc))
                continue
            if rows is not None:
                candidate = os.path.join(tmp, file_name)
                Path(candidate).write_bytes(content)
                result.parity = parity(candidate, saved_model_dir, rows, params=params, variant=name,
                                       reference=reference, contract=contract, contract_reference=contract_reference,
                                       max_abs_diff=max_abs_diff, max_auc_delta=max_auc_delta)
                result.reasons += result.parity.reasons
            if not result.reasons:
                contents[name] = content

    for name, result in results.items():
        target = output_dir / result.file
        if name in contents:
            _write_atomic(target, contents[name])
            result.written = True
        elif target.exists():
            target.unlink()  # a stale file from an earlier conversion must not pass for this one
    spec = model_spec(params, results, contents, model_version=model_version, model_name=model_name,
                      reference_auc=_auc(y, reference) if rows is not None else None,
                      rows=len(rows) if rows is not None else None, bytes_signature=bytes_signature)
    spec_path = output_dir / SPEC_FILE
    _write_atomic(spec_path, (json.dumps(spec, indent=2, allow_nan=False) + "\n").encode())
    return ConversionResult(output_dir=str(output_dir), spec_path=str(spec_path), spec=spec, variants=results,
                            params=params)


def _check_signatures(content: bytes, signatures: Sequence[str]) -> None:
    # The converter has been seen to drop signatures silently (e.g. next to table initializers).
    found = runtime.interpreter_class()(model_content=content).get_signature_list()
    if set(found) != set(signatures):
        raise ConversionError(f"the converted model has signatures {sorted(found)}, not {sorted(signatures)}")


def _write_atomic(path: Path, content: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(content)
    os.replace(tmp, path)


_OUTPUT_MEANING = (f"probability that the tip is more than {F.TIP_FRACTION:.0%} of the fare "
                   "(the model's estimate of the training label)")


def _input_meaning(p: FeatureParams) -> str:
    what = {
        F.Kind.NUMERIC: "number; standardized inside the model",
        F.Kind.BUCKETIZED: f"number; bucketized inside the model into {p.base + len(p.thresholds) + 1} quantile buckets",
        F.Kind.CATEGORICAL_INT: f"integer category 0..{p.size - 1} (values outside are clipped)",
        F.Kind.VOCABULARY: f"category looked up in a {len(p.vocabulary)}-entry vocabulary; unseen values share id {p.oov_id}",
    }[p.kind]
    marker = runtime.missing_marker_json(p.dtype.value)
    marker_text = '""' if marker == "" else str(marker)
    default = {F.DType.INT: "0", F.DType.FLOAT: "0.0", F.DType.STRING: '""'}[p.dtype]
    if p.optional:
        missing = f"may be missing: write {marker_text}, read as {default}"
    else:
        missing = f"required: {marker_text} (missing) makes the probability NaN, as the server refuses the row"
    if p.finite:
        missing += "; +-infinity makes the probability NaN"
    return f"{p.name} ({p.dtype.value}): {what}; {missing}"


def model_spec(params: Sequence[FeatureParams], results: Mapping[str, VariantResult], contents: Mapping[str, bytes],
               *, model_version: Any = None, model_name: str | None = None, reference_auc: float | None = None,
               rows: int | None = None, bytes_signature: bool = True) -> dict:
    """The JSON contract apps integrate against (see mobile/README.md)."""
    inputs = []
    for p in params:
        inputs.append({
            "name": p.name,
            "dtype": _TF_DTYPE_NAMES[p.dtype],
            "shape": [-1],
            "required": not p.optional,
            "missing_marker": runtime.missing_marker_json(p.dtype.value),
            "meaning": _input_meaning(p),
            "preprocessing": p.describe(),
        })
    signatures = {SIGNATURE: {
        "use": "runtimes with string tensors: Android/Java/Kotlin, C++, Python",
        "inputs": [{"name": i["name"], "dtype": i["dtype"], "shape": i["shape"]} for i in inputs],
    }}
    if bytes_signature and any(p.dtype is F.DType.STRING for p in params):
        signatures[BYTES_SIGNATURE] = {
            "use": "runtimes without string tensors (TensorFlowLiteSwift): string inputs as UTF-8 bytes, "
                   "cut to the width and zero-padded; a missing string is all zeros",
            "inputs": [{"name": p.name, "dtype": "uint8", "shape": [-1, p.byte_width]} if p.dtype is F.DType.STRING
                       else {"name": p.name, "dtype": _TF_DTYPE_NAMES[p.dtype], "shape": [-1]} for p in params],
        }
    variants, rejected = {}, {}
    for name, r in results.items():
        entry: dict[str, Any] = {
            "quantization": "none" if name == FLOAT else "dynamic_range_int8_weights",
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
    return {
        "format": SPEC_FORMAT,
        "model_name": model_name,
        "model_version": model_version,
        "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "signature": SIGNATURE,
        "batch": "dynamic: the first dimension of every input is the row count (or run one row at a time)",
        "inputs": inputs,
        "signatures": signatures,
        "output": {"name": F.OUTPUT, "dtype": "float32", "shape": [-1], "meaning": _OUTPUT_MEANING},
        "vocabularies": {p.name: {"size": len(p.vocabulary), "oov_id": p.oov_id, "key_dtype": _TF_DTYPE_NAMES[p.dtype]}
                         for p in params if p.kind is F.Kind.VOCABULARY},
        "default_variant": default,
        "variants": variants,
        "rejected": rejected,
        "reference": {"signature": "predict_raw", "rows": rows, "auc": reference_auc},
        "parity_checked": rows is not None,
    }


def _metrics(report: ParityReport | None) -> dict | None:
    if report is None:
        return None
    return {"rows": report.rows, "auc": report.auc, "accuracy": report.accuracy}
