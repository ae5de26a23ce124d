"""The Keras model (wide & deep over transformed features) and TFX's `run_fn`."""
from __future__ import annotations

import logging
from typing import Mapping, Sequence

import tfxp.models  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from tfx.components.trainer.fn_args_utils import DataAccessor, FnArgs
from tfx_bsl.public import tfxio

from tfxp.models import features as F
from tfxp.models import signatures

TRAIN_BATCH_SIZE = 256
EVAL_BATCH_SIZE = 512
HIDDEN_UNITS = (64, 32)
EMBEDDING_DIM = 8
LEARNING_RATE = 3e-3
CATEGORICAL_TABLE = "categorical_embedding"


def vocabulary_id_spaces(tf_transform_output: tft.TFTransformOutput) -> dict[str, int]:
    """Ids each vocabulary feature can take: its vocabulary as computed by Transform, plus the OOV bucket."""
    return {
        feature.name: max(tf_transform_output.vocabulary_size_by_name(feature.name), 1) + F.OOV_BUCKETS
        for feature in F.FEATURES
        if feature.kind is F.Kind.VOCABULARY
    }


def _id_space(feature: F.Feature, vocabulary_ids: Mapping[str, int] | None) -> int:
    if feature.kind is F.Kind.VOCABULARY:
        return vocabulary_ids[feature.name] if vocabulary_ids else F.VOCAB_SIZE + F.OOV_BUCKETS
    return feature.size


def build_model(
    vocabulary_ids: Mapping[str, int] | None = None, hidden_units: Sequence[int] = HIDDEN_UNITS
) -> tf.keras.Model:
    """Wide & deep binary classifier over the transformed features.

    Categorical ids go through embeddings rather than one-hot vectors: the same
    model family as TFX's example, but a training step no longer multiplies
    ~6,000-wide one-hot rows, which made training several times slower on CPU.
    Vocabulary tables are sized by `vocabulary_ids` (see vocabulary_id_spaces):
    with the VOCAB_SIZE upper bound instead, ~94% of the taxi model's embedding
    rows could never be looked up, and they were 2/3 of the TFLite file.
    """
    inputs, deep_parts, categorical = {}, [], []
    for feature in F.FEATURES:
        name = F.transformed_name(feature.name)
        if feature.kind is F.Kind.NUMERIC:
            inputs[name] = tf.keras.layers.Input(shape=(1,), name=name, dtype=tf.float32)
            deep_parts.append(inputs[name])
        else:
            inputs[name] = tf.keras.layers.Input(shape=(1,), name=name, dtype=tf.int64)
            categorical.append(feature)

    # All categorical features share one table, each in its own row range (an
    # offset per feature); a row holds the deep embedding and, in its last
    # column, the wide weight. One lookup instead of two per feature keeps the
    # TFLite graph small, and one table is big enough for TFLite to quantize.
    sizes = [_id_space(feature, vocabulary_ids) for feature in categorical]
    offsets = tf.constant(np.cumsum([0, *sizes[:-1]]), tf.int64)
    ids = tf.keras.layers.concatenate([inputs[F.transformed_name(f.name)] for f in categorical]) + offsets
    rows = tf.keras.layers.Embedding(sum(sizes), EMBEDDING_DIM + 1, name=CATEGORICAL_TABLE)(ids)
    deep_parts.append(tf.keras.layers.Flatten()(rows[:, :, :EMBEDDING_DIM]))
    wide_logit = tf.reduce_sum(rows[:, :, EMBEDDING_DIM], axis=1, keepdims=True)

    deep = tf.keras.layers.concatenate(deep_parts)
    for units in hidden_units:
        deep = tf.keras.layers.Dense(units, activation="relu")(deep)
    logit = tf.keras.layers.add([tf.keras.layers.Dense(1)(deep), wide_logit])
    output = tf.keras.layers.Activation("sigmoid", name=F.OUTPUT)(logit)
    return tf.keras.Model(inputs=inputs, outputs=output)


def train(
    model: tf.keras.Model,
    train_data: tf.data.Dataset,
    eval_data: tf.data.Dataset,
    train_steps: int,
    eval_steps: int,
    log_dir: str | None = None,
) -> dict[str, float]:
    """Trains `model` in place for `train_steps` batches; returns eval loss, accuracy and AUC.

    A plain loop with autograph off instead of `Model.fit`: fit autograph-converts
    every layer's `call` on first use, which cost ~16 s per process here for a
    model that trains 300 steps in ~2 s. The steps have no Python control flow.
    """
    optimizer = tf.keras.optimizers.Adam(learning_rate=LEARNING_RATE)
    loss_fn = tf.keras.losses.BinaryCrossentropy()
    eval_metrics = {
        "loss": tf.keras.metrics.Mean(),
        "binary_accuracy": tf.keras.metrics.BinaryAccuracy(),
        "auc": tf.keras.metrics.AUC(),
    }

    @tf.function(autograph=False)
    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    @tf.function(autograph=False)
    def eval_step(x, y):
        probability = model(x, training=False)
        eval_metrics["loss"].update_state(loss_fn(y, probability))
        eval_metrics["binary_accuracy"].update_state(y, probability)
        eval_metrics["auc"].update_state(y, probability)

    writer = tf.summary.create_file_writer(log_dir) if log_dir else tf.summary.create_noop_writer()
    with writer.as_default():
        for step, (x, y) in enumerate(train_data.take(train_steps)):
            loss = train_step(x, y)
            if step % 50 == 0 or step == train_steps - 1:
                tf.summary.scalar("train/loss", loss, step=step)
        for x, y in eval_data.take(eval_steps):
            eval_step(x, y)
        results = {name: float(metric.result()) for name, metric in eval_metrics.items()}
        for name, value in results.items():
            tf.summary.scalar(f"eval/{name}", value, step=train_steps)
    writer.flush()
    return results


def _dataset(
    file_pattern: list[str],
    data_accessor: DataAccessor,
    tf_transform_output: tft.TFTransformOutput,
    batch_size: int,
) -> tf.data.Dataset:
    return data_accessor.tf_dataset_factory(
        file_pattern,
        tfxio.TensorFlowDatasetOptions(batch_size=batch_size, label_key=F.LABEL),
        tf_transform_output.transformed_metadata.schema,
    ).repeat()


def run_fn(fn_args: FnArgs) -> None:
    """TFX Trainer entry point: trains, then saves with the serving signatures."""
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    train_data = _dataset(fn_args.train_files, fn_args.data_accessor, tf_transform_output, TRAIN_BATCH_SIZE)
    eval_data = _dataset(fn_args.eval_files, fn_args.data_accessor, tf_transform_output, EVAL_BATCH_SIZE)

    model = build_model(vocabulary_id_spaces(tf_transform_output))
    results = train(model, train_data, eval_data, fn_args.train_steps, fn_args.eval_steps, fn_args.model_run_dir)
    logging.info("Trainer eval after %d steps: %s", fn_args.train_steps, results)
    signatures.save(model, tf_transform_output, fn_args.serving_model_dir)
