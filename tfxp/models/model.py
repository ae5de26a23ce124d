"""The Keras model (wide & deep over transformed features) and TFX's `run_fn`."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import tfxp.models  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

# isort: split
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from tfx.components.trainer.fn_args_utils import DataAccessor, FnArgs
from tfx_bsl.public import tfxio

from tfxp.models import features as F, signatures
from tfxp.models.preprocessing import problem_of

TRAIN_BATCH_SIZE = 256
EVAL_BATCH_SIZE = 512
HIDDEN_UNITS = (64, 32)
EMBEDDING_DIM = 8
LEARNING_RATE = 3e-3
CATEGORICAL_TABLE = "categorical_embedding"
LABEL_SCALE_BATCHES = 20  # regression: label mean/std from the first 20 x 256 training rows


def vocabulary_id_spaces(tf_transform_output: tft.TFTransformOutput, features: Sequence[F.Feature]) -> dict[str, int]:
    """Ids each vocabulary feature can take: its vocabulary as computed by Transform, plus the OOV bucket."""
    return {
        feature.name: max(tf_transform_output.vocabulary_size_by_name(feature.name), 1) + F.OOV_BUCKETS
        for feature in features
        if feature.kind is F.Kind.VOCABULARY
    }


def _id_space(feature: F.Feature, vocabulary_ids: Mapping[str, int] | None) -> int:
    if feature.kind is F.Kind.VOCABULARY:
        return vocabulary_ids[feature.name] if vocabulary_ids else F.VOCAB_SIZE + F.OOV_BUCKETS
    return feature.size


def build_model(
    problem: F.Problem,
    vocabulary_ids: Mapping[str, int] | None = None,
    hidden_units: Sequence[int] = HIDDEN_UNITS,
    label_scale: tuple[float, float] = (0.0, 1.0),
) -> tf.keras.Model:
    """Wide & deep model over the transformed features, with the head of the problem's task.

    Output `problem.output`: binary — sigmoid P(positive), [N, 1]; multiclass — softmax over the K
    classes, [N, K]; regression — a linear value in the label's units, [N, 1], computed as
    `z * std + mean` with `label_scale = (mean, std)` of the training labels, so the layers learn a
    standardised target whatever the label's scale.

    Categorical ids go through embeddings rather than one-hot vectors: the same
    model family as TFX's example, but a training step no longer multiplies
    ~6,000-wide one-hot rows, which made training several times slower on CPU.
    Vocabulary tables are sized by `vocabulary_ids` (see vocabulary_id_spaces):
    with the VOCAB_SIZE upper bound instead, ~94% of the taxi model's embedding
    rows could never be looked up, and they were 2/3 of the TFLite file.
    """
    logits_count = problem.label.num_classes
    inputs, deep_parts, categorical = {}, [], []
    for feature in problem.features:
        name = F.transformed_name(feature.name)
        if feature.kind is F.Kind.NUMERIC:
            inputs[name] = tf.keras.layers.Input(shape=(1,), name=name, dtype=tf.float32)
            deep_parts.append(inputs[name])
        else:
            inputs[name] = tf.keras.layers.Input(shape=(1,), name=name, dtype=tf.int64)
            categorical.append(feature)

    wide_logits = None
    if categorical:
        # All categorical features share one table, each in its own row range (an
        # offset per feature); a row holds the deep embedding and, in its last
        # columns, the wide weights (one per logit). One lookup instead of two per
        # feature keeps the TFLite graph small, and one table is big enough for
        # TFLite to quantize.
        sizes = [_id_space(feature, vocabulary_ids) for feature in categorical]
        offsets = tf.constant(np.cumsum([0, *sizes[:-1]]), tf.int64)
        id_inputs = [inputs[F.transformed_name(f.name)] for f in categorical]
        # Keras' concatenate needs two inputs or more.
        ids = (tf.keras.layers.concatenate(id_inputs) if len(id_inputs) > 1 else id_inputs[0]) + offsets
        rows = tf.keras.layers.Embedding(sum(sizes), EMBEDDING_DIM + logits_count, name=CATEGORICAL_TABLE)(ids)
        deep_parts.append(tf.keras.layers.Flatten()(rows[:, :, :EMBEDDING_DIM]))
        wide_logits = tf.reduce_sum(rows[:, :, EMBEDDING_DIM:], axis=1)

    deep = tf.keras.layers.concatenate(deep_parts) if len(deep_parts) > 1 else deep_parts[0]
    for units in hidden_units:
        deep = tf.keras.layers.Dense(units, activation="relu")(deep)
    logits = tf.keras.layers.Dense(logits_count)(deep)
    if wide_logits is not None:
        logits = tf.keras.layers.add([logits, wide_logits])
    task = problem.label.task
    if task is F.Task.BINARY:
        output = tf.keras.layers.Activation("sigmoid", name=problem.output)(logits)
    elif task is F.Task.MULTICLASS:
        output = tf.keras.layers.Activation("softmax", name=problem.output)(logits)
    else:
        mean, std = label_scale
        output = tf.keras.layers.Rescaling(std, offset=mean, name=problem.output)(logits)
    return tf.keras.Model(inputs=inputs, outputs=output)


def _loss_and_metrics(task: F.Task) -> tuple[tf.keras.losses.Loss, dict]:
    """The training loss and the eval metrics the Trainer logs, per task."""
    if task is F.Task.BINARY:
        return tf.keras.losses.BinaryCrossentropy(), {
            "loss": tf.keras.metrics.Mean(),
            "binary_accuracy": tf.keras.metrics.BinaryAccuracy(),
            "auc": tf.keras.metrics.AUC(),
        }
    if task is F.Task.MULTICLASS:
        return tf.keras.losses.SparseCategoricalCrossentropy(), {
            "loss": tf.keras.metrics.Mean(),
            "accuracy": tf.keras.metrics.SparseCategoricalAccuracy(),
        }
    return tf.keras.losses.MeanSquaredError(), {
        "loss": tf.keras.metrics.Mean(),
        "root_mean_squared_error": tf.keras.metrics.RootMeanSquaredError(),
        "mean_absolute_error": tf.keras.metrics.MeanAbsoluteError(),
    }


def train(
    model: tf.keras.Model,
    train_data: tf.data.Dataset,
    eval_data: tf.data.Dataset,
    train_steps: int,
    eval_steps: int,
    log_dir: str | None = None,
    task: F.Task = F.Task.BINARY,
) -> dict[str, float]:
    """Trains `model` in place for `train_steps` batches; returns the eval loss and the task's metrics
    (binary: binary_accuracy, auc; multiclass: accuracy; regression: root_mean_squared_error,
    mean_absolute_error).

    A plain loop with autograph off instead of `Model.fit`: fit autograph-converts
    every layer's `call` on first use, which cost ~16 s per process here for a
    model that trains 300 steps in ~2 s. The steps have no Python control flow.
    """
    optimizer = tf.keras.optimizers.Adam(learning_rate=LEARNING_RATE)
    loss_fn, eval_metrics = _loss_and_metrics(task)

    @tf.function(autograph=False)
    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    @tf.function(autograph=False)
    def eval_step(x, y):
        prediction = model(x, training=False)
        for name, metric in eval_metrics.items():
            metric.update_state(loss_fn(y, prediction)) if name == "loss" else metric.update_state(y, prediction)

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


def transformed_dataset(
    file_pattern: list[str],
    data_accessor: DataAccessor,
    tf_transform_output: tft.TFTransformOutput,
    batch_size: int,
) -> tf.data.Dataset:
    """Batches of (transformed features, label) from raw ExampleGen examples, repeated forever.

    `file_pattern`: the raw tf.Example files of one split (`FnArgs.train_files` / `eval_files`).
    Each batch: ({transformed name: [batch] float32 or int64}, label [batch]: int64 for binary and
    multiclass, float32 for regression) — what `preprocessing_fn` returns, `F.LABEL_KEY` split off.

    Transform only analyses (materialize=False): the Trainer applies the transform graph here,
    to the rows it reads, instead of Transform writing a transformed copy of every split, which
    the Trainer then read only train_steps x batch_size rows of. The graph is the one every
    serving signature and TFMA run, so training sees exactly what serving sees.
    """
    raw = data_accessor.tf_dataset_factory(
        file_pattern,
        tfxio.TensorFlowDatasetOptions(batch_size=batch_size),
        tf_transform_output.raw_metadata.schema,
    )
    transform_layer = tf_transform_output.transform_features_layer()

    # Not autograph-converted: Dataset.map converts its function by default, and converting the
    # transform layer's call took ~5 s per process (~17 s on a loaded machine) against 0.6 s to
    # trace it plainly. The function has no Python control flow.
    @tf.autograph.experimental.do_not_convert
    def split_label(raw_batch: dict) -> tuple[dict, tf.Tensor]:
        features = dict(transform_layer(raw_batch))
        return features, features.pop(F.LABEL_KEY)

    return raw.map(split_label, num_parallel_calls=tf.data.AUTOTUNE).repeat().prefetch(tf.data.AUTOTUNE)


def label_scale(train_data: tf.data.Dataset, batches: int = LABEL_SCALE_BATCHES) -> tuple[float, float]:
    """(mean, std) of the labels in the first `batches` training batches; std 1 when they are constant."""
    labels = np.concatenate([np.asarray(y, np.float64).reshape(-1) for _, y in train_data.take(batches)])
    std = float(labels.std())
    return float(labels.mean()), std if std > 0 else 1.0


def run_fn(fn_args: FnArgs) -> None:
    """TFX Trainer entry point: trains, then saves with the serving signatures.

    `fn_args.custom_config["problem"]`: the Problem (features, label, task); taxi's without it.
    """
    problem = problem_of(fn_args.custom_config)
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    train_data = transformed_dataset(fn_args.train_files, fn_args.data_accessor, tf_transform_output, TRAIN_BATCH_SIZE)
    eval_data = transformed_dataset(fn_args.eval_files, fn_args.data_accessor, tf_transform_output, EVAL_BATCH_SIZE)

    scale = label_scale(train_data) if problem.label.task is F.Task.REGRESSION else (0.0, 1.0)
    model = build_model(problem, vocabulary_id_spaces(tf_transform_output, problem.features), label_scale=scale)
    results = train(
        model,
        train_data,
        eval_data,
        fn_args.train_steps,
        fn_args.eval_steps,
        fn_args.model_run_dir,
        task=problem.label.task,
    )
    logging.info("Trainer eval after %d steps: %s", fn_args.train_steps, results)
    signatures.save(model, tf_transform_output, fn_args.serving_model_dir, problem)
