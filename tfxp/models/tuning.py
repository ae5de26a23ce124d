"""Hyperparameter tuning with TFX's Tuner on KerasTuner 1.3.5 (issue 23), and which hyperparameters a model used.

KerasTuner 1.4.x imports Keras 3 and refuses the tf_keras models TFX 1.16 needs (keras-team/keras-tuner#1039);
1.3.5 (`from tensorflow import keras`) is pinned. The tuners here (random, bayesian, hyperband) train each
trial with this package's own loop (model.train, not Model.fit) on the Trainer's data path, so a trial's
model is the model the Trainer would build with those values. A trial whose loss is not finite fails
(KerasTuner's FailedTrialError: recorded, the search goes on). TensorFlow's graph state is cleared between
trials (keras-team/keras-tuner#702: memory grows across trials otherwise).

`TunerExecutor` writes TFX's two outputs itself: `best_hyperparameters.txt` (the best HyperParameters config,
plus `source`: the chosen trial, tuner kind, trials, the pipeline run and time) and `tuner_results.json` (every
trial: id, status, score, values, the failure's last line). The defaults are scored as one more trial
("default") and chosen when no search trial beats them on the objective, the metric on the training rows held
out for early stopping. TFX's writer asks `oracle.get_best_trials(oracle.max_trials)`,
which fails for Hyperband (max_trials None: tensorflow/tfx#7778), and keeps completed trials only.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
from typing import Any

import keras_tuner as kt
import tensorflow as tf
import tensorflow_transform as tft
from tfx.components.trainer import fn_args_utils
from tfx.components.trainer.fn_args_utils import FnArgs
from tfx.components.tuner import executor as tfx_tuner_executor
from tfx.components.tuner.component import TunerFnResult
from tfx.components.util import udf_utils
from tfx.types import artifact_utils

from tfxp.models import features as F, model as M
from tfxp.models.preprocessing import problem_of

TUNERS = ("random", "bayesian", "hyperband")
# Saved with every model, in its SavedModel's assets.extra: {"values": {...}, "source": "default" | {...}}.
HYPERPARAMETERS_FILE = "tfxp_hyperparameters.json"
# The search space: what build_model / train / the Trainer's batches expose. Widths halve per layer.
SPACE = {
    "units": [32, 64, 128],
    "layers": [1, 2, 3],
    "embedding_dim": [4, 8, 16],
    "learning_rate": [1e-3, 3e-3, 1e-2],
    "dropout": [0.0, 0.1, 0.2],
    "train_batch_size": [128, 256, 512],
}
# The metric each task's search maximises or minimises: model.train's on the training rows held out for early
# stopping, not the eval split's, which TFMA then scores the chosen model on (a choice made on the eval split
# would make its score optimistic).
OBJECTIVES = {
    F.Task.BINARY: kt.Objective("validation_auc", "max"),
    F.Task.MULTICLASS: kt.Objective("validation_accuracy", "max"),
    F.Task.REGRESSION: kt.Objective("validation_root_mean_squared_error", "min"),
}


INTEGER_NAMES = ("units", "layers", "embedding_dim", "train_batch_size")
# The module's defaults (model.HYPERPARAMETERS) as a point of SPACE: scored beside every search (TunerExecutor).
DEFAULTS = {
    "units": M.HIDDEN_UNITS[0],
    "layers": len(M.HIDDEN_UNITS),
    "embedding_dim": M.EMBEDDING_DIM,
    "learning_rate": M.LEARNING_RATE,
    "dropout": 0.0,
    "train_batch_size": M.TRAIN_BATCH_SIZE,
}


def search_space(project_space: dict[str, Any] | None = None) -> kt.HyperParameters:
    """SPACE, with a project's `tuning.search_space` choices (validated by tfxp.project.load) replacing those
    of the names it gives, as KerasTuner HyperParameters (all Choice, so every tuner kind samples the same
    grid), each defaulting to DEFAULTS when among its choices: `search_space().values` are the defaults."""
    hp = kt.HyperParameters()
    for name, options in {**SPACE, **(project_space or {})}.items():
        options = [int(v) if name in INTEGER_NAMES else float(v) for v in options]
        hp.Choice(name, options, default=DEFAULTS[name] if DEFAULTS[name] in options else options[0])
    return hp


def model_values(tuned: dict[str, Any]) -> dict[str, Any]:
    """The module's defaults (model.HYPERPARAMETERS) with a tuned `units`/`layers`/... set applied:
    hidden_units = [units, units/2, ...] (at least 8), the rest by name."""
    values = dict(M.HYPERPARAMETERS)
    if "units" in tuned and "layers" in tuned:
        values["hidden_units"] = [max(8, int(tuned["units"]) // 2**i) for i in range(int(tuned["layers"]))]
    for name in ("embedding_dim", "train_batch_size"):
        if name in tuned:
            values[name] = int(tuned[name])
    for name in ("learning_rate", "dropout"):
        if name in tuned:
            values[name] = float(tuned[name])
    return values


def chosen(config: dict | None) -> dict[str, Any]:
    """{"values": what the Trainer trains with, "source": "default" or the tuning's record} for the Trainer's
    `fn_args.hyperparameters` (a HyperParameters config from TunerExecutor, or None)."""
    if not config:
        return {"values": model_values({}), "source": "default"}
    tuned = kt.HyperParameters.from_config(config).values
    return {"values": model_values(tuned), "source": config.get("source") or {"tuner": "unknown"}}


def write_chosen(serving_model_dir: str, record: dict[str, Any]) -> None:
    """Saves `record` (see `chosen`) as assets.extra/HYPERPARAMETERS_FILE of the SavedModel."""
    folder = os.path.join(serving_model_dir, "assets.extra")
    tf.io.gfile.makedirs(folder)
    with tf.io.gfile.GFile(os.path.join(folder, HYPERPARAMETERS_FILE), "w") as f:
        f.write(json.dumps(record, sort_keys=True))


def read_chosen(serving_model_dir: str) -> dict[str, Any] | None:
    """The record `write_chosen` saved, or None (a model trained before it existed)."""
    path = os.path.join(serving_model_dir, "assets.extra", HYPERPARAMETERS_FILE)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return json.loads(f.read())


class _OwnLoop:
    """run_trial with model.build_model / model.train; mixed into a KerasTuner tuner."""

    def setup(self, fn_args: FnArgs, tune_steps: int, hparams_dir: str | None = None) -> None:
        self.fn_args, self.tune_steps, self.hparams_dir = fn_args, tune_steps, hparams_dir
        self.problem = problem_of(fn_args.custom_config)
        self.transform_output = tft.TFTransformOutput(fn_args.transform_graph_path or fn_args.transform_output)

    def _steps(self, hp: kt.HyperParameters) -> int:
        """Hyperband gives a trial `tuner/epochs` of `max_epochs`: its share of tune_steps."""
        epochs = hp.values.get("tuner/epochs")
        if epochs is None:
            return self.tune_steps
        return max(1, round(self.tune_steps * epochs / self.oracle.max_epochs))  # type: ignore[attr-defined]

    def run_trial(self, trial, *args, **kwargs) -> dict[str, float]:
        results = self.score(trial.hyperparameters.values, self._steps(trial.hyperparameters))
        if not all(math.isfinite(v) for v in results.values()):
            raise kt.errors.FailedTrialError(f"trial {trial.trial_id}: not finite: {results}")
        self._write_hparams(trial.trial_id, trial.hyperparameters.values, results)
        return results

    def score(self, tuned: dict[str, Any], steps: int) -> dict[str, float]:
        """Trains the model of `tuned` values (SPACE names) for at most `steps` steps as the Trainer would;
        model.train's results, with `validation_<metric>` (the objective) always present."""
        tf.keras.backend.clear_session()  # keras-tuner#702: graph state grows across trials otherwise
        values = model_values(tuned)
        data = M.transformed_dataset(
            self.fn_args.train_files,
            self.fn_args.data_accessor,
            self.transform_output,
            values["train_batch_size"],
            self.problem,
        )
        eval_data = M.transformed_dataset(
            self.fn_args.eval_files, self.fn_args.data_accessor, self.transform_output, M.EVAL_BATCH_SIZE
        )
        task = self.problem.label.task
        scale = M.label_scale(data) if task is F.Task.REGRESSION else (0.0, 1.0)
        sizes = M.vocabulary_sizes(self.transform_output, self.problem.features)
        model = M.build_model(
            self.problem,
            sizes,
            hidden_units=values["hidden_units"],
            label_scale=scale,
            embedding_dim=values["embedding_dim"],
            dropout=values["dropout"],
        )
        results = M.train(
            model, data, eval_data, steps, self.fn_args.eval_steps, task=task, learning_rate=values["learning_rate"]
        )
        if "validation_loss" not in results:  # no training row was held out (a tiny table): the eval split's
            results.update({f"validation_{k}": v for k, v in list(results.items())})
        return results

    def _write_hparams(self, trial_id: str, values: dict[str, Any], results: dict[str, float]) -> None:
        """TensorBoard's HParams view: the trial's values and its eval metrics."""
        if not self.hparams_dir:
            return
        from tensorboard.plugins.hparams import api as hparams_api

        tuned = {k: v for k, v in values.items() if not k.startswith("tuner/")}
        with tf.summary.create_file_writer(os.path.join(self.hparams_dir, f"trial_{trial_id}")).as_default():
            hparams_api.hparams(tuned, trial_id=str(trial_id))
            for name, value in results.items():
                tf.summary.scalar(f"eval/{name}", value, step=1)


class RandomTuner(_OwnLoop, kt.RandomSearch):
    pass


class BayesianTuner(_OwnLoop, kt.BayesianOptimization):
    pass


class HyperbandTuner(_OwnLoop, kt.Hyperband):
    pass


def make_tuner(
    kind: str, trials: int, objective: kt.Objective, directory: str, project_space: dict[str, Any] | None = None
) -> kt.Tuner:
    """A tuner of `kind` (TUNERS) for `trials` trials (Hyperband: max_epochs = trials, factor 3, one
    iteration: about `trials` trials of growing length) over `search_space(project_space)`. Raises ValueError
    for an unknown kind or trials < 1."""
    if kind not in TUNERS:
        raise ValueError(f"unknown tuner {kind!r}: one of {', '.join(TUNERS)}")
    if trials < 1:
        raise ValueError(f"trials must be >= 1, got {trials}")
    common = {"objective": objective, "hyperparameters": search_space(project_space), "directory": directory}
    common.update(project_name="tfxp", overwrite=True, tune_new_entries=False)
    if kind == "random":
        return RandomTuner(max_trials=trials, **common)
    if kind == "bayesian":
        return BayesianTuner(max_trials=trials, num_initial_points=min(2, trials), **common)
    return HyperbandTuner(max_epochs=max(2, trials), factor=3, hyperband_iterations=1, **common)


def tuner_fn(fn_args: FnArgs) -> TunerFnResult:
    """TFX Tuner entry point. `fn_args.custom_config["tuning"]`: {"tuner": kind, "trials": N};
    `fn_args.train_steps`: steps of a full trial (the Tuner's TrainArgs)."""
    settings = fn_args.custom_config.get("tuning") or {}
    problem = problem_of(fn_args.custom_config)
    tuner = make_tuner(
        settings.get("tuner", "random"),
        int(settings.get("trials", 2)),
        OBJECTIVES[problem.label.task],
        os.path.join(fn_args.working_dir or "/tmp", "keras_tuner"),
        settings.get("space"),
    )
    tuner.setup(fn_args, fn_args.train_steps, settings.get("hparams_dir"))
    return TunerFnResult(tuner=tuner, fit_kwargs={})


def trial_records(tuner: kt.Tuner) -> list[dict[str, Any]]:
    """Every trial of the search: trial_id, status (COMPLETED, FAILED, INVALID), score, values, message."""
    records = []
    for trial in tuner.oracle.trials.values():
        message = (trial.message or "").strip().splitlines()
        records.append(
            {
                "trial_id": trial.trial_id,
                "status": str(trial.status),
                "score": trial.score,
                "values": {k: v for k, v in trial.hyperparameters.values.items() if not k.startswith("tuner/")},
                "message": message[-1] if message else None,
            }
        )
    return records


def default_record(results: dict[str, float], objective: kt.Objective) -> dict[str, Any]:
    """The defaults' trial (trial_id "default") as `trial_records` writes a trial, from their `results`."""
    score = results.get(objective.name)
    finite = score is not None and all(math.isfinite(v) for v in results.values())
    return {
        "trial_id": "default",
        "status": "COMPLETED" if finite else "FAILED",
        "score": score if finite else None,
        "values": dict(DEFAULTS),
        "message": None if finite else f"not finite: {results}",
    }


def best_config(
    records: list[dict[str, Any]], objective: kt.Objective, project_space: dict[str, Any] | None = None
) -> tuple[dict[str, Any], str]:
    """(HyperParameters config of the best completed record by `objective`, in the space searched
    (`search_space(project_space)`), its trial_id): a search trial or "default"; a tie goes to the earlier
    record. Raises ValueError when none completed."""
    completed = [r for r in records if r["status"] == "COMPLETED" and r["score"] is not None]
    if not completed:
        raise ValueError("no completed trial")
    sign = 1 if objective.direction == "max" else -1
    best = max(completed, key=lambda r: sign * r["score"])
    hp = search_space(project_space)
    hp.values.update(best["values"])
    return hp.get_config(), str(best["trial_id"])


class TunerExecutor(tfx_tuner_executor.Executor):
    """TFX's Tuner executor with its own writer (module docstring): Hyperband works, every trial is kept,
    and the best config says where it came from. Raises RuntimeError when no trial completed."""

    def Do(self, input_dict: dict, output_dict: dict, exec_properties: dict) -> None:
        fn_args = fn_args_utils.get_common_fn_args(input_dict, exec_properties, self._get_tmp_dir())
        results_dir = artifact_utils.get_single_uri(output_dict["tuner_results"])
        settings = dict(fn_args.custom_config.get("tuning") or {})
        fn_args.custom_config = {
            **fn_args.custom_config,
            "tuning": {**settings, "hparams_dir": os.path.join(results_dir, "hparams")},
        }
        tuner = udf_utils.get_fn(exec_properties, "tuner_fn")(fn_args).tuner
        # KerasTuner's display prints to stdout, which is `tfxp run --json`'s: quiet, and any rest to the log.
        with contextlib.redirect_stdout(sys.stderr):
            tuner.search(verbose=0)
        records = trial_records(tuner)
        completed = [r for r in records if r["status"] == "COMPLETED"]
        if not completed:
            raise RuntimeError(f"no trial of the {settings.get('tuner')} search completed: {records[:3]}")
        # The defaults are scored as a trial of the same length too: a search of a few short trials can
        # miss them, and a tuned run must be at least as good as an untuned one on the objective.
        default = tuner.score(DEFAULTS, tuner.tune_steps)
        tuner._write_hparams("default", DEFAULTS, default)
        records.append(default_record(default, tuner.oracle.objective))
        tf.io.gfile.makedirs(results_dir)
        with tf.io.gfile.GFile(os.path.join(results_dir, "tuner_results.json"), "w") as f:
            f.write(json.dumps(records, indent=1))
        best, chosen_trial = best_config(records, tuner.oracle.objective, settings.get("space"))
        best["source"] = {
            "chosen": chosen_trial,
            "tuner": settings.get("tuner", "random"),
            "trials": len(records) - 1,
            "completed": len(completed),
            "run": self._context.pipeline_run_id if self._context else None,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        best_dir = artifact_utils.get_single_uri(output_dict["best_hyperparameters"])
        tf.io.gfile.makedirs(best_dir)
        with tf.io.gfile.GFile(os.path.join(best_dir, "best_hyperparameters.txt"), "w") as f:
            f.write(json.dumps(best))
