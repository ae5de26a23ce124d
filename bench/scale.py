"""Benchmark: how this pipeline scales with rows, against TFX's own taxi example (issue 12).

What is measured, in one invocation:

  1. Data: taxi-like CSVs with the schema of tfxp/projects/taxi/data/taxi.csv at each size (default
     15k, 150k and 1.5M rows; --with-15m adds 15M), made by resampling its 15,002 rows with
     replacement (fixed seed): categorical and integer columns keep the sampled
     row's real values (so the real distribution, empty cells included);
     fare, trip_miles, trip_seconds and the four lat/long columns get small
     multiplicative log-normal noise, clipped to the ranges in
     tfxp/projects/taxi/schema.pbtxt (trip_seconds stays an integer); tips is scaled by the
     fare's factor, and nudged by a cent where rounding would flip it, so the
     label (tips > 20% of fare) stays the sampled row's.
     Written in chunks of CHUNK_ROWS (15M rows, ~1.8 GB, needs no more memory than 15k)
     to DATA_DIR/taxi-<rows>-seed<seed>/data.csv and reused by later invocations with the
     same --data-dir (default: under the work dir).
  2. This pipeline: `tfxp run --data DIR --train-steps N --json [--beam-workers W]` at every
     size, once per --beam-workers setting, with a fixed number of train steps (default 300)
     so that only the data-bound work grows. The setting `auto` (the default) passes no
     --beam-workers, so the CLI's own default decides; the count it used is recorded when
     `tfxp run --json` reports one ("beam_workers").
  3. TFX's example: `python bench/tfx_example.py DIR --data DIR` (its own
     pipeline, module file, 1000 train steps and multi-processing DirectRunner,
     as in bench/pipeline.py) at --example-sizes (default 15k and 150k; add 1.5M with
     --with-example-1.5m, ~11 more minutes). Never at 15M (hours).

Each configuration runs --repeats times (default once), ours and the example
alternating at each size so that both see the same machine load; figures are
medians over the successful runs. Every run goes into a fresh output directory.
For each the bench records wall seconds (timed here around the subprocess),
rows/s, peak RSS of the whole process tree (sampled every 0.2 s; Beam's workers
are children), per-component seconds (ours: from `tfxp run --json`; the
example's: from the execution timestamps in its ML Metadata store), exit code,
eval metrics (Overall slice) and os.getloadavg() just before and after. A failed
run is recorded and the benchmark goes on.

Results go to bench/results/scale.json: machine info, arguments, the datasets,
every run, the ours/example comparison at each size, the issue's targets and
whether they are met (see targets()), per-component growth exponents (slope of a
log-log fit of seconds against rows; 1 = linear) and the component that grows
worst. Wall ratios are measured in this invocation only: where the example did
not run at a size, that target is reported unchecked. Metrics are compared with
"today's" from --reference (an older scale.json; by default the existing
bench/results/scale.json, read before it is overwritten). A log-log plot of
seconds per component against rows, one panel per --beam-workers setting, with
the example's total wall as a line, goes to bench/results/scale.png, and a table
is printed.

Exit status: 0 when every run succeeded, whether or not targets are met (this
is a benchmark, not a test); 1 when any run failed, after writing the results.

Run:  make bench-scale          (= python -m bench.scale; ~30 min on 2 cores, today's speed)
      make bench-scale ARGS="--beam-workers auto,1,2 --with-example-1.5m --with-15m"
      python -m bench.scale --sizes 3000 --example-sizes 3000 --train-steps 20 \\
          --output /tmp/s.json --plot /tmp/s.png      (a smoke test, a few minutes)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tabulate import tabulate

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
from bench.common import execute, last_json_object, last_line_json, machine_info, write_json  # noqa: E402
from tfxp.pipeline.report import finite  # noqa: E402

TAXI_DIR = ROOT / "tfxp" / "projects" / "taxi"  # tfxp.projects.TAXI, the embedded taxi project
SOURCE_CSV = TAXI_DIR / "data" / "taxi.csv"
SCHEMA_FILE = TAXI_DIR / "schema.pbtxt"
EXAMPLE_SCRIPT = BENCH_DIR / "tfx_example.py"
DEFAULT_OUTPUT = BENCH_DIR / "results" / "scale.json"
DEFAULT_PLOT = BENCH_DIR / "results" / "scale.png"
DEFAULT_SIZES = (15_000, 150_000, 1_500_000)
DEFAULT_EXAMPLE_SIZES = (15_000, 150_000)
LARGE_EXAMPLE_SIZE = 1_500_000  # --with-example-1.5m (~11 min for the example on 2 cores)
HUGE_SIZE = 15_000_000  # --with-15m: ours only
AUTO = "auto"  # --beam-workers setting: no flag, the CLI's default decides

# Issue 12's targets.
# Wall ratio ours/example: size -> (goal, bound to resolve the issue). The issue relaxes
# only 150k and 1.5M to 0.5 ("to resolve the issue: <= 0.5x at both"); 15k is 0.4 at both.
WALL_RATIO_TARGETS: dict[int, tuple[float, float]] = {
    15_000: (0.4, 0.4),
    150_000: (0.3, 0.5),
    1_500_000: (0.3, 0.5),
}
PEAK_RSS_TARGET_ROWS = 1_500_000
PEAK_RSS_TARGET_MB = 2048.0  # "2 GB", of the whole process tree (psutil RSS / 2**20)
RSS_EXPONENT_MAX = 1.0  # sublinear: log-log slope of peak RSS against rows below this
METRIC_TOLERANCE = 0.005  # AUC and BinaryAccuracy (Overall) against the reference's
METRICS = ("auc", "binary_accuracy")
HUGE_PEAK_RSS_MB = 8192.0  # "15M rows completes on this machine within 8 GB"

# ---------------------------------------------------------------- data

GENERATOR_VERSION = 1
CHUNK_ROWS = 100_000
# Relative standard deviation of the multiplicative noise per column. Lat/long
# are community-area centroids: 2e-5 relative is ~100 m, so they stay in place.
NOISE = {
    "fare": 0.03,
    "trip_miles": 0.05,
    "trip_seconds": 0.05,
    "pickup_latitude": 2e-5,
    "pickup_longitude": 2e-5,
    "dropoff_latitude": 2e-5,
    "dropoff_longitude": 2e-5,
}
# Scaled by another column's noise factor: tips with fare keeps tips/fare, the label.
SCALED_WITH = {"tips": "fare"}
FLOAT_DECIMALS = {"fare": 2, "trip_miles": 2, "tips": 2}
DEFAULT_FLOAT_DECIMALS = 6  # lat/long: ~0.1 m
LABEL_TIP_FRACTION = 0.2  # tfxp/projects/taxi/label.py TIP_FRACTION: label = tips > 0.2 * fare


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _schema_columns(schema_path: Path) -> dict[str, dict]:
    """{column: {"int": bool, "min": float|None, "max": float|None}} from the curated schema."""
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = text_format.Parse(schema_path.read_text(), schema_pb2.Schema())
    columns = {}
    for feature in schema.feature:
        is_int = feature.type == schema_pb2.INT
        domain = (
            feature.int_domain
            if feature.HasField("int_domain")
            else (feature.float_domain if feature.HasField("float_domain") else None)
        )
        low = domain.min if domain is not None and domain.HasField("min") else None
        high = domain.max if domain is not None and domain.HasField("max") else None
        columns[feature.name] = {"int": is_int, "min": low, "max": high}
    return columns


def _format(values, decimals: int | None, missing):
    """Numbers as CSV strings; ints when decimals is None; '' where missing."""
    import numpy as np

    filled = np.where(missing, 0.0, values)
    if decimals is None:
        text = np.rint(filled).astype(np.int64).astype(str)
    else:
        text = np.char.mod(f"%.{decimals}f", filled)
    return np.where(missing, "", text).astype(object)


def _keep_label(new: dict, tips, fare, tips_max: float | None) -> int:
    """Nudges new["tips"] (cents) where rounding flipped the label tips > 0.2 * fare; returns how many.

    Tips scaled with the fare keep tips/fare, but rounding both to cents flips
    rows that sit on the boundary (a 20% tip is common). Afterwards tips is at
    least 0.2 cents away from 0.2 * fare, on the sampled row's side.
    """
    import numpy as np

    before = tips > LABEL_TIP_FRACTION * fare
    after = new["tips"] > LABEL_TIP_FRACTION * new["fare"]
    flipped = before != after
    if not flipped.any():
        return 0
    cents = LABEL_TIP_FRACTION * 100 * new["fare"]  # the boundary, in cents (a multiple of 0.2)
    above = (np.floor(cents + 1e-6) + 1) / 100
    below = np.maximum((np.ceil(cents - 1e-6) - 1) / 100, 0.0)
    fixed = np.where(before, np.maximum(new["tips"], above), np.minimum(new["tips"], below))
    if tips_max is not None:
        fixed = np.minimum(fixed, tips_max)
    new["tips"] = np.where(flipped, np.round(fixed, 2), new["tips"])
    if np.any(before != (new["tips"] > LABEL_TIP_FRACTION * new["fare"])):
        raise RuntimeError("generated tips change the label")  # only with a tips cap below 20% of a fare
    return int(np.count_nonzero(flipped))


def generate_csv(
    rows: int, seed: int, target: Path, source: Path = SOURCE_CSV, schema_path: Path = SCHEMA_FILE
) -> dict:
    """Writes `rows` resampled, noised rows of `source` to target; returns facts about them."""
    import numpy as np
    import pandas as pd

    source_frame = pd.read_csv(source, dtype=str, keep_default_na=False, na_filter=False)
    columns = list(source_frame.columns)
    schema = _schema_columns(schema_path)
    noised = [c for c in columns if c in NOISE or c in SCALED_WITH]
    unknown = [c for c in noised if c not in schema]
    if unknown:
        raise ValueError(f"columns {unknown} are not in {schema_path}")
    text = {c: source_frame[c].to_numpy(dtype=object) for c in columns}
    numbers = {c: np.array([float(v) if v else np.nan for v in text[c]], dtype=float) for c in noised}
    rng = np.random.default_rng(seed)
    written = 0
    label_adjusted = 0
    clipped = {c: 0 for c in noised}
    decimals = {c: None if schema[c]["int"] else FLOAT_DECIMALS.get(c, DEFAULT_FLOAT_DECIMALS) for c in noised}
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "w", newline="") as out:
        while written < rows:
            size = min(CHUNK_ROWS, rows - written)
            index = rng.integers(0, len(source_frame), size=size)
            chunk = {c: text[c][index] for c in columns}
            factors = {c: np.exp(NOISE[c] * rng.standard_normal(size)) for c in columns if c in NOISE}
            new = {}
            for c in noised:
                values = numbers[c][index] * factors[SCALED_WITH.get(c, c)]
                low, high = schema[c]["min"], schema[c]["max"]
                if low is not None or high is not None:
                    inside = np.clip(values, low, high)
                    clipped[c] += int(np.count_nonzero((inside != values) & ~np.isnan(values)))
                    values = inside
                new[c] = np.rint(values) if decimals[c] is None else np.round(values, decimals[c])
            if "tips" in new and "fare" in new:
                label_adjusted += _keep_label(
                    new, numbers["tips"][index], numbers["fare"][index], schema["tips"]["max"]
                )
            for c in noised:
                chunk[c] = _format(new[c], decimals[c], np.isnan(new[c]))
            pd.DataFrame(chunk, columns=columns).to_csv(out, header=written == 0, index=False)
            written += size
    return {
        "rows": rows,
        "clipped_values": clipped,
        # Rows whose rounded tips needed a cent's nudge to keep the sampled row's label.
        "label_adjusted_fraction": label_adjusted / rows if rows else 0.0,
    }


def dataset(data_root: Path, rows: int, seed: int) -> tuple[Path, dict]:
    """A folder holding only data.csv with `rows` generated rows; reused when already made alike.

    Both tools read the folder (the example's CsvExampleGen takes folders only),
    so nothing else may live in it: the description sits next to it.
    """
    folder = data_root / f"taxi-{rows}-seed{seed}"
    csv_file = folder / "data.csv"
    meta_file = data_root / f"taxi-{rows}-seed{seed}.json"
    key = {
        "rows": rows,
        "seed": seed,
        "generator_version": GENERATOR_VERSION,
        "source_sha256": _sha256(SOURCE_CSV),
        "schema_sha256": _sha256(SCHEMA_FILE),
        "noise": NOISE,
    }
    if meta_file.exists() and csv_file.exists():
        meta = json.loads(meta_file.read_text())
        if all(meta.get(k) == v for k, v in key.items()) and meta.get("bytes") == csv_file.stat().st_size:
            return folder, {**meta, "reused": True}
    started = time.perf_counter()
    tmp = data_root / f"taxi-{rows}-seed{seed}.csv.tmp"  # outside the folder both tools read
    facts = generate_csv(rows, seed, tmp)
    folder.mkdir(parents=True, exist_ok=True)
    for stray in folder.iterdir():
        stray.unlink()
    tmp.replace(csv_file)
    meta = {
        **key,
        **facts,
        "path": str(csv_file),
        "bytes": csv_file.stat().st_size,
        "generate_seconds": round(time.perf_counter() - started, 2),
    }
    write_json(meta_file, meta)
    return folder, {**meta, "reused": False}


# ---------------------------------------------------------------- running

Workers = int | str  # a --beam-workers setting: a count, or AUTO


@dataclass
class Run:
    side: str  # "ours" or "example"
    rows: int
    beam_workers: Workers | None  # ours: the setting (a count or "auto"); None for the example
    data_dir: str
    output_dir: str
    command: list[str]
    repeat: int = 1  # 1-based, of --repeats
    beam_workers_used: Any = None  # ours: `tfxp run --json`'s "beam_workers", when it reports one
    exit_code: int | None = None
    ok: bool = False
    result: str | None = None
    error: str | None = None
    wall_seconds: float | None = None
    reported_wall_seconds: float | None = None
    rows_per_second: float | None = None
    peak_rss_mb: float | None = None
    rows_read: int | None = None  # ours: train + eval rows its StatisticsGen counted
    components: list[dict] = field(default_factory=list)  # id, status, seconds
    outside_components_seconds: float | None = None  # wall - sum(components): start-up, imports, compile
    binary_accuracy: float | None = None
    auc: float | None = None
    # os.getloadavg() (1, 5, 15 min) just before and after: other work on 2 cores skews wall times.
    load_before: list[float] | None = None
    load_after: list[float] | None = None
    stdout_log: str = ""
    stderr_log: str = ""


def _tfxp() -> str:
    return str(Path(sys.executable).parent / "tfxp")  # the venv's console script, next to this interpreter


def ours_command(data_dir: Path, output_dir: Path, train_steps: int, workers: Workers) -> list[str]:
    """`tfxp run` argv; with workers == AUTO no --beam-workers, so the CLI's default decides.

    Raises ValueError for a setting that is neither AUTO nor a count >= 1.
    """
    command = [_tfxp(), "run", "--data", str(data_dir), "--output", str(output_dir), "--json"]
    command += ["--train-steps", str(train_steps)]
    if workers == AUTO:
        return command
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"beam workers: {AUTO!r} or a count >= 1, got {workers!r}")
    return [*command, "--beam-workers", str(workers)]


def example_command(data_dir: Path, output_dir: Path) -> list[str]:
    return [sys.executable, str(EXAMPLE_SCRIPT), str(output_dir), "--data", str(data_dir)]


def example_components(output_dir: Path) -> list[dict]:
    """The example's per-component seconds from its MLMD execution timestamps ([] if unreadable).

    An execution is created when its component starts and updated when it is
    published, so the difference is the component's run time (ms resolution).
    """
    stores = list((output_dir / "metadata").glob("*/metadata.db"))
    if len(stores) != 1:
        return []
    try:
        from ml_metadata.metadata_store import metadata_store
        from ml_metadata.proto import metadata_store_pb2 as pb

        config = pb.ConnectionConfig()
        config.sqlite.filename_uri = str(stores[0])
        config.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READONLY
        store = metadata_store.MetadataStore(config)
        found = []
        for context in store.get_contexts_by_type("node"):
            executions = store.get_executions_by_context(context.id)
            if not executions:
                continue
            newest = max(executions, key=lambda e: e.id)
            state = pb.Execution.State.Name(newest.last_known_state)
            seconds = (newest.last_update_time_since_epoch - newest.create_time_since_epoch) / 1000
            found.append(
                (
                    newest.create_time_since_epoch,
                    {
                        "id": context.name.split(".", 1)[-1],
                        "status": {"COMPLETE": "finished", "CACHED": "cached"}.get(state, state.lower()),
                        "seconds": round(seconds, 2),
                    },
                )
            )
    except Exception:  # noqa: BLE001 - nice to have; the total is what matters
        return []
    return [c for _, c in sorted(found, key=lambda item: item[0])]


def _fill_from_tfxp(run: Run, summary: dict | None) -> None:
    if summary is None:
        run.error = "no JSON summary on stdout"
        return
    run.result = summary.get("result")
    run.components = summary.get("components", [])
    run.reported_wall_seconds = summary.get("wall_seconds")
    # Reported by the CLI once it chooses workers from the input size; absent before: None.
    run.beam_workers_used = summary.get("beam_workers")
    run.rows_read = sum(summary.get("rows", {}).values()) or None
    overall = summary.get("metrics", {}).get("Overall", {})
    run.binary_accuracy, run.auc = overall.get("binary_accuracy"), overall.get("auc")
    failed = [c["id"] for c in run.components if c.get("status") == "failed"]
    if summary.get("exit_code") not in (None, run.exit_code):
        run.error = f"JSON exit_code {summary.get('exit_code')} != process exit code {run.exit_code}"
    elif run.exit_code != 0:
        run.error = f"{run.result}: {summary.get('error')}"
    elif failed:
        run.error = f"components failed: {', '.join(failed)}"


def _fill_from_example(run: Run, summary: dict | None) -> None:
    run.components = example_components(Path(run.output_dir))
    if summary is None:
        run.error = "no JSON line on stdout"
    else:
        metrics = summary.get("metrics", {})
        run.reported_wall_seconds = summary.get("wall_seconds")
        run.binary_accuracy, run.auc = metrics.get("binary_accuracy"), metrics.get("auc")
        if not metrics:
            run.error = "example produced no evaluation metrics"
    if run.exit_code != 0:
        run.error = f"exit code {run.exit_code}" + (f"; {run.error}" if run.error else "")
    run.result = "ok" if run.exit_code == 0 and run.error is None else "failed"


def run_one(
    side: str, rows: int, workers: Workers | None, data_dir: Path, runs_dir: Path, train_steps: int, repeat: int = 1
) -> Run:
    """Runs ours or the example once on data_dir in a fresh directory under runs_dir; never raises for a failed run."""
    name = f"{rows}-ours-w{workers}" if side == "ours" else f"{rows}-example"
    # mkdtemp: a fresh directory even when --work-dir was used before.
    run_dir = Path(tempfile.mkdtemp(prefix=f"{name}-r{repeat}-", dir=runs_dir))
    output_dir = run_dir / "out"
    command = (
        ours_command(data_dir, output_dir, train_steps, workers)
        if side == "ours"
        else example_command(data_dir, output_dir)
    )
    run = Run(
        side=side,
        rows=rows,
        beam_workers=workers,
        data_dir=str(data_dir),
        output_dir=str(output_dir),
        command=command,
        repeat=repeat,
        stdout_log=str(run_dir / "stdout.log"),
        stderr_log=str(run_dir / "stderr.log"),
    )
    run.load_before = [round(v, 2) for v in os.getloadavg()]
    run.exit_code, run.wall_seconds, run.peak_rss_mb = execute(command, Path(run.stdout_log), Path(run.stderr_log))
    run.load_after = [round(v, 2) for v in os.getloadavg()]
    stdout = Path(run.stdout_log).read_text(errors="replace")
    if side == "ours":
        _fill_from_tfxp(run, last_json_object(stdout))
    else:
        _fill_from_example(run, last_line_json(stdout))
    run.ok = run.exit_code == 0 and run.error is None
    run.rows_per_second = rows / run.wall_seconds if run.wall_seconds else None
    if run.components:
        run.outside_components_seconds = round(run.wall_seconds - sum(c.get("seconds") or 0 for c in run.components), 2)
    return run


# ---------------------------------------------------------------- summarising


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _select(runs: list[Run], side: str, rows: int | None = None, workers: Workers | None = None) -> list[Run]:
    """Runs of one side (ours: of one --beam-workers setting), optionally at one size."""
    return [
        r
        for r in runs
        if r.side == side and (rows is None or r.rows == rows) and (side != "ours" or r.beam_workers == workers)
    ]


def aggregate(runs: list[Run]) -> dict | None:
    """One configuration's figures: medians over its successful runs (None when there are no runs).

    "ok" is whether every run succeeded; the figures come from the successful ones
    only (all None when none succeeded). Components are keyed by TFX component id.
    """
    if not runs:
        return None
    ok = [r for r in runs if r.ok]
    wall = _median([r.wall_seconds for r in ok])
    component_ids = list(dict.fromkeys(c["id"] for r in ok for c in r.components))
    used: list[Any] = []
    for value in (r.beam_workers_used for r in ok if r.beam_workers_used is not None):
        if value not in used:
            used.append(value)
    return {
        "runs": len(runs),
        "ok_runs": len(ok),
        "ok": len(ok) == len(runs),
        "wall_seconds": wall,
        "rows_per_second": runs[0].rows / wall if wall else None,
        "peak_rss_mb": _median([r.peak_rss_mb for r in ok]),
        "auc": _median([r.auc for r in ok]),
        "binary_accuracy": _median([r.binary_accuracy for r in ok]),
        "components": {
            cid: _median([next((c.get("seconds") for c in r.components if c["id"] == cid), None) for r in ok])
            for cid in component_ids
        },
        "outside_components_seconds": _median([r.outside_components_seconds for r in ok]),
        "beam_workers_used": used or None,
    }


def _ours_sizes(runs: list[Run], workers: Workers) -> list[int]:
    return sorted({r.rows for r in runs if r.side == "ours" and r.beam_workers == workers})


def comparison(runs: list[Run], settings: list[Workers]) -> list[dict]:
    """One row per (setting, size) of ours: medians of ours, of the example at the same size, ratios ours/example."""
    rows = []
    for workers in settings:
        for size in _ours_sizes(runs, workers):
            ours = aggregate(_select(runs, "ours", size, workers))
            example = aggregate(_select(runs, "example", size))
            example_wall = example["wall_seconds"] if example else None
            example_rss = example["peak_rss_mb"] if example else None
            rows.append(
                {
                    "rows": size,
                    "beam_workers": workers,
                    "beam_workers_used": ours["beam_workers_used"],
                    "runs": ours["runs"],
                    "ours_ok": ours["ok"],
                    "example_ok": example["ok"] if example else None,
                    "ours_wall_seconds": ours["wall_seconds"],
                    "example_wall_seconds": example_wall,
                    "wall_ratio": _ratio(ours["wall_seconds"], example_wall),
                    "ours_peak_rss_mb": ours["peak_rss_mb"],
                    "example_peak_rss_mb": example_rss,
                    "peak_rss_ratio": _ratio(ours["peak_rss_mb"], example_rss),
                    "ours_rows_per_second": ours["rows_per_second"],
                    "example_rows_per_second": example["rows_per_second"] if example else None,
                    "ours_auc": ours["auc"],
                    "ours_binary_accuracy": ours["binary_accuracy"],
                }
            )
    return rows


def _check(
    target: str,
    workers: Workers,
    rows: int | None,
    value: float | None,
    bound: float | None,
    met: bool | None,
    bound_to_resolve: float | None = None,
    met_to_resolve: bool | None = None,
    note: str | None = None,
    **extra: Any,
) -> dict:
    """A target check; met None = not checked (note says why). The resolve level defaults to the goal's."""
    return {
        "target": target,
        "beam_workers": workers,
        "rows": rows,
        "value": value,
        "bound": bound,
        "met": met,
        "bound_to_resolve": bound if bound_to_resolve is None else bound_to_resolve,
        "met_to_resolve": met if met_to_resolve is None and bound_to_resolve is None else met_to_resolve,
        "note": note,
        **extra,
    }


def wall_ratio_check(workers: Workers, rows: int, ours: dict | None, example: dict | None) -> dict:
    """The issue's wall-ratio target at `rows` (a key of WALL_RATIO_TARGETS) from aggregate() figures.

    Only a ratio measured in this invocation counts: no example run (or none
    succeeded) leaves the check unchecked (met None), as does a size ours did not run.
    A size where every run of ours failed is not met.
    """
    goal, resolve = WALL_RATIO_TARGETS[rows]
    extra = {"bound_kind": "ours wall / example wall"}
    if ours is None:
        return _check(
            "wall_ratio", workers, rows, None, goal, None, resolve, None, "ours not run at this size", **extra
        )
    if ours["ok_runs"] == 0:
        return _check(
            "wall_ratio", workers, rows, None, goal, False, resolve, False, "every run of ours failed", **extra
        )
    if example is None or example["ok_runs"] == 0:
        why = "TFX's example not run at this size" if example is None else "every run of TFX's example failed"
        hint = " (add --with-example-1.5m)" if rows == LARGE_EXAMPLE_SIZE and example is None else ""
        return _check("wall_ratio", workers, rows, None, goal, None, resolve, None, why + hint, **extra)
    ratio = _ratio(ours["wall_seconds"], example["wall_seconds"])
    return _check(
        "wall_ratio",
        workers,
        rows,
        ratio,
        goal,
        ratio <= goal,
        resolve,
        ratio <= resolve,
        ours_wall_seconds=ours["wall_seconds"],
        example_wall_seconds=example["wall_seconds"],
    )


def rss_exponent_check(workers: Workers, peak_rss_by_rows: dict[int, float]) -> dict:
    """Sublinear memory: the log-log slope of peak RSS (MB) against rows < RSS_EXPONENT_MAX; needs 2+ sizes."""
    exponent = _exponent(peak_rss_by_rows)
    if exponent is None:
        return _check("peak_rss_sublinear", workers, None, None, RSS_EXPONENT_MAX, None, note="fewer than 2 sizes")
    return _check(
        "peak_rss_sublinear",
        workers,
        None,
        exponent,
        RSS_EXPONENT_MAX,
        exponent < RSS_EXPONENT_MAX,
        bound_kind="log-log slope of peak RSS against rows (strictly below)",
        peak_rss_mb_by_rows={str(r): v for r, v in sorted(peak_rss_by_rows.items())},
    )


def peak_rss_check(target: str, workers: Workers, rows: int, ours: dict | None, bound_mb: float, hint: str) -> dict:
    """Peak RSS (MB, median over runs) of ours at `rows` <= bound_mb; a failed size is not met."""
    if ours is None:
        return _check(target, workers, rows, None, bound_mb, None, note=f"ours not run at this size{hint}")
    if not ours["ok"]:
        return _check(target, workers, rows, ours["peak_rss_mb"], bound_mb, False, note="a run failed")
    return _check(target, workers, rows, ours["peak_rss_mb"], bound_mb, ours["peak_rss_mb"] <= bound_mb)


# ------------------------- today's metrics, from an older scale.json


def load_reference(path: Path) -> dict:
    """Today's figures from an older scale.json (the one this script writes).

    Returns {"path", "date", "train_steps", "seed", "beam_workers" (its settings, first
    = its default), "datasets" ({rows: generator facts}), "runs" ([{"rows", "beam_workers",
    "beam_workers_used", "auc", "binary_accuracy", "wall_seconds", "peak_rss_mb"}] for its
    successful runs of ours), "example_runs" (the same for TFX's example)}.
    Raises OSError if unreadable, ValueError if it is not such a JSON object.
    """
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or not isinstance(data.get("runs"), list):
        raise ValueError(f"{path}: not a bench/scale.py results file (no 'runs' list)")
    config = data.get("config", {})
    keys = ("rows", "beam_workers", "beam_workers_used", "auc", "binary_accuracy", "wall_seconds", "peak_rss_mb")

    def pick(side: str) -> list[dict]:
        return [{k: r.get(k) for k in keys} for r in data["runs"] if r.get("side") == side and r.get("ok")]

    return {
        "path": str(path),
        "date": data.get("machine", {}).get("date"),
        "train_steps": config.get("train_steps"),
        "seed": config.get("seed"),
        "beam_workers": config.get("beam_workers") or [],
        "datasets": {
            k: {f: v.get(f) for f in ("generator_version", "source_sha256", "schema_sha256", "noise")}
            for k, v in data.get("datasets", {}).items()
        },
        "runs": pick("ours"),
        "example_runs": pick("example"),
    }


def _worker_count(setting: Any, used: Any) -> int | None:
    """The Beam worker count a run had: its setting if a count, else the single count it reported using."""
    if isinstance(setting, int):
        return setting
    if isinstance(used, list):
        used = used[0] if len(used) == 1 else None
    return used if isinstance(used, int) else None


def reference_metrics(reference: dict, rows: int, workers: Workers, used: list[Any] | None) -> tuple[dict | None, str]:
    """The reference's Overall metrics at `rows`: ({"auc", "binary_accuracy", "beam_workers", "runs"}, how chosen).

    Prefers the reference's runs with the same worker count (a count setting, or
    what "auto" reported using), then the same setting (auto with auto), then the
    reference's first (default) setting, then any; medians when several.
    (None, why) when the reference has no successful run of ours at `rows`.
    """
    at_size = [r for r in reference["runs"] if r["rows"] == rows]
    if not at_size:
        return None, f"no successful run of ours at {rows:,} rows in the reference"
    count = _worker_count(workers, used)
    default = reference["beam_workers"][0] if reference["beam_workers"] else None
    preferences = (
        (
            "same beam worker count",
            lambda r: count is not None and _worker_count(r["beam_workers"], r.get("beam_workers_used")) == count,
        ),
        ("same --beam-workers setting", lambda r: r["beam_workers"] == workers),
        ("the reference's default --beam-workers", lambda r: default is not None and r["beam_workers"] == default),
    )
    chosen, how = at_size, "any --beam-workers"
    for why, matches in preferences:
        matching = [r for r in at_size if matches(r)]
        if matching:
            chosen, how = matching, why
            break
    return {
        "auc": _median([r["auc"] for r in chosen]),
        "binary_accuracy": _median([r["binary_accuracy"] for r in chosen]),
        "beam_workers": chosen[0]["beam_workers"],
        "runs": len(chosen),
    }, how


def metric_checks(
    workers: Workers, rows: int, ours: dict | None, reference: dict | None, comparable: str | None
) -> list[dict]:
    """|ours - reference| <= METRIC_TOLERANCE for AUC and BinaryAccuracy (Overall) at one size.

    comparable: None when the reference used the same data and train steps, else why not
    (then unchecked). Unchecked too without a reference or a successful run of ours.
    """
    out = []
    ref, how = (None, "no --reference") if reference is None else (None, comparable)
    if reference is not None and comparable is None:
        ref, how = reference_metrics(reference, rows, workers, ours["beam_workers_used"] if ours else None)
    for metric in METRICS:
        value = ours[metric] if ours else None
        if ref is None or ref[metric] is None:
            # A size the reference has no run at (15M, say) has no "today's" figure: reported, not counted.
            counted = reference is None or comparable is not None or at_size_in(reference, rows)
            out.append(
                _check(
                    f"{metric}_vs_reference", workers, rows, value, METRIC_TOLERANCE, None, note=how, counted=counted
                )
            )
            continue
        if value is None:
            out.append(_check(f"{metric}_vs_reference", workers, rows, None, METRIC_TOLERANCE, None, note="no value"))
            continue
        diff = value - ref[metric]
        out.append(
            _check(
                f"{metric}_vs_reference",
                workers,
                rows,
                round(diff, 6) + 0.0,
                METRIC_TOLERANCE,
                abs(diff) <= METRIC_TOLERANCE,
                bound_kind="|ours - reference|",
                ours=value,
                reference=ref[metric],
                reference_beam_workers=ref["beam_workers"],
                reference_chosen_by=how,
            )
        )
    return out


def at_size_in(reference: dict, rows: int) -> bool:
    """Whether the reference has a successful run of ours at `rows`."""
    return any(r["rows"] == rows for r in reference["runs"])


def reference_comparable(reference: dict, train_steps: int, seed: int, datasets: dict, rows: int) -> str | None:
    """None when the reference's run at `rows` used the same data and train steps as this one, else why not."""
    if reference.get("train_steps") != train_steps:
        return f"reference ran {reference.get('train_steps')} train steps, this run {train_steps}"
    if reference.get("seed") != seed:
        return f"reference's data seed {reference.get('seed')}, this run's {seed}"
    ours, theirs = datasets.get(str(rows), {}), reference.get("datasets", {}).get(str(rows))
    if theirs is not None:
        differing = [k for k, v in theirs.items() if k in ours and ours[k] != v]
        if differing:
            return f"reference's {rows:,}-row data differ ({', '.join(differing)})"
    return None


def verdict(checks: list[dict], key: str = "met") -> bool | None:
    """False if any counted check is unmet, None if any is unchecked (or none counts), else True.

    A check with "counted": False (a metric at a size the reference never ran, e.g. 15M)
    is reported but decides nothing: there is no "today's" figure to hold it to.
    """
    values = [c[key] for c in checks if c.get("counted", True)]
    if any(v is False for v in values):
        return False
    if not values or any(v is None for v in values):
        return None
    return True


def targets(
    runs: list[Run],
    settings: list[Workers],
    reference: dict | None = None,
    train_steps: int | None = None,
    seed: int | None = None,
    datasets: dict | None = None,
) -> dict:
    """Issue 12's targets per --beam-workers setting, each check and two verdicts.

    "goal": wall ratio <= 0.3 at 150k and 1.5M, <= 0.4 at 15k; "to_resolve": <= 0.5 at
    150k and 1.5M (15k stays 0.4). Both also need: peak RSS at 1.5M <= 2,048 MB, peak
    RSS sublinear in rows, AUC and BinaryAccuracy within 0.005 of the reference at every
    size run, 15M rows within 8 GB, and no failed run. A verdict is null while any check
    is unchecked (a size or the example not run): see each check's note.
    """
    datasets = datasets or {}
    checks: list[dict] = []
    summary = {}
    for workers in settings:
        sizes = _ours_sizes(runs, workers)
        figures = {size: aggregate(_select(runs, "ours", size, workers)) for size in sizes}
        mine = []
        for size in WALL_RATIO_TARGETS:
            mine.append(wall_ratio_check(workers, size, figures.get(size), aggregate(_select(runs, "example", size))))
        mine.append(
            peak_rss_check(
                "peak_rss_at_1.5m",
                workers,
                PEAK_RSS_TARGET_ROWS,
                figures.get(PEAK_RSS_TARGET_ROWS),
                PEAK_RSS_TARGET_MB,
                "",
            )
        )
        mine.append(rss_exponent_check(workers, {s: f["peak_rss_mb"] for s, f in figures.items() if f["peak_rss_mb"]}))
        for size in sizes:
            comparable = (
                reference_comparable(reference, train_steps, seed, datasets, size) if reference is not None else None
            )
            mine.extend(metric_checks(workers, size, figures[size], reference, comparable))
        if not sizes:
            mine.append(_check("metrics_vs_reference", workers, None, None, METRIC_TOLERANCE, None, note="no runs"))
        mine.append(
            peak_rss_check(
                "15m_within_8gb",
                workers,
                HUGE_SIZE,
                figures.get(HUGE_SIZE),
                HUGE_PEAK_RSS_MB,
                " (--with-15m runs the first setting)",
            )
        )
        failed = sorted({r.rows for r in runs if r.side == "ours" and r.beam_workers == workers and not r.ok})
        mine.append(_check("no_failed_run", workers, None, len(failed), 0, not failed, failed_sizes=failed))
        checks.extend(mine)
        summary[str(workers)] = {
            "goal": verdict(mine, "met"),
            "to_resolve": verdict(mine, "met_to_resolve"),
            "unmet": [_label(c) for c in mine if c["met_to_resolve"] is False or c["met"] is False],
            "unchecked": [
                _label(c) for c in mine if c.get("counted", True) and (c["met"] is None or c["met_to_resolve"] is None)
            ],
            "not_compared": [_label(c) for c in mine if not c.get("counted", True)],
        }
    return {
        "wall_ratio": {str(k): {"goal": g, "to_resolve": r} for k, (g, r) in WALL_RATIO_TARGETS.items()},
        "peak_rss_mb_at_1.5m": PEAK_RSS_TARGET_MB,
        "peak_rss_exponent_below": RSS_EXPONENT_MAX,
        "metric_tolerance": METRIC_TOLERANCE,
        "peak_rss_mb_at_15m": HUGE_PEAK_RSS_MB,
        "checks": checks,
        "by_beam_workers": summary,
    }


def _label(check: dict) -> str:
    return check["target"] + (f"@{check['rows']:,}" if check["rows"] is not None else "")


def _exponent(points: dict[int, float]) -> float | None:
    """Slope of log(value) against log(rows): value ~ rows**exponent; None with < 2 sizes of positive values."""
    import numpy as np

    usable = sorted((r, s) for r, s in points.items() if s and s > 0)
    if len({r for r, _ in usable}) < 2:
        return None
    x = np.log([r for r, _ in usable])
    y = np.log([s for _, s in usable])
    return round(float(np.polyfit(x, y, 1)[0]), 3) + 0.0  # + 0.0: no "-0.00"


MIN_SECONDS_FOR_GROWTH = 1.0  # a 0.05 s component's exponent is noise


def _component_series(figures: dict[int, dict]) -> dict[str, dict[int, float]]:
    """{component: {rows: median seconds}} over sizes with a successful run, plus total and outside-components."""
    series: dict[str, dict[int, float]] = {}
    for rows, agg in sorted(figures.items()):
        if agg["ok_runs"] == 0:
            continue
        for cid, seconds in agg["components"].items():
            series.setdefault(cid, {})[rows] = seconds or 0.0
        series.setdefault("(total wall)", {})[rows] = agg["wall_seconds"]
        if agg["outside_components_seconds"] is not None:
            series.setdefault("(outside components)", {})[rows] = agg["outside_components_seconds"]
    return series


def growth(runs: list[Run], workers: Workers) -> dict:
    """Per-component growth of ours with this setting (medians per size), and the one that grows worst."""
    figures = {s: aggregate(_select(runs, "ours", s, workers)) for s in _ours_sizes(runs, workers)}
    series = _component_series(figures)
    ok_sizes = [s for s, f in figures.items() if f["ok_runs"]]
    largest_wall = figures[max(ok_sizes)]["wall_seconds"] if ok_sizes else None
    components = {}
    for name, points in series.items():
        sizes = sorted(points)
        small, large = sizes[0], sizes[-1]
        components[name] = {
            "seconds_by_rows": {str(r): points[r] for r in sizes},
            "exponent": _exponent(points),
            "growth_factor": _ratio(points[large], points[small]) if large != small else None,
            "rows_factor": large / small,
            # Marginal cost: extra seconds per extra million rows between the smallest and largest size.
            "seconds_per_million_rows": (
                (points[large] - points[small]) / (large - small) * 1e6 if large != small else None
            ),
            "share_of_largest_wall": _ratio(points[large], largest_wall) if not name.startswith("(") else None,
        }
    candidates = {
        n: c
        for n, c in components.items()
        if not n.startswith("(")
        and c["exponent"] is not None
        and max(c["seconds_by_rows"].values()) >= MIN_SECONDS_FOR_GROWTH
    }
    worst = max(candidates, key=lambda n: candidates[n]["exponent"], default=None)
    most_seconds = max(candidates, key=lambda n: candidates[n]["seconds_per_million_rows"] or 0, default=None)
    peak_rss = {s: f["peak_rss_mb"] for s, f in figures.items() if f["peak_rss_mb"]}
    return {
        "beam_workers": workers,
        "components": components,
        "peak_rss_mb_by_rows": {str(r): v for r, v in sorted(peak_rss.items())},
        "peak_rss_exponent": _exponent(peak_rss),
        "grows_worst": None
        if worst is None
        else {
            "component": worst,
            "exponent": candidates[worst]["exponent"],
            "growth_factor": candidates[worst]["growth_factor"],
            "rows_factor": candidates[worst]["rows_factor"],
            "seconds_by_rows": candidates[worst]["seconds_by_rows"],
            "measure": "slope of a least-squares fit of log(seconds) on log(rows) over sizes with a successful "
            f"run, medians (components reaching >= {MIN_SECONDS_FOR_GROWTH:g} s)",
        },
        "most_added_seconds": None
        if most_seconds is None
        else {
            "component": most_seconds,
            "seconds_per_million_rows": candidates[most_seconds]["seconds_per_million_rows"],
        },
    }


def fastest_workers(runs: list[Run], settings: list[Workers]) -> dict[str, Workers]:
    """{rows: the --beam-workers setting with the lowest median wall} where more than one setting succeeded."""
    out: dict[str, Workers] = {}
    for rows in sorted({r.rows for r in runs if r.side == "ours"}):
        walls = {}
        for workers in settings:
            agg = aggregate(_select(runs, "ours", rows, workers))
            if agg and agg["wall_seconds"] is not None:
                walls[workers] = agg["wall_seconds"]
        if len(walls) > 1:
            out[str(rows)] = min(walls, key=walls.get)
    return out


def build_results(
    header: dict,
    datasets: dict,
    runs: list[Run],
    settings: list[Workers],
    reference: dict | None = None,
) -> dict:
    """The results JSON (strict: NaN -> null). header carries "config" with "train_steps" and "seed"."""
    growths = {str(w): growth(runs, w) for w in settings}
    config = header.get("config", {})
    return finite(
        {
            **header,
            "datasets": datasets,
            "runs": [asdict(r) for r in runs],
            "comparison": comparison(runs, settings),
            "targets": targets(runs, settings, reference, config.get("train_steps"), config.get("seed"), datasets),
            "growth": growths,
            # For the first --beam-workers setting (the default configuration).
            "grows_worst": growths[str(settings[0])]["grows_worst"],
            "fastest_beam_workers": fastest_workers(runs, settings),
        }
    )


# ---------------------------------------------------------------- output


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _workers_cell(row: dict) -> str:
    used = row.get("beam_workers_used")
    if row["beam_workers"] == AUTO:
        return f"auto ({', '.join(map(str, used))})" if used else "auto (?)"
    return str(row["beam_workers"])


def print_table(results: dict) -> None:
    """The comparison, per-component growth and the targets' verdicts, on stdout."""
    checks = results["targets"]["checks"]

    def find(target: str, workers: Workers, rows: int) -> dict | None:
        return next(
            (c for c in checks if c["target"] == target and c["beam_workers"] == workers and c["rows"] == rows), None
        )

    table = []
    for row in results["comparison"]:
        bounds = WALL_RATIO_TARGETS.get(row["rows"])
        deltas = []
        for metric in METRICS:
            check = find(f"{metric}_vs_reference", row["beam_workers"], row["rows"])
            deltas.append(_fmt(check["value"], "+.4f") if check and check["met"] is not None else "-")
        table.append(
            [
                f"{row['rows']:,}",
                _workers_cell(row),
                _fmt(row["ours_wall_seconds"], ".1f"),
                _fmt(row["example_wall_seconds"], ".1f"),
                _fmt(row["wall_ratio"], ".2f"),
                "-" if bounds is None else f"{bounds[0]:g}/{bounds[1]:g}",
                _fmt(row["ours_peak_rss_mb"], ".0f"),
                _fmt(row["example_peak_rss_mb"], ".0f"),
                _fmt(row["ours_auc"], ".4f"),
                deltas[0],
                _fmt(row["ours_binary_accuracy"], ".4f"),
                deltas[1],
                "ok" if row["ours_ok"] else "FAILED",
            ]
        )
    print(
        tabulate(
            table,
            headers=[
                "rows",
                "workers",
                "ours wall s",
                "example wall s",
                "ratio",
                "goal/resolve",
                "ours peak MB",
                "example peak MB",
                "AUC",
                "ΔAUC ref",
                "accuracy",
                "Δacc ref",
                "ours",
            ],
            colalign=("right",) * 12 + ("left",),
            disable_numparse=True,
        )
    )
    print("(medians over --repeats runs; Δ ref = ours - the reference's, bound ±0.005; '-' = not run or no reference)")
    for workers, grown in results["growth"].items():
        components = grown["components"]
        if not components:
            continue
        sizes = sorted({int(r) for c in components.values() for r in c["seconds_by_rows"]})
        rows = [
            [name, *[_fmt(c["seconds_by_rows"].get(str(r)), ".1f") for r in sizes], _fmt(c["exponent"], ".2f")]
            for name, c in components.items()
        ]
        peak = grown["peak_rss_mb_by_rows"]
        rows.append(
            ["(peak RSS MB)", *[_fmt(peak.get(str(r)), ".0f") for r in sizes], _fmt(grown["peak_rss_exponent"], ".2f")]
        )
        print(f"\nours, --beam-workers {workers}, seconds per component (medians):")
        print(
            tabulate(
                rows,
                headers=["component", *[f"{r:,}" for r in sizes], "exponent"],
                colalign=("left",) + ("right",) * (len(sizes) + 1),
                disable_numparse=True,
            )
        )
        worst = grown["grows_worst"]
        if worst:
            print(
                f"grows worst: {worst['component']} (seconds ~ rows^{worst['exponent']:.2f}, "
                f"x{worst['growth_factor']:.1f} for x{worst['rows_factor']:.0f} rows)"
            )
    print("\nissue 12 targets (true / false / null = not every check could be made):")
    for workers, verdicts in results["targets"]["by_beam_workers"].items():
        print(
            f"  --beam-workers {workers}: goal {json.dumps(verdicts['goal'])}, "
            f"to resolve {json.dumps(verdicts['to_resolve'])}"
        )
        if verdicts["unmet"]:
            print(f"    unmet: {', '.join(verdicts['unmet'])}")
        if verdicts["unchecked"]:
            print(f"    unchecked: {', '.join(verdicts['unchecked'])}")
        if verdicts["not_compared"]:
            print(f"    reported, no reference figure: {', '.join(verdicts['not_compared'])}")


def plot(results: dict, path: Path) -> None:
    """Log-log seconds per component against rows, one panel per --beam-workers setting, the example's wall a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    growths = results["growth"]
    panels = list(growths) or [AUTO]
    fig, axes = plt.subplots(1, len(panels), figsize=(7.5 * len(panels), 7.5), squeeze=False, sharey=True)
    example_sizes = sorted({r["rows"] for r in results["runs"] if r["side"] == "example" and r["ok"]})
    example_walls = [
        _median([r["wall_seconds"] for r in results["runs"] if r["side"] == "example" and r["ok"] and r["rows"] == s])
        for s in example_sizes
    ]
    for ax, workers in zip(axes[0], panels, strict=True):
        components = growths[workers]["components"] if workers in growths else {}
        colors = plt.get_cmap("tab10")
        drawn = 0
        for name, comp in components.items():
            points = sorted((int(r), s) for r, s in comp["seconds_by_rows"].items() if s and s > 0)
            if not points or (not name.startswith("(") and max(s for _, s in points) < 0.5):
                continue  # sub-second components would only clutter the plot
            xs, ys = zip(*points, strict=True)
            exponent = comp["exponent"]
            label = f"{'ours, ' if name.startswith('(') else ''}{name.strip('()')}" + (
                f"  (~rows^{exponent:.2f})" if exponent is not None else ""
            )
            if name == "(total wall)":
                ax.plot(xs, ys, "-o", color="black", linewidth=2.5, label=label, zorder=3)
            elif name == "(outside components)":
                ax.plot(xs, ys, ":", color="grey", marker=".", label=label)
            else:
                ax.plot(xs, ys, "-o", color=colors(drawn % 10), markersize=4, label=label)
                drawn += 1
        if example_sizes:
            exponent = _exponent(dict(zip(example_sizes, example_walls, strict=True)))
            ax.plot(
                example_sizes,
                example_walls,
                "--X",
                color="crimson",
                linewidth=2,
                markersize=10,
                label="TFX example, total wall" + (f"  (~rows^{exponent:.2f})" if exponent is not None else ""),
                zorder=4,
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("rows")
        ax.set_title(f"tfxp run --beam-workers {workers}, {results['config']['train_steps']} train steps")
        ax.grid(True, which="both", alpha=0.3)
        ax.margins(x=0.08)
        # Below the axes, so it hides no line or marker.
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2, frameon=False)
    axes[0][0].set_ylabel("wall seconds")
    fig.suptitle("Wall time per component against rows (log-log)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


# ---------------------------------------------------------------- main


def _int_list(text: str) -> list[int]:
    """'15000,150_000' -> [15000, 150000] (order kept, duplicates dropped); ArgumentTypeError unless all >= 1."""
    try:
        values = [int(v.strip().replace("_", "")) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give comma-separated whole numbers") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: give comma-separated numbers >= 1")
    return list(dict.fromkeys(values))


def _workers_list(text: str) -> list[Workers]:
    """'auto,1,2' -> ["auto", 1, 2] (order kept, duplicates dropped); ArgumentTypeError for anything else."""
    values: list[Workers] = []
    for token in (t.strip().lower() for t in text.split(",")):
        if not token:
            continue
        if token == AUTO:
            values.append(AUTO)
            continue
        try:
            count = int(token)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: give 'auto' or whole numbers >= 1, comma-separated") from None
        if count < 1:
            raise argparse.ArgumentTypeError(f"{text!r}: worker counts must be >= 1")
        values.append(count)
    if not values:
        raise argparse.ArgumentTypeError(f"{text!r}: give 'auto' or whole numbers >= 1")
    return list(dict.fromkeys(values))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line arguments; sizes sorted, example sizes final (flags applied), reference resolved to a Path or None.

    Exits with status 2 (argparse) on bad values, an example size above 1.5M, or a
    --reference file that does not exist.
    """
    parser = argparse.ArgumentParser(
        description="How `tfxp run` scales with rows, side by side with TFX's taxi example, against issue 12's "
        "targets (~30 minutes on 2 cores; more with --with-example-1.5m or --with-15m)."
    )
    parser.add_argument(
        "--sizes",
        type=_int_list,
        default=list(DEFAULT_SIZES),
        metavar="N,N,...",
        help="Row counts for this pipeline (default 15000,150000,1500000).",
    )
    parser.add_argument(
        "--with-15m",
        dest="with_huge",
        action="store_true",
        help="Also run this pipeline (not the example) on 15,000,000 rows (a 1.8 GB CSV, generated in chunks).",
    )
    parser.add_argument(
        "--train-steps",
        type=int,
        default=300,
        metavar="N",
        help="`tfxp run --train-steps`, the same at every size (default 300).",
    )
    parser.add_argument(
        "--beam-workers",
        type=_workers_list,
        default=[AUTO],
        metavar="auto|N[,...]",
        help="`tfxp run --beam-workers`: 'auto' passes none, so the CLI's default decides (the count used is "
        "recorded when its --json reports it); N: 1 = in-memory DirectRunner, N>1 = multi-processing with N "
        "workers. A list runs ours once per setting per size; the first is the one grows_worst refers to "
        "(default auto).",
    )
    parser.add_argument(
        "--example-sizes",
        type=_int_list,
        default=list(DEFAULT_EXAMPLE_SIZES),
        metavar="N,N,...",
        help="Row counts TFX's example runs at, at most 1,500,000 (default 15000,150000).",
    )
    parser.add_argument(
        "--with-example-1.5m",
        dest="with_example_large",
        action="store_true",
        help="Also run TFX's example on 1,500,000 rows (about 11 minutes more).",
    )
    parser.add_argument("--skip-example", action="store_true", help="Do not run TFX's example at all.")
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        metavar="N",
        help="Runs per configuration, ours and the example alternating at each size; figures are medians (default 1).",
    )
    parser.add_argument(
        "--reference",
        default=None,
        metavar="FILE|none",
        help="An older scale.json whose metrics of ours are 'today's' for the +-0.005 check (same data and "
        f"train steps). Default: {DEFAULT_OUTPUT} if it exists (read before it is overwritten); 'none': no check.",
    )
    parser.add_argument("--seed", type=int, default=1, help="Seed of the data generator (default 1).")
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="Where data, run outputs and logs go (kept). Default: a new temporary directory.",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="Cache of generated CSVs, reused across invocations. Default: WORK_DIR/data.",
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="Results JSON (default %(default)s).")
    parser.add_argument("--plot", type=Path, default=DEFAULT_PLOT, help="Plot PNG (default %(default)s).")
    args = parser.parse_args(argv)
    if args.train_steps < 1:
        parser.error("--train-steps must be >= 1")
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    sizes = list(args.sizes)
    if args.with_huge and HUGE_SIZE not in sizes:
        sizes.append(HUGE_SIZE)
    args.sizes = sorted(sizes)
    example_sizes = [] if args.skip_example else list(args.example_sizes)
    if args.with_example_large and not args.skip_example and LARGE_EXAMPLE_SIZE not in example_sizes:
        example_sizes.append(LARGE_EXAMPLE_SIZE)
    too_big = [s for s in example_sizes if s > LARGE_EXAMPLE_SIZE]
    if too_big:
        parser.error(
            f"--example-sizes: TFX's example runs at most {LARGE_EXAMPLE_SIZE:,} rows here (at 15M it takes hours); "
            f"got {', '.join(f'{s:,}' for s in too_big)}"
        )
    args.example_sizes = sorted(example_sizes)
    if args.reference is None:
        args.reference = DEFAULT_OUTPUT if DEFAULT_OUTPUT.exists() else None
    elif args.reference.lower() == "none":
        args.reference = None
    else:
        args.reference = Path(args.reference)
        if not args.reference.is_file():
            parser.error(f"--reference {args.reference}: no such file")
    return args


def schedule(args: argparse.Namespace) -> list[tuple[int, int, str, Workers | None]]:
    """(rows, repeat, side, workers) in run order: by size; per repeat, every setting of ours then the example.

    Alternating within a size puts ours and the example under the same machine load.
    15M rows added by --with-15m run the first --beam-workers setting only (each run
    takes long); 15M given in --sizes runs every setting.
    """
    order = []
    for rows in sorted(set(args.sizes) | set(args.example_sizes)):
        settings = (
            args.beam_workers[:1] if rows == HUGE_SIZE and getattr(args, "with_huge", False) else args.beam_workers
        )
        configs: list[tuple[str, Workers | None]] = [("ours", w) for w in settings] if rows in args.sizes else []
        if rows in args.example_sizes:
            configs.append(("example", None))
        for repeat in range(1, args.repeats + 1):
            order.extend((rows, repeat, side, workers) for side, workers in configs)
    return order


def _describe(run: Run) -> str:
    who = f"ours (workers {run.beam_workers})" if run.side == "ours" else "TFX example"
    status = "ok" if run.ok else f"FAILED ({run.error})"
    used = f" used {run.beam_workers_used}" if run.beam_workers_used is not None else ""
    load = f"load {run.load_before[0]:.1f}->{run.load_after[0]:.1f}" if run.load_before and run.load_after else ""
    return (
        f"  {who:<22} {run.rows:>10,} rows {run.wall_seconds:8.1f} s  {run.rows_per_second:9,.0f} rows/s  "
        f"peak {run.peak_rss_mb:7.0f} MB  exit {run.exit_code}{used}  {load}  {status}"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Read before anything is written: by default the reference is the file this run overwrites.
    reference = None
    if args.reference is not None:
        try:
            reference = load_reference(args.reference)
        except (OSError, ValueError) as exc:
            print(f"reference {args.reference} unusable, metrics unchecked: {exc}", file=sys.stderr)
    work_dir = (args.work_dir or Path(tempfile.mkdtemp(prefix="tfxp-scale-"))).resolve()
    data_root = (args.data_dir or work_dir / "data").resolve()
    runs_dir = work_dir / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    print(f"scale benchmark work directory: {work_dir}", flush=True)
    if reference is not None:
        print(f"reference (today's metrics): {reference['path']} of {reference['date']}", flush=True)
    header = {
        "machine": machine_info(),
        "config": {
            "sizes": args.sizes,
            "train_steps": args.train_steps,
            "beam_workers": args.beam_workers,
            "example_sizes": args.example_sizes,
            "skip_example": args.skip_example,
            "repeats": args.repeats,
            "seed": args.seed,
            "work_dir": str(work_dir),
            "data_dir": str(data_root),
            "example_train_steps": "its own (1000)",
            "reference": reference,
        },
    }
    datasets: dict[str, dict] = {}
    runs: list[Run] = []

    def save() -> dict:  # after every run, so an interrupted benchmark keeps what it measured
        results = build_results(header, datasets, runs, args.beam_workers, reference)
        write_json(args.output, results)
        return results

    for rows, repeat, side, workers in schedule(args):
        if str(rows) not in datasets:
            print(f"data: {rows:,} rows ...", flush=True)
            _, meta = dataset(data_root, rows, args.seed)
            datasets[str(rows)] = meta
            print(
                f"  {meta['path']} ({meta['bytes'] / 2**20:.0f} MB, "
                + ("reused)" if meta["reused"] else f"generated in {meta['generate_seconds']:.0f} s)"),
                flush=True,
            )
        data_dir = Path(datasets[str(rows)]["path"]).parent
        what = f"ours, --beam-workers {workers}" if side == "ours" else "TFX example"
        print(f"{rows:,} rows: {what} (run {repeat} of {args.repeats}) ...", flush=True)
        run = run_one(side, rows, workers, data_dir, runs_dir, args.train_steps, repeat)
        runs.append(run)
        print(_describe(run), flush=True)
        save()

    results = save()
    try:
        plot(results, args.plot)
    except Exception as exc:  # noqa: BLE001 - the numbers matter more than the picture
        print(f"plot failed: {type(exc).__name__}: {exc}", file=sys.stderr)
    print()
    print_table(results)
    print(f"\nresults: {args.output}\nplot:    {args.plot}\nlogs:    {runs_dir}")
    return 0 if runs and all(r.ok for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
