"""The model card every pushed version carries: `model_card.json` (this module's contract) and `model_card.html`.

Both sit at the root of the version folder, serving (`<serving>/<name>/<version>/`) and mobile
(`<mobile>/<name>/<version>/`) alike: TF Serving loads only `saved_model.pb` and `variables/` and the TFLite
loaders only the files `model_spec.json` names, so every copy of a version keeps its card. Model Card
Toolkit (TFX's model cards) can't be installed beside TFX 1.16 (tensorflow/model-card-toolkit#288); this
card keeps its sections' spirit (model details, data, quantitative analysis, considerations) in plain JSON.

Layout (FORMAT 1; keys are only ever added):

    {"format": 1,
     "model": {"name", "version" (int), "pushed_at" (ISO 8601 UTC), "task" (binary|multiclass|regression),
               "label", "classes" ([] for regression), "inputs" ([feature names])},
     "run": {"pipeline", "run_id" (the MLMD pipeline_run context name, or null),
             "artifacts": {key: {"producer" (node id), "execution_id" (int)}}},   # the Pusher's inputs
     "data": {"fingerprint" ("sha256:..." over the files, or null), "spans" ([int]),
              "files": [{"path" (relative to the data folder), "sha256", "bytes", "rows", "span" (int|null)}],
              "rows": {"train": int, "eval": int}},
     "schema": {"sha256"},
     "code": {"model_code" (tfxp.pipeline.config.model_code_fingerprint), "tfxp_version",
              "lock": {"file", "sha256"} | {"installed_sha256"}},
     "hyperparameters": {"values": {name: value}, "source": "default" | a tuning run},
     "evaluation": {"blessed" (bool), "metrics": {slice: {metric: value|null}},
                    "gates": [{"metric", "slice", "bound" ("lower"|"upper"), "threshold", "value",
                               "change_threshold", "change", "passed"}]},
     "baseline": {"version" (int|null: not pushed here), "metrics": {metric: value}, "deltas": {metric: delta}}
                 | null (the first model),
     "mobile": {"variants": {variant: {"written", "parity": {...}, "reasons": [...]}}, "error"} | null,
     "considerations": {"intended_use": str|null, "limitations": str|null}}

Reading needs no TensorFlow (tfx's `history` and `report` read cards of old and new pushes alike).
"""

from __future__ import annotations

import json
import os
from typing import Any

FORMAT = 1
CARD_FILE = "model_card.json"
CARD_HTML = "model_card.html"


def card_path(version_dir: str) -> str:
    """`<version_dir>/model_card.json`."""
    return os.path.join(version_dir, CARD_FILE)


def read_card(version_dir: str) -> dict[str, Any] | None:
    """The card of a local version folder; None when it has none (a push older than cards) or it can't be read."""
    try:
        with open(card_path(version_dir)) as f:
            card = json.load(f)
    except (OSError, ValueError):
        return None
    return card if isinstance(card, dict) and card.get("format") == FORMAT else None
