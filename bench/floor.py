"""Benchmark: the pipeline's floor — the unavoidable work of one run, measured here — and the run's ratio to it.

Issue 25 asks to name the floor: the sum of each component's work that no implementation can skip, measured
on this machine, against which `tfxp run`'s wall time is reported. In one invocation, on bench/scale.py's
generated taxi data at --rows:

  1. `tfxp run --data DIR --json` (default train steps 300): its wall time and per-component seconds;
  2. the floor's parts, each timed alone in this process after the run (page cache warm for both):
     * read:       the CSV parsed once into Arrow columns (pyarrow.csv, all columns; what ExampleGen must do);
     * statistics: one pass of TFDV's statistics over those rows (generate_statistics_in_memory on the
                   table as list columns: TFDV's generators without Beam; what StatisticsGen must do);
     * analysis:   one pass of the taxi model's analyzers in numpy over the train rows (mean and variance of
                   numeric inputs, quantile boundaries of bucketized ones, value counts of vocabulary ones;
                   what Transform's analysis must do);
     * train:      the run's own Trainer seconds (the train steps are the work; no cheaper way to run them);
     * evaluate:   one batched pass of the pushed model's serving_default (tf.Example parsing and transform
                   included) over the run's eval split, 4,096 rows per call (what the Evaluator must do before
                   any metric).
  floor = the sum; ratio = the run's wall seconds / floor. Components the floor has no part for (validation,
  InfraValidator, pushers, start-up) count as overhead over it.

Writes bench/results/floor.json and prints a table.
Run:  python -m bench.floor --rows 150000          (make bench-floor ARGS="--rows 1500000")
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from tabulate import tabulate

from bench.common import execute, last_json_object, machine_info, write_json
from bench.scale import ROOT, dataset, ours_command

RESULTS = ROOT / "bench" / "results" / "floor.json"
EVAL_BATCH = 4096


def _timed(work) -> tuple[float, object]:
    started = time.perf_counter()
    value = work()
    return time.perf_counter() - started, value


def read_csv(path: Path):
    """The CSV as a pyarrow Table (every column; types inferred, as ExampleGen's Arrow executor reads)."""
    from pyarrow import csv

    return csv.read_csv(str(path))


def statistics_pass(table) -> int:
    """TFDV's in-memory statistics over `table` as one list-typed RecordBatch; returns the features counted."""
    import pyarrow as pa
    import tensorflow_data_validation as tfdv
    from tensorflow_data_validation.statistics.stats_impl import generate_statistics_in_memory

    columns = []
    for column in table.columns:
        values = column.combine_chunks()
        offsets = pa.array(range(len(values) + 1), type=pa.int32())
        columns.append(pa.ListArray.from_arrays(offsets, values))
    batch = pa.RecordBatch.from_arrays(columns, table.column_names)
    stats = generate_statistics_in_memory(batch, tfdv.StatsOptions())
    return len(stats.datasets[0].features)


def analysis_pass(table) -> int:
    """The taxi model's analyzers over `table` in numpy; returns how many were computed."""
    import numpy as np

    from tfxp.models.features import Kind
    from tfxp.projects import taxi_problem

    done = 0
    for feature in taxi_problem().features:
        values = table.column(feature.name).to_numpy()
        if feature.kind is Kind.NUMERIC:
            present = values[~np.isnan(values.astype(np.float64))]
            present.mean(), present.var()
        elif feature.kind is Kind.BUCKETIZED:
            present = values[~np.isnan(values.astype(np.float64))]
            np.quantile(present, np.linspace(0, 1, feature.size + 1))
        else:
            np.unique(values.astype(str), return_counts=True)
        done += 1
    return done


def evaluate_pass(output: Path) -> int:
    """serving_default of the pushed model over the run's eval split, EVAL_BATCH rows per call; rows scored."""
    import tensorflow as tf

    (model,) = sorted(glob.glob(str(output / "serving" / "taxi" / "[0-9]*")))[-1:]
    files = glob.glob(str(output / "pipelines" / "taxi" / "CsvExampleGen" / "examples" / "*" / "Split-eval" / "*"))
    signature = tf.saved_model.load(model).signatures["serving_default"]
    rows = 0
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP").batch(EVAL_BATCH)
    for batch in dataset:
        signature(examples=batch)
        rows += int(batch.shape[0])
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=150_000)
    parser.add_argument("--train-steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "tfxp-scale-data")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    machine = machine_info()  # its load average is the one at the start
    data_dir, facts = dataset(args.data_dir, args.rows, args.seed)
    work = Path(tempfile.mkdtemp(prefix="tfxp-floor-"))
    command = ours_command(data_dir, work / "out", args.train_steps, "auto")
    code, wall, peak_rss_mb = execute(command, work / "stdout.log", work / "stderr.log")
    summary = last_json_object((work / "stdout.log").read_text()) or {}
    if code != 0:
        print(f"tfxp run failed (exit {code}); see {work}", file=sys.stderr)
        return 1
    components = {c["id"]: c["seconds"] for c in summary.get("components", [])}

    read_s, table = _timed(lambda: read_csv(data_dir / "data.csv"))
    stats_s, _ = _timed(lambda: statistics_pass(table))
    analysis_s, _ = _timed(lambda: analysis_pass(table))
    evaluate_s, eval_rows = _timed(lambda: evaluate_pass(work / "out"))
    parts = {
        "read": read_s,
        "statistics": stats_s,
        "analysis": analysis_s,
        "train": components.get("Trainer", 0.0),
        "evaluate": evaluate_s,
    }
    floor = sum(parts.values())
    pipeline_parts = {
        "read": components.get("CsvExampleGen"),
        "statistics": components.get("StatisticsGen"),
        "analysis": components.get("Transform"),
        "train": components.get("Trainer"),
        "evaluate": components.get("Evaluator"),
    }
    results = {
        "machine": {**machine, "load_average_at_end": os.getloadavg()},
        "rows": args.rows,
        "train_steps": args.train_steps,
        "data": facts.get("path"),
        "eval_rows": eval_rows,
        "pipeline": {"wall_seconds": wall, "peak_rss_mb": peak_rss_mb, "components": components},
        "floor_parts_seconds": parts,
        "floor_seconds": floor,
        "ratio_to_floor": wall / floor,
        "component_vs_floor_part": {
            name: (pipeline_parts[name] / seconds if pipeline_parts[name] and seconds else None)
            for name, seconds in parts.items()
        },
    }
    write_json(args.output, results)
    rows = [
        [name, f"{parts[name]:.1f}", "-" if pipeline_parts[name] is None else f"{pipeline_parts[name]:.1f}"]
        for name in parts
    ]
    rows.append(["floor (sum) / tfxp run wall", f"{floor:.1f}", f"{wall:.1f}"])
    print(f"{args.rows:,} rows, {eval_rows:,} eval rows, {args.train_steps} train steps")
    print(tabulate(rows, headers=["work", "floor s", "pipeline s (component)"]))
    print(f"tfxp run / floor: {wall / floor:.2f}x   results: {args.output}")
    print(json.dumps({"ratio_to_floor": round(wall / floor, 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
