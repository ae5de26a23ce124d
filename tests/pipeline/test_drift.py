"""Data drift between runs (tfxp.pipeline.drift, issue 21): this run's train split against the training
statistics the served version carries. Unit tests on statistics made by real TFDV from small DataFrames and
on taxi rows; one end-to-end: a run pushes, `fare` x1.6 (miles written as km: tensorflow/data-validation#101)
stops the next run with exit 3, `--accept-drift fare` lets it through."""

from __future__ import annotations

import json
import os
import random

import numpy as np
import pytest
from pipeline_harness import loose_taxi_project, tfxp_run, write_csv
from taxi_data import read_csv_rows

from tfxp.monitoring import reference as reference_lib
from tfxp.pipeline import drift
from tfxp.project.spec import Monitoring
from tfxp.schema.anomalies import DataAnomaliesError

PROBLEM = {
    "features": [{"name": "x", "kind": "numeric"}, {"name": "c", "kind": "vocabulary"}],
    "label": {"task": "binary", "classes": ["0", "1"]},
}
ROWS = 1500


def _frame(seed: int, rows: int = ROWS, scale: float = 1.0, shares=(0.6, 0.3, 0.1)):
    import pandas as pd

    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x": (rng.lognormal(2.0, 0.6, rows) * scale).astype(np.float32),
            "c": rng.choice(["cash", "card", "other"], rows, p=list(shares)),
        }
    )


def _statistics(frame):
    import tensorflow_data_validation as tfdv

    return tfdv.generate_statistics_from_dataframe(frame, n_jobs=1)


def _examples(rows) -> list[dict[str, list]]:
    """Rows as `drift.train_rows` yields them: a tf.Example's values by feature."""
    return [{k: [] if v is None else [v.encode() if isinstance(v, str) else v] for k, v in r.items()} for r in rows]


def _serve(serving_dir, frame, version: int = 1, problem=PROBLEM) -> str:
    """A served version carrying the monitoring reference of `frame` (as the Pusher writes it)."""
    import tensorflow_data_validation as tfdv
    from google.protobuf import text_format

    folder = os.path.join(serving_dir, str(version))
    os.makedirs(os.path.join(folder, "assets.extra"))
    with open(os.path.join(folder, reference_lib.PROBLEM_FILE), "w") as f:
        json.dump(problem, f)
    stats = _statistics(frame)
    schema = text_format.MessageToString(tfdv.infer_schema(stats))
    reference_lib.write(folder, stats.SerializeToString(), schema, problem, Monitoring(), [])
    return folder


def _run_outputs(root, frame):
    """(statistics uri, examples uri) of a run on `frame`: StatisticsGen's and ExampleGen's train split."""
    import tensorflow as tf

    statistics, examples = os.path.join(root, "statistics"), os.path.join(root, "examples")
    os.makedirs(os.path.join(statistics, "Split-train"))
    os.makedirs(os.path.join(examples, "Split-train"))
    with open(os.path.join(statistics, drift.TRAIN_STATISTICS), "wb") as f:
        f.write(_statistics(frame).SerializeToString())
    options = tf.io.TFRecordOptions(compression_type="GZIP")
    with tf.io.TFRecordWriter(os.path.join(examples, "Split-train", "data.gz"), options) as writer:
        for row in frame.to_dict("records"):
            example = tf.train.Example()
            example.features.feature["x"].float_list.value.append(row["x"])
            example.features.feature["c"].bytes_list.value.append(row["c"].encode())
            writer.write(example.SerializeToString())
    return statistics, examples


def _compare(served_frame, frame, tmp_path, **kwargs):
    serving = str(tmp_path / "serving")
    folder = _serve(serving, served_frame)
    served = reference_lib.load(folder)
    tallies = drift.count(served, _examples(frame.to_dict("records")))
    return drift.compare_runs(served, tallies, Monitoring(), **kwargs)


def _by_feature(findings):
    return {f.feature: f for f in findings}


def test_a_clean_resample_stays_under_the_thresholds(tmp_path):
    findings, skipped = _compare(_frame(1), _frame(2), tmp_path)
    assert set(_by_feature(findings)) == {"x", "c"} and skipped == {}
    assert not [f for f in findings if f.over], findings


def test_a_unit_change_is_over_the_numeric_threshold(tmp_path):
    findings, _ = _compare(_frame(1), _frame(2, scale=1.6), tmp_path)
    x = _by_feature(findings)["x"]
    assert x.statistic == "jensen_shannon_divergence" and x.over and x.value > 0.08, x
    assert not _by_feature(findings)["c"].over


def test_a_shifted_category_is_over_l_infinity(tmp_path):
    findings, _ = _compare(_frame(1), _frame(2, shares=(0.35, 0.55, 0.1)), tmp_path)
    c = _by_feature(findings)["c"]
    assert c.statistic == "l_infinity" and c.over and c.value == pytest.approx(0.25, abs=0.05), c


def test_two_clean_halves_of_the_taxi_data_are_not_refused(tmp_path):
    """The thresholds don't fire on sampling noise: disjoint random halves of 2,000 taxi rows."""
    import pandas as pd

    from tfxp import project as project_lib
    from tfxp.projects import TAXI

    problem = project_lib.load(TAXI).problem().to_dict()
    dtypes = {f["name"]: f["dtype"] for f in problem["features"]}
    rows = read_csv_rows(limit=2000)
    random.Random(0).shuffle(rows)
    casts = {"float32": lambda v: float(np.float32(v)), "int64": int, "string": str}
    typed = [{k: None if v == "" else casts[dtypes[k]](v) for k, v in r.items() if k in dtypes} for r in rows]
    served = reference_lib.load(_serve(str(tmp_path / "serving"), pd.DataFrame(typed[:1000]), problem=problem))
    findings, _ = drift.compare_runs(served, drift.count(served, _examples(typed[1000:])), Monitoring())
    assert len(findings) >= 14
    assert not [f for f in findings if f.over], [f for f in findings if f.over]


def test_check_drift_refuses_names_the_statistic_and_how_to_accept(tmp_path):
    _serve(str(tmp_path / "serving"), _frame(1))
    statistics, examples = _run_outputs(str(tmp_path / "run"), _frame(2, scale=1.6))
    result = drift.check_drift(str(tmp_path / "serving"), statistics, examples, Monitoring())
    assert result.status == "refused" and result.served_version == 1
    with pytest.raises(DataAnomaliesError) as raised:
        raise drift.DataDriftError(result)
    message = str(raised.value)
    assert "x jensen_shannon_divergence" in message and "> 0.05" in message
    assert message.endswith("to accept: --accept-drift x")
    [anomaly] = raised.value.anomalies
    assert anomaly.feature == "x" and anomaly.type == "COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH"
    assert "--accept-drift x" in anomaly.description

    accepted = drift.check_drift(str(tmp_path / "serving"), statistics, examples, Monitoring(), accepted=["x"])
    assert accepted.status == "accepted" and not accepted.refused
    recorded = json.loads(accepted.to_json())
    assert recorded["status"] == "accepted" and recorded["served_version"] == 1
    assert {f["feature"]: (f["over"], f["accepted"]) for f in recorded["findings"]} == {
        "x": (True, True),
        "c": (False, False),
    }


def test_nothing_served_or_no_reference_is_skipped_with_the_reason(tmp_path):
    statistics, examples = _run_outputs(str(tmp_path / "run"), _frame(2))
    nothing = drift.check_drift(str(tmp_path / "serving"), statistics, examples, Monitoring())
    assert nothing.status == "skipped" and "no served version" in nothing.skipped
    older = tmp_path / "serving" / "3"
    older.mkdir(parents=True)
    (older / "saved_model.pb").write_bytes(b"")
    old = drift.check_drift(str(tmp_path / "serving"), statistics, examples, Monitoring())
    assert old.status == "skipped" and old.served_version == 3 and "carries no training statistics" in old.skipped
    assert json.loads(old.to_json())["skipped"] == old.skipped
    assert drift.reference_key(str(tmp_path / "serving"), statistics) == "no reference: version 3"
    remote = drift.check_drift("gs://bucket/root/serving/taxi", statistics, examples, Monitoring())
    assert remote.status == "skipped" and "local runs only" in remote.skipped


def test_too_few_rows_is_skipped(tmp_path):
    _serve(str(tmp_path / "serving"), _frame(1))
    statistics, examples = _run_outputs(str(tmp_path / "run"), _frame(2, rows=200, scale=3.0))
    result = drift.check_drift(str(tmp_path / "serving"), statistics, examples, Monitoring())
    assert result.status == "skipped" and "too few training rows" in result.skipped and "200 here" in result.skipped


def test_inputs_on_one_side_only_are_named_not_compared(tmp_path):
    frame = _frame(2).drop(columns=["c"])
    findings, skipped = _compare(_frame(1), frame, tmp_path, inputs=["x", "c", "new"])
    assert [f.feature for f in findings] == ["x"]
    assert skipped == {"c": "no value of it in this run's data", "new": "the served model has no such input"}


def test_the_cache_key_is_the_digest_of_the_statistics_compared_with(tmp_path):
    """Nothing served: this run's own statistics; served: the version's. A run on the data the served
    version was trained on keeps the key of the run that trained it (the Pusher copies the file as is)."""
    serving = str(tmp_path / "serving")
    statistics, _ = _run_outputs(str(tmp_path / "run"), _frame(2))
    own = drift.reference_key(serving, statistics)
    assert own.startswith("sha256:")
    folder = _serve(serving, _frame(1))
    served = drift.reference_key(serving, statistics)
    assert served.startswith("sha256:") and served != own
    with open(os.path.join(statistics, drift.TRAIN_STATISTICS), "rb") as f:
        same = f.read()
    with open(drift.served_statistics_path(folder), "wb") as f:
        f.write(same)
    assert drift.reference_key(serving, statistics) == own


def test_accept_drift_takes_model_inputs_only(tmp_path):
    from click.testing import CliRunner

    from tfxp.cli import main

    result = CliRunner().invoke(
        main, ["run", "--output", str(tmp_path), "--accept-drift", "fare", "--accept-drift", "tip"]
    )
    assert result.exit_code == 2, result.output
    assert "--accept-drift" in result.output and "tip: not a model input" in result.output
    assert not (tmp_path / "pipelines").exists()


# -- end to end ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def taxi_runs(tmp_path_factory):
    """Run 1 pushes on 2,000 taxi rows; run 2 has their fare x1.6; run 3 is a clean re-sample of the same rows
    (drawn with replacement) with fare x1.6 and --accept-drift fare. (Consecutive slices of taxi.csv are no
    clean re-sample: the file is in blocks, rows 2,000-4,000 differ from the first 2,000 by JSD 0.45 on
    pickup_community_area.)"""
    work = tmp_path_factory.mktemp("drift")
    loose = ("--project", loose_taxi_project(work / "taxi"))
    rows = read_csv_rows(limit=2000)
    first = tfxp_run(write_csv(work / "a" / "taxi.csv", rows), work / "out", *loose, name="drift", train_steps=20)
    scaled = [dict(r, fare=f"{float(r['fare']) * 1.6:.2f}") for r in rows]
    second = tfxp_run(write_csv(work / "b" / "taxi.csv", scaled), work / "out", *loose, name="drift", train_steps=20)
    resample = random.Random(3).choices(scaled, k=len(scaled))
    data = write_csv(work / "c" / "taxi.csv", resample)
    third = tfxp_run(data, work / "out", *loose, "--accept-drift", "fare", name="drift", train_steps=20)
    return work / "out", first, second, third


@pytest.mark.slow
def test_a_unit_change_stops_the_next_run_until_accepted(taxi_runs):
    from tfxp.pipeline.mlmd import MetadataReader, str_property

    out, (code1, summary1, err1), (code2, summary2, _), (code3, summary3, _) = taxi_runs
    assert code1 == 0, err1[-3000:]
    assert code2 == 3, summary2.get("error")
    [anomaly] = [a for a in summary2["anomalies"] if a["anomaly"].startswith("drift")]
    assert anomaly["feature"] == "fare" and "jensen_shannon_divergence" in anomaly["anomaly"]
    assert "fare jensen_shannon_divergence" in summary2["error"] and "--accept-drift fare" in summary2["error"]
    ran = {c["id"]: c["status"] for c in summary2["components"]}
    assert ran["DataDriftGate"] == "failed" and "Transform" not in ran
    assert code3 in (0, 4), summary3.get("error")  # through the gate: blessed or not on its merits
    statuses = {c["id"]: c["status"] for c in summary3["components"]}
    assert statuses["DataDriftGate"] == "finished" and statuses["Trainer"] == "finished"
    gate = MetadataReader(out / "metadata" / "drift" / "metadata.db").latest("drift", "DataDriftGate")
    result = json.loads(str_property(gate.output("drift"), drift.DRIFT_PROPERTY))
    assert result["status"] == "accepted" and result["served_version"] == int(summary1["pushed_version"])
    findings = {f["feature"]: f for f in result["findings"]}
    assert findings["fare"]["over"] and findings["fare"]["accepted"]
    # The clean re-sample: every other input compared, none over its threshold.
    assert len(findings) >= 14 and not [f for n, f in findings.items() if f["over"] and n != "fare"], findings
