"""tf.Transform `preprocessing_fn`: raw features -> model features and the label.

The same graph runs in Transform (training data), inside every serving signature
and in TFMA, so there is no training/serving skew.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Mapping
from typing import Any

import tfxp.models  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

# isort: split
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


# Not autograph-converted: the function has no tensor-dependent Python control
# flow, and tf.Transform traces it several times per run.
@tf.autograph.experimental.do_not_convert
def preprocessing_fn(inputs: Mapping[str, Any], custom_config: Mapping[str, Any] | None = None) -> dict:
    """Maps raw columns to transformed features and the label (`F.LABEL_KEY`).

    `custom_config["problem"]`: the Problem (features, label, task) as a dict; its other keys
    (the model code fingerprint) only bust TFX's cache.
    """
    problem = problem_of(custom_config)
    outputs: dict[str, tf.Tensor] = {}
    for feature in problem.features:
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
            vocabulary = tft.experimental.approximate_vocabulary(value, top_k=F.VOCAB_SIZE, vocab_filename=feature.name)
            outputs[out] = tft.apply_vocabulary(value, vocabulary, num_oov_buckets=F.OOV_BUCKETS)
    outputs[F.LABEL_KEY] = transformed_label(inputs, problem.label)
    return outputs
