"""`tfxp run --tune N` (issue 23): TFX's Tuner before the Trainer, its best values used and recorded, reused by
a later run without --tune; TensorBoard's HParams records; the Vertex compile with the Tuner in the DAG."""

from __future__ import annotations

import glob
import json
import subprocess
import sys

import pytest
from pipeline_harness import loose_taxi_project, tfxp_run, write_csv
from taxi_data import read_csv_rows

from tfxp.models import tuning
from tfxp.models.tuning import read_chosen


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """(output folder, the --tune run's summary, a later run's summary) on 2,000 taxi rows."""
    work = tmp_path_factory.mktemp("tune")
    # The project narrows the search space: every search trial has 16 units.
    project = loose_taxi_project(work / "taxi", extra="tuning:\n  search_space:\n    units: [16]\n")
    data = write_csv(work / "data" / "taxi.csv", read_csv_rows(limit=2000))
    args = ("--project", project)
    code, first, stderr = tfxp_run(
        data, work / "out", *args, "--tune", "2", "--tune-steps", "10", name="taxi", train_steps=40
    )
    assert code == 0, stderr[-3000:]
    code, later, stderr = tfxp_run(data, work / "out", *args, name="taxi", train_steps=41)
    assert code == 0, stderr[-3000:]
    return work / "out", first, later


def test_the_tuner_searches_and_the_trainer_uses_its_best_values(tuned):
    out, first, _ = tuned
    trials = first["tuning"]["trials"]  # the search's two and the defaults' own
    assert len(trials) == 3 and all(t["status"] == "COMPLETED" for t in trials)
    assert trials[-1]["trial_id"] == "default" and trials[-1]["values"] == tuning.DEFAULTS
    assert all(t["values"]["units"] == 16 for t in trials[:-1])  # project.yaml's search space
    chosen = max(trials, key=lambda t: t["score"])  # binary: held-out AUC, maximised
    best = chosen["values"]
    record = first["hyperparameters"]
    assert record["source"]["tuner"] == "random" and record["source"]["completed"] == 2
    assert record["source"]["chosen"] == chosen["trial_id"]
    units = best["units"]
    assert record["values"]["hidden_units"] == [max(8, units // 2**i) for i in range(best["layers"])]
    assert record["values"]["learning_rate"] == best["learning_rate"]
    # Saved with the pushed model, and the model card says the same.
    assert read_chosen(first["pushed_path"]) == record
    card = json.loads(open(f"{first['pushed_path']}/model_card.json").read())
    assert card["hyperparameters"]["source"] == record["source"]
    assert card["hyperparameters"]["values"]["hidden_units"] == record["values"]["hidden_units"]
    # TensorBoard's HParams view: one run per trial, the defaults' too.
    assert len(glob.glob(f"{out}/pipelines/taxi/Tuner/tuner_results/*/hparams/trial_*/events.out.tfevents.*")) == 3


def test_a_later_run_without_tune_reuses_the_latest_tuned_values(tuned):
    _, first, later = tuned
    assert later["tuning"] is None
    assert later["hyperparameters"] == first["hyperparameters"]
    assert "latest_hyperparameters" in {c["id"] for c in later["components"]}


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--tune", "0"], "--tune"),
        (["--tuner", "random"], "go with --tune N"),
        (["--tune", "2", "--tuner", "grid"], "--tuner"),
    ],
)
def test_bad_tuning_options_are_usage_errors(extra, words, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "tfxp.pipeline.cli", "run", "--output", str(tmp_path), *extra],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and words in done.stderr, done.stderr


def test_the_vertex_compile_keeps_the_tuner_in_the_dag(tmp_path):
    from tfxp.pipeline import vertex
    from tfxp.pipeline.config import PipelineConfig, RemoteLayout

    config = PipelineConfig(remote=RemoteLayout(pipeline_root="gs://bucket/root"), tune=2, tuner="hyperband")
    job = vertex.compile_pipeline(config, image="europe-docker.pkg.dev/p/tfxp/pipeline:1", output=tmp_path / "j.json")
    tasks = job["pipelineSpec"]["root"]["dag"]["tasks"]
    assert "Tuner" in tasks and "latest_hyperparameters" not in tasks
    trainer_inputs = tasks["Trainer"]["inputs"]["artifacts"]
    assert trainer_inputs["hyperparameters"]["taskOutputArtifact"]["producerTask"] == "Tuner"


@pytest.mark.parametrize("kind", ["bayesian", "hyperband"])
def test_the_other_tuner_kinds_train_real_trials_in_a_run(kind, tmp_path):
    """Two trials of a few steps each on 1,000 rows, with the Trainer's own loop; Hyperband through TFX's
    executor used to fail writing its best trials (tensorflow/tfx#7778)."""
    project = loose_taxi_project(tmp_path / "taxi")
    data = write_csv(tmp_path / "data" / "taxi.csv", read_csv_rows(limit=1000))
    code, summary, stderr = tfxp_run(
        data, tmp_path / "out", "--project", project, "--tune", "2", "--tuner", kind, "--tune-steps", "10",
        name="taxi", train_steps=20,
    )  # fmt: skip
    assert code == 0, stderr[-3000:]
    trials = summary["tuning"]["trials"]
    assert trials[-1]["trial_id"] == "default" and len(trials) >= 3
    assert all(t["status"] == "COMPLETED" and t["score"] is not None for t in trials)
    record = summary["hyperparameters"]
    assert record["source"]["tuner"] == kind
    assert record["source"]["chosen"] in {t["trial_id"] for t in trials}
