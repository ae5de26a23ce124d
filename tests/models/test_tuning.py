"""tfxp.models.tuning on KerasTuner 1.3.5 (issue 23): the lock guard, the search space, every tuner kind with
the writer TFX's executor lacks (Hyperband: tensorflow/tfx#7778), failed trials recorded. Real KerasTuner
searches; the trials here are black-box functions of the hyperparameters (the pipeline test trains real ones)."""

from __future__ import annotations

import keras_tuner as kt
import numpy as np
import pytest
import tensorflow as tf

from tfxp.models import model as M, tuning


def test_keras_tuner_is_1_3_5_and_takes_tf_keras_models(tmp_path):
    """keras-tuner 1.4.x imports Keras 3 and refuses tf_keras models (keras-team/keras-tuner#1039): a lock
    regression to it fails here."""
    assert kt.__version__ == "1.3.5"

    def build(hp):
        model = tf.keras.Sequential([tf.keras.layers.Dense(hp.Choice("units", [2, 4]), input_shape=(3,))])
        model.add(tf.keras.layers.Dense(1))
        model.compile(loss="mse")
        return model

    tuner = kt.RandomSearch(build, objective="val_loss", max_trials=1, directory=str(tmp_path), overwrite=True)
    x, y = np.zeros((8, 3), np.float32), np.zeros((8, 1), np.float32)
    tuner.search(x, y, validation_data=(x, y), epochs=1, verbose=0)
    assert type(tuner.get_best_models(1)[0]).__module__.startswith("tf_keras")


def test_model_values_map_the_space_onto_the_model_and_defaults_stay():
    assert tuning.chosen(None) == {"values": M.HYPERPARAMETERS, "source": "default"}
    values = tuning.model_values({"units": 64, "layers": 3, "embedding_dim": 16, "learning_rate": 0.01})
    assert values["hidden_units"] == [64, 32, 16] and values["embedding_dim"] == 16 and values["learning_rate"] == 0.01
    assert values["dropout"] == M.HYPERPARAMETERS["dropout"]
    assert set(tuning.search_space().values) == set(tuning.SPACE)


@pytest.mark.parametrize("kind, trials", [("random", 0), ("grid", 2)])
def test_bad_settings_are_refused(kind, trials, tmp_path):
    with pytest.raises(ValueError, match="trials must be|unknown tuner"):
        tuning.make_tuner(kind, trials, kt.Objective("auc", "max"), str(tmp_path))


def _black_box(kind: str, trials: int, directory: str):
    """A tuner of `kind` whose trial score is a function of its values; dropout 0.2 'diverges' (NaN loss)."""
    base = {"random": tuning.RandomTuner, "bayesian": tuning.BayesianTuner, "hyperband": tuning.HyperbandTuner}[kind]

    class BlackBox(base):  # type: ignore[misc, valid-type]
        def run_trial(self, trial, *args, **kwargs):
            values = trial.hyperparameters.values
            if values["dropout"] == 0.2:
                raise kt.errors.FailedTrialError("trial diverged: loss nan")
            return {"auc": values["units"] / 128 - values["dropout"]}

    tuner = tuning.make_tuner(kind, trials, kt.Objective("auc", "max"), directory)
    tuner.__class__ = BlackBox
    return tuner


@pytest.mark.parametrize("kind", tuning.TUNERS)
def test_every_tuner_kind_searches_and_every_trial_is_recorded(kind, tmp_path):
    tuner = _black_box(kind, 6, str(tmp_path))
    tuner.oracle.max_consecutive_failed_trials = 100  # this space fails a third of the trials on purpose
    tuner.search(verbose=0)
    records = tuning.trial_records(tuner)
    assert records and {r["status"] for r in records} <= {"COMPLETED", "FAILED"}
    completed = [r for r in records if r["status"] == "COMPLETED"]
    assert completed, records
    failed = [r for r in records if r["status"] == "FAILED"]
    assert all(r["values"]["dropout"] == 0.2 and "diverged" in r["message"] for r in failed)
    best = tuner.get_best_hyperparameters(1)[0].values
    assert max(r["score"] for r in completed) == best["units"] / 128 - best["dropout"]
    assert not any(k.startswith("tuner/") for r in records for k in r["values"])  # Hyperband's bookkeeping


def test_the_defaults_are_a_point_of_the_space_and_train_the_module_default_model():
    assert tuning.search_space().values == tuning.DEFAULTS
    assert tuning.model_values(tuning.DEFAULTS) == tuning.model_values({})


@pytest.mark.parametrize(
    "direction, scores, chosen",
    [("max", [0.7, None, 0.8], "default"), ("max", [0.9, 0.8, 0.8], "0"), ("min", [3.0, 2.5, 2.5], "1")],
)
def test_the_best_of_the_search_and_the_defaults_is_chosen(direction, scores, chosen):
    """The defaults' own trial wins when no search trial beats it; a tie keeps the earlier record."""
    objective = kt.Objective("validation_auc" if direction == "max" else "validation_rmse", direction)
    values = [{**tuning.DEFAULTS, "units": 128, "layers": 1}, {**tuning.DEFAULTS, "units": 32, "layers": 3}]
    records = [
        {"trial_id": str(i), "status": "COMPLETED" if s is not None else "FAILED", "score": s, "values": v}
        for i, (s, v) in enumerate(zip(scores[:2], values, strict=True))
    ]
    records.append(tuning.default_record({objective.name: scores[2], "validation_loss": 0.5}, objective))
    config, trial = tuning.best_config(records, objective)
    assert trial == chosen
    expected = tuning.DEFAULTS if chosen == "default" else values[int(chosen)]
    assert kt.HyperParameters.from_config(config).values == expected


def test_a_diverged_default_trial_is_recorded_failed_and_nothing_completed_is_refused():
    objective = kt.Objective("validation_auc", "max")
    record = tuning.default_record({"validation_auc": float("nan"), "validation_loss": float("nan")}, objective)
    assert record["status"] == "FAILED" and record["score"] is None and "not finite" in record["message"]
    with pytest.raises(ValueError, match="no completed trial"):
        tuning.best_config([record], objective)


def test_a_project_search_space_replaces_the_choices_it_names(tmp_path):
    """project.yaml `tuning.search_space` (validated by tfxp.project.load) reaches the tuner's space."""
    space = {"units": [16, 256], "learning_rate": [0.03]}
    hp = tuning.search_space(space)
    choices = {p.name: list(p.values) for p in hp.space}
    assert choices["units"] == [16, 256] and choices["learning_rate"] == [0.03]
    assert choices["layers"] == tuning.SPACE["layers"]
    # A default outside the project's choices gives way to its first one; the others stay the module's.
    assert hp.values == {**tuning.DEFAULTS, "units": 16, "learning_rate": 0.03}
    tuner = tuning.make_tuner("random", 2, kt.Objective("validation_auc", "max"), str(tmp_path), space)
    units = next(p for p in tuner.oracle.hyperparameters.space if p.name == "units")
    assert list(units.values) == [16, 256]
