"""Crash recovery of the push path: real `tfxp run`s killed with SIGKILL at fail points, then re-run.

One output directory, in order: killed while Transform runs (SIGKILL from the
test), then before the serving rename, after it, before the mobile rename, after
it (pipeline.failpoints); then a plain run
completes with the one serving version the crashed runs published, and a
re-run is fully cached. No run may leave a duplicate version, a permanent
error or, once a later push has run, a staging directory.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from pipeline_harness import start_tfxp_run, tfxp_run, write_csv
from taxi_data import read_csv_rows

from tfxp.pipeline.publish import LATEST_FILE, PUSH_RECORD, STAGING_PREFIX, read_latest, source_digest

pytestmark = pytest.mark.slow

NAME = "taxi"
ROWS = 3000
TRAIN_STEPS = 120


@dataclass
class Killed:
    returncode: int
    serving: list[str]  # entries of <out>/serving/taxi after the run
    mobile: list[str]
    why: str  # the run's stderr and log tail, for failure messages


def _entries(base: Path) -> list[str]:
    return sorted(os.listdir(base)) if base.exists() else []


def _versions(entries: list[str]) -> list[str]:
    return [e for e in entries if e.isdigit()]


def _staging(entries: list[str]) -> list[str]:
    return [e for e in entries if e.startswith(STAGING_PREFIX)]


def _log_tail(out: Path) -> str:
    logs = sorted((out / "logs").glob("*.log"), key=os.path.getmtime)
    return logs[-1].read_text(errors="replace")[-3000:] if logs else "(no log)"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("crash")
    write_csv(root / "data" / "taxi.csv", read_csv_rows(limit=ROWS))
    return root


def _killed_run(workdir: Path, failpoint: str) -> Killed:
    out = workdir / "out"
    # A killed run can't remove its temporary directories (MobilePusher converts in
    # one): keep them in pytest's folder, not /tmp.
    tmp = workdir / "tmp"
    tmp.mkdir(exist_ok=True)
    proc = start_tfxp_run(
        workdir / "data" / "taxi.csv",
        out,
        name=NAME,
        train_steps=TRAIN_STEPS,
        env={"TFXP_FAILPOINT": failpoint, "TMPDIR": str(tmp)},
    )
    try:
        _, stderr = proc.communicate(timeout=900)
    except BaseException:
        proc.kill()
        proc.communicate()
        raise
    return Killed(
        proc.returncode,
        _entries(out / "serving" / NAME),
        _entries(out / "mobile" / NAME),
        f"{stderr[-2000:]}\n--- log ---\n{_log_tail(out)}",
    )


@pytest.fixture(scope="module")
def mid_transform(workdir) -> Killed:
    out = workdir / "out"
    (workdir / "tmp").mkdir(exist_ok=True)
    proc = start_tfxp_run(
        workdir / "data" / "taxi.csv", out, name=NAME, train_steps=TRAIN_STEPS, env={"TMPDIR": str(workdir / "tmp")}
    )
    seen = []
    try:
        for line in proc.stderr:  # progress lines: "  Transform            started"
            seen.append(line)
            if line.split()[:2] == ["Transform", "started"]:
                proc.kill()
                break
        proc.communicate(timeout=60)
    finally:
        proc.kill()
    return Killed(proc.returncode, _entries(out / "serving" / NAME), _entries(out / "mobile" / NAME), "".join(seen))


@pytest.fixture(scope="module")
def before_serving_rename(workdir, mid_transform) -> Killed:
    return _killed_run(workdir, "publish:staged")


@pytest.fixture(scope="module")
def after_serving_rename(workdir, before_serving_rename) -> Killed:
    return _killed_run(workdir, "publish:renamed")


@pytest.fixture(scope="module")
def before_mobile_rename(workdir, after_serving_rename) -> Killed:
    # The serving version exists now, so the Pusher copies nothing: the mobile push stages first.
    return _killed_run(workdir, "publish:staged")


@pytest.fixture(scope="module")
def after_mobile_rename(workdir, before_mobile_rename) -> Killed:
    return _killed_run(workdir, "mobile_pusher:published")


@pytest.fixture(scope="module")
def recovered(workdir, after_mobile_rename) -> tuple[int, dict, str]:
    return tfxp_run(workdir / "data" / "taxi.csv", workdir / "out", name=NAME, train_steps=TRAIN_STEPS)


@pytest.fixture(scope="module")
def cached(workdir, recovered) -> tuple[int, dict, str]:
    return tfxp_run(workdir / "data" / "taxi.csv", workdir / "out", name=NAME, train_steps=TRAIN_STEPS)


def test_killed_inside_a_component_pushes_nothing(mid_transform):
    run = mid_transform
    assert run.returncode == -9, run.why
    assert run.serving == [] and run.mobile == []


def test_killed_before_the_serving_rename_leaves_only_a_staging_dir(before_serving_rename):
    run = before_serving_rename
    assert run.returncode == -9, run.why
    assert len(_staging(run.serving)) == 1 and _versions(run.serving) == [], run.serving
    assert run.mobile == []


def test_killed_after_the_serving_rename_leaves_one_version_and_no_staging(after_serving_rename):
    run = after_serving_rename
    assert run.returncode == -9, run.why
    assert len(_versions(run.serving)) == 1 and _staging(run.serving) == [], run.serving
    assert run.mobile == []


def test_killed_before_the_mobile_rename_keeps_the_serving_version(before_mobile_rename, after_serving_rename):
    run = before_mobile_rename
    assert run.returncode == -9, run.why
    assert run.serving == after_serving_rename.serving  # not pushed again
    assert len(_staging(run.mobile)) == 1 and _versions(run.mobile) == [], run.mobile


def test_killed_after_the_mobile_rename_has_the_same_version_number(after_mobile_rename, after_serving_rename):
    run = after_mobile_rename
    assert run.returncode == -9, run.why
    assert run.serving == after_serving_rename.serving
    # One version, same number, stale staging gone; killed before latest.json pointed at it.
    assert run.mobile == after_serving_rename.serving


def test_rerun_after_the_crashes_completes_with_the_same_version(recovered, after_serving_rename, workdir):
    import tensorflow as tf

    from tfxp.pipeline.mlmd import MetadataReader

    code, summary, stderr = recovered
    out = workdir / "out"
    assert code == 0, f"{summary.get('error')}\n{stderr[-2000:]}\n{_log_tail(out)}"
    [version] = after_serving_rename.serving
    assert summary["result"] == "pushed" and summary["pushed_version"] == version
    # The crashed run's push is this model's push: reused, and it is the version TF Serving serves.
    assert summary["pushed_earlier"] is True and summary["served_version"] == version
    assert summary["pushed_path"] == str(out / "serving" / NAME / version)
    assert summary["mobile_pushed"] is True and summary["mobile_path"] == str(out / "mobile" / NAME / version)
    assert _entries(out / "serving" / NAME) == [version]
    # The re-run points latest.json at the version the killed run published (issue 18).
    assert _entries(out / "mobile" / NAME) == sorted([version, LATEST_FILE])
    latest = read_latest(str(out / "mobile" / NAME))
    assert latest["version"] == int(version)
    # Every file the spec names, the web variant included, is in the pointer with its sha256.
    with open(out / "mobile" / NAME / version / "model_spec.json") as f:
        spec = json.load(f)
    named = {"model_spec.json", *(v["file"] for v in spec["variants"].values()), spec["web"]["file"]}
    assert "model_web.tflite" in named and set(latest["files"]) == named
    assert not [
        d
        for base in ("serving", "mobile")
        for d, _, _ in os.walk(out / base)
        if os.path.basename(d).startswith(STAGING_PREFIX)
    ]

    model_uri = MetadataReader(out / "metadata" / NAME / "metadata.db").latest(NAME, "Trainer").output("model").uri
    for path in (summary["pushed_path"], summary["mobile_path"]):
        with open(os.path.join(path, PUSH_RECORD)) as f:
            assert json.load(f)["source_id"] == source_digest(model_uri)
    assert "serving_default" in tf.saved_model.load(summary["pushed_path"]).signatures


def test_a_further_rerun_is_fully_cached(cached, recovered, workdir):
    code, summary, _ = cached
    assert code == 0, summary.get("error")
    assert summary["fully_cached"] is True
    assert summary["pushed_version"] == recovered[1]["pushed_version"]
    assert _entries(workdir / "out" / "serving" / NAME) == [summary["pushed_version"]]
    assert _entries(workdir / "out" / "mobile" / NAME) == sorted([summary["pushed_version"], LATEST_FILE])
