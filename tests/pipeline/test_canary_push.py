"""`tfxp run --push-mode canary --model-config-file F` (tfxp.pipeline.canary_push): the served version is pinned
before the run and the new one is put beside it, not served in its place. Real pipeline runs, real config files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import text_format
from pipeline_harness import loose_taxi_project, tfxp_run, write_csv
from taxi_data import read_csv_rows
from tensorflow_serving.config import model_server_config_pb2

from tfxp.pipeline.canary_push import CanaryPushError, prepare


def _config(path: Path, base: Path, policy: str = "") -> Path:
    path.write_text(
        f'model_config_list {{ config {{ name: "taxi" base_path: "{base}" model_platform: "tensorflow" {policy} }} }}\n'
    )
    return path


def _model(path: Path):
    config = text_format.Parse(path.read_text(), model_server_config_pb2.ModelServerConfig())
    return config.model_config_list.config[0]


def test_prepare_refuses_a_config_that_cant_take_a_canary_and_leaves_it_alone(tmp_path):
    serving = tmp_path / "serving" / "taxi"
    serving.mkdir(parents=True)
    elsewhere = _config(tmp_path / "elsewhere.config", tmp_path / "other")
    empty = _config(tmp_path / "empty.config", serving)
    broken = tmp_path / "broken.config"
    broken.write_text("model_config_list { config { name: ")
    for config, words in (
        (elsewhere, "this run pushes to"),
        (empty, "serves no version yet"),
        (broken, "--model-config-file:"),
    ):
        before = config.read_text()
        with pytest.raises(CanaryPushError, match=words):
            prepare(str(config), "taxi", str(serving))
        assert config.read_text() == before
    (serving / "3").mkdir()
    (serving / "4").mkdir()
    assert prepare(str(empty), "taxi", str(serving)) == {"pinned": True, "labels": {"stable": 4}, "versions": [4]}
    model = _model(empty)
    assert list(model.model_version_policy.specific.versions) == [4] and dict(model.version_labels) == {"stable": 4}
    assert prepare(str(empty), "taxi", str(serving))["pinned"] is False  # pinned already: no write


def test_a_canary_push_keeps_stable_and_puts_the_new_version_beside_it(tmp_path):
    project = loose_taxi_project(tmp_path / "taxi")
    data = write_csv(tmp_path / "data" / "taxi.csv", read_csv_rows(limit=2000))
    out = tmp_path / "out"
    code, first, stderr = tfxp_run(data, out, "--project", project, name="taxi", train_steps=20)
    assert code == 0, stderr[-3000:]
    assert first["release"] is None
    serving = out / "serving" / "taxi"
    config = _config(tmp_path / "models.config", serving)  # latest policy: a new folder would be served at once

    canary = ("--project", project, "--push-mode", "canary", "--model-config-file", str(config))
    code, second, stderr = tfxp_run(data, out, *canary, name="taxi", train_steps=30)
    assert code == 0, stderr[-3000:]
    stable, new = int(first["pushed_version"]), int(second["pushed_version"])
    assert new > stable
    release = second["release"]
    assert release["pinned"] is True and release["version"] == new and release["done"] is False
    assert release["next"].startswith(f"tfxp release canary {new} --model-config-file {config}")
    # Step 1: both served, labels unchanged; the label waits for the server to load the new version.
    model = _model(config)
    assert sorted(model.model_version_policy.specific.versions) == [stable, new]
    assert dict(model.version_labels) == {"stable": stable}
    log = [json.loads(line) for line in Path(f"{config}.release.log").read_text().splitlines()]
    assert [entry["command"] for entry in log] == ["pin", f"canary {new}"]

    # The command the run printed completes it (the config now serves the new version).
    done = subprocess.run(
        [sys.executable, "-m", "tfxp.cli", "release", "canary", str(new), "--model-config-file", str(config)]
        + ["--model", "taxi", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert dict(_model(config).version_labels) == {"stable": stable, "canary": new}

    # A canary run that pushes nothing new leaves the labels alone.
    code, third, stderr = tfxp_run(data, out, *canary, name="taxi", train_steps=30)
    assert code == 0, stderr[-3000:]
    assert third["release"] == {"mode": "canary", "pinned": False, "version": None}
    assert dict(_model(config).version_labels) == {"stable": stable, "canary": new}
