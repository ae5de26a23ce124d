"""The Keras model (wide & deep over transformed features) and TFX's `run_fn`."""
from __future__ import annotations

from typing import Sequence

import models  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
import tensorflow as tf
import tensorflow_transform as tft
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

from models import features as F
from models import signatures

TRAIN_BATCH_SIZE = 256
EVAL_BATCH_SIZE = 512
HIDDEN_UNITS = (64, 32)
LEARNING_RATE = 3e-3


def _one_hot_width(feature: F.Feature) -> int:
    if feature.kind is F.Kind.VOCABULARY:
        return F.VOCAB_SIZE + F.OOV_BUCKETS
    return feature.size


def build_model(hidden_units: Sequence[int] = HIDDEN_UNITS) -> tf.keras.Model:
    """Wide (one-hot categorical) + deep (numeric and one-hot) binary classifier."""
    inputs = {}
    deep_parts, wide_parts = [], []
    for feature in F.FEATURES:
        name = F.transformed_name(feature.name)
        if feature.kind is F.Kind.NUMERIC:
            inputs[name] = tf.keras.layers.Input(shape=(1,), name=name, dtype=tf.float32)
            deep_parts.append(inputs[name])
        else:
            inputs[name] = tf.keras.layers.Input(shape=(1,), name=name, dtype=tf.int64)
            one_hot = tf.keras.layers.CategoryEncoding(
                num_tokens=_one_hot_width(feature), output_mode="one_hot"
            )(inputs[name])
            wide_parts.append(one_hot)
            if feature.kind is not F.Kind.VOCABULARY:
                deep_parts.append(one_hot)

    deep = tf.keras.layers.concatenate(deep_parts)
    for units in hidden_units:
        deep = tf.keras.layers.Dense(units, activation="relu")(deep)
    wide = tf.keras.layers.concatenate(wide_parts)
    output = tf.keras.layers.Dense(1, activation="sigmoid", name=F.OUTPUT)(
        tf.keras.layers.concatenate([deep, wide])
    )
    model = tf.keras.Model(inputs=inputs, outputs=output)
    model.compile(
        loss="binary_crossentropy",
        optimizer=tf.keras.optimizers.Adam(learning_rate=LEARNING_RATE),
        metrics=[tf.keras.metrics.BinaryAccuracy(), tf.keras.metrics.AUC(name="auc")],
    )
    return model


def _dataset(
    file_pattern: list[str],
    data_accessor: tfx.components.DataAccessor,
    tf_transform_output: tft.TFTransformOutput,
    batch_size: int,
) -> tf.data.Dataset:
    return data_accessor.tf_dataset_factory(
        file_pattern,
        tfxio.TensorFlowDatasetOptions(batch_size=batch_size, label_key=F.LABEL),
        tf_transform_output.transformed_metadata.schema,
    ).repeat()


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    """TFX Trainer entry point: trains, then saves with the serving signatures."""
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    train = _dataset(fn_args.train_files, fn_args.data_accessor, tf_transform_output, TRAIN_BATCH_SIZE)
    evaluation = _dataset(fn_args.eval_files, fn_args.data_accessor, tf_transform_output, EVAL_BATCH_SIZE)

    model = build_model()
    model.fit(
        train,
        steps_per_epoch=fn_args.train_steps,
        validation_data=evaluation,
        validation_steps=fn_args.eval_steps,
        callbacks=[tf.keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir, update_freq="epoch")],
        verbose=0,
    )
    signatures.save(model, tf_transform_output, fn_args.serving_model_dir)
