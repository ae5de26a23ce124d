"""tf.Transform `preprocessing_fn`: raw features -> model features and the label.

The same graph runs in Transform (training data), inside every serving signature
and in TFMA, so there is no training/serving skew.
"""
from __future__ import annotations

from typing import Any, Mapping

import tfxp.models  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
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


# Not autograph-converted: the function has no tensor-dependent Python control
# flow, and tf.Transform traces it several times per run.
@tf.autograph.experimental.do_not_convert
def preprocessing_fn(inputs: Mapping[str, Any], custom_config: Mapping[str, Any] | None = None) -> dict:
    """Maps raw columns to transformed features; `custom_config` only busts TFX's cache."""
    del custom_config
    outputs: dict[str, tf.Tensor] = {}
    for feature in F.FEATURES:
        value = fill_in_missing(inputs[feature.name], _default(feature.dtype))
        out = F.transformed_name(feature.name)
        if feature.kind is F.Kind.NUMERIC:
            outputs[out] = tft.scale_to_z_score(tf.cast(value, tf.float32))
        elif feature.kind is F.Kind.BUCKETIZED:
            outputs[out] = tft.bucketize(value, feature.size)
        elif feature.kind is F.Kind.CATEGORICAL_INT:
            outputs[out] = tf.clip_by_value(value, 0, feature.size - 1)
        else:
            if feature.dtype is not F.DType.STRING:
                value = tf.strings.as_string(value)
            # Exact while a column has fewer than VOCAB_SIZE distinct values (all of
            # the taxi columns do), and one combiner pass instead of a sort per column.
            vocabulary = tft.experimental.approximate_vocabulary(
                value, top_k=F.VOCAB_SIZE, vocab_filename=feature.name
            )
            outputs[out] = tft.apply_vocabulary(value, vocabulary, num_oov_buckets=F.OOV_BUCKETS)

    fare = fill_in_missing(inputs[F.FARE], 0.0)
    tips = fill_in_missing(inputs[F.TIPS], 0.0)
    # A missing or NaN fare cannot define "big tip": such trips count as not big.
    outputs[F.LABEL] = tf.where(
        tf.math.is_nan(fare),
        tf.zeros_like(fare, dtype=tf.int64),
        tf.cast(tf.greater(tips, fare * F.TIP_FRACTION), tf.int64),
    )
    return outputs
