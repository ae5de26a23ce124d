"""The TF graph the TFLite models are made of: raw features -> preprocessing -> Keras model -> output.

Built from builtin-friendly ops only (TFLITE_BUILTINS), with the parameters of
tfxp.mobile.preprocessing_params:

- NUMERIC: (x - mean) / std (or * 1/std, as the transform's graph runs it); ints
  as float32(x - offset) first, the difference in int64.
- BUCKETIZED: base + sum(x >= thresholds).
- CATEGORICAL_INT: x + 1 for 0..size-1, else the OOV id size + 1.
- VOCABULARY: EQUAL against the keys as constants + ARG_MAX, + 1; unseen values get
  the OOV id. No hash tables: TFLite's HASHTABLE has no int64->int64 kernel, and a
  SavedModel with table initializers made the converter drop all signatures but one.
- Missing values: the `predict_raw` markers (NaN / -2**63 / ""). For features the
  raw schema lets be absent they become MISSING_ID (0), or z = 0 and a missing
  indicator 1.0 (NUMERIC), as the transform makes them. Where `predict_raw` refuses
  (models.signatures.check_raw_inputs) every variant answers NaN: a required
  feature at its marker, an infinite float the schema disallows, a number more
  than F.Z_LIMIT standard deviations from its training mean (`unanswerable` is
  the same rule in numpy, for the parity gate). Inputs of unequal lengths
  fail the call (RESHAPE), as they fail `predict_raw`. NaN is found as x != x
  (no IsNan builtin).

Then the Keras model (inputs `<name>_xf`, [batch, 1]) is called on the result in
one `tf.function` per signature: `serving_default(raw) -> {output}`, and
`serving_bytes`, which takes string features as zero-padded UTF-8 bytes (uint8
[batch, width]) for runtimes without string tensors (TensorFlowLiteSwift); it
shares the weights and gives the same results.

The output follows the model's task (`Problem.output`, as `predict_raw` names it):
binary `probability` float32 [batch] (P(positive class)), multiclass
`probabilities` float32 [batch, K], regression `prediction` float32 [batch]. A row
without an answer is NaN in every one of its output values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from tfxp.mobile.preprocessing_params import FeatureParams, tf_dtype, utf8
from tfxp.mobile.runtime import BYTES_SIGNATURE, SIGNATURE, encode_bytes
from tfxp.models import features as F

if TYPE_CHECKING:
    import tensorflow as tf


def build_module(
    keras_model: tf.keras.Model,
    params: Sequence[FeatureParams],
    problem: F.Problem,
    *,
    bytes_signature: bool = True,
    web_signature: bool = False,
) -> tf.Module:
    """A tf.Module with the mobile signatures, built from builtin-friendly ops only.

    Long because the tf.Module class is defined inside it: its tf.functions close over the Keras
    model and the parameters, which TF traces as constants into the graph.

    `keras_model`: the Trainer's model (inputs `<name>_xf`, [batch, 1] each; output
    [batch, 1], or [batch, K] for a multiclass problem); `params`:
    `extract_preprocessing(...)`, one per raw input; `problem`: the model's Problem
    (its task names and shapes the output). The module has:

    - `raw_fn(raw) -> {problem.output}`: one [batch] tensor per raw feature (int64, float32,
      string); output float32 [batch] (binary, regression) or [batch, K] (multiclass),
      NaN in every value of a row without an answer (see `_answerable`).
    - `bytes_fn(raw)`: the same, but string features as UTF-8 bytes, uint8
      [batch, byte_width] zero-padded (for runtimes without string tensors, e.g.
      TensorFlowLiteSwift). Only when `bytes_signature` and some feature is a string; else None.
    - `web_fn(raw)`: only when `web_signature`: one row, inputs every web runtime can feed
      (tfxp.mobile.web: float32 [1]; strings as `bytes_fn`'s uint8 [1, byte_width]; int64 as
      int32 [1, 2] = (high, low) 32-bit halves, value = high * 2**32 + (low mod 2**32), so
      every int64 and its missing marker -2**63 = (-2**31, 0) is exact); output [1] or [1, K].
      Saved alone in model_web.tflite: LiteRT.js refuses a file if any signature has int64 or
      string tensors, and cannot resize a dynamic dimension.
    - `preprocess(raw)`: the transformed features, [batch, 1] each (for checks).
    - `signatures()`: {signature key: concrete function} to save and convert.

    (Not named `serve`: with an attribute of that name the TFLite converter kept
    only one of the two signatures.)
    """
    import tensorflow as tf

    string_features = [p for p in params if p.dtype is F.DType.STRING]
    output = problem.output
    classes = problem.label.num_classes if problem.label.task is F.Task.MULTICLASS else None

    class MobileModule(tf.Module):
        def __init__(self):
            super().__init__()
            # Only the weights are tracked, not the Keras model object: saving a
            # tracked Keras model re-traces it with autograph (12 of 18 s here).
            self.weights = list(keras_model.variables)
            spec = {p.name: tf.TensorSpec([None], tf_dtype(p.dtype), name=p.name) for p in params}
            self.preprocess = tf.function(self._preprocess, input_signature=[spec], autograph=False)
            self.raw_fn = tf.function(self._serve, input_signature=[spec], autograph=False)
            self.bytes_fn = None
            if bytes_signature and string_features:
                bytes_spec = dict(spec)
                for p in string_features:
                    bytes_spec[p.name] = tf.TensorSpec([None, p.byte_width], tf.uint8, name=p.name)
                self.bytes_fn = tf.function(self._serve_bytes, input_signature=[bytes_spec], autograph=False)
            self.web_fn = None
            if web_signature:
                self.web_fn = tf.function(self._serve_web, input_signature=[_web_spec(params)], autograph=False)

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

        def _serve_web(self, raw):
            raw = {p.name: _join_int64(raw[p.name]) if p.dtype is F.DType.INT else raw[p.name] for p in params}
            return self._predict(self._preprocess(raw, as_bytes=True), _answerable(raw, params, as_bytes=True))

        def _predict(self, transformed, answerable):
            in_range = _in_range(transformed, params)
            if in_range is not None:
                answerable = tf.logical_and(answerable, in_range)
            prediction = keras_model(transformed, training=False)
            if classes is None:
                prediction = tf.reshape(prediction, [-1])  # [batch, 1] -> [batch], as predict_raw answers
            else:
                # [batch, K]; a non-scalar answerable [batch] becomes [batch, 1], broadcast over the K
                # classes by SELECT_V2, so a refused row is NaN in all of them.
                prediction = tf.reshape(prediction, [-1, classes])
                if answerable.shape.rank == 1:
                    answerable = tf.expand_dims(answerable, 1)
            # The missing-value contract: no answer (NaN) for a row predict_raw refuses. After the
            # model, so quantization cannot turn it into a number.
            return {output: tf.where(answerable, prediction, tf.constant(math.nan, tf.float32))}

        def _preprocess(self, raw, as_bytes: bool = False):
            out = {}
            for p in params:
                x = raw[p.name]
                bytes_input = as_bytes and p.dtype is F.DType.STRING
                value = _bytes_lookup(x, p) if bytes_input else _feature(p, x)
                if p.optional:
                    present = _present(x, p.dtype, bytes_input)
                    value = tf.where(present, value, tf.zeros_like(value))  # MISSING_ID, or z = 0
                    if p.indicator:
                        indicator = tf.where(present, tf.zeros_like(value), tf.ones_like(value))
                        out[F.indicator_name(p.name)] = tf.reshape(indicator, [-1, 1])
                out[F.transformed_name(p.name)] = tf.reshape(value, [-1, 1])
            return out

    return MobileModule()


def _web_spec(params: Sequence[FeatureParams]) -> dict:
    """`web_fn`'s inputs: one row; float32 [1], strings uint8 [1, byte_width], ints int32 [1, 2] (high, low)."""
    import tensorflow as tf

    shapes = {F.DType.FLOAT: ([1], tf.float32), F.DType.STRING: (None, tf.uint8), F.DType.INT: ([1, 2], tf.int32)}
    spec = {}
    for p in params:
        shape, dtype = shapes[p.dtype]
        spec[p.name] = tf.TensorSpec(shape or [1, p.byte_width], dtype, name=p.name)
    return spec


def _join_int64(halves):
    """int32 [1, 2] (high, low) -> int64 [1]: high * 2**32 + low read as unsigned (SELECT_V2, no bitwise ops)."""
    import tensorflow as tf

    high = tf.cast(halves[:, 0], tf.int64)
    low = tf.cast(halves[:, 1], tf.int64)
    low = tf.where(low < 0, low + tf.constant(2**32, tf.int64), low)
    return high * tf.constant(2**32, tf.int64) + low


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


# -- the missing-value contract: which rows have an answer -------------------------------------


def _answerable(raw: dict, params: Sequence[FeatureParams], as_bytes: bool = False):
    """bool [batch] (or a scalar True): the row has an answer (`unanswerable` is the same rule in numpy).

    The mobile side of `predict_raw`'s refusals (models.signatures.check_raw_inputs):
    a row with a required input at its missing marker, or a `finite` float at
    +-inf, gets NaN outputs, since a TFLite graph cannot fail one row.
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
            flags.append(tf.logical_not(_present(x, p.dtype, as_bytes=True)))  # a missing string is all zeros
        else:
            flags.append(tf.equal(x, tf.constant(F.missing_value(p.dtype), tf_dtype(p.dtype))))
    if not flags:
        return tf.constant(True)
    return tf.logical_not(tf.reduce_any(tf.stack(flags, axis=1), axis=1))


def _in_range(transformed: dict, params: Sequence[FeatureParams]):
    """bool [batch]: no NUMERIC z-score beyond +-F.Z_LIMIT (models.signatures.check_in_range's rule;
    a missing value's z is 0); None without numeric features."""
    import tensorflow as tf

    flags = [
        tf.greater(tf.abs(tf.reshape(transformed[F.transformed_name(p.name)], [-1])), F.Z_LIMIT)
        for p in params
        if p.kind is F.Kind.NUMERIC
    ]
    if not flags:
        return None
    return tf.logical_not(tf.reduce_any(tf.stack(flags, axis=1), axis=1))


def z_scores(p: FeatureParams, x: np.ndarray) -> np.ndarray:
    """float64 [batch]: a NUMERIC input's z-scores as `_feature` computes them (NaN for a missing value)."""
    x = np.asarray(x)
    missing = np.isnan(x) if p.dtype is F.DType.FLOAT else x == F.MISSING_INT
    centred = (x.astype(np.int64) - np.int64(p.offset or 0)) if p.dtype is F.DType.INT else x
    z = centred.astype(np.float64) - p.mean
    z = z / p.scale if p.scale_op == "div" else z * p.scale
    return np.where(missing, np.nan, z)


def unanswerable(cols: Mapping[str, np.ndarray], params: Sequence[FeatureParams]) -> np.ndarray:
    """bool [batch]: rows of `runtime.columns(...)` the contract gives no answer (see `_answerable`).

    `cols`: {input name: [batch] array} holding every input of `params`
    (float32 NaN, int64 -2**63, bytes b"" as missing markers); raises KeyError for an absent one.
    """
    batch = len(next(iter(cols.values()))) if cols else 0
    out = np.zeros([batch], bool)
    for p in params:
        x = cols[p.name]
        if not p.optional:
            if p.dtype is F.DType.FLOAT:
                out |= np.isnan(x)
            else:
                out |= np.asarray(
                    [v == (F.MISSING_STRING.encode() if p.dtype is F.DType.STRING else F.MISSING_INT) for v in x], bool
                )
        if p.finite:
            out |= np.isinf(x)
        if p.kind is F.Kind.NUMERIC:
            with np.errstate(invalid="ignore", over="ignore"):
                out |= np.abs(z_scores(p, x)) > F.Z_LIMIT  # NaN (missing) compares False
    return out


# -- each feature's preprocessing ----------------------------------------------------------------


def _feature(p: FeatureParams, x):
    """A present value's model input (the caller replaces missing ones): z-score or id."""
    import tensorflow as tf

    if p.kind is F.Kind.NUMERIC:
        if p.offset:  # int64 first, as the transform centres ints (models.preprocessing.int_z_score)
            x = x - tf.constant(p.offset, tf.int64)
        x = tf.cast(x, tf.float32) - tf.constant(p.mean, tf.float32)
        scale = tf.constant(p.scale, tf.float32)
        return x / scale if p.scale_op == "div" else x * scale
    if p.kind is F.Kind.BUCKETIZED:
        if not p.thresholds:
            return tf.fill(tf.shape(x), tf.constant(p.base, tf.int64))
        t = tf.constant(p.thresholds, tf_dtype(p.dtype))
        above = tf.cast(tf.greater_equal(tf.expand_dims(x, 1), tf.expand_dims(t, 0)), tf.int32)
        return tf.cast(tf.reduce_sum(above, axis=1), tf.int64) + tf.constant(p.base, tf.int64)
    if p.kind is F.Kind.CATEGORICAL_INT:
        x = tf.cast(x, tf.int64)
        known = tf.logical_and(tf.greater_equal(x, tf.constant(0, tf.int64)), tf.less(x, tf.constant(p.size, tf.int64)))
        return tf.where(known, x + 1, tf.fill(tf.shape(x), tf.constant(p.oov_id, tf.int64)))
    if not p.vocabulary:
        return tf.fill(tf.shape(x), tf.constant(p.oov_id, tf.int64))
    if p.dtype is F.DType.STRING:
        keys = tf.constant([utf8(v) for v in p.vocabulary], tf.string)
        return _first_match(tf.equal(tf.expand_dims(x, 1), tf.expand_dims(keys, 0)), p.oov_id)
    keys = tf.constant(p.vocabulary, tf.int64)
    ids = _first_match(tf.equal(tf.expand_dims(x, 1), tf.expand_dims(keys, 0)), p.oov_id)
    if p.vocabulary != list(range(len(p.vocabulary))):
        return ids
    # Keys 0..k-1 in order make the converter fuse EQUAL into ONE_HOT, whose kernel
    # reads int64 values as int32: 2**62 then matched key 0. Values outside 0..k-1
    # are out of vocabulary whatever the lookup says. (Other fusions would show in
    # the parity gate's contract rows, which hold int64 values beyond int32.)
    inside = tf.logical_and(
        tf.greater_equal(x, tf.constant(0, tf.int64)), tf.less(x, tf.constant(len(p.vocabulary), tf.int64))
    )
    return tf.where(inside, ids, tf.constant(p.oov_id, tf.int64))


def _present(x, dtype: F.DType, as_bytes: bool = False):
    """bool [batch]: the input is not its missing marker (NaN != NaN: there is no IsNan builtin; a
    `serving_bytes` string is missing when all its bytes are 0)."""
    import tensorflow as tf

    if as_bytes:
        return tf.reduce_any(tf.not_equal(tf.cast(x, tf.int32), 0), axis=1)  # NOT_EQUAL has no uint8 kernel
    if dtype is F.DType.FLOAT:
        return tf.equal(x, x)
    return tf.not_equal(x, tf.constant(F.missing_value(dtype), tf_dtype(dtype)))


def _first_match(match, oov_id: int):
    """[batch, keys] bool -> 1 + index of the matching key, else oov_id (EQUAL/ARG_MAX/SELECT_V2, no hash table)."""
    import tensorflow as tf

    hits = tf.cast(match, tf.int32)
    index = tf.argmax(hits, axis=1, output_type=tf.int64) + 1  # ids 1..n: 0 is MISSING_ID
    found = tf.reduce_max(hits, axis=1) > 0
    return tf.where(found, index, tf.fill(tf.shape(index), tf.constant(oov_id, tf.int64)))


def _bytes_lookup(x, p: FeatureParams):
    """uint8 [batch, width] zero-padded UTF-8 -> vocabulary id (rows equal to a padded key match it)."""
    import tensorflow as tf

    if not p.vocabulary:
        return tf.fill(tf.shape(x)[:1], tf.constant(p.oov_id, tf.int64))
    keys = tf.constant(encode_bytes([utf8(v) for v in p.vocabulary], p.byte_width).astype(np.int32))
    # NOT_EQUAL has no uint8 kernel in TFLite: compare as int32.
    differ = tf.not_equal(tf.expand_dims(tf.cast(x, tf.int32), 1), tf.expand_dims(keys, 0))
    return _first_match(tf.logical_not(tf.reduce_any(differ, axis=2)), p.oov_id)
