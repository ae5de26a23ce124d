"""Continuous training on spans (issue 21): `tfxp run --data 'DIR/span-{SPAN}/*.csv' --rolling N`.

The preflight's listing and the driver's resolution on files made here (TFX's matching, no pipeline); the
refusals of `tfxp run` (usage errors in-process, data refusals through the preflight); and two real `tfxp run`
subprocesses: three spans rolled with --rolling 2, then a fourth span, gated against the first run's model.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from pipeline_harness import loose_taxi_project, tfxp_run, write_csv
from taxi_data import read_csv_rows

from tfxp.cli import main
from tfxp.pipeline import spans
from tfxp.pipeline.config import PipelineConfig
from tfxp.pipeline.runner import ExitCode, Outcome, _preflight

ROOT = Path(__file__).resolve().parents[2]
PATTERN = "span-{SPAN}/*.csv"
ROWS_PER_SPAN = 600


def _span_rows(span: int, rows_per_span: int = ROWS_PER_SPAN) -> list[dict[str, str]]:
    """Span `span`'s rows (1-based): every 4th taxi row, so each span has the same kind of data (no drift)."""
    rows = read_csv_rows(limit=4 * rows_per_span)
    return rows[span - 1 :: 4]


def _write_span(root: Path, span: int, rows_per_span: int = ROWS_PER_SPAN) -> list[Path]:
    """span-N/a.csv and span-N/b.csv: two files per span, so the listing must keep a span's files together."""
    rows = _span_rows(span, rows_per_span)
    half = len(rows) // 2
    return [
        write_csv(root / f"span-{span}" / "a.csv", rows[:half]),
        write_csv(root / f"span-{span}" / "b.csv", rows[half:]),
    ]


@pytest.fixture()
def spans_dir(tmp_path) -> Path:
    data = tmp_path / "data"
    for span in (1, 2, 3):
        _write_span(data, span, rows_per_span=40)
    return data


def _config(tmp_path: Path, data: Path, rolling: int | None = None) -> PipelineConfig:
    return PipelineConfig(name="spans", data=f"{data}/{PATTERN}", output=tmp_path / "out", rolling=rolling)


# ------------------------------------------------------------------------- the preflight's listing


def test_the_preflight_lists_the_files_of_the_latest_spans(tmp_path, spans_dir):
    checked = _preflight(_config(tmp_path, spans_dir, rolling=2))
    assert isinstance(checked, PipelineConfig), getattr(checked, "error", None)
    assert checked.data_dir == str(spans_dir.resolve()) and checked.data_pattern == PATTERN
    listed = [(path, rows, span) for path, _, _, rows, span in checked.input_files]
    assert listed == [
        ("span-2/a.csv", 20, 2),
        ("span-2/b.csv", 20, 2),
        ("span-3/a.csv", 20, 3),
        ("span-3/b.csv", 20, 3),
    ]

    latest = _preflight(_config(tmp_path, spans_dir))  # no --rolling: TFX's default, the latest span
    assert [(p, s) for p, *_, s in latest.input_files] == [("span-3/a.csv", 3), ("span-3/b.csv", 3)]


def test_the_custom_config_and_the_driver_read_the_same_spans(tmp_path, spans_dir):
    """ContentFingerprintDriver (TFX's FileBasedDriver) resolves the window the preflight listed: TFX's span
    is the latest, the executor gets each span's pattern, the fingerprint is the listed files' content."""
    from tfx.components.example_gen import utils
    from tfx.types import standard_component_specs as keys
    from tfx.utils import proto_utils

    from tfxp.pipeline.example_gen import ContentFingerprintDriver, content_fingerprint, csv_example_gen, input_files_of

    checked = _preflight(_config(tmp_path, spans_dir, rolling=2))
    component = csv_example_gen(
        checked.data_dir, checked.data_pattern, input_files=checked.input_files, rolling_spans=2
    )
    exec_properties = {
        key: proto_utils.proto_to_json(value) if hasattr(value, "DESCRIPTOR") else value
        for key, value in component.exec_properties.items()
    }
    files = input_files_of(exec_properties)
    assert [(f["path"], f["span"]) for f in files] == [
        ("span-2/a.csv", 2),
        ("span-2/b.csv", 2),
        ("span-3/a.csv", 3),
        ("span-3/b.csv", 3),
    ]
    resolved = ContentFingerprintDriver(None).resolve_exec_properties(dict(exec_properties), None, None)
    assert resolved[utils.SPAN_PROPERTY_NAME] == 3 and resolved[utils.VERSION_PROPERTY_NAME] is None
    assert json.loads(resolved[spans.SPAN_PATTERNS_PROPERTY]) == {"2": "span-2/*.csv", "3": "span-3/*.csv"}
    assert resolved[utils.FINGERPRINT_PROPERTY_NAME] == content_fingerprint(files)
    assert json.loads(resolved[keys.RANGE_CONFIG_KEY]) == {"rolling_range": {"num_spans": 2}}  # as asked

    # A gap appearing after the preflight is still refused by the driver.
    for path in (spans_dir / "span-3").iterdir():
        path.unlink()
    (spans_dir / "span-3").rmdir()
    _write_span(spans_dir, 4, rows_per_span=40)
    with pytest.raises(spans.SpanError, match=r"span\(s\) 3 missing"):
        ContentFingerprintDriver(None).resolve_exec_properties(
            {**exec_properties, keys.INPUT_CONFIG_KEY: exec_properties[keys.INPUT_CONFIG_KEY]}, None, None
        )


def test_a_plain_folder_and_file_list_as_before(tmp_path):
    """No span: no "span" key in an entry, the same files as before spans existed."""
    data = tmp_path / "plain"
    write_csv(data / "x.csv", _span_rows(1, 20))
    for given in (data, data / "x.csv"):
        checked = _preflight(PipelineConfig(name="plain", data=given, output=tmp_path / "out"))
        assert [(p, r, s) for p, _, _, r, s in checked.input_files] == [("x.csv", 20, None)]
        assert checked.data_pattern in ("*.csv", "x.csv")


# ------------------------------------------------------------------------- refusals


def _refused(outcome) -> tuple[int, str]:
    assert isinstance(outcome, Outcome), "not refused"
    return outcome.exit_code, outcome.error


def test_a_pattern_that_matches_nothing_is_a_usage_error(tmp_path, spans_dir):
    config = PipelineConfig(name="spans", data=f"{spans_dir}/day-{{SPAN}}/*.csv", output=tmp_path / "out")
    code, error = _refused(_preflight(config))
    assert code == ExitCode.USAGE and "no file matches the span pattern" in error and "day-{SPAN}" in error


def test_a_gap_in_the_window_is_refused_naming_the_span(tmp_path, spans_dir):
    _write_span(spans_dir, 5, rows_per_span=40)  # spans 1, 2, 3, 5: span 4 is missing
    code, error = _refused(_preflight(_config(tmp_path, spans_dir, rolling=3)))
    assert code == ExitCode.ANOMALIES and "span(s) 4 missing" in error and "covers spans 3..5" in error


def test_tfxp_run_stops_on_a_gap_with_exit_3(tmp_path, spans_dir):
    """Through the command: the preflight's refusal is the run's exit code and its --json summary."""
    _write_span(spans_dir, 5, rows_per_span=40)
    args = ["run", "--data", f"{spans_dir}/{PATTERN}", "--rolling", "3", "--output", str(tmp_path / "o"), "--json"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 3, result.output
    summary = json.loads(result.output)
    assert summary["error"].startswith("span gap: span(s) 4 missing")
    assert [(a["feature"], a["anomaly"]) for a in summary["anomalies"]] == [("(spans)", "span gap")]
    assert summary["components"] == []  # nothing ran


def test_a_short_history_trains_on_the_spans_there_are(tmp_path, spans_dir, caplog):
    caplog.set_level(logging.INFO, logger="tfxp.pipeline.runner")
    checked = _preflight(_config(tmp_path, spans_dir, rolling=5))
    assert sorted({s for *_, s in checked.input_files}) == [1, 2, 3]
    assert "only 3 span(s) up to 3 exist" in caplog.text


def _serve(tmp_path: Path, card_spans: list[int] | None, version: int = 7) -> None:
    folder = tmp_path / "out" / "serving" / "spans" / str(version)
    folder.mkdir(parents=True)
    if card_spans is not None:
        card = {"format": 1, "data": {"spans": card_spans, "files": [], "fingerprint": None}}
        (folder / "model_card.json").write_text(json.dumps(card))


def test_data_older_than_the_served_models_is_refused(tmp_path, spans_dir):
    _serve(tmp_path, [4, 5])
    code, error = _refused(_preflight(_config(tmp_path, spans_dir, rolling=2)))
    assert code == ExitCode.ANOMALIES
    assert "the latest span 3 is older than span 5 the served version 7 was trained on (model card)" in error


def test_without_a_card_or_record_the_age_is_not_checked_and_said(tmp_path, spans_dir, caplog):
    _serve(tmp_path, None)
    caplog.set_level(logging.WARNING, logger="tfxp.pipeline.runner")
    assert isinstance(_preflight(_config(tmp_path, spans_dir, rolling=2)), PipelineConfig)
    assert "can't check the data is newer than the served model's: served version 7 records no spans" in caplog.text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rolling", "2"], "--rolling 2 needs a {SPAN} spec in --data"),
        (["--rolling", "0"], "0 is not in the range x>=1"),
    ],
)
def test_rolling_without_a_span_or_below_one_is_a_usage_error(tmp_path, spans_dir, args, message):
    data = spans_dir / "span-1"
    if args[1] == "0":
        data = f"{spans_dir}/{PATTERN}"
    result = CliRunner().invoke(main, ["run", "--data", str(data), "--output", str(tmp_path / "o"), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_a_missing_plain_path_is_still_refused_by_click(tmp_path):
    result = CliRunner().invoke(main, ["run", "--data", str(tmp_path / "nope"), "--output", str(tmp_path / "o")])
    assert result.exit_code == 2 and "does not exist" in result.output


# ------------------------------------------------------------------------- the documented schedules


def test_the_cronjob_manifest_runs_tfxp_on_spans():
    doc = (ROOT / "docs" / "continuous-training.md").read_text()
    block = doc.split("```yaml\n", 1)[1].split("```", 1)[0]
    manifest = yaml.safe_load(block)
    assert manifest["kind"] == "CronJob" and manifest["apiVersion"] == "batch/v1"
    assert manifest["spec"]["concurrencyPolicy"] == "Forbid"
    [container] = manifest["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    command = container["command"] + container.get("args", [])
    assert command[:2] == ["tfxp", "run"]
    data = command[command.index("--data") + 1]
    assert spans.has_span(data) and spans.check_pattern(data, 7) is None
    assert int(command[command.index("--rolling") + 1]) == 7
    # The cron line runs the same command.
    assert "--rolling 7" in doc and "crontab" in doc


# ------------------------------------------------------------------------- real runs


def _mlmd(output: Path):
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    config = metadata_store_pb2.ConnectionConfig()
    [config.sqlite.filename_uri] = [str(p) for p in output.rglob("metadata.db")]
    return metadata_store.MetadataStore(config)


def _newest(store, type_name: str):
    return max(store.get_artifacts_by_type(type_name), key=lambda a: a.id)


@pytest.fixture(scope="module")
def rolled(tmp_path_factory):
    """Three spans, `tfxp run --rolling 2`; then a fourth span and the same command again."""
    work = tmp_path_factory.mktemp("spans")
    data = work / "data"
    for span in (1, 2, 3):
        _write_span(data, span)
    out = work / "out"
    loose = ("--project", loose_taxi_project(work / "taxi"))
    first = tfxp_run(f"{data}/{PATTERN}", out, *loose, "--rolling", "2", name="spans", train_steps=20)
    assert first[0] == 0, first[2][-3000:]
    store = _mlmd(out)
    examples1, model1 = _newest(store, "Examples"), _newest(store, "Model")
    _write_span(data, 4)
    second = tfxp_run(f"{data}/{PATTERN}", out, *loose, "--rolling", "2", name="spans", train_steps=20)
    return work, first[1], (examples1, model1), second


def _files(examples) -> list[tuple[str, int, int]]:
    files = json.loads(examples.custom_properties["input_files"].string_value)
    return [(f["path"], f["span"], f["rows"]) for f in files]


@pytest.mark.slow
def test_a_rolling_window_reads_the_latest_spans_only(rolled):
    _, summary, (examples, _), _ = rolled
    half = ROWS_PER_SPAN // 2
    assert _files(examples) == [(f"span-{s}/{n}.csv", s, half) for s in (2, 3) for n in "ab"]
    assert examples.custom_properties["span"].int_value == 3  # TFX's span: the latest
    assert "version" not in examples.custom_properties
    assert sum(summary["rows"].values()) == 2 * ROWS_PER_SPAN, summary["rows"]


@pytest.mark.slow
def test_a_new_span_runs_again_gated_against_the_served_model(rolled):
    work, first, (_, model1), (code, summary, stderr) = rolled
    assert code in (0, 4), stderr[-3000:]  # pushed, or refused by the gate: the Evaluator compared
    statuses = {c["id"]: c["status"] for c in summary["components"]}
    assert statuses["CsvExampleGen"] == "finished" and statuses["Trainer"] == "finished", statuses
    store = _mlmd(work / "out")
    examples = _newest(store, "Examples")
    half = ROWS_PER_SPAN // 2
    assert _files(examples) == [(f"span-{s}/{n}.csv", s, half) for s in (3, 4) for n in "ab"]
    assert examples.custom_properties["span"].int_value == 4
    assert sum(summary["rows"].values()) == 2 * ROWS_PER_SPAN
    # The Evaluator's baseline is the first run's (served) model.
    [evaluator] = [c for c in store.get_contexts_by_type("node") if c.name.endswith(".Evaluator")]
    evaluation = max(store.get_executions_by_context(evaluator.id), key=lambda e: e.id)
    events = store.get_events_by_execution_ids([evaluation.id])
    baseline = [e.artifact_id for e in events if e.path.steps and e.path.steps[0].key == "baseline_model"]
    assert baseline == [model1.id]
    # The first version's card lists the spans it was trained on (the lead's card reads input_files' spans).
    from tfxp.pipeline.model_card import read_card

    card = read_card(str(work / "out" / "serving" / "spans" / str(first["pushed_version"])))
    assert card is not None and card["data"]["spans"] == [2, 3]


@pytest.mark.slow
def test_without_a_card_the_served_spans_come_from_ml_metadata(rolled, tmp_path):
    """A served version without model_card.json (a push older than cards): its Pusher's Examples in MLMD."""
    work, first, _, (code, summary, _) = rolled
    version = int(summary["pushed_version"] if code == 0 else first["pushed_version"])
    serving = tmp_path / "serving"
    (serving / str(version)).mkdir(parents=True)  # the version folder, without its card
    [metadata] = [str(p) for p in (work / "out").rglob("metadata.db")]
    served = spans.served_spans(str(serving), metadata, "spans")
    assert (served.version, served.source) == (version, "ML Metadata")
    assert served.spans == ((3, 4) if code == 0 else (2, 3))
