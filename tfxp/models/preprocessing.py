"""tf.Transform `preprocessing_fn`: raw features -> model features and the label.

The same graph runs in Transform (training data), inside every serving signature
and in TFMA, so there is no training/serving skew.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Mapping
from typing import Any

import tensorflow as tf
import tensorflow_transform as tft

from tfxp.models import features as F


def fill_in_missing(x: tf.Tensor | tf.SparseTensor, default: Any) -> tf.Tensor:
    """Densifies a [batch, 1] feature to [batch], replacing absent values by `default`.

    Optional columns reach tf.Transform as SparseTensors (the schema lets them be
    missing); dense [batch] or [batch, 1] tensors pass through.
    """
    if isinstance(x, tf.sparse.SparseTensor):
        x = tf.sparse.to_dense(
            tf.SparseTensor(x.indices, x.values, [x.dense_shape[0], 1]),
            default_value=tf.cast(default, x.dtype),
        )
    return tf.reshape(x, [-1])


def _default(dtype: F.DType) -> Any:
    return {F.DType.INT: 0, F.DType.FLOAT: 0.0, F.DType.STRING: ""}[dtype]


def load_hook(spec: str):
    """The function a label hook names: "package.module:function" or "/path/to/file.py:function".

    Raises ValueError for a malformed spec, ImportError/AttributeError naming it when it can't be found.
    """
    module_name, sep, function = spec.rpartition(":")
    if not sep or not module_name or not function:
        raise ValueError(f"label hook {spec!r}: expected 'module:function' or 'file.py:function'")
    if module_name.endswith(".py"):
        module_spec = importlib.util.spec_from_file_location(f"tfxp_label_hook_{abs(hash(module_name))}", module_name)
        if module_spec is None or module_spec.loader is None:
            raise ImportError(f"label hook {spec!r}: cannot load {module_name}")
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(module_name)
    try:
        return getattr(module, function)
    except AttributeError:
        raise AttributeError(f"label hook {spec!r}: {module_name} has no function {function!r}") from None


def transformed_label(inputs: Mapping[str, Any], label: F.Label) -> tf.Tensor:
    """The transformed label, [batch]: int64 0/1 (binary: 1 for `classes[1]`), int64 class index
    0..K-1 (multiclass, in `classes` order), float32 (regression); or what the label hook computes.

    Values are compared as written in the CSV: strings as strings, ints and floats as numbers. A
    value outside `classes` maps to -1 (binary: 0); the schema's domain for the label makes
    ExampleValidator refuse such data before Transform runs.
    """
    if label.hook:
        return load_hook(label.hook)(inputs)
    value = fill_in_missing(inputs[label.column], _default(label.dtype))
    if label.task is F.Task.REGRESSION:
        return tf.cast(value, tf.float32)
    classes = label.classes if label.task is F.Task.MULTICLASS else label.classes[1:]
    if label.dtype is F.DType.STRING:
        table = tf.constant(list(classes), tf.string)
    elif label.dtype is F.DType.INT:
        table = tf.constant([int(c) for c in classes], tf.int64)
    else:
        table = tf.constant([float(c) for c in classes], tf.float32)
    matches = tf.equal(tf.expand_dims(value, 1), tf.expand_dims(table, 0))  # [batch, len(classes)]
    found = tf.reduce_any(matches, axis=1)
    if label.task is F.Task.BINARY:
        return tf.cast(found, tf.int64)
    return tf.where(
        found, tf.argmax(tf.cast(matches, tf.int32), axis=1, output_type=tf.int64), tf.constant(-1, tf.int64)
    )


def problem_of(custom_config: Mapping[str, Any] | None) -> F.Problem:
    """The Problem a pipeline passes in `custom_config["problem"]`. Raises ValueError without one."""
    if not custom_config or not custom_config.get("problem"):
        raise ValueError(
            'custom_config["problem"] is missing: the pipeline passes the project\'s problem '
            "(tfxp.pipeline.pipeline.create_pipeline)"
        )
    return F.Problem.from_dict(custom_config["problem"])


def present_values(x: tf.Tensor | tf.SparseTensor) -> tuple[tf.Tensor, tf.Tensor | None]:
    """(values, rows) of a raw [batch, 1] feature: the values present, and for an optional feature
    (a SparseTensor) the int64 row of each value; rows is None for a dense (required) feature, whose
    `values` are all [batch] of them."""
    if isinstance(x, tf.sparse.SparseTensor):
        return x.values, x.indices[:, 0]
    return tf.reshape(x, [-1]), None


def scatter_rows(values: tf.Tensor, rows: tf.Tensor | None, like: tf.Tensor | tf.SparseTensor) -> tf.Tensor:
    """[batch] tensor of `values` at `rows` and 0 in the other rows (0 is both MISSING_ID and a missing
    NUMERIC's z-score); for a dense feature (`rows` None), `values` as they are."""
    if rows is None:
        return values
    return tf.scatter_nd(tf.expand_dims(rows, 1), values, tf.reshape(like.dense_shape[0], [1]))


def int_z_score(values: tf.Tensor) -> tf.Tensor:
    """float32 z-score of int64 values, centred in int64 first, from one analysis pass.

    float32 holds integers exactly only up to 2**24, so a Unix timestamp (~1.4e9) or a large id cast
    first lost its low bits (steps of 128) and the z-score was a difference of nearly equal numbers,
    which the TFLite conversion could not reproduce (issue 17: "no (mean, std) reproduces the
    transform"). So the values are shifted by `center`, an int64 near the training mean (0 for a
    column without values), in int64 before the cast. Mean and variance are both analyzed on the raw
    values (float64) in the same pass: centring first and z-scoring the centred values made the second
    analyzer depend on the first, which tf.Transform runs as a second pass over the data (issue 25).
    Then, as tft.scale_to_z_score writes it: z = (x' - m) / s with x' = float32(x - center),
    m = float32(mean - center), s = float32(sqrt(var)); a zero std leaves x' - m.
    """
    mean = tft.mean(values, output_dtype=tf.float64)
    var = tft.var(values, output_dtype=tf.float64)
    center = tf.cast(tf.where(tf.math.is_finite(mean), tf.round(mean), tf.zeros_like(mean)), tf.int64)
    numerator = tf.cast(values - center, tf.float32) - tf.cast(mean - tf.cast(center, tf.float64), tf.float32)
    std = tf.cast(tf.sqrt(var), tf.float32)
    return tf.where(tf.not_equal(std, 0.0), numerator / std, numerator)


def transform_feature(feature: F.Feature, x: tf.Tensor | tf.SparseTensor) -> dict[str, tf.Tensor]:
    """One raw feature -> its model inputs: {transformed_name: [batch]} (and, for an optional NUMERIC,
    {indicator_name: float32 [batch]}).

    The analyzers see only the values present, so a missing value never counts as a real one:
    - NUMERIC: float32 z-score of the values (ints centred in int64 first: `int_z_score`); a missing
      value is the training mean (z = 0), and its indicator 1.0 lets the model learn what "missing" means.
    - BUCKETIZED: int64 id: quantile bucket + 1; missing MISSING_ID.
    - CATEGORICAL_INT: int64 id: value + 1 for 0..size-1, size + 1 (the OOV id) for any other int
      (not clipped to a learned value); missing MISSING_ID.
    - VOCABULARY: int64 id: entry index + 1, the OOV id (vocabulary size + 1) for a value not in it;
      missing MISSING_ID. Int values are looked up as their decimal text.
    See features.MISSING_ID for the id layout.
    """
    values, rows = present_values(x)
    name = F.transformed_name(feature.name)
    if feature.kind is F.Kind.NUMERIC:
        if feature.dtype is F.DType.INT:
            z = int_z_score(values)
        else:
            z = tft.scale_to_z_score(tf.cast(values, tf.float32))
        out = {name: scatter_rows(z, rows, x)}
        if F.has_indicator(feature):
            out[F.indicator_name(feature.name)] = 1.0 - scatter_rows(tf.ones_like(z), rows, x)
        return out
    if feature.kind is F.Kind.BUCKETIZED:
        ids = tft.bucketize(values, feature.size) + 1
    elif feature.kind is F.Kind.CATEGORICAL_INT:
        known = tf.logical_and(values >= 0, values < feature.size)
        ids = tf.where(known, tf.cast(values, tf.int64) + 1, tf.constant(feature.size + 1, tf.int64))
    else:
        if feature.dtype is not F.DType.STRING:
            values = tf.strings.as_string(values)
        # Exact while a column has fewer than VOCAB_SIZE distinct values (all of
        # the taxi columns do), and one combiner pass instead of a sort per column.
        vocabulary = tft.experimental.approximate_vocabulary(values, top_k=F.VOCAB_SIZE, vocab_filename=feature.name)
        ids = tft.apply_vocabulary(values, vocabulary, num_oov_buckets=F.OOV_BUCKETS) + 1
    return {name: scatter_rows(tf.cast(ids, tf.int64), rows, x)}


# Not autograph-converted: the function has no tensor-dependent Python control
# flow, and tf.Transform traces it several times per run.
@tf.autograph.experimental.do_not_convert
def preprocessing_fn(inputs: Mapping[str, Any], custom_config: Mapping[str, Any] | None = None) -> dict:
    """Maps raw columns to transformed features (`transform_feature`) and the label (`F.LABEL_KEY`).

    `custom_config["problem"]`: the Problem (features, label, task) as a dict; its other keys
    (the model code fingerprint) only bust TFX's cache.
    """
    problem = problem_of(custom_config)
    outputs: dict[str, tf.Tensor] = {}
    for feature in problem.features:
        outputs.update(transform_feature(feature, inputs[feature.name]))
    outputs[F.LABEL_KEY] = transformed_label(inputs, problem.label)
    return outputs
