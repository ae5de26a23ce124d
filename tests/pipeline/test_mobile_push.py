"""The mobile step never loses what was pushed (issue 17): a TFLite conversion failure after the serving
push exits 5, saying what was pushed (the serving version, on disk) and what wasn't and why; a variant
rejected by its parity gate says in words what failed.

Real `tfxp run`s on a small wage-like table into one output: MobilePusher failing unexpectedly (fail
point `mobile_pusher:error`, a RuntimeError), then the conversion failing (`mobile_pusher:conversion`, a
ConversionError where MobilePusher converts; tfxp.pipeline.failpoints), everything before it cached.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest
from pipeline_harness import tfxp_run
from wage_data import wage_rows, write_table

pytestmark = pytest.mark.slow

NAME = "wage"
TRAIN_STEPS = 50


def _project(work: Path) -> Path:
    """`tfxp init` on the wage table (label union): a project folder."""
    import subprocess
    import sys

    data = write_table(work / "wage.csv", wage_rows())
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-m", "tfxp.cli", "init", "--data", str(data), "--label", "union", "--dir", "project"],
        capture_output=True,
        text=True,
        cwd=work,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return work / "project"


def _run(work: Path, failpoint: str) -> tuple[int, dict, str]:
    return tfxp_run(
        work / "wage.csv",
        work / "out",
        "--project",
        str(work / "project"),
        name=NAME,
        train_steps=TRAIN_STEPS,
        env={"TFXP_FAILPOINT": failpoint},
    )


@pytest.fixture(scope="module")
def failed_mobile_pusher(tmp_path_factory):
    """The MobilePusher fails unexpectedly (a RuntimeError) after a real serving push."""
    work = tmp_path_factory.mktemp("mobile")
    _project(work)
    code, summary, stderr = _run(work, "mobile_pusher:error")
    return work, code, summary, stderr


@pytest.fixture(scope="module")
def failed_conversion(failed_mobile_pusher):
    """Then, same output, the conversion raises ConversionError (everything before MobilePusher cached)."""
    work = failed_mobile_pusher[0]
    code, summary, stderr = _run(work, "mobile_pusher:conversion")
    return work, code, summary, stderr


def test_an_unexpected_mobile_pusher_failure_after_the_serving_push_exits_5_not_1(failed_mobile_pusher):
    work, code, summary, _ = failed_mobile_pusher
    assert code == 5, summary
    assert summary["pushed"] and not summary["mobile_pushed"], summary
    assert (Path(summary["pushed_path"]) / "saved_model.pb").exists()
    assert summary["mobile_error"] == "RuntimeError: failpoint TFXP_FAILPOINT=mobile_pusher:error"
    assert summary["error"] == (
        f"pushed for serving: {summary['pushed_path']} (version {summary['pushed_version']}); "
        "mobile (TFLite): not pushed: RuntimeError: failpoint TFXP_FAILPOINT=mobile_pusher:error"
    )
    statuses = {c["id"]: c["status"] for c in summary["components"]}
    assert statuses["Pusher"] == "finished" and statuses["MobilePusher"] == "failed", statuses


def test_a_conversion_failure_after_the_serving_push_exits_5_and_keeps_the_serving_version(failed_conversion):
    work, code, summary, _ = failed_conversion
    assert code == 5, summary
    assert summary["result"] == "mobile_failed"
    assert summary["blessed"] and summary["pushed"] and not summary["mobile_pushed"], summary
    version = summary["pushed_version"]
    serving = work / "out" / "serving" / NAME / version
    assert summary["pushed_path"] == str(serving)
    assert (serving / "saved_model.pb").exists()  # what was pushed is there to serve
    assert not (work / "out" / "mobile" / NAME).exists() or os.listdir(work / "out" / "mobile" / NAME) == []
    assert summary["mobile_error"].startswith("ConversionError: failpoint"), summary["mobile_error"]
    error = summary["error"]
    assert f"pushed for serving: {serving} (version {version})" in error, error
    assert "mobile (TFLite): not pushed: ConversionError" in error, error
    assert "unexpected" not in error and "MobilePusher failed" not in error
    statuses = {c["id"]: c["status"] for c in summary["components"]}
    assert statuses["Pusher"] == "cached" and statuses["MobilePusher"] == "finished", statuses


def test_the_console_says_what_was_pushed_and_what_was_not(failed_conversion, capsys):
    from tfxp.pipeline import report
    from tfxp.pipeline.runner import ExitCode, Outcome
    from tfxp.pipeline.summary import Summary

    _, _, summary, _ = failed_conversion
    fields = set(Summary.__dataclass_fields__)
    outcome = Outcome(
        ExitCode(summary["exit_code"]),
        Summary(**{k: v for k, v in summary.items() if k in fields}),
        summary["error"],
    )
    report.print_summary(outcome)
    printed = capsys.readouterr()
    assert f"pushed: {summary['pushed_path']}" in printed.out
    assert "mobile: not pushed: ConversionError: failpoint" in printed.out
    assert "error: pushed for serving:" in printed.err


def test_a_rejected_variant_says_in_words_what_failed(failed_conversion, tmp_path):
    """A real conversion of the pushed model whose parity gate can't pass (an allowed AUC difference below
    zero): each variant's metric failure reads as words with the values, not as a formula."""
    from tfxp.mobile.convert import convert
    from tfxp.pipeline.components import worded_reasons

    work, _, summary, _ = failed_conversion
    rows = list(csv.DictReader(open(work / "wage.csv")))[:300]
    result = convert(summary["pushed_path"], tmp_path / "mobile", eval_rows=rows, max_auc_delta=-1.0)
    assert set(result.rejected) == {"float", "quant"}, result.rejected
    for variant in result.variants.values():
        words = worded_reasons(variant)
        report = variant.parity
        auc_reason = [w for w in words if w.startswith("AUC ")]
        assert auc_reason == [
            f"AUC {report.metric_value:.4g} vs the SavedModel's {report.reference_metric_value:.4g} on "
            f"{report.labeled_rows} eval rows: they differ by {report.metric_delta:.2g}, more than the -1 allowed"
        ], words
        assert len(words) == len(variant.reasons)  # other reasons kept as they were
