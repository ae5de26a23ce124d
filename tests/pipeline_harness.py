"""Running `tfxp run` in a subprocess, as users do (TFX's Beam executors parse sys.argv, so not in pytest's process)."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from project_data import TAXI_DIR


def loose_taxi_project(folder, extra: str = "") -> str:
    """A copy of the taxi project in `folder` whose gates pass any trained model: bounds 0, max_change 0.5.

    20 training steps on 2,000 rows land on either side of the taxi gates (AUC >= 0.75, a change <= 0.01) by
    chance (CI: a first run of test_drift.py was not blessed), and the tests using this are about what a run
    records, not about gating. `extra` is appended to project.yaml. Returns the folder, for `--project`."""
    project = Path(folder)
    project.mkdir(parents=True, exist_ok=True)
    shutil.copy(TAXI_DIR / "schema.pbtxt", project / "schema.pbtxt")
    spec = (TAXI_DIR / "project.yaml").read_text()
    for old, new in (("bound: 0.75", "bound: 0.0"), ("bound: 0.70", "bound: 0.0")):
        assert old in spec, old
        spec = spec.replace(old, new)
    spec = re.sub(r"max_change: [0-9.]+", "max_change: 0.5", spec)
    (project / "project.yaml").write_text(spec + extra)
    return str(project)


def write_csv(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def start_tfxp_run(
    data: Path, output: Path, *extra: str, name: str, train_steps: int, env: dict | None = None
) -> subprocess.Popen:
    """`tfxp run --json` started in a subprocess (text stdout and stderr piped); `env` adds variables."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_USE_LEGACY_KERAS": "1", **(env or {})}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tfxp.pipeline.cli",
            "run",
            "--data",
            str(data),
            "--output",
            str(output),
            "--name",
            name,
            "--train-steps",
            str(train_steps),
            "--json",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full_env,
    )


def tfxp_run(
    data: Path, output: Path, *extra: str, name: str, train_steps: int, env: dict | None = None
) -> tuple[int, dict, str]:
    """(exit code, --json summary, stderr) of one `tfxp run`; `env` adds environment variables."""
    proc = start_tfxp_run(data, output, *extra, name=name, train_steps=train_steps, env=env)
    try:
        stdout, stderr = proc.communicate(timeout=900)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    try:
        summary = json.loads(stdout)
    except json.JSONDecodeError:
        pytest.fail(f"no JSON summary (exit {proc.returncode}):\n{stdout}\n{stderr[-3000:]}")
    return proc.returncode, summary, stderr


def init_project(folder: Path) -> Path:
    """`tfxp init` on a small CSV in `folder`: the project in folder/shapes, its data beside it."""
    import random

    rng = random.Random(3)
    rows = [
        {"width": f"{rng.uniform(0, 9):.2f}", "colour": rng.choice(["red", "blue", "green"]), "kind": kind}
        for kind in ("disc", "ring", "star")
        for _ in range(40)
    ]
    data = folder / "shapes.csv"
    folder.mkdir(parents=True, exist_ok=True)
    with open(data, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    from click.testing import CliRunner

    from tfxp.cli import main

    result = CliRunner().invoke(main, ["init", "--data", str(data), "--label", "kind", "--dir", str(folder / "shapes")])
    assert result.exit_code == 0, result.output
    return folder / "shapes"
