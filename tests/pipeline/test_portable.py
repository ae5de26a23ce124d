"""The pipeline on Beam's portability layer (the path Flink, Spark and Dataflow Runner v2 take).

PortableRunner with an embedded job server and LOOPBACK workers runs every Beam
component through the Fn API in this machine's processes, so it needs no
download and no container. The run must push a model that loads and predicts.
"""

from __future__ import annotations

import glob
from pathlib import Path

import pytest
from pipeline_harness import loose_taxi_project, tfxp_run, write_csv
from taxi_data import OUTPUT, TIP_FRACTION, raw_feature_spec, read_csv_rows, to_example

pytestmark = pytest.mark.slow

PORTABLE = (
    "--beam-arg=--runner=PortableRunner",
    "--beam-arg=--job_endpoint=embed",
    "--beam-arg=--environment_type=LOOPBACK",
)
BEAM_COMPONENTS = ("CsvExampleGen", "StatisticsGen", "Transform", "Evaluator")


@pytest.fixture(scope="module")
def portable_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("portable")
    rows = read_csv_rows(limit=3000)
    data = write_csv(work / "data" / "taxi.csv", rows)
    # The runner is under test, not the gates (a few steps land either side of taxi's AUC >= 0.75 by chance).
    project = ("--project", loose_taxi_project(work / "taxi"))
    code, summary, stderr = tfxp_run(data, work / "out", *PORTABLE, *project, name="taxi", train_steps=60)
    return code, summary, rows, work / "out"


def test_portable_runner_pushes_a_model_that_predicts(portable_run):
    import tensorflow as tf

    code, summary, rows, _ = portable_run
    assert code == 0, summary.get("error")
    assert summary["result"] == "pushed" and summary["blessed"] is True
    finished = {c["id"] for c in summary["components"] if c["status"] == "finished"}
    assert set(BEAM_COMPONENTS) <= finished
    loaded = tf.saved_model.load(summary["pushed_path"])
    examples = tf.constant([to_example(r, raw_feature_spec()) for r in rows[:50]])
    probability = loaded.signatures["serving_default"](examples=examples)[OUTPUT].numpy()
    assert probability.shape == (50,) and ((probability >= 0) & (probability <= 1)).all()
    labels = [bool(r["fare"]) and float(r["tips"] or 0) > TIP_FRACTION * float(r["fare"]) for r in rows[:50]]
    assert len(set(labels)) == 2  # the check below means something
    assert (
        probability[[i for i, y in enumerate(labels) if y]].mean()
        > probability[[i for i, y in enumerate(labels) if not y]].mean()
    )


def test_the_beam_work_ran_as_portable_jobs(portable_run):
    _, _, _, out = portable_run
    (log,) = glob.glob(str(Path(out) / "logs" / "*.log"))
    text = Path(log).read_text()
    # One Fn API job per Beam pipeline: at least one per Beam component.
    assert text.count("portable_runner: Job state changed to DONE") >= len(BEAM_COMPONENTS)
