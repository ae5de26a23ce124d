"""The Keras model (wide & deep over transformed features) and TFX's `run_fn`."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence

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
# Shares of training values replaced, per feature and batch, by "unknown" (the OOV id) and, for optional
# features, by "missing", so those ids and the missing indicators are trained: all training values are
# in the vocabulary, and a column may have no missing value in the training split. Measured on taxi,
# wine, diabetes and breast cancer in the note of issue 17 (accuracy unchanged within noise).
TRAIN_OOV_RATE = 0.01
TRAIN_MISSING_RATE = 0.01
# Early stopping (issue 23): a share of the training rows, chosen by a hash of each row's features (so a row and
# its duplicates are always on the same side), is held out of the gradient; the loss on up to VALIDATION_ROWS of
# them is measured every VALIDATION_EVERY steps, training stops after PATIENCE measurements without a new best,
# and the best weights are kept. train_steps is the most a model trains. Measured in docs/quality.md: 300 steps
# overfit the small tables (diabetes RMSE 75.5 at 300 steps, 54.8 at 40; trees 58.0).
VALIDATION_SHARE = 0.1
VALIDATION_ROWS = 2048
VALIDATION_EVERY = 10
PATIENCE = 6
# What this code trains with, by name (the model card's hyperparameters, beside the run's train steps).
HYPERPARAMETERS = {
    "train_batch_size": TRAIN_BATCH_SIZE,
    "hidden_units": list(HIDDEN_UNITS),
    "embedding_dim": EMBEDDING_DIM,
    "learning_rate": LEARNING_RATE,
    "dropout": 0.0,
    "optimizer": "adam",
    "train_oov_rate": TRAIN_OOV_RATE,
    "train_missing_rate": TRAIN_MISSING_RATE,
    "validation_share": VALIDATION_SHARE,
    "early_stopping_patience_steps": PATIENCE * VALIDATION_EVERY,
}


def vocabulary_sizes(tf_transform_output: tft.TFTransformOutput, features: Sequence[F.Feature]) -> dict[str, int]:
    """Entries of each vocabulary feature's vocabulary, as Transform computed it."""
    return {
        feature.name: tf_transform_output.vocabulary_size_by_name(feature.name)
        for feature in features
        if feature.kind is F.Kind.VOCABULARY
    }


def _id_space(feature: F.Feature, vocabulary_sizes: Mapping[str, int] | None) -> int:
    size = (vocabulary_sizes or {}).get(feature.name, F.VOCAB_SIZE)
    return F.id_space(feature, size)


def build_model(
    problem: F.Problem,
    vocabulary_sizes: Mapping[str, int] | None = None,
    hidden_units: Sequence[int] = HIDDEN_UNITS,
    label_scale: tuple[float, float] = (0.0, 1.0),
    embedding_dim: int = EMBEDDING_DIM,
    dropout: float = 0.0,
) -> tf.keras.Model:
    """Wide & deep model over the transformed features, with the head of the problem's task.

    Output `problem.output`: binary — sigmoid P(positive), [N, 1]; multiclass — softmax over the K
    classes, [N, K]; regression — a linear value in the label's units, [N, 1], computed as
    `z * std + mean` with `label_scale = (mean, std)` of the training labels, so the layers learn a
    standardised target whatever the label's scale.

    Categorical ids go through embeddings rather than one-hot vectors: the same
    model family as TFX's example, but a training step no longer multiplies
    ~6,000-wide one-hot rows, which made training several times slower on CPU.
    Each categorical feature has `F.id_space` rows (missing, learned values, OOV), vocabularies sized
    by `vocabulary_sizes` (see vocabulary_sizes):
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
            if F.has_indicator(feature):
                indicator = F.indicator_name(feature.name)
                inputs[indicator] = tf.keras.layers.Input(shape=(1,), name=indicator, dtype=tf.float32)
                deep_parts.append(inputs[indicator])
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
        sizes = [_id_space(feature, vocabulary_sizes) for feature in categorical]
        offsets = tf.constant(np.cumsum([0, *sizes[:-1]]), tf.int64)
        id_inputs = [inputs[F.transformed_name(f.name)] for f in categorical]
        # Keras' concatenate needs two inputs or more.
        ids = (tf.keras.layers.concatenate(id_inputs) if len(id_inputs) > 1 else id_inputs[0]) + offsets
        rows = tf.keras.layers.Embedding(sum(sizes), embedding_dim + logits_count, name=CATEGORICAL_TABLE)(ids)
        deep_parts.append(tf.keras.layers.Flatten()(rows[:, :, :embedding_dim]))
        wide_logits = tf.reduce_sum(rows[:, :, embedding_dim:], axis=1)

    deep = tf.keras.layers.concatenate(deep_parts) if len(deep_parts) > 1 else deep_parts[0]
    for units in hidden_units:
        deep = tf.keras.layers.Dense(units, activation="relu")(deep)
        if dropout > 0:  # training only; inference (and TFLite) see no Dropout op's effect
            deep = tf.keras.layers.Dropout(dropout)(deep)
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
    learning_rate: float = LEARNING_RATE,
) -> dict[str, float]:
    """Trains `model` in place for at most `train_steps` batches; returns the eval loss and the task's metrics
    (binary: binary_accuracy, auc; multiclass: accuracy; regression: root_mean_squared_error,
    mean_absolute_error) on `eval_steps` batches of `eval_data`, plus `steps` (trained) and `best_step`.

    `train_data` yields (features, label) or, as `transformed_dataset` does for training, (features, label,
    weight) with weight 0.0 for the rows held out for early stopping (VALIDATION_SHARE): those are never
    trained on; with them, the loss on the held-out rows picks the weights kept (`validation_loss` and
    `validation_<metric>` of the kept weights are returned too, and `validation_loss_last`, the loss at the
    last step) and training stops PATIENCE measurements after the best.

    A plain loop with autograph off instead of `Model.fit`: fit autograph-converts
    every layer's `call` on first use, which cost ~16 s per process here for a
    model that trains 300 steps in ~2 s. The steps have no Python control flow.
    """
    optimizer = tf.keras.optimizers.Adam(learning_rate=learning_rate)
    loss_fn, eval_metrics = _loss_and_metrics(task)

    @tf.function(autograph=False)
    def train_step(x, y, weight):
        with tf.GradientTape() as tape:
            # Labels as [batch, 1] columns: with [batch] labels Keras' losses average over the whole batch
            # before the weights apply (one "sample"), and a per-row weight can't.
            loss = loss_fn(tf.reshape(y, [-1, 1]), model(x, training=True), sample_weight=weight)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    validation = _held_out_rows(train_data)
    stopping = _EarlyStopping(model, loss_fn, validation)
    writer = tf.summary.create_file_writer(log_dir) if log_dir else tf.summary.create_noop_writer()
    with writer.as_default():
        step = -1
        for step, (x, y, *weight) in enumerate(train_data.take(train_steps)):
            loss = train_step(x, y, weight[0] if weight else tf.ones_like(y, tf.float32))
            if step % 50 == 0 or step == train_steps - 1:
                tf.summary.scalar("train/loss", loss, step=step)
            if (step + 1) % VALIDATION_EVERY == 0 and stopping.measure(step + 1):
                break
        stopping.measure(step + 1)
        stopping.restore_best()
        results = _evaluate(model, eval_data.take(eval_steps), loss_fn, eval_metrics)
        if validation is not None:
            _, fresh_metrics = _loss_and_metrics(task)
            held_out = _evaluate(model, [validation], loss_fn, fresh_metrics)
            results.update({f"validation_{k}": v for k, v in held_out.items()})
            results["validation_loss_last"] = stopping.last_loss
        results.update(steps=float(step + 1), best_step=float(stopping.best_step or step + 1))
        for name, value in results.items():
            tf.summary.scalar(f"eval/{name}", value, step=train_steps)
    writer.flush()
    return results


def _evaluate(model: tf.keras.Model, batches, loss_fn, metrics: dict) -> dict[str, float]:
    """`metrics` (with "loss": the mean of `loss_fn`) over (features, label[, weight]) `batches`."""

    @tf.function(autograph=False)
    def eval_step(x, y):
        prediction = model(x, training=False)
        for name, metric in metrics.items():
            metric.update_state(loss_fn(y, prediction)) if name == "loss" else metric.update_state(y, prediction)

    for x, y, *_ in batches:
        eval_step(x, y)
    return {name: float(metric.result()) for name, metric in metrics.items()}


def _held_out_rows(train_data: tf.data.Dataset) -> tuple[dict, tf.Tensor] | None:
    """Up to VALIDATION_ROWS held-out rows (weight 0) from the first training batches, as one batch
    (features, label); None when `train_data` has no weights or no row was held out. A small table repeats
    its rows across batches: the batch then holds them several times, as often as they were drawn."""
    if len(train_data.element_spec) < 3:
        return None
    features: dict[str, list] = {}
    labels: list = []
    count = 0
    for x, y, weight in train_data.take(max(1, VALIDATION_ROWS // 64)):
        held = np.asarray(weight) == 0
        for name, value in x.items():
            features.setdefault(name, []).append(np.asarray(value)[held])
        labels.append(np.asarray(y)[held])
        count += int(held.sum())
        if count >= VALIDATION_ROWS:
            break
    if not count:
        return None
    return (
        {name: tf.constant(np.concatenate(parts)[:VALIDATION_ROWS]) for name, parts in features.items()},
        tf.constant(np.concatenate(labels)[:VALIDATION_ROWS]),
    )


class _EarlyStopping:
    """Keeps the weights with the lowest loss on the held-out rows; `measure` says when PATIENCE
    measurements in a row brought no new best. Without held-out rows it keeps the last weights."""

    def __init__(self, model: tf.keras.Model, loss_fn, validation: tuple[dict, tf.Tensor] | None) -> None:
        self.model, self.validation = model, validation
        self.best_loss, self.best_weights, self.best_step, self.stale, self.last = math.inf, None, None, 0, 0
        self.last_loss = math.nan
        self._loss = tf.function(lambda x, y: loss_fn(y, model(x, training=False)), autograph=False)

    def measure(self, step: int) -> bool:
        """Measures the held-out loss after `step` steps; True when training should stop."""
        if self.validation is None or step <= self.last:
            return self.stale >= PATIENCE
        self.last = step
        loss = self.last_loss = float(self._loss(*self.validation))
        if loss < self.best_loss:
            self.best_loss, self.best_weights, self.best_step, self.stale = loss, self.model.get_weights(), step, 0
        else:
            self.stale += 1
        return self.stale >= PATIENCE

    def restore_best(self) -> None:
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)


def transformed_dataset(
    file_pattern: list[str],
    data_accessor: DataAccessor,
    tf_transform_output: tft.TFTransformOutput,
    batch_size: int,
    problem: F.Problem | None = None,
) -> tf.data.Dataset:
    """Batches of (transformed features, label) from raw ExampleGen examples, repeated forever.

    `file_pattern`: the raw tf.Example files of one split (`FnArgs.train_files` / `eval_files`).
    Each batch: ({transformed name: [batch] float32 or int64}, label [batch]: int64 for binary and
    multiclass, float32 for regression) — what `preprocessing_fn` returns, `F.LABEL_KEY` split off.

    `problem`: given for the training split only, whose batches then pass through `learn_unknowns` and get a
    third part, weight float32 [batch]: 0.0 for the rows `held_out` for early stopping (see `train`), 1.0 else.

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

    data = raw.map(split_label, num_parallel_calls=tf.data.AUTOTUNE).repeat()
    if problem is not None:
        sizes = vocabulary_sizes(tf_transform_output, problem.features)

        @tf.autograph.experimental.do_not_convert
        def with_unknowns(features: dict, label: tf.Tensor) -> tuple[dict, tf.Tensor, tf.Tensor]:
            held = held_out(features)  # before learn_unknowns: a row's side never changes between epochs
            learned = learn_unknowns(features, problem, sizes)
            kept = {name: tf.where(held, features[name], value) for name, value in learned.items()}
            return kept, label, 1.0 - tf.cast(held, tf.float32)

        data = data.map(with_unknowns, num_parallel_calls=tf.data.AUTOTUNE)
    return data.prefetch(tf.data.AUTOTUNE)


def held_out(features: Mapping[str, tf.Tensor], share: float = VALIDATION_SHARE) -> tf.Tensor:
    """bool [batch]: the rows held out of training for early stopping — a `share` of them, by a hash
    (FarmHash, `tf.strings.to_hash_bucket_fast`) of the row's transformed features, so a row is always on
    the same side and its duplicates with it. `features`: {name: [batch] tensor}."""
    parts = [tf.strings.as_string(features[name]) for name in sorted(features)]
    key = tf.strings.reduce_join(tf.stack(parts, axis=1), axis=1, separator="|")
    return tf.strings.to_hash_bucket_fast(key, 1000) < int(round(share * 1000))


def learn_unknowns(
    features: Mapping[str, tf.Tensor],
    problem: F.Problem,
    sizes: Mapping[str, int],
    oov_rate: float = TRAIN_OOV_RATE,
    missing_rate: float = TRAIN_MISSING_RATE,
) -> dict[str, tf.Tensor]:
    """A training batch with a random `oov_rate` of each categorical feature's values replaced by its OOV
    id and a `missing_rate` of each optional feature's values by "missing" (MISSING_ID; NUMERIC: z = 0
    and indicator 1.0), so serving answers an unseen category or a missing value from ids the model
    was trained on, never from an embedding row left at its random initial value.

    `features`: {name: [batch] tensor} as `preprocessing_fn` returns them; `sizes`: vocabulary_sizes.
    """
    out = dict(features)
    for feature in problem.features:
        name = F.transformed_name(feature.name)
        x = out[name]
        oov = F.oov_id(feature, sizes.get(feature.name, 0))
        if oov is not None:
            # Missing values too: a column missing in every training row still trains its unknown id.
            x = tf.where(tf.random.uniform(tf.shape(x)) < oov_rate, tf.constant(oov, x.dtype), x)
        if not feature.required:
            drop = tf.random.uniform(tf.shape(x)) < missing_rate
            x = tf.where(drop, tf.zeros_like(x), x)
            if F.has_indicator(feature):
                indicator = F.indicator_name(feature.name)
                out[indicator] = tf.where(drop, tf.ones_like(out[indicator]), out[indicator])
        out[name] = x
    return out


def label_scale(train_data: tf.data.Dataset, batches: int = LABEL_SCALE_BATCHES) -> tuple[float, float]:
    """(mean, std) of the labels in the first `batches` training batches; std 1 when they are constant."""
    labels = np.concatenate([np.asarray(y, np.float64).reshape(-1) for _, y, *_ in train_data.take(batches)])
    std = float(labels.std())
    return float(labels.mean()), std if std > 0 else 1.0


def run_fn(fn_args: FnArgs) -> None:
    """TFX Trainer entry point: trains, then saves with the serving signatures.

    `fn_args.custom_config["problem"]`: the Problem (features, label, task); taxi's without it.
    `fn_args.hyperparameters`: a KerasTuner HyperParameters config (the Tuner's best, or the latest tuned one a
    resolver found), else None for this module's defaults (HYPERPARAMETERS). What was used, and where it came
    from, is saved with the model (tuning.HYPERPARAMETERS_FILE in assets.extra).
    """
    from tfxp.models import tuning

    problem = problem_of(fn_args.custom_config)
    chosen = tuning.chosen(fn_args.hyperparameters)
    values = chosen["values"]
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    train_data = transformed_dataset(
        fn_args.train_files, fn_args.data_accessor, tf_transform_output, values["train_batch_size"], problem
    )
    eval_data = transformed_dataset(fn_args.eval_files, fn_args.data_accessor, tf_transform_output, EVAL_BATCH_SIZE)

    scale = label_scale(train_data) if problem.label.task is F.Task.REGRESSION else (0.0, 1.0)
    model = build_model(
        problem,
        vocabulary_sizes(tf_transform_output, problem.features),
        hidden_units=values["hidden_units"],
        label_scale=scale,
        embedding_dim=values["embedding_dim"],
        dropout=values["dropout"],
    )
    results = train(
        model,
        train_data,
        eval_data,
        fn_args.train_steps,
        fn_args.eval_steps,
        fn_args.model_run_dir,
        task=problem.label.task,
        learning_rate=values["learning_rate"],
    )
    logging.info("Trainer eval after %d steps with %s: %s", fn_args.train_steps, chosen, results)
    signatures.save(model, tf_transform_output, fn_args.serving_model_dir, problem)
    tuning.write_chosen(fn_args.serving_model_dir, chosen)
