"""Runs shared by the model card, history and lineage tests: two real pushes of a copy of the taxi project."""

from __future__ import annotations

import json
import random

import pytest
from pipeline_harness import loose_taxi_project, tfxp_run, write_csv
from taxi_data import read_csv_rows

INTENDED_USE = "Ranking trips <by> tip likelihood for a dispatch dashboard"
LIMITATIONS = "Trained on 2013 Chicago trips & only those; not for pricing."


@pytest.fixture(scope="session")
def two_pushes(tmp_path_factory):
    """(work folder, [(--json summary, data file)] of two `tfxp run`s of work/taxi (the taxi project with
    intended_use and limitations) into work/out, each on 2,000 different rows, both pushed."""
    work = tmp_path_factory.mktemp("pushes")
    extra = f"intended_use: {json.dumps(INTENDED_USE)}\nlimitations: {json.dumps(LIMITATIONS)}\n"
    project = loose_taxi_project(work / "taxi", extra)
    # Two random halves: taxi.csv comes in blocks, and consecutive slices differ enough for DataDriftGate to stop
    # the second run (tests/pipeline/test_drift.py).
    rows = read_csv_rows(limit=4000)
    random.Random(21).shuffle(rows)
    out = []
    for i, part in enumerate((rows[:2000], rows[2000:])):
        data = write_csv(work / f"data{i}" / "taxi.csv", part)
        code, summary, stderr = tfxp_run(data, work / "out", "--project", str(project), name="taxi", train_steps=20)
        assert code == 0, stderr[-3000:]
        out.append((summary, data))
    return work, out
