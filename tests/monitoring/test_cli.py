"""`tfxp monitor` as users run it (a subprocess): the table and its exit codes, several models from a
--model-config-file, --every rewriting the textfile, usage errors. The logs are hand-made
(tests/monitoring_data.py); tests/monitoring/test_e2e.py runs the command on a real server's logs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import click
import pytest
from monitoring_data import MODEL, log_record, write_log_file

from tfxp.cli.monitoring import parse_duration

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_USE_LEGACY_KERAS": "1"}


def _tfxp(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tfxp.cli", "monitor", *args], env=ENV, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def logs(tmp_path_factory, rows):
    """A clean hour, then an hour with payment_type all "Cash"."""
    folder = tmp_path_factory.mktemp("logs")
    write_log_file(folder, 0, [log_record(r) for r in rows[5000:5600]])
    write_log_file(folder, 1, [log_record({**r, "payment_type": "Cash"}) for r in rows[5600:6200]], 1)
    return folder


def test_the_table_names_what_is_over_and_exits_3(logs, base_path):
    done = _tfxp("--logs", str(logs), "--model-base-path", str(base_path))
    assert done.returncode == 3, done.stderr[-2000:]
    over = [line.split() for line in done.stdout.splitlines() if line.rstrip().endswith("OVER")]
    assert {(cells[3], cells[4], cells[5]) for cells in over} == {
        ("payment_type", "skew", "l_infinity"),
        ("payment_type", "drift", "l_infinity"),
    }
    assert "skew or drift over a threshold: payment_type (drift), payment_type (skew)" in done.stdout


def test_the_clean_hour_alone_exits_0(logs, base_path, tmp_path):
    shutil.copy(sorted(logs.iterdir())[0], tmp_path)
    done = _tfxp("--logs", str(tmp_path), "--model-base-path", str(base_path))
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    assert "nothing over a threshold in 1 window(s)" in done.stdout


def test_several_models_from_a_model_config_file(logs, base_path, tmp_path):
    """Records of a model the config doesn't name are counted as skipped; the named one is judged."""
    config = tmp_path / "models.config"
    config.write_text(
        f'model_config_list {{ config {{ name: "{MODEL}" base_path: "{base_path}" model_platform: "tensorflow" }}\n'
        f'  config {{ name: "other" base_path: "{tmp_path / "other"}" model_platform: "tensorflow" }} }}\n'
    )
    done = _tfxp("--logs", str(logs), "--model-config-file", str(config), "--json")
    assert done.returncode == 3
    assert '"model": "taxi"' in done.stdout and '"other"' not in done.stdout


def test_every_rewrites_the_textfile_until_stopped(logs, base_path, tmp_path):
    from prometheus_client.parser import text_string_to_metric_families

    prom = tmp_path / "tfxp_monitor.prom"
    args = ["--logs", str(logs), "--model-base-path", str(base_path), "--textfile", str(prom), "--every", "1s"]
    proc = subprocess.Popen([sys.executable, "-m", "tfxp.cli", "monitor", *args], env=ENV, stdout=subprocess.DEVNULL)
    try:
        seen: set[float] = set()
        deadline = time.time() + 90
        while len(seen) < 2 and time.time() < deadline:
            if prom.exists():
                for family in text_string_to_metric_families(prom.read_text()):
                    if family.name == "tfxp_monitor_last_success_timestamp_seconds":
                        seen.add(family.samples[0].value)
            time.sleep(0.2)
        assert len(seen) >= 2, "the textfile was not rewritten by a second pass"
        assert proc.poll() is None, "--every stopped after a pass that found skew"
    finally:
        proc.terminate()
        code = proc.wait(30)
    assert code == 3, "SIGTERM ends --every with the last pass's exit code (skew found)"


@pytest.mark.parametrize(
    "args, words",
    [
        ([], "exactly one of --model-base-path and --model-config-file"),
        (["--model-base-path", "x", "--model-config-file", __file__], "exactly one of"),
        (["--model-base-path", "x", "--window", "0s"], "positive duration"),
        (["--model-base-path", "x", "--window", "an hour"], "positive duration"),
        (["--model-base-path", "x", "--min-rows", "0"], "--min-rows"),
        (["--model-base-path", "x", "--textfile", "metrics.txt"], "only reads files ending in .prom"),
        (["--model-base-path", "x", "--html", "/no/such/folder/r.html"], "no folder /no/such/folder"),
        (["--model-base-path", "no-such-base"], "no such folder"),
    ],
)
def test_usage_errors_exit_2_and_name_the_problem(tmp_path, args, words):
    done = _tfxp("--logs", str(tmp_path), *args)
    assert done.returncode == 2 and words in done.stderr, done.stderr


def test_a_version_folder_given_as_the_base_path_is_named(logs, base_path):
    done = _tfxp("--logs", str(logs), "--model-base-path", str(base_path / "1"), "--model-name", MODEL)
    assert done.returncode == 2 and "is a version folder" in done.stderr and str(base_path) in done.stderr


def test_durations():
    assert [parse_duration(t) for t in ("90", "90s", "15m", "1h", "1.5d")] == [90, 90, 900, 3600, 129600]
    for bad in ("", "0", "-1h", "1w", "h"):
        with pytest.raises(click.BadParameter):
            parse_duration(bad)
