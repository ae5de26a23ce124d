"""Benchmark: this project's pipeline (`tfxp run`) against TFX's own taxi example.

What is measured, for each side, in one invocation:

  A  this pipeline:  `tfxp run --output DIR --json` (CLI, subprocess)
  B  TFX's example:  `python bench/tfx_example.py DIR` (taxi_pipeline_native_keras)

Each side runs once into a brand-new output directory ("first run"), then again
into the same directory ("cached re-run", where TFX's cache should skip work).
The order is A-first, B-first, A-cached, B-cached so that OS page-cache warmth
benefits both sides alike. For every run the bench records:

  * wall seconds, timed here around the subprocess (not the tool's own figure,
    which misses interpreter start-up and imports; that one is kept as well),
  * peak RSS of the whole process tree (the process plus all descendants,
    sampled every 0.2 s; Beam's multi-processing workers are children; pages
    shared between processes count once per process, so it is an upper bound),
  * the Overall-slice eval metrics (binary_accuracy, auc when computed).

The TFX example's eval config only computes BinaryAccuracy plus the Keras
model's compiled metrics, so its AUC is usually absent (null in the results).

Results go to bench/results/pipeline.json (machine info, raw runs, medians,
ratios A/B and the targets from the issue: first-run wall <= 0.5x the
example's, eval accuracy >= the example's, cached re-run <= 0.5x the
example's), and a table is printed. Subprocess output goes to log files under
the work directory, which is kept for inspection.

Exit status: 0 when every run succeeded, whether or not targets are met (this
is a benchmark, not a test); 1 when a run failed (A exiting non-zero, i.e. not
pushed, or B failing), after writing what was collected.

Run:  make bench                      (= python -m bench.pipeline)
      python -m bench.pipeline --repeat 3
      python -m bench.pipeline --skip-example --train-steps 50   (quick, A only)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tabulate import tabulate

BENCH_DIR = Path(__file__).resolve().parent
from bench.common import (  # noqa: E402
    execute as _execute,
    last_json_object as _last_json_object,
    last_line_json as _last_line_json,
    machine_info,
    median as _median,
    write_json,
)
from tfxp.pipeline.report import finite as _finite  # noqa: E402

RESULTS_FILE = BENCH_DIR / "results" / "pipeline.json"
EXAMPLE_SCRIPT = BENCH_DIR / "tfx_example.py"
TARGET_WALL_RATIO = 0.5

SIDES = {"A": "this pipeline", "B": "TFX example"}
# Interleaved so both sides see the same warm-cache conditions.
SCHEDULE = (("A", "first"), ("B", "first"), ("A", "cached"), ("B", "cached"))


@dataclass
class Run:
    side: str
    phase: str
    repeat: int
    output_dir: str
    command: list[str]
    exit_code: int | None = None
    ok: bool = False
    wall_seconds: float | None = None
    reported_wall_seconds: float | None = None
    peak_rss_mb: float | None = None
    binary_accuracy: float | None = None
    auc: float | None = None
    metrics: dict = field(default_factory=dict)
    components: list[dict] = field(default_factory=list)
    error: str | None = None
    stdout_log: str = ""
    stderr_log: str = ""


# ---------------------------------------------------------------- running


def _tfxp_command(args: argparse.Namespace, output_dir: Path) -> list[str]:
    # The venv's console script, next to this interpreter.
    command = [str(Path(sys.executable).parent / "tfxp"), "run", "--output", str(output_dir), "--json"]
    if args.data:
        command += ["--data", str(args.data)]
    if args.train_steps:
        command += ["--train-steps", str(args.train_steps)]
    return command


def _example_command(args: argparse.Namespace, output_dir: Path) -> list[str]:
    command = [sys.executable, str(EXAMPLE_SCRIPT), str(output_dir)]
    if args.data:
        # The example's CsvExampleGen reads a folder, not a file.
        data = Path(args.data).resolve()
        command += ["--data", str(data if data.is_dir() else data.parent)]
    return command


def _fill_from_tfxp(run: Run, summary: dict | None) -> None:
    if summary is None:
        run.error = "no JSON summary on stdout"
        return
    overall = summary.get("metrics", {}).get("Overall", {})
    run.metrics = summary.get("metrics", {})
    run.binary_accuracy = overall.get("binary_accuracy")
    run.auc = overall.get("auc")
    run.components = summary.get("components", [])
    run.reported_wall_seconds = summary.get("wall_seconds")
    if summary.get("exit_code") not in (None, run.exit_code):
        run.error = f"JSON exit_code {summary.get('exit_code')} != process exit code {run.exit_code}"
    elif run.exit_code != 0:
        run.error = f"{summary.get('result')}: {summary.get('error')}"


def _fill_from_example(run: Run, summary: dict | None) -> None:
    if summary is None:
        run.error = "no JSON line on stdout"
        return
    run.metrics = summary.get("metrics", {})
    run.binary_accuracy = run.metrics.get("binary_accuracy")
    run.auc = run.metrics.get("auc")
    run.reported_wall_seconds = summary.get("wall_seconds")
    if not run.metrics:
        run.error = "example produced no evaluation metrics"


def run_one(args: argparse.Namespace, side: str, phase: str, repeat: int, output_dir: Path, log_dir: Path) -> Run:
    command = _tfxp_command(args, output_dir) if side == "A" else _example_command(args, output_dir)
    stem = f"{side}-{phase}"
    run = Run(
        side=side,
        phase=phase,
        repeat=repeat,
        output_dir=str(output_dir),
        command=command,
        stdout_log=str(log_dir / f"{stem}.stdout"),
        stderr_log=str(log_dir / f"{stem}.stderr"),
    )
    run.exit_code, run.wall_seconds, run.peak_rss_mb = _execute(command, Path(run.stdout_log), Path(run.stderr_log))
    stdout = Path(run.stdout_log).read_text(errors="replace")
    if side == "A":
        _fill_from_tfxp(run, _last_json_object(stdout))
    else:
        _fill_from_example(run, _last_line_json(stdout))
        if run.exit_code != 0:
            run.error = f"exit code {run.exit_code}" + (f"; {run.error}" if run.error else "")
    run.ok = run.exit_code == 0 and run.error is None
    return run


# ---------------------------------------------------------------- summarising


def medians(runs: list[Run]) -> dict[str, dict[str, dict[str, float | None]]]:
    """{side: {phase: {measure: median over successful repeats}}}."""
    out: dict = {}
    for side in SIDES:
        for phase in ("first", "cached"):
            chosen = [r for r in runs if r.side == side and r.phase == phase and r.ok]
            if not chosen:
                continue
            out.setdefault(side, {})[phase] = {
                "runs": len(chosen),
                "wall_seconds": _median([r.wall_seconds for r in chosen]),
                "reported_wall_seconds": _median([r.reported_wall_seconds for r in chosen]),
                "peak_rss_mb": _median([r.peak_rss_mb for r in chosen]),
                "binary_accuracy": _median([r.binary_accuracy for r in chosen]),
                "auc": _median([r.auc for r in chosen]),
            }
    return out


def _get(med: dict, side: str, phase: str, key: str) -> float | None:
    return med.get(side, {}).get(phase, {}).get(key)


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _peak_rss(med: dict, side: str) -> float | None:
    # The tree's peak over both phases; in practice the first run's.
    values = [v["peak_rss_mb"] for v in med.get(side, {}).values() if v["peak_rss_mb"] is not None]
    return max(values, default=None)


def _eval(med: dict, side: str, key: str) -> float | None:
    # Metrics come from the first run; the cached run replays the same artifacts.
    return _get(med, side, "first", key)


def comparison(med: dict) -> dict[str, dict]:
    """Rows of the table: A value, B value, A/B ratio, target and whether met."""
    rows = {
        "first_run_wall_seconds": (
            _get(med, "A", "first", "wall_seconds"),
            _get(med, "B", "first", "wall_seconds"),
            "<=",
            TARGET_WALL_RATIO,
        ),
        "cached_rerun_wall_seconds": (
            _get(med, "A", "cached", "wall_seconds"),
            _get(med, "B", "cached", "wall_seconds"),
            "<=",
            TARGET_WALL_RATIO,
        ),
        "peak_rss_mb": (_peak_rss(med, "A"), _peak_rss(med, "B"), None, None),
        "eval_binary_accuracy": (_eval(med, "A", "binary_accuracy"), _eval(med, "B", "binary_accuracy"), ">=", 1.0),
        "eval_auc": (_eval(med, "A", "auc"), _eval(med, "B", "auc"), None, None),
    }
    out = {}
    for name, (a, b, op, bound) in rows.items():
        ratio = _ratio(a, b)
        met = None
        if op is not None and ratio is not None:
            met = ratio <= bound if op == "<=" else a >= b
        out[name] = {
            "this_pipeline": a,
            "tfx_example": b,
            "ratio": ratio,
            "target": _target_text(op, bound),
            "met": met,
        }
    return out


def _target_text(op: str | None, bound: float | None) -> str | None:
    if op is None:
        return None
    return f"{op} {bound:g}x example" if bound != 1.0 else f"{op} example"


def ratios(table: dict[str, dict]) -> dict[str, float | None]:
    return {
        "first_run_wall_ratio": table["first_run_wall_seconds"]["ratio"],
        "cached_wall_ratio": table["cached_rerun_wall_seconds"]["ratio"],
        "peak_rss_ratio": table["peak_rss_mb"]["ratio"],
        "accuracy_ratio": table["eval_binary_accuracy"]["ratio"],
        "auc_ratio": table["eval_auc"]["ratio"],
    }


def targets(table: dict[str, dict]) -> dict[str, dict]:
    """The issue's three targets, each with the measured ratio and met/not met."""
    return {
        "first_run_wall_le_half_example": {
            "ratio": table["first_run_wall_seconds"]["ratio"],
            "met": table["first_run_wall_seconds"]["met"],
        },
        "eval_accuracy_ge_example": {
            "this_pipeline": table["eval_binary_accuracy"]["this_pipeline"],
            "tfx_example": table["eval_binary_accuracy"]["tfx_example"],
            "met": table["eval_binary_accuracy"]["met"],
        },
        "cached_rerun_wall_le_half_example": {
            "ratio": table["cached_rerun_wall_seconds"]["ratio"],
            "met": table["cached_rerun_wall_seconds"]["met"],
        },
    }


def write_results(path: Path, header: dict, runs: list[Run]) -> dict:
    med = medians(runs)
    table = comparison(med)
    first_a = [r for r in runs if r.side == "A" and r.phase == "first" and r.ok]
    results = {
        **header,
        "runs": [asdict(r) for r in runs],
        "medians": med,
        "comparison": table,
        "ratios": ratios(table),
        "targets": targets(table),
        # Where the first run's time goes, to know what to optimise next.
        "this_pipeline_first_run_components": first_a[0].components if first_a else [],
    }
    write_json(path, _finite(results))
    return results


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_table(results: dict) -> None:
    # (label, number format): seconds and MB do not need accuracy's precision.
    labels = {
        "first_run_wall_seconds": ("first-run wall s", ".1f"),
        "cached_rerun_wall_seconds": ("cached re-run wall s", ".1f"),
        "peak_rss_mb": ("peak RSS MB", ".0f"),
        "eval_binary_accuracy": ("eval accuracy", ".4f"),
        "eval_auc": ("eval AUC", ".4f"),
    }
    rows = []
    for key, (label, fmt) in labels.items():
        row = results["comparison"][key]
        met = "-" if row["met"] is None else ("yes" if row["met"] else "no")
        rows.append(
            [
                label,
                _fmt(row["this_pipeline"], fmt),
                _fmt(row["tfx_example"], fmt),
                _fmt(row["ratio"], ".2f"),
                row["target"] or "-",
                met,
            ]
        )
    print(
        tabulate(
            rows,
            headers=["", SIDES["A"], SIDES["B"], "ratio", "target", "met"],
            colalign=("left", "right", "right", "right", "left", "left"),
            disable_numparse=True,
        )
    )
    components = results["this_pipeline_first_run_components"]
    if components:
        print("\nthis pipeline, first run, per component:")
        print(
            tabulate(
                [[c.get("id"), c.get("status"), c.get("seconds")] for c in components],
                headers=["component", "status", "s"],
                floatfmt=".1f",
            )
        )


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark `tfxp run` against TFX's own Chicago taxi example (takes minutes)."
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="Where outputs and logs go (kept). Default: a new temporary directory.",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="N",
        help="Repeat the whole set N times and report medians (default 1).",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="Passed to `tfxp run --data`; the example gets its folder. Default: each side's own "
        "embedded taxi CSV (the same file).",
    )
    parser.add_argument(
        "--train-steps",
        type=int,
        default=None,
        metavar="N",
        help="Passed to `tfxp run --train-steps` only; the example keeps its own 1000.",
    )
    parser.add_argument(
        "--skip-example",
        action="store_true",
        help="Run only this pipeline (quick iteration); ratios and targets are then null.",
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    if args.train_steps is not None and args.train_steps < 1:
        parser.error("--train-steps must be >= 1")
    if args.data is not None and not args.data.exists():
        parser.error(f"--data {args.data} does not exist")
    return args


def _describe(run: Run) -> str:
    status = "ok" if run.ok else f"FAILED ({run.error})"
    acc = "-" if run.binary_accuracy is None else f"{run.binary_accuracy:.4f}"
    return (
        f"  {SIDES[run.side]:<14} {run.phase:<7} {run.wall_seconds:8.1f} s  "
        f"peak {run.peak_rss_mb:7.0f} MB  accuracy {acc}  exit {run.exit_code}  {status}"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="tfxp-bench-"))).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    header = {
        "machine": machine_info(),
        "config": {
            "repeat": args.repeat,
            "data": str(args.data) if args.data else None,
            "train_steps": args.train_steps,
            "skip_example": args.skip_example,
            "workdir": str(workdir),
        },
    }
    schedule = [(s, p) for s, p in SCHEDULE if not (args.skip_example and s == "B")]
    print(f"benchmark work directory: {workdir}", flush=True)

    runs: list[Run] = []
    for repeat in range(args.repeat):
        # A fresh directory per repeat guarantees the first run really is uncached,
        # even when --workdir points at a directory used before.
        set_dir = Path(tempfile.mkdtemp(prefix=f"repeat{repeat + 1}-", dir=workdir))
        failed: set[str] = set()
        for side, phase in schedule:
            if side in failed:
                continue  # a cached re-run of a failed first run measures nothing useful
            print(f"[{repeat + 1}/{args.repeat}] {SIDES[side]}, {phase} run ...", flush=True)
            run = run_one(args, side, phase, repeat + 1, set_dir / side, set_dir)
            runs.append(run)
            print(_describe(run), flush=True)
            if not run.ok:
                failed.add(side)
            write_results(RESULTS_FILE, header, runs)  # keep partial results if interrupted
        if failed:
            break  # further repeats would fail the same way

    results = write_results(RESULTS_FILE, header, runs)
    print()
    print_table(results)
    print(f"\nresults: {RESULTS_FILE}\nlogs:    {workdir}")
    return 0 if runs and all(r.ok for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
