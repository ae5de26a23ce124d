"""The run summary: undefined metrics ("-" and why), integer counts, JSON reasons.

Summaries are built by hand (no pipeline run): `explain_undefined` gets what
`summary._metrics` reads from TFMA, with TFMA's own quirks (AUC 0.0 on a one-class
slice, NaN precision when nothing is predicted positive).
"""

from __future__ import annotations

import json
import math

import pytest

from tfxp.pipeline import report
from tfxp.pipeline.runner import ExitCode, Outcome
from tfxp.pipeline.summary import (
    NO_EXAMPLES,
    NO_POSITIVE_LABELS,
    NO_POSITIVE_PREDICTIONS,
    NOT_A_NUMBER,
    ONE_CLASS,
    Summary,
    explain_undefined,
)

NAN = float("nan")


def tfma_slice(
    count: float,
    auc: float,
    accuracy: float,
    precision: float,
    recall: float,
    calibration: float,
    tp: float,
    fp: float,
    tn: float,
    fn: float,
) -> dict[str, float]:
    """One slice as TFMA reports it: every value a double."""
    return {
        "example_count": count,
        "auc": auc,
        "binary_accuracy": accuracy,
        "precision": precision,
        "recall": recall,
        "calibration": calibration,
        "true_positives": tp,
        "false_positives": fp,
        "true_negatives": tn,
        "false_negatives": fn,
    }


# Shaped like a real 3,000-row run: Dispute trips never tip, so that slice has one
# class, and TFMA reports AUC 0.0 there (np.nansum over NaN rates). Hour 4 is
# reported with precision 0.0 although nothing is predicted positive: the counts,
# not the value, decide that it is 0/0. Hour 5's 0.0 is a real 0/1.
TFMA_METRICS = {
    "Overall": tfma_slice(4966.0, 0.9323, 0.8661, 0.6882, 0.7637, 0.9663, 580.0, 263.0, 3721.0, 402.0),
    "payment_type=Dispute": tfma_slice(2.0, 0.0, 1.0, NAN, NAN, NAN, 0.0, 0.0, 2.0, 0.0),
    "payment_type=Credit Card": tfma_slice(350.0, 0.52, 0.61, 0.69, 0.76, 0.97, 181.0, 82.0, 31.0, 56.0),
    "trip_start_hour=4": tfma_slice(10.0, 0.7778, 0.7, 0.0, 0.0, 1.3724, 0.0, 0.0, 7.0, 3.0),
    "trip_start_hour=5": tfma_slice(9.0, 0.8333, 0.6667, 0.0, 0.0, 1.05, 0.0, 1.0, 6.0, 2.0),
}


def test_tfma_zero_auc_on_one_class_slice_is_undefined():
    metrics, undefined = explain_undefined(TFMA_METRICS)
    assert metrics["payment_type=Dispute"]["auc"] is None
    assert undefined["payment_type=Dispute"] == {
        "auc": ONE_CLASS,
        "precision": NO_POSITIVE_PREDICTIONS,
        "recall": NO_POSITIVE_LABELS,
        "calibration": NO_POSITIVE_LABELS,
    }
    # Accuracy is defined on any non-empty slice.
    assert metrics["payment_type=Dispute"]["binary_accuracy"] == 1.0


def test_zero_is_undefined_only_when_the_counts_say_zero_over_zero():
    metrics, undefined = explain_undefined(TFMA_METRICS)
    # Hour 4: no positive predictions, so precision 0.0 is 0/0; recall 0/3 is a real 0.
    assert metrics["trip_start_hour=4"]["precision"] is None
    assert undefined["trip_start_hour=4"] == {"precision": NO_POSITIVE_PREDICTIONS}
    assert metrics["trip_start_hour=4"]["recall"] == 0.0
    # Hour 5: one false positive, so precision 0/1 = 0.0 is defined.
    assert metrics["trip_start_hour=5"]["precision"] == 0.0
    assert "trip_start_hour=5" not in undefined
    assert metrics["Overall"]["auc"] == 0.9323 and "Overall" not in undefined


def test_auc_needs_both_classes():
    only_positives = {"s": tfma_slice(3.0, 0.0, 1.0, 1.0, 1.0, 0.9, 3.0, 0.0, 0.0, 0.0)}
    metrics, undefined = explain_undefined(only_positives)
    assert undefined == {"s": {"auc": ONE_CLASS}}
    assert metrics["s"]["recall"] == 1.0 and metrics["s"]["calibration"] == 0.9


def test_counts_become_integers_and_stay_in_the_metrics():
    metrics, _ = explain_undefined(TFMA_METRICS)
    overall = metrics["Overall"]
    assert overall["example_count"] == 4966 and isinstance(overall["example_count"], int)
    assert (
        overall["true_positives"],
        overall["false_positives"],
        overall["true_negatives"],
        overall["false_negatives"],
    ) == (580, 263, 3721, 402)
    assert all(isinstance(overall[k], int) for k in ("true_positives", "false_negatives"))


def test_without_counts_a_nan_is_explained_by_the_metric_and_auc_is_left_alone():
    # A run from before the confusion counts were in eval_config.
    old = {
        "payment_type=Cash": {
            "example_count": 674.0,
            "auc": 0.0,
            "binary_accuracy": 1.0,
            "precision": NAN,
            "recall": NAN,
            "calibration": NAN,
        }
    }
    metrics, undefined = explain_undefined(old)
    assert undefined == {
        "payment_type=Cash": {
            "precision": NO_POSITIVE_PREDICTIONS,
            "recall": NO_POSITIVE_LABELS,
            "calibration": NO_POSITIVE_LABELS,
        }
    }
    assert metrics["payment_type=Cash"]["auc"] == 0.0  # no counts: nothing says it is 0/0


def test_other_nans_and_empty_slices():
    metrics, undefined = explain_undefined(
        {
            "empty": tfma_slice(0.0, 0.0, NAN, NAN, NAN, NAN, 0.0, 0.0, 0.0, 0.0),
            "odd": {**tfma_slice(5.0, 0.9, 0.8, 0.5, 0.5, 1.0, 1.0, 1.0, 2.0, 1.0), "binary_accuracy": NAN},
        }
    )
    assert set(undefined["empty"].values()) == {NO_EXAMPLES}
    assert set(undefined["empty"]) == {"auc", "binary_accuracy", "precision", "recall", "calibration"}
    assert metrics["empty"]["example_count"] == 0
    assert undefined["odd"] == {"binary_accuracy": NOT_A_NUMBER}


def _summary(metrics: dict) -> Summary:
    cleaned, undefined = explain_undefined(metrics)
    return Summary(
        pipeline="taxi",
        rows={"train": 9934, "eval": 4966},
        metrics=cleaned,
        undefined_metrics=undefined,
        blessed=True,
        pushed=True,
        pushed_path="out/serving/taxi/1",
    )


def _printed(summary: Summary, capsys) -> str:
    report.print_summary(Outcome(exit_code=ExitCode.PUSHED, summary=summary))
    return capsys.readouterr().out


def _table_row(out: str, slice_name: str) -> list[str]:
    line = next(line for line in out.splitlines() if line.startswith(slice_name + " "))
    return line[len(slice_name) :].split()


def test_console_prints_dash_counts_as_integers_and_says_why(capsys):
    out = _printed(_summary(TFMA_METRICS), capsys)
    assert "nan" not in out and "4966.0000" not in out
    assert _table_row(out, "Overall") == ["4966", "0.9323", "0.8661", "0.6882", "0.7637", "0.9663"]
    assert _table_row(out, "payment_type=Dispute") == ["2", "-", "1.0000", "-", "-", "-"]
    assert _table_row(out, "trip_start_hour=4") == ["10", "0.7778", "0.7000", "-", "0.0000", "1.3724"]
    header = next(line for line in out.splitlines() if line.startswith("slice"))
    assert header.split() == [
        "slice",
        "example_count",
        "auc",
        "binary_accuracy",
        "precision",
        "recall",
        "calibration",
    ]  # the confusion counts are not columns
    notes = out[out.index('"-" = undefined:') :]
    assert "  auc: one class only on payment_type=Dispute\n" in notes
    assert "  precision: no positive predictions on payment_type=Dispute, trip_start_hour=4\n" in notes
    assert "  recall, calibration: no positive labels on payment_type=Dispute\n" in notes


def test_no_notes_when_everything_is_defined(capsys):
    out = _printed(_summary({"Overall": TFMA_METRICS["Overall"]}), capsys)
    assert "undefined" not in out


def test_nan_without_a_reason_still_prints_dash(capsys):
    summary = Summary(pipeline="taxi", metrics={"Overall": {"example_count": 3.0, "auc": NAN}})
    out = _printed(summary, capsys)
    assert _table_row(out, "Overall")[:2] == ["3", "-"] and "nan" not in out


def test_long_notes_wrap_between_slices():
    undefined = {f"payment_type=No Charge {i}": {"auc": ONE_CLASS} for i in range(12)}
    lines = report._undefined_notes(undefined, width=80)
    assert lines[0] == '"-" = undefined:' and len(lines) > 2
    assert all(len(line) <= 80 for line in lines)
    # A slice value with a space is never split across lines.
    text = " ".join(line.strip() for line in lines[1:])
    for name in undefined:
        assert f"{name}," in text or text.endswith(name)
    assert all(line.startswith("    ") for line in lines[2:])


def test_json_keeps_null_and_adds_reasons():
    data = report.as_json(Outcome(exit_code=ExitCode.PUSHED, summary=_summary(TFMA_METRICS)))
    text = json.dumps(data, allow_nan=False)  # strict JSON: no NaN left anywhere
    parsed = json.loads(text)
    assert parsed["metrics"]["payment_type=Dispute"]["auc"] is None
    assert parsed["metrics"]["payment_type=Dispute"]["true_negatives"] == 2
    assert parsed["undefined_metrics"]["payment_type=Dispute"]["auc"] == "one class only"
    assert parsed["undefined_metrics"]["trip_start_hour=4"] == {"precision": "no positive predictions"}
    assert parsed["metrics"]["Overall"]["example_count"] == 4966


@pytest.mark.parametrize("value", [NAN, math.inf])
def test_json_turns_leftover_non_finite_values_into_null(value):
    summary = Summary(pipeline="taxi", metrics={"Overall": {"auc": value}})
    data = report.as_json(Outcome(exit_code=ExitCode.PUSHED, summary=summary))
    assert json.loads(json.dumps(data, allow_nan=False))["metrics"]["Overall"]["auc"] is None


def test_a_model_pushed_before_and_a_newer_served_version_are_said(capsys):
    from tfxp.pipeline.report import print_summary
    from tfxp.pipeline.runner import ExitCode, Outcome
    from tfxp.pipeline.summary import Summary

    summary = Summary(
        "taxi",
        pushed=True,
        pushed_path="/o/serving/taxi/100",
        pushed_version="100",
        pushed_earlier=True,
        served_version="200",
    )
    print_summary(Outcome(ExitCode.PUSHED, summary))
    out = capsys.readouterr().out
    assert "this model was pushed before; no new version" in out
    assert "version 200 is newer, so TF Serving (latest policy) serves it, not 100" in out


def test_a_rejected_variant_is_named_in_words(capsys):
    reason = "AUC 0.912 vs the SavedModel's 0.921 on 330 eval rows: they differ by 0.009, more than the 0.005 allowed"
    summary = Summary(
        "wage",
        pushed=True,
        pushed_path="/out/serving/wage/7",
        pushed_version="7",
        mobile_pushed=True,
        mobile_path="/out/mobile/wage/7",
        mobile_variants=["float"],
        mobile_rejected={"quant": [reason]},
    )
    report.print_summary(Outcome(ExitCode.PUSHED, summary))
    out = capsys.readouterr().out
    assert "mobile: /out/mobile/wage/7 (float)" in out
    assert f"mobile: quantized variant not pushed: {reason}" in out


def test_a_refused_identity_change_names_each_difference_in_json():
    summary = Summary("wage", identity_changes=["label: union -> married", "inputs: + union, - married"])
    got = report.as_json(Outcome(ExitCode.USAGE, summary, "model wage: ..."))
    assert got["exit_code"] == 2 and got["result"] == "usage"
    assert got["identity_changes"] == ["label: union -> married", "inputs: + union, - married"]


def test_the_drift_gates_result_is_one_line(capsys):
    """DataDriftGate's result (tfxp.pipeline.drift.DriftResult.to_json) as the summary prints it."""
    from tfxp.pipeline.drift import DriftFinding, DriftResult
    from tfxp.pipeline.report import print_summary
    from tfxp.pipeline.runner import ExitCode, Outcome

    accepted = DriftResult(
        served_version=7, findings=[DriftFinding("fare", "jensen_shannon_divergence", 0.11, 0.05, True, True)]
    )
    for result, words in (
        (accepted, "against served version 7's training data: accepted: fare jensen_shannon_divergence 0.11 > 0.05"),
        (DriftResult(served_version=7, findings=[DriftFinding("fare", "l_infinity", 0.01, 0.15, False)]), "none over"),
        (DriftResult(skipped="no served version"), "data drift: not compared (no served version)"),
    ):
        print_summary(Outcome(ExitCode.PUSHED, Summary("taxi", drift=json.loads(result.to_json()))))
        assert words in capsys.readouterr().out


def test_the_data_read_is_one_line_with_spans(capsys):
    from tfxp.pipeline.report import print_summary
    from tfxp.pipeline.runner import ExitCode, Outcome

    one = [{"path": "taxi.csv", "sha256": "d940dcf4e7b5c4707bb7", "bytes": 9, "rows": 2000}]
    spans = [{"path": f"span-{k}/a.csv", "sha256": "ab", "bytes": 9, "rows": 600, "span": k} for k in (2, 3)]
    print_summary(Outcome(ExitCode.PUSHED, Summary("taxi", input_files=one)))
    assert "data: 1 file, 2,000 rows (taxi.csv, sha256 d940dcf4e7b5…)" in capsys.readouterr().out
    print_summary(Outcome(ExitCode.PUSHED, Summary("taxi", input_files=spans)))
    assert "data: 2 files, 1,200 rows, spans 2, 3" in capsys.readouterr().out
