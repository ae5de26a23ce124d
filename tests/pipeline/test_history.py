"""`tfxp history` and `tfxp lineage` (issue 21) on real runs: the two pushes of tests/pipeline/conftest.py, then a
run on the first data copied back with `cp -p` (same content: no new version), then one the data gate refuses."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys

import pytest
from pipeline_harness import tfxp_run

pytestmark = pytest.mark.slow


def _tfxp(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_USE_LEGACY_KERAS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "tfxp.cli", *args], capture_output=True, text=True, env=env, timeout=300
    )


@pytest.fixture(scope="module")
def runs(two_pushes):
    """(work, [summaries of the 4 runs], [data files]): pushes 1 and 2; 3: data 1 touched, then replaced by a
    `cp -p` (shutil.copy2) copy of itself; 4: 30 fares NaN (the data gate refuses it)."""
    work, pushed = two_pushes
    (first, data1), (second, data2) = pushed
    backup = work / "backup" / "taxi.csv"
    backup.parent.mkdir(exist_ok=True)
    shutil.copy2(data1, backup)
    os.utime(data1)  # touched, then replaced by a `cp -p` copy of itself: the same content
    shutil.copy2(backup, data1)
    code, third, stderr = tfxp_run(data1, work / "out", "--project", str(work / "taxi"), name="taxi", train_steps=20)
    assert code in (0, 4), stderr[-3000:]
    rows = list(csv.DictReader(open(data1)))
    for row in rows[:30]:
        row["fare"] = "NaN"
    bad = work / "bad" / "taxi.csv"
    bad.parent.mkdir(exist_ok=True)
    with open(bad, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    code, fourth, stderr = tfxp_run(bad, work / "out", "--project", str(work / "taxi"), name="taxi", train_steps=20)
    assert code == 3, stderr[-3000:]
    return work, [first, second, third, fourth], [data1, data2, data1, bad]


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_history_lists_two_versions_newest_first_with_their_data_and_baseline(runs):
    work, summaries, data = runs
    done = _tfxp("history", "--output", str(work / "out"), "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout)
    second, first = found["versions"]
    assert [first["version"], second["version"]] == [int(s["pushed_version"]) for s in summaries[:2]]
    assert first["data"][0]["sha256"] == _sha(data[0]) and second["data"][0]["sha256"] == _sha(data[1])
    assert first["data"][0]["rows"] == second["data"][0]["rows"] == 2000
    assert second["baseline_version"] == first["version"] and first["baseline_version"] is None
    assert (second["served"], first["served"]) == (True, False)
    assert set(second["metrics"]) == {"auc", "binary_accuracy"}
    assert second["deltas"]["auc"] == pytest.approx(
        second["metrics"]["auc"]
        - json.loads((work / "out" / "serving" / "taxi" / str(second["version"]) / "model_card.json").read_text())[
            "baseline"
        ]["metrics"]["auc"]
    )
    assert first["pushed_at"] and first["run"] and first["model_card"].endswith("model_card.html")


def test_history_lists_every_run_with_why_it_pushed_nothing(runs):
    """Newest first: the refused run (anomalies, naming fare), the copy (the first data's sha256: re-blessed as the
    version pushed before, or not blessed against the second; never a new version), then the two pushes."""
    work, summaries, data = runs
    found = json.loads(_tfxp("history", "--output", str(work / "out"), "--json").stdout)
    refused, copied, second, first = found["runs"]
    assert refused["status"] == "anomalies" and "fare" in refused["reason"] and refused["version"] is None
    assert refused["data"][0]["sha256"] == _sha(data[3])
    assert copied["data"][0]["sha256"] == _sha(data[0])
    assert copied["status"] in ("pushed_earlier", "not_blessed"), copied
    if copied["status"] == "pushed_earlier":
        assert copied["version"] == first["version"]
    assert (second["status"], first["status"]) == ("pushed", "pushed")
    assert [second["version"], first["version"]] == [int(s["pushed_version"]) for s in summaries[1::-1]]
    text = _tfxp("history", "--output", str(work / "out")).stdout
    assert "runs that pushed nothing" in text and "anomalies" in text and "fare" in text
    assert f"{second['version']} *" in text


def test_lineage_walks_back_to_the_input_files(runs):
    work, summaries, data = runs
    version = summaries[1]["pushed_version"]
    done = _tfxp("lineage", version, "--output", str(work / "out"), "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    graph = json.loads(done.stdout)
    assert graph["version"] == version
    assert graph["input_files"] == [
        {"path": "taxi.csv", "sha256": _sha(data[1]), "bytes": data[1].stat().st_size, "rows": 2000}
    ]
    nodes = {e["node"] for e in graph["executions"]}
    assert {"CsvExampleGen", "StatisticsGen", "ImportSchemaGen", "Transform", "Trainer", "Evaluator", "Pusher"} <= nodes
    artifacts = {a["id"]: a for a in graph["artifacts"]}
    baseline = [a for a in artifacts.values() if a.get("pushed_version") is not None]
    assert [a["pushed_version"] for a in baseline] == [summaries[0]["pushed_version"]]
    text = _tfxp("lineage", version, "--output", str(work / "out")).stdout
    assert f"sha256 {_sha(data[1])}" in text and "<- CsvExampleGen" in text and "<- Pusher" in text


def test_lineage_of_a_version_re_blessed_from_cache_names_the_run_that_made_it(runs):
    work, summaries, _ = runs
    graph = json.loads(_tfxp("lineage", summaries[0]["pushed_version"], "--output", str(work / "out"), "--json").stdout)
    pusher = next(e for e in graph["executions"] if e["node"] == "Pusher")
    assert pusher["state"] == "COMPLETE"  # the execution that made it, not a later cached or re-executed reuse
    found = json.loads(_tfxp("history", "--output", str(work / "out"), "--json").stdout)
    assert graph["run"] == found["runs"][-1]["run"]


def test_unknown_version_and_missing_metadata_are_usage_errors(runs, tmp_path):
    work, _, _ = runs
    done = _tfxp("lineage", "123", "--output", str(work / "out"))
    assert done.returncode == 2 and "no version 123 was pushed; versions pushed:" in done.stderr
    done = _tfxp("history", "--output", str(tmp_path))
    assert done.returncode == 2 and "no pipeline metadata" in done.stderr


def test_a_version_without_a_card_is_listed_with_what_is_known(runs, tmp_path):
    """A push older than cards: its version, push time and (from ML Metadata) data; metrics null."""
    work, summaries, data = runs
    out = tmp_path / "out"
    shutil.copytree(work / "out" / "metadata", out / "metadata")
    shutil.copytree(work / "out" / "serving", out / "serving")
    version = summaries[0]["pushed_version"]
    (out / "serving" / "taxi" / version / "model_card.json").unlink()
    found = json.loads(_tfxp("history", "--output", str(out), "--json").stdout)
    old = next(v for v in found["versions"] if str(v["version"]) == version)
    assert old["metrics"] is None and old["model_card"] is None and old["pushed_at"]
    assert old["data"][0]["sha256"] == _sha(data[0])  # from ML Metadata
