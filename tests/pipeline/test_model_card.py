"""The model card every pushed version carries (issue 21): model_card.json + model_card.html in the serving and the
mobile version folders, naming the data by content, the schema, the code, the hyperparameters, the metrics with each
gate's decision, the baseline and the deltas, the TFLite parity numbers and the project's considerations.

Two real `tfxp run`s of a copy of the taxi project (2,000 different rows each), in subprocesses."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from browser import Page, chromium, colour_runs
from pipeline.conftest import INTENDED_USE, LIMITATIONS
from project_data import SPEC, write_project

from tfxp import project as P
from tfxp.pipeline import model_card as MC
from tfxp.pipeline.config import PROJECT_ROOT, model_code_fingerprint
from tfxp.pipeline.model_card_html import BASELINE_COLOUR, MODEL_COLOUR, render


@pytest.fixture(scope="module")
def runs(two_pushes):
    """(work folder, [(summary, data file)] of the two pushing runs: tests/pipeline/conftest.py)."""
    return two_pushes


def _card(summary: dict, key: str = "pushed_path") -> dict:
    card = MC.read_card(summary[key])
    assert card is not None, f"no readable {MC.CARD_FILE} in {summary[key]}"
    return card


def test_every_copy_of_a_pushed_version_carries_the_same_card(runs):
    """Serving and mobile folders of each version hold model_card.json and .html; the two JSONs are equal, and the
    serving copy has the mobile section the MobilePusher added after the serving push."""
    _, done = runs
    for summary, _ in done:
        serving, mobile = _card(summary), _card(summary, "mobile_path")
        assert serving == mobile
        assert serving["model"]["version"] == int(summary["pushed_version"])
        assert serving["model"]["name"] == "taxi"
        assert summary["model_card"] == str(Path(summary["pushed_path"]) / MC.CARD_HTML)  # `tfxp run --json`
        for folder in (summary["pushed_path"], summary["mobile_path"]):
            assert (Path(folder) / MC.CARD_HTML).is_file()
            assert MC.CARD_FILE in json.loads((Path(folder) / "tfxp_push.json").read_text())["files"]


def test_the_card_names_its_data_by_content(runs):
    _, done = runs
    for summary, data in done:
        card = _card(summary)
        [entry] = card["data"]["files"]
        assert entry["path"] == "taxi.csv"
        assert entry["sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
        assert entry["bytes"] == data.stat().st_size
        assert entry["rows"] == 2000
        assert card["data"]["fingerprint"].startswith("sha256:")
        assert card["data"]["rows"] == summary["rows"]
    first, second = (_card(s) for s, _ in done)
    assert first["data"]["fingerprint"] != second["data"]["fingerprint"]


def test_the_card_names_schema_code_lock_and_hyperparameters(runs):
    work, done = runs
    card = _card(done[0][0])
    schema = (work / "taxi" / "schema.pbtxt").read_bytes()
    assert card["schema"]["sha256"] == hashlib.sha256(schema).hexdigest()
    assert card["code"]["model_code"] == model_code_fingerprint()
    lock = (PROJECT_ROOT / "requirements.lock").read_bytes()
    assert card["code"]["lock"] == {"file": "requirements.lock", "sha256": hashlib.sha256(lock).hexdigest()}
    assert card["code"]["tfxp_version"]
    values = card["hyperparameters"]["values"]
    assert values["train_steps"] == 20 and values["learning_rate"] > 0 and values["hidden_units"]
    assert card["hyperparameters"]["source"] == "default"
    assert card["model"]["task"] == "binary" and card["model"]["classes"] == ["0", "1"]
    assert card["considerations"] == {"intended_use": INTENDED_USE, "limitations": LIMITATIONS}
    # Lineage in MLMD's terms: each input's producer and execution.
    assert card["run"]["artifacts"]["examples"]["producer"] == "CsvExampleGen"
    assert card["run"]["artifacts"]["model"]["producer"] == "Trainer"
    assert isinstance(card["run"]["pusher_execution_id"], int)


def test_gates_metrics_and_the_baseline(runs):
    """The first card has no baseline; the second's baseline is the first version, and each gate's change is the
    delta of its metric; every gate holds the project's threshold and TFMA's decision; undefined metrics are null."""
    work, done = runs
    first, second = (_card(s) for s, _ in done)
    assert first["baseline"] is None
    project = P.load(work / "taxi")
    for card, (summary, _) in zip((first, second), done, strict=True):
        assert card["evaluation"]["blessed"] is True
        gates = {g["metric"]: g for g in card["evaluation"]["gates"]}
        assert set(gates) == {g.metric for g in project.thresholds}
        for gate in project.thresholds:
            got = gates[gate.metric]
            assert (got["bound"], got["max_change"], got["passed"]) == (gate.bound, gate.max_change, True)
            assert got["value"] == pytest.approx(summary["metrics"]["Overall"][got["name"]])
        assert card["evaluation"]["metrics"]["Overall"] == pytest.approx(summary["metrics"]["Overall"])
        assert card["evaluation"]["undefined"] == summary["undefined_metrics"]
    assert second["baseline"]["version"] == first["model"]["version"]
    for gate in second["evaluation"]["gates"]:
        assert gate["change"] == pytest.approx(second["baseline"]["deltas"][gate["name"]])
        base = second["baseline"]["metrics"][gate["name"]]
        assert gate["value"] - base == pytest.approx(gate["change"])


def test_tflite_parity_numbers_are_on_the_card(runs):
    _, done = runs
    summary, _ = done[-1]
    mobile = _card(summary)["mobile"]
    assert mobile["version"] == int(summary["pushed_version"])
    assert mobile["variants"] == sorted(summary["mobile_variants"])
    report = json.loads((Path(summary["mobile_path"]) / "model_spec.json").read_text())
    for variant in mobile["variants"]:
        parity = mobile["parity"][variant]
        assert parity["passed"] is True and parity["metric"] == "auc"
        assert parity["metric_value"] == pytest.approx(report["variants"][variant]["parity"]["metric_value"])


def test_the_card_page_renders_offline_with_its_charts(runs, tmp_path):
    """Chromium (networking denied) draws the page: no script; one bar per gate for the model and one for the
    baseline (orange), one per slice; the screenshot holds the bars in their colours."""
    _, done = runs
    summary, _ = done[-1]
    page_file = Path(summary["pushed_path"]) / MC.CARD_HTML
    dom = Page(chromium(page_file, tmp_path, "--dump-dom").decode())
    assert "script" not in {tag for tag, _ in dom.tags}
    gates, per_slice = dom.svgs
    bars = [r for r in gates["rects"] if r.get("class") == "bar"]
    assert [r["fill"] for r in bars] == [MODEL_COLOUR, BASELINE_COLOUR] * 2
    assert all(int(r["width"]) > 100 for r in bars)
    slices = [r for r in per_slice["rects"] if r.get("class") == "bar"]
    assert len(slices) > 10
    text = " ".join(dom.text)
    assert INTENDED_USE in text and LIMITATIONS in text
    shot = tmp_path / "card.png"
    chromium(page_file, tmp_path, "--window-size=900,4000", f"--screenshot={shot}")
    assert len(colour_runs(shot, BASELINE_COLOUR)) == 3  # the legend swatch and two bars
    assert len(colour_runs(shot, MODEL_COLOUR)) >= 3 + len(slices) - 1  # bars may touch between groups


def test_a_card_without_sections_renders_and_data_is_escaped(tmp_path):
    """An older or partial card (no baseline, no mobile, no considerations) still renders; text is escaped."""
    card = {
        "format": MC.FORMAT,
        "model": {"name": "m<x>", "version": 3, "task": "regression", "label": "y", "classes": [], "inputs": ["a"]},
        "data": {"files": [{"path": "<b>.csv", "sha256": "ab", "bytes": 1, "rows": 1, "span": None}]},
        "evaluation": {"blessed": True, "metrics": {"Overall": {"rmse": 1.5}}, "gates": []},
    }
    page = render(card)
    assert "<b>.csv" not in page and "&lt;b&gt;.csv" in page and "m&lt;x&gt;" in page
    assert "No baseline" in page and "No TFLite model" in page and "states no intended use" in page


def test_read_card_refuses_what_is_not_a_card(tmp_path):
    assert MC.read_card(str(tmp_path)) is None
    (tmp_path / MC.CARD_FILE).write_text("{not json")
    assert MC.read_card(str(tmp_path)) is None
    (tmp_path / MC.CARD_FILE).write_text(json.dumps({"format": 99}))
    assert MC.read_card(str(tmp_path)) is None
    MC.write_card(str(tmp_path), {"format": MC.FORMAT, "model": {"name": "m", "version": 1}})
    assert MC.read_card(str(tmp_path))["model"]["version"] == 1
    assert not list(tmp_path.glob("*.partial-*"))


def test_intended_use_and_limitations_round_trip_through_project_yaml(tmp_path):
    folder = write_project(tmp_path, SPEC + 'intended_use: "Sorting wines: not for health advice"\n')
    project = P.load(folder)
    assert project.intended_use == "Sorting wines: not for health advice" and project.limitations is None
    from tfxp.project.dump import dumps

    (folder / "project.yaml").write_text(dumps(project))
    assert P.load(folder) == project
    (folder / "project.yaml").write_text(SPEC + "limitations: 3\n")
    with pytest.raises(P.ProjectError, match="limitations"):
        P.load(folder)
