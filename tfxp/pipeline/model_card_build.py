"""Assembling the model card (tfxp.pipeline.model_card's layout) from the TFX artifacts the Pushers receive.

Runs inside the Pusher (serving card) and the MobilePusher (its mobile section), locally and in the pipeline
image; reads TFMA's evaluation output and the schema through tf.io.gfile (artifact URIs are gs:// on Vertex AI).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping
from typing import Any

from tfxp.pipeline.model_card import FORMAT, artifact_origin, pushed_at


def _finite(value: Any) -> Any:
    """NaN and infinities as null: the card is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _read_text(path: str) -> str:
    import tensorflow as tf

    with tf.io.gfile.GFile(path) as f:
        return f.read()


def _data(examples, statistics_uri: str) -> dict[str, Any]:
    """The card's `data`: the files ExampleGen read (its `input_files` property), spans, rows per split."""
    from tfxp.pipeline.example_gen import INPUT_FILES_PROPERTY
    from tfxp.schema.anomalies import split_row_counts

    text = (
        examples.get_string_custom_property(INPUT_FILES_PROPERTY)
        if examples.has_custom_property(INPUT_FILES_PROPERTY)
        else ""
    )
    files = json.loads(text) if text else []
    for entry in files:
        entry.setdefault("span", None)
    fingerprint = (
        examples.get_string_custom_property("input_fingerprint")
        if examples.has_custom_property("input_fingerprint")
        else None
    )
    return {
        "fingerprint": fingerprint or None,
        "spans": sorted({f["span"] for f in files if f["span"] is not None}),
        "files": files,
        "rows": split_row_counts(statistics_uri),
    }


def _gates(facts: Mapping[str, Any], metrics: Mapping, baseline: Mapping, failures: list) -> list[dict[str, Any]]:
    """Each gate with the candidate's value, its change against the baseline and TFMA's decision."""
    out = []
    from tfxp.pipeline.summary import metric_key_name

    failed = {(f.slice, f.metric) for f in failures}
    for gate in facts.get("gates", []):
        name = metric_key_name(gate["metric"])
        value = metrics.get("Overall", {}).get(name)
        base = baseline.get(name)
        out.append(
            {
                **gate,
                "name": name,
                "slice": "Overall",
                "value": value,
                "change": value - base if value is not None and base is not None else None,
                "passed": ("Overall", name) not in failed and ("Overall", f"{name} (change vs baseline)") not in failed,
            }
        )
    return out


def _evaluation(facts: Mapping[str, Any], evaluation_uri: str, blessed: bool) -> tuple[dict, dict]:
    """(the card's `evaluation`, the baseline's Overall metrics: {} without a baseline)."""
    from tfxp.pipeline.summary import evaluation_metrics, explain_undefined, threshold_failures

    # A metric undefined on a slice (AUC on one class, which TFMA reports as 0.0) is null, with the reason.
    metrics, undefined = explain_undefined(evaluation_metrics(evaluation_uri))
    baseline = explain_undefined(evaluation_metrics(evaluation_uri, baseline=True))[0].get("Overall", {})
    gates = _gates(facts, metrics, baseline, threshold_failures(evaluation_uri))
    return {"blessed": blessed, "metrics": metrics, "undefined": undefined, "gates": gates}, baseline


def _infra_validation(infra_blessing) -> dict | None:
    """The `infra_validation` JSON string property of the InfraValidator's blessing, None without it."""
    if infra_blessing is None:
        return None
    return json.loads(infra_blessing.get_string_custom_property("infra_validation") or "null")


def _hyperparameters(version_dir: str, facts: Mapping[str, Any]) -> dict[str, Any]:
    """What the model was trained with: the values the Trainer saved with it (tfxp.models.tuning.read_chosen:
    tuned or default, and the tuning's source), beside the run's train/eval steps; the card facts' defaults
    for a model trained before the Trainer saved them."""
    from tfxp.models.tuning import read_chosen

    known = dict(facts.get("hyperparameters", {}))
    record = read_chosen(version_dir)
    if record is None:
        return known
    steps = {k: v for k, v in known.get("values", {}).items() if k in ("train_steps", "eval_steps")}
    return {"values": {**steps, **record["values"]}, "source": record["source"]}


def build_card(
    model_name: str,
    version: int,
    version_dir: str,
    facts: Mapping[str, Any],
    artifacts: Mapping[str, Any],
    serving_dir: str,
    pushed_model,
) -> dict[str, Any]:
    """The serving version's card (model_card's layout; `mobile` null until the MobilePusher adds it).

    `version_dir`: the version's files (its assets.extra/tfxp_problem.json); `facts`: the Pusher's
    `model_card` parameter (model_card.card_facts); `artifacts`: the Pusher's input artifacts by key ("model",
    "examples", "statistics", "schema", "model_evaluation"; "baseline_model" None without a baseline);
    `pushed_model`: its output artifact.
    """
    from tfxp.monitoring.reference import PROBLEM_FILE
    from tfxp.pipeline.publish import find_pushed

    problem = json.loads(_read_text(f"{version_dir.rstrip('/')}/{PROBLEM_FILE.replace(os.sep, '/')}"))
    label = problem["label"]
    evaluation, baseline_metrics = _evaluation(facts, artifacts["model_evaluation"].uri, blessed=True)
    baseline = None
    if artifacts.get("baseline_model") is not None:
        pushed = find_pushed(serving_dir, artifacts["baseline_model"].uri)
        overall = evaluation["metrics"].get("Overall", {})
        baseline = {
            "version": pushed[0] if pushed else None,
            "metrics": baseline_metrics,
            "deltas": {
                k: overall[k] - v for k, v in baseline_metrics.items() if overall.get(k) is not None and v is not None
            },
        }
    statistics_uri, schema_uri = artifacts["statistics"].uri, artifacts["schema"].uri
    pusher = artifact_origin(pushed_model.uri)
    schema_text = _read_text(f"{schema_uri.rstrip('/')}/schema.pbtxt")
    card = {
        "format": FORMAT,
        "model": {
            "name": model_name,
            "version": version,
            "pushed_at": pushed_at(),
            "task": label["task"],
            "label": label["column"],
            "label_hook": label.get("hook"),
            "classes": list(label.get("classes") or []) if label["task"] != "regression" else [],
            "inputs": [f["name"] for f in problem["features"]],
        },
        "run": {
            "pipeline": model_name,
            "pusher_execution_id": pusher["execution_id"] if pusher else None,
            "artifacts": {key: artifact_origin(a.uri) for key, a in sorted(artifacts.items()) if a is not None},
        },
        "data": _data(artifacts["examples"], statistics_uri),
        "schema": {"sha256": hashlib.sha256(schema_text.encode()).hexdigest()},
        "code": dict(facts.get("code", {})),
        "hyperparameters": _hyperparameters(version_dir, facts),
        "evaluation": evaluation,
        "baseline": baseline,
        "mobile": None,
        # The InfraValidator's result (tfxp.pipeline.infra_validator's JSON); null without one.
        "infra_validation": _infra_validation(artifacts.get("infra_blessing")),
        "considerations": dict(facts.get("considerations", {})),
    }
    return _finite(card)


def mobile_section(version: int, result_dict: Mapping[str, Any], rejected: Mapping[str, list[str]]) -> dict:
    """The card's `mobile`: the variants written and rejected, each variant's parity report (the converter's
    report.json, tfxp.mobile.convert's to_dict)."""
    variants = result_dict.get("variants", {})
    return _finite(
        {
            "version": version,
            "variants": sorted(name for name, v in variants.items() if v.get("written")),
            "rejected": dict(rejected),
            "parity": {name: v.get("parity") for name, v in variants.items()},
            "error": None,
        }
    )
