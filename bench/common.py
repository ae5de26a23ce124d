"""Helpers shared by the benchmark scripts (pipeline, scale, serving, mobile).

Running a command in a subprocess while sampling the peak RSS of its whole
process tree, reading the JSON a tool prints last, machine information, median,
timing repeated calls.

Imported as `bench.common` by the benchmarks, which run as modules of the `bench` package
(`python -m bench.<name>` from the repository root).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import threading
import time
from importlib import metadata
from pathlib import Path

import psutil

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent
RSS_POLL_SECONDS = 0.2


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    # Both TFX's example and this pipeline need legacy Keras (TFX 1.16 + TF 2.16);
    # silence TF's C++ logs so the log files stay readable.
    env["TF_USE_LEGACY_KERAS"] = "1"
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return env


def tree_rss(proc: psutil.Process) -> int:
    """RSS bytes of a process and all its descendants; vanished ones count 0."""
    try:
        members = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for member in members:
        try:
            total += member.memory_info().rss
        except psutil.Error:
            pass  # exited between listing and sampling
    return total


def watch_peak_rss(pid: int, stop: threading.Event, peak: list[int]) -> None:
    """Samples in a thread so the main thread's wait() keeps wall time exact."""
    try:
        proc = psutil.Process(pid)
    except psutil.Error:
        return
    while not stop.is_set():
        peak[0] = max(peak[0], tree_rss(proc))
        stop.wait(RSS_POLL_SECONDS)


def execute(
    command: list[str], stdout_log: Path, stderr_log: Path, cwd: Path = PROJECT_ROOT
) -> tuple[int, float, float]:
    """Runs command to completion: (exit code, wall seconds, peak tree RSS MB).

    Peak RSS is of the process plus all descendants (Beam's multi-processing
    workers are children), sampled every RSS_POLL_SECONDS; pages shared between
    processes count once per process, so it is an upper bound.
    """
    peak = [0]
    stop = threading.Event()
    with open(stdout_log, "wb") as out, open(stderr_log, "wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(command, stdout=out, stderr=err, env=child_env(), cwd=cwd)
        watcher = threading.Thread(target=watch_peak_rss, args=(proc.pid, stop, peak), daemon=True)
        watcher.start()
        code = proc.wait()
        wall = time.perf_counter() - started
    stop.set()
    watcher.join()
    return code, wall, peak[0] / 2**20


def last_json_object(text: str) -> dict | None:
    """The last top-level JSON object in text: libraries may print before it."""
    decoder = json.JSONDecoder()
    starts = [i for i, ch in enumerate(text) if ch == "{" and (i == 0 or text[i - 1] == "\n")]
    for start in reversed(starts):
        try:
            value, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    return None


def last_line_json(text: str) -> dict | None:
    """The last non-empty line parsed as a JSON object, None if it is not one."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return None
    try:
        value = json.loads(lines[-1])
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def time_calls(call, iterations: int, warmup: int = 20) -> list[float]:
    """Seconds of each of `iterations` calls of `call()`, after `warmup` untimed ones."""
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(iterations):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return samples


def median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def machine_info() -> dict:
    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "cpu_count_physical": psutil.cpu_count(logical=False),
        "total_ram_mb": round(psutil.virtual_memory().total / 2**20),
        # Other work on the machine skews wall times; keep the evidence.
        "load_average_at_start": list(os.getloadavg()),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "tfx": version("tfx"),
        "tensorflow": version("tensorflow"),
    }


def write_json(path: Path, value: dict) -> None:
    """Writes strict JSON atomically: never leaves a half-written results file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(value, indent=2, allow_nan=False) + "\n")
    tmp.replace(path)
