"""bench/scale.py's pure parts: issue 12's targets, ratios, growth exponents, arguments (no pipeline runs).

The whole benchmark is exercised by its smoke invocation (see the module
docstring), which runs real pipelines and takes minutes; these tests take seconds.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCALE_PY = Path(__file__).resolve().parents[2] / "bench" / "scale.py"


def _load_scale():
    # A script, not a package module: load it by path. Registered in sys.modules
    # first because its dataclasses look their module up while being defined.
    spec = importlib.util.spec_from_file_location("bench_scale_under_test", SCALE_PY)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


scale = _load_scale()
AUTO = scale.AUTO


def make_run(side="ours", rows=150_000, workers=AUTO, wall=10.0, rss=1000.0, ok=True, auc=0.96, acc=0.90, **kw):
    """A finished Run as run_one() would record it (components: CsvExampleGen and Evaluator)."""
    run = scale.Run(
        side=side,
        rows=rows,
        beam_workers=workers if side == "ours" else None,
        data_dir="/data",
        output_dir="/out",
        command=[],
        ok=ok,
        exit_code=0 if ok else 1,
        wall_seconds=wall,
        peak_rss_mb=rss,
        auc=auc if ok else None,
        binary_accuracy=acc if ok else None,
        components=[
            {"id": "CsvExampleGen", "status": "finished", "seconds": wall * 0.4},
            {"id": "Evaluator", "status": "finished", "seconds": wall * 0.5},
        ],
        **kw,
    )
    run.rows_per_second = rows / wall
    run.outside_components_seconds = wall * 0.1
    return run


# ---------------------------------------------------------------- arguments


def test_defaults_measure_ours_at_three_sizes_and_the_example_at_two(tmp_path):
    args = scale.parse_args(["--reference", "none"])
    assert args.sizes == [15_000, 150_000, 1_500_000]
    assert args.example_sizes == [15_000, 150_000]
    assert args.beam_workers == [AUTO]
    assert args.repeats == 1
    assert args.reference is None


def test_beam_workers_accepts_auto_and_counts_in_order():
    assert scale.parse_args(["--beam-workers", "auto,1,2,1"]).beam_workers == [AUTO, 1, 2]
    assert scale.parse_args(["--beam-workers", "2, AUTO"]).beam_workers == [2, AUTO]


@pytest.mark.parametrize("bad", ["0", "two", "auto,-1", ","])
def test_beam_workers_refuses_anything_else(bad):
    with pytest.raises(SystemExit):
        scale.parse_args(["--beam-workers", bad])


def test_with_15m_adds_15m_rows_for_ours_only():
    args = scale.parse_args(["--with-15m", "--beam-workers", "auto,2"])
    assert args.sizes == [15_000, 150_000, 1_500_000, 15_000_000]
    assert 15_000_000 not in args.example_sizes
    at_15m = [(side, w) for rows, _, side, w in scale.schedule(args) if rows == 15_000_000]
    assert at_15m == [("ours", AUTO)]  # the first setting only; never the example


def test_the_example_never_runs_above_1_5m_rows():
    with pytest.raises(SystemExit):
        scale.parse_args(["--example-sizes", "15000000"])
    assert scale.parse_args(["--with-example-1.5m"]).example_sizes == [15_000, 150_000, 1_500_000]
    assert scale.parse_args(["--with-example-1.5m", "--skip-example"]).example_sizes == []


def test_schedule_alternates_ours_and_the_example_per_repeat():
    args = scale.parse_args(
        ["--sizes", "3000", "--example-sizes", "3000", "--beam-workers", "auto,1", "--repeats", "2"]
    )
    assert scale.schedule(args) == [
        (3000, 1, "ours", AUTO),
        (3000, 1, "ours", 1),
        (3000, 1, "example", None),
        (3000, 2, "ours", AUTO),
        (3000, 2, "ours", 1),
        (3000, 2, "example", None),
    ]


def test_reference_must_exist(tmp_path):
    with pytest.raises(SystemExit):
        scale.parse_args(["--reference", str(tmp_path / "missing.json")])


def test_auto_passes_no_beam_workers_flag():
    auto = scale.ours_command(Path("/d"), Path("/o"), 300, AUTO)
    assert "--beam-workers" not in auto and auto[-2:] == ["--train-steps", "300"]
    assert scale.ours_command(Path("/d"), Path("/o"), 300, 2)[-2:] == ["--beam-workers", "2"]
    with pytest.raises(ValueError):
        scale.ours_command(Path("/d"), Path("/o"), 300, 0)


# ---------------------------------------------------------------- ratios, exponents, medians


def test_exponent_is_the_log_log_slope():
    assert scale._exponent({1_000: 2.0, 10_000: 20.0, 100_000: 200.0}) == pytest.approx(1.0)
    assert scale._exponent({1_000: 4.0, 100_000: 40.0}) == pytest.approx(0.5)
    assert scale._exponent({1_000: 4.0}) is None
    assert scale._exponent({1_000: 4.0, 10_000: 0.0}) is None  # non-positive values are left out


def test_aggregate_takes_medians_of_successful_runs():
    runs = [make_run(wall=10.0), make_run(wall=30.0), make_run(wall=14.0), make_run(wall=999.0, ok=False)]
    agg = scale.aggregate(runs)
    assert (agg["runs"], agg["ok_runs"], agg["ok"]) == (4, 3, False)
    assert agg["wall_seconds"] == 14.0
    assert agg["components"]["Evaluator"] == pytest.approx(7.0)
    assert agg["rows_per_second"] == pytest.approx(150_000 / 14.0)
    assert scale.aggregate([]) is None


def test_aggregate_records_the_worker_counts_auto_used():
    agg = scale.aggregate([make_run(beam_workers_used=2), make_run(beam_workers_used=2), make_run()])
    assert agg["beam_workers_used"] == [2]
    assert scale.aggregate([make_run()])["beam_workers_used"] is None  # a CLI that does not report it


# ---------------------------------------------------------------- targets


@pytest.mark.parametrize(
    ("rows", "ours_wall", "goal", "to_resolve"),
    [
        (150_000, 25.0, True, True),  # 0.25x
        (150_000, 45.0, False, True),  # 0.45x: resolves the issue, misses the goal
        (1_500_000, 60.0, False, False),  # 0.6x
        (15_000, 40.0, True, True),  # 0.4x: the 15k bound at both levels
        (15_000, 45.0, False, False),
    ],
)
def test_wall_ratio_bounds_per_size(rows, ours_wall, goal, to_resolve):
    ours = scale.aggregate([make_run(rows=rows, wall=ours_wall)])
    example = scale.aggregate([make_run(side="example", rows=rows, wall=100.0)])
    check = scale.wall_ratio_check(AUTO, rows, ours, example)
    assert check["value"] == pytest.approx(ours_wall / 100.0)
    assert (check["met"], check["met_to_resolve"]) == (goal, to_resolve)


def test_wall_ratio_is_unchecked_without_a_measured_example():
    ours = scale.aggregate([make_run(rows=1_500_000)])
    check = scale.wall_ratio_check(AUTO, 1_500_000, ours, None)
    assert check["met"] is None and check["met_to_resolve"] is None
    assert "--with-example-1.5m" in check["note"]
    failed_example = scale.aggregate([make_run(side="example", rows=1_500_000, ok=False)])
    assert scale.wall_ratio_check(AUTO, 1_500_000, ours, failed_example)["met"] is None
    failed_ours = scale.aggregate([make_run(rows=1_500_000, ok=False)])
    assert scale.wall_ratio_check(AUTO, 1_500_000, failed_ours, None)["met"] is False


def test_peak_rss_sublinear_and_bounded():
    assert scale.rss_exponent_check(AUTO, {15_000: 1000.0, 1_500_000: 1900.0})["met"] is True
    linear = scale.rss_exponent_check(AUTO, {15_000: 10.0, 1_500_000: 1000.0})
    assert linear["value"] == pytest.approx(1.0) and linear["met"] is False
    assert scale.rss_exponent_check(AUTO, {15_000: 1000.0})["met"] is None
    at_15m = scale.aggregate([make_run(rows=15_000_000, rss=8192.0)])
    assert scale.peak_rss_check("15m_within_8gb", AUTO, 15_000_000, at_15m, 8192.0, "")["met"] is True
    over = scale.aggregate([make_run(rows=1_500_000, rss=2049.0)])
    assert scale.peak_rss_check("peak_rss_at_1.5m", AUTO, 1_500_000, over, 2048.0, "")["met"] is False


def test_verdict_is_false_on_any_miss_then_null_on_any_unchecked():
    met, missed, unchecked = {"met": True}, {"met": False}, {"met": None}
    assert scale.verdict([met, met]) is True
    assert scale.verdict([met, unchecked]) is None
    assert scale.verdict([unchecked, missed]) is False
    assert scale.verdict([]) is None
    assert scale.verdict([met, {"met": None, "counted": False}]) is True


def _reference(tmp_path, train_steps=300, workers=(1, 2)):
    """A scale.json as build_results() writes it: ours at 15k/150k/1.5M with AUC 0.96 (0.95 at 15k with
    the first setting when there are several), accuracy 0.90."""
    runs = [make_run(rows=r, workers=w) for r in (15_000, 150_000, 1_500_000) for w in workers]
    if len(workers) > 1:
        runs[0].auc = 0.95  # 15k, the first setting
    header = {"machine": {"date": "2026-11-30"}, "config": {"train_steps": train_steps, "seed": 1}}
    header["config"]["beam_workers"] = list(workers)
    path = tmp_path / "reference.json"
    scale.write_json(path, scale.build_results(header, {}, runs, list(workers)))
    return scale.load_reference(path)


def test_reference_metrics_prefer_the_same_worker_count(tmp_path):
    reference = _reference(tmp_path)
    same, how = scale.reference_metrics(reference, 15_000, 2, None)
    assert (same["auc"], same["beam_workers"], how) == (0.96, 2, "same beam worker count")
    # auto that reported 2 workers compares with the reference's 2-worker run ...
    assert scale.reference_metrics(reference, 15_000, AUTO, [2])[0]["beam_workers"] == 2
    # ... and one that did not report falls back to the reference's default (first) setting.
    fallback, how = scale.reference_metrics(reference, 15_000, AUTO, None)
    assert (fallback["auc"], fallback["beam_workers"]) == (0.95, 1)
    assert scale.reference_metrics(reference, 3_000, AUTO, None)[0] is None


def test_reference_metrics_match_auto_runs_by_the_count_they_used(tmp_path):
    runs = [make_run(rows=15_000, workers=AUTO, beam_workers_used=2, auc=0.97), make_run(rows=15_000, workers=1)]
    header = {"machine": {}, "config": {"train_steps": 300, "seed": 1, "beam_workers": [1, AUTO]}}
    path = tmp_path / "new-style.json"
    scale.write_json(path, scale.build_results(header, {}, runs, [1, AUTO]))
    reference = scale.load_reference(path)
    assert scale.reference_metrics(reference, 15_000, 2, None)[0]["auc"] == 0.97
    assert scale.reference_metrics(reference, 15_000, AUTO, None) == (
        {"auc": 0.97, "binary_accuracy": 0.9, "beam_workers": AUTO, "runs": 1},
        "same --beam-workers setting",
    )


def test_metrics_within_0_005_of_the_reference(tmp_path):
    reference = _reference(tmp_path, workers=(1,))
    close = scale.aggregate([make_run(rows=150_000, auc=0.9649, acc=0.8940)])
    checks = {c["target"]: c for c in scale.metric_checks(AUTO, 150_000, close, reference, None)}
    assert checks["auc_vs_reference"]["met"] is True
    assert checks["auc_vs_reference"]["value"] == pytest.approx(0.0049)
    assert checks["binary_accuracy_vs_reference"]["met"] is False  # 0.006 below
    unchecked = scale.metric_checks(AUTO, 150_000, close, reference, "reference ran 300 train steps, this run 20")
    assert [c["met"] for c in unchecked] == [None, None]
    assert [c["met"] for c in scale.metric_checks(AUTO, 150_000, close, None, None)] == [None, None]


def test_reference_is_only_comparable_on_the_same_data_and_steps(tmp_path):
    reference = _reference(tmp_path)
    assert scale.reference_comparable(reference, 300, 1, {}, 150_000) is None
    assert "train steps" in scale.reference_comparable(reference, 20, 1, {}, 150_000)
    assert "seed" in scale.reference_comparable(reference, 300, 2, {}, 150_000)


def test_targets_over_a_whole_invocation(tmp_path):
    reference = _reference(tmp_path, workers=(1,))
    runs = [
        make_run(rows=15_000, wall=30.0, rss=900.0),
        make_run(side="example", rows=15_000, wall=100.0),
        make_run(rows=150_000, wall=40.0, rss=1100.0),
        make_run(side="example", rows=150_000, wall=100.0),
        make_run(rows=1_500_000, wall=200.0, rss=1800.0),
    ]
    result = scale.targets(runs, [AUTO], reference, 300, 1, {})
    verdicts = result["by_beam_workers"][AUTO]
    # 150k at 0.4x misses the 0.3 goal; 1.5M's ratio and 15M are unchecked (not run).
    assert verdicts["goal"] is False
    assert verdicts["to_resolve"] is None
    assert verdicts["unmet"] == ["wall_ratio@150,000"]
    assert set(verdicts["unchecked"]) == {"wall_ratio@1,500,000", "15m_within_8gb@15,000,000"}
    runs += [make_run(side="example", rows=1_500_000, wall=1000.0), make_run(rows=15_000_000, rss=5000.0)]
    verdicts = scale.targets(runs, [AUTO], reference, 300, 1, {})["by_beam_workers"][AUTO]
    assert verdicts["to_resolve"] is True
    # The reference never ran 15M: its metrics are reported, not held to a figure that does not exist.
    assert verdicts["not_compared"] == ["auc_vs_reference@15,000,000", "binary_accuracy_vs_reference@15,000,000"]
    runs.append(make_run(rows=150_000, ok=False))  # a failed run fails the targets
    assert scale.targets(runs, [AUTO], reference, 300, 1, {})["by_beam_workers"][AUTO]["to_resolve"] is False


def test_results_print_and_plot(tmp_path, capsys):
    runs = [
        make_run(rows=15_000, wall=30.0, workers=AUTO, beam_workers_used=1),
        make_run(rows=150_000, wall=60.0, workers=AUTO, beam_workers_used=2),
        make_run(side="example", rows=15_000, wall=100.0),
        make_run(side="example", rows=150_000, wall=150.0),
    ]
    header = {"machine": {}, "config": {"train_steps": 300, "seed": 1, "beam_workers": [AUTO]}}
    results = scale.build_results(header, {}, runs, [AUTO])
    json.dumps(results, allow_nan=False)  # strict JSON
    assert results["comparison"][0]["wall_ratio"] == pytest.approx(0.3)
    assert results["grows_worst"]["component"] in {"CsvExampleGen", "Evaluator"}
    scale.print_table(results)
    out = capsys.readouterr().out
    assert "auto (1)" in out and "goal false" in out
    scale.plot(results, tmp_path / "scale.png")
    assert (tmp_path / "scale.png").stat().st_size > 10_000


def test_the_generator_writes_in_chunks_with_one_header(tmp_path, monkeypatch):
    # 15M rows are written CHUNK_ROWS at a time; a small chunk shows the seams on 250 rows.
    import pandas as pd

    monkeypatch.setattr(scale, "CHUNK_ROWS", 100)
    facts = scale.generate_csv(250, 1, tmp_path / "data.csv")
    frame = pd.read_csv(tmp_path / "data.csv")
    source = pd.read_csv(scale.SOURCE_CSV)
    assert facts["rows"] == len(frame) == 250
    assert list(frame.columns) == list(source.columns)  # the header once, at the top

    def tip_rate(f: pd.DataFrame) -> float:
        return float((f["tips"] > scale.LABEL_TIP_FRACTION * f["fare"]).mean())

    assert abs(tip_rate(frame) - tip_rate(source)) < 0.1  # resampled rows keep their labels (fixed seed)
