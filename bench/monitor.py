"""Benchmark: `tfxp monitor`'s speed and memory over 100,000 logged requests, and how its default thresholds
were chosen (clean replays never cross them, shifted ones do).

In one invocation, for the newest version under output/serving/<name>/ and its eval split:
  * calibration: windows of 200, 500 and 1,000 eval rows drawn at random (with replacement, --draws
    times each) are compared with the version's training statistics (skew) and with another clean
    window (drift); then the same windows with one feature shifted at a time (each categorical
    feature's two most frequent values swapped; each numeric feature scaled by 1.5 and by 3). Per
    statistic: the largest clean value, and the smallest shifted one (what the default must sit between);
  * speed: --requests one-row Predict requests (serving_default tf.Examples with their answers) written as
    PredictionLog files of 10,000 spread over a day (a window per file), then `tfxp monitor --json`
    timed in a subprocess with its peak RSS (process tree); the same at a tenth of the requests, to
    show memory does not grow with traffic.
Writes bench/results/monitor.json and prints a table.
Run: make bench-monitor  (= python -m bench.monitor [--output output --name taxi]) after `make run`.
"""

from __future__ import annotations

import argparse
import glob
import os
import random
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parent.parent
from bench.common import execute, last_json_object, machine_info, write_json  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "monitor.json"
WINDOW_ROWS = (200, 500, 1000)
SCALES = (1.5, 3.0)


def _eval_rows(output: Path, name: str) -> list[dict]:
    import tensorflow as tf

    from tfxp.monitoring.logs import _example_row

    pattern = str(output / "pipelines" / name / "CsvExampleGen" / "examples" / "*" / "Split-eval" / "*")
    files = sorted(glob.glob(pattern))
    if not files:
        sys.exit(f"no eval split under {pattern}: run `make run` (or tfxp run --output {output}) first")
    from tfxp.rows import example_class

    cls = example_class()
    return [_example_row(cls.FromString(r.numpy())) for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]


def _values(rows: list[dict], version_dir: str) -> dict[tuple[str, str], float]:
    """(feature, kind) -> statistic of one window of `rows` after a first clean window (for drift)."""
    from tfxp.monitoring.logs import LoggedRequest
    from tfxp.monitoring.monitor import Monitor

    pass_ = Monitor({"m": os.path.dirname(version_dir)}, 3600, min_rows=1)
    version = int(os.path.basename(version_dir))
    for hour, window in enumerate(rows):
        for row in window:
            pass_.add(LoggedRequest("m", version, "serving_default", [row]), hour * 3600.0)
    report = pass_.finish()
    return {(f.feature, f.kind): f.value for f in report.findings if f.window_start.endswith("01:00:00Z")}


def calibrate(version_dir: str, rows: list[dict], draws: int, seed: int = 7) -> dict:
    from tfxp.monitoring import reference

    ref = reference.load(version_dir)
    rng = random.Random(seed)
    kinds = {name: r.kind for name, r in ref.features.items()}
    result: dict = {"clean": {}, "shifted": {}}
    for n in WINDOW_ROWS:
        clean: dict = defaultdict(list)
        shifted: dict = defaultdict(list)
        per_shift: dict = defaultdict(list)
        for _ in range(draws):
            first, second = rng.choices(rows, k=n), rng.choices(rows, k=n)
            for (feature, kind), value in _values([first, second], version_dir).items():
                clean[f"{kinds.get(feature, 'prediction')} {kind}"].append(value)
            for feature, shift, variant in _shifts(ref, rows):
                moved = [variant(row) for row in second]
                values = _values([first, moved], version_dir)
                for kind in ("skew", "drift"):
                    if (feature, kind) in values:
                        shifted[f"{kinds[feature]} {kind}"].append(values[(feature, kind)])
                        per_shift[f"{feature} {shift} {kind}"].append(values[(feature, kind)])
        result["clean"][n] = {
            k: {"max": max(v), "p99": _quantile(v, 0.99), "median": _quantile(v, 0.5)} for k, v in clean.items()
        }
        result["shifted"][n] = {k: {"min": min(v), "median": _quantile(v, 0.5)} for k, v in shifted.items()}
        result.setdefault("per_shift_min", {})[n] = {k: min(v) for k, v in sorted(per_shift.items())}
    return result


def _shifts(ref, rows: list[dict]):
    """(feature, shift, row -> shifted row) for every monitored feature: swap the top two values, or scale."""
    from collections import Counter

    for name, feature in ref.features.items():
        if feature.kind == "categorical":
            top = [v for v, _ in Counter(r.get(name) for r in rows if r.get(name) is not None).most_common(2)]
            if len(top) == 2:
                swap = {top[0]: top[1], top[1]: top[0]}
                yield name, "swap top two", lambda r, n=name, s=swap: {**r, n: s.get(r.get(n), r.get(n))}
        else:
            for scale in SCALES:
                yield (
                    name,
                    f"x{scale}",
                    lambda r, n=name, k=scale: {**r, n: r[n] * k if isinstance(r.get(n), int | float) else r.get(n)},
                )


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))]


def write_logs(folder: Path, records: list[bytes], requests: int, name: str, version: int) -> None:
    """`requests` one-row PredictionLogs (serving_default, with an answer) in files of 10,000, over 24 hours."""
    import numpy as np
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    files = max(1, requests // 10_000)
    start = time.mktime(time.strptime("20261201", "%Y%m%d"))
    written = 0
    for index in range(files):
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(start + index * 86400 / files))
        path = folder / f"prediction_log-{stamp}.000Z-1-{index}.tfrecord"
        with tf.io.TFRecordWriter(str(path)) as writer:
            for _ in range(min(10_000, requests - written)):
                log = prediction_log_pb2.PredictionLog()
                request = log.predict_log.request
                request.model_spec.name, request.model_spec.signature_name = name, "serving_default"
                request.model_spec.version.value = version
                request.inputs["examples"].CopyFrom(tf.make_tensor_proto([records[written % len(records)]]))
                response = log.predict_log.response
                response.model_spec.CopyFrom(request.model_spec)
                response.outputs["probability"].CopyFrom(tf.make_tensor_proto(np.array([0.3], np.float32)))
                writer.write(log.SerializeToString())
                written += 1


def speed(version_dir: str, name: str, requests: int, output: Path) -> dict:
    import tensorflow as tf

    pattern = str(output / "pipelines" / name / "CsvExampleGen" / "examples" / "*" / "Split-eval" / "*")
    records = [r.numpy() for r in tf.data.TFRecordDataset(sorted(glob.glob(pattern)), compression_type="GZIP")]
    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp) / "logs"
        logs.mkdir()
        write_logs(logs, records, requests, name, int(os.path.basename(version_dir)))
        command = [sys.executable, "-m", "tfxp.cli", "monitor", "--logs", str(logs), "--model-base-path",
                   os.path.dirname(version_dir), "--model-name", name, "--json"]  # fmt: skip
        code, wall, peak_mb = execute(command, Path(tmp) / "out.log", Path(tmp) / "err.log")
        report = last_json_object((Path(tmp) / "out.log").read_text()) or {}
    return {
        "requests": requests,
        "exit_code": code,
        "wall_seconds": round(wall, 2),
        "peak_rss_mb": round(peak_mb),
        "requests_read": report.get("requests_read"),
        "rows_read": report.get("rows_read"),
        "windows": len(report.get("windows", [])),
        "requests_per_second": round(requests / wall),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=ROOT / "output")
    parser.add_argument("--name", default="taxi")
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--draws", type=int, default=30)
    args = parser.parse_args()
    base = args.output / "serving" / args.name
    versions = (
        sorted((p for p in base.iterdir() if p.name.isdigit()), key=lambda p: int(p.name)) if base.is_dir() else []
    )
    if not versions:
        sys.exit(f"no pushed version under {base}: run `make run` first")
    version_dir = str(versions[-1])
    rows = _eval_rows(args.output, args.name)
    result = {"machine": machine_info(), "version": version_dir, "eval_rows": len(rows)}
    result["calibration"] = calibrate(version_dir, rows, args.draws)
    result["speed"] = speed(version_dir, args.name, args.requests, args.output)
    result["speed_tenth"] = speed(version_dir, args.name, max(1, args.requests // 10), args.output)
    write_json(RESULTS, result)
    _print(result)
    return 0


def _print(result: dict) -> None:
    from tabulate import tabulate

    table = []
    for n, clean in result["calibration"]["clean"].items():
        shifted = result["calibration"]["shifted"][n]
        for key in sorted(clean):
            table.append([n, key, clean[key]["p99"], clean[key]["max"], shifted.get(key, {}).get("min")])
    print(tabulate(table, headers=["rows", "statistic", "clean p99", "clean max", "shifted min"], floatfmt=".4f"))
    t = result["speed_tenth"]
    print(f"\ntfxp monitor: {t['requests']} requests in {t['wall_seconds']} s, peak RSS {t['peak_rss_mb']} MB")
    s = result["speed"]
    print(f"tfxp monitor: {s['requests']} requests in {s['wall_seconds']} s ({s['requests_per_second']}/s), "
          f"peak RSS {s['peak_rss_mb']} MB, {s['windows']} windows, exit {s['exit_code']}")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
