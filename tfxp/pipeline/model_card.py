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
     "run": {"pipeline", "pusher_execution_id" (int|null: MLMD; its pipeline_run context names the run),
             "artifacts": {input key: {"producer" (node id), "execution_id" (int)}}},   # the Pusher's inputs
     "data": {"fingerprint" ("sha256:..." over the files, or null), "spans" ([int]),
              "files": [{"path" (relative to the data folder), "sha256", "bytes", "rows", "span" (int|null)}],
              "rows": {"train": int, "eval": int}},
     "schema": {"sha256"},
     "code": {"model_code" (tfxp.pipeline.config.model_code_fingerprint), "tfxp_version",
              "lock": {"file", "sha256"} | {"installed_sha256"}},
     "hyperparameters": {"values": {name: value}, "source": "default" | a tuning run},
     "evaluation": {"blessed" (bool), "metrics": {slice: {metric: value|null}},
                    "undefined": {slice: {metric: why}} (e.g. "one class only": TFMA reports AUC 0.0 there),
                    "gates": [{"metric" (TFMA class), "name" (metric key), "slice", "higher_is_better",
                               "bound", "value", "max_change", "change" (vs the baseline, or null),
                               "passed"}]},
     "baseline": {"version" (int|null: not pushed to this base path), "metrics": {metric: value} (Overall),
                  "deltas": {metric: candidate - baseline}} | null (no blessed model before this one),
     "mobile": {"version", "variants": [written variant names], "rejected": {variant: [reasons]},
                "parity": {variant: {...the parity gate's report...}}, "error": str|null} | null (not yet),
     "infra_validation": {"status", "reason", "load_seconds", "p50_ms", "p99_ms", "rss_bytes", "requests",
                          "compared", "max_abs_diff", "signatures"} | null (tfxp.pipeline.infra_validator),
     "considerations": {"intended_use": str|null, "limitations": str|null}}

Reading needs no TensorFlow (`tfxp history` and `tfxp report` read cards of old and new pushes alike);
`build_card` (run by the Pusher) reads TFX artifacts with TFMA and TFDV.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Mapping, Sequence
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


def write_card(version_dir: str, card: Mapping[str, Any]) -> None:
    """Writes `model_card.json` and `model_card.html` into `version_dir` (local or gs://), each whole: a
    reader sees the old file or the new one (a local rename; an object store writes an object whole)."""
    from tfxp.pipeline.model_card_html import render

    _write_text(f"{version_dir.rstrip('/')}/{CARD_FILE}", json.dumps(card, indent=2, sort_keys=True))
    _write_text(f"{version_dir.rstrip('/')}/{CARD_HTML}", render(card))


def _write_text(path: str, text: str) -> None:
    from tfxp.pipeline.config import is_uri

    if is_uri(path):
        import tensorflow as tf

        with tf.io.gfile.GFile(path, "w") as f:
            f.write(text)
        return
    partial = f"{path}.partial-{os.getpid()}"
    with open(partial, "w") as f:
        f.write(text)
    os.replace(partial, path)


def read_remote_card(version_dir: str) -> dict[str, Any] | None:
    """`read_card` for a local folder or a gs:// URI (through tf.io.gfile)."""
    from tfxp.pipeline.config import is_uri

    if not is_uri(version_dir):
        return read_card(version_dir)
    import tensorflow as tf

    try:
        with tf.io.gfile.GFile(f"{version_dir.rstrip('/')}/{CARD_FILE}") as f:
            card = json.loads(f.read())
    except (tf.errors.OpError, ValueError):
        return None
    return card if isinstance(card, dict) and card.get("format") == FORMAT else None


# ---------------------------------------------------------------------------------- run facts
def environment(project_root: str) -> dict[str, Any]:
    """The code a model was built with: tfxp's version and the lock's sha256 (`requirements.lock` of a checkout),
    or, installed from a wheel (no lock beside it), the sha256 of every installed "name==version" sorted."""
    from importlib import metadata

    try:
        version = metadata.version("tfxp")
    except metadata.PackageNotFoundError:
        version = None
    lock = os.path.join(project_root, "requirements.lock")
    if os.path.isfile(lock):
        with open(lock, "rb") as f:
            locked: dict[str, Any] = {"file": "requirements.lock", "sha256": hashlib.sha256(f.read()).hexdigest()}
    else:
        installed = sorted({f"{d.metadata['Name']}=={d.version}".lower() for d in metadata.distributions()})
        locked = {"installed_sha256": hashlib.sha256("\n".join(installed).encode()).hexdigest()}
    return {"tfxp_version": version, "lock": locked}


def card_facts(
    gates: Sequence[Mapping[str, Any]],
    hyperparameters: Mapping[str, Any],
    code: Mapping[str, Any],
    intended_use: str | None = None,
    limitations: str | None = None,
) -> str:
    """What the pipeline knows before it runs, as the Pusher's `model_card` parameter (JSON): the gates
    ({"metric", "bound", "max_change", "higher_is_better"}), hyperparameters, code identity, considerations."""
    return json.dumps(
        {
            "gates": list(gates),
            "hyperparameters": {"values": dict(hyperparameters), "source": "default"},
            "code": dict(code),
            "considerations": {"intended_use": intended_use, "limitations": limitations},
        },
        sort_keys=True,
    )


def artifact_origin(uri: str) -> dict[str, Any] | None:
    """{"producer", "execution_id"} of a TFX artifact from its URI `<root>/<node id>/<output key>/<execution id>`
    (TFX's layout, local and on Vertex AI); None for a URI of another shape."""
    parts = uri.rstrip("/").split("/")
    if len(parts) < 3 or not parts[-1].isdigit():
        return None
    return {"producer": parts[-3], "execution_id": int(parts[-1])}


def pushed_at() -> str:
    """Now, as the card's and the push record's ISO 8601 UTC text."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
