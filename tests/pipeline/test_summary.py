"""The run summary's blessing failures: a gated metric undefined on the eval split says so (issue 17).

TFMA reports AUC 0.0 on a one-class split (its np.nansum) and compares that number with the gate; the
summary reports the metric as undefined, why, and what to do, the same words on the console and in
--json. The real run uses a table whose every positive row hashes into the train split
(tfxp.pipeline.example_gen.split_and_shard, TFX's rule), so the eval split holds one class.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest
from pipeline_harness import tfxp_run

from tfxp.pipeline.summary import ThresholdFailure, mark_undefined

AUC_GATE = "value_threshold { lower_bound { value: 0.55 } }"


def test_an_undefined_gated_metric_is_named_with_its_reason_and_what_to_do():
    failures = mark_undefined(
        [
            ThresholdFailure("Overall", "auc", 0.0, AUC_GATE),
            ThresholdFailure("Overall", "auc (change vs baseline)", -0.9, "change_threshold { ... }"),
            ThresholdFailure("Overall", "binary_accuracy", 0.5, "value_threshold { lower_bound { value: 0.7 } }"),
        ],
        {"Overall": {"auc": "one class only", "recall": "no positive labels"}},
    )
    assert [(f.value, f.undefined) for f in failures] == [
        (None, "one class only"),
        (None, "one class only"),
        (0.5, None),
    ]
    assert str(failures[0]) == (
        f"auc is undefined on the eval split (one class only), so it fails {AUC_GATE}: its rows hold one class "
        "of the label: add rows until the eval split holds both classes, or check that the label is the column "
        "you meant"
    )
    assert (
        str(failures[2])
        == "binary_accuracy = 0.5000 on slice Overall fails value_threshold { lower_bound { value: 0.7 } }"
    )


def test_a_slice_other_than_overall_is_named():
    failure = mark_undefined([ThresholdFailure("region=N", "auc", 0.0, AUC_GATE)], {"region=N": {"auc": "no examples"}})
    assert str(failure[0]).startswith("auc is undefined on slice region=N of the eval split (no examples)")


def _one_class_eval_table(path: Path, rows: int = 300) -> Path:
    """x decides y (yes when x > 0.3); every `yes` row is one TFX's hash puts in train."""
    from tfxp.pipeline.example_gen import split_and_shard, splits_for

    splits = splits_for([("train", 2), ("eval", 1)], rows, None)
    rng = random.Random(1)
    table: list[list[str]] = []
    while len(table) < rows:
        x = rng.gauss(0, 1)
        row = [f"{x:.3f}", f"{rng.uniform(0, 10):.2f}", "yes" if x > 0.3 else "no"]
        # The split of a row is a function of its cells as written (example_gen.row_keys).
        in_eval = split_and_shard("\x1f".join(row).encode(), splits, 1)[0] == 1
        if row[2] == "yes" and in_eval:
            continue
        table.append(row)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["x", "z", "y"])
        writer.writerows(table)
    return path


@pytest.mark.slow
def test_a_binary_eval_split_with_one_class_says_auc_is_undefined_not_zero(tmp_path):
    import os
    import subprocess
    import sys

    data = _one_class_eval_table(tmp_path / "t.csv")
    init = subprocess.run(
        [sys.executable, "-m", "tfxp.cli", "init", "--data", str(data), "--label", "y", "--positive", "yes"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=300,
    )
    assert init.returncode == 0, init.stderr[-3000:]
    code, summary, _ = tfxp_run(data, tmp_path / "out", "--project", str(tmp_path / "t"), name="t", train_steps=50)
    assert code == 4, summary
    assert summary["undefined_metrics"]["Overall"]["auc"] == "one class only"
    assert summary["metrics"]["Overall"]["auc"] is None
    auc = [f for f in summary["failures"] if f["metric"] == "auc"]
    assert auc == [
        {"slice": "Overall", "metric": "auc", "value": None, "threshold": AUC_GATE, "undefined": "one class only"}
    ]
    assert "auc is undefined on the eval split (one class only)" in summary["error"]
    assert "both classes" in summary["error"] and "auc = 0.0000" not in summary["error"]
