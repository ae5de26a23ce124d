"""Running `tfxp run` in a subprocess, as users do (TFX's Beam executors parse sys.argv, so not in pytest's process)."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def write_csv(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def tfxp_run(data: Path, output: Path, *extra: str, name: str, train_steps: int) -> tuple[int, dict, str]:
    """(exit code, --json summary, stderr) of one `tfxp run`."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TF_USE_LEGACY_KERAS="1")
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "run", "--data", str(data), "--output", str(output),
         "--name", name, "--train-steps", str(train_steps), "--json", *extra],
        capture_output=True, text=True, env=env, timeout=900,
    )
    try:
        summary = json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"no JSON summary (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr[-3000:]}")
    return proc.returncode, summary, proc.stderr
