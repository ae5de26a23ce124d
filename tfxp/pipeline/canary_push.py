"""The pipeline's canary push (`tfxp run --push-mode canary --model-config-file FILE`).

Instead of replacing the served version (TF Serving's default `latest` policy serves a new
version folder as soon as it appears), the run:

1. before any component, checks FILE (a TF Serving text ModelServerConfig) names the project's
   model with the run's serving folder as its base path, and pins the versions served now in a
   `specific` policy with `stable` on the newest (tfxp.serving.release.pin) — so the version the
   Pusher publishes minutes later is not served by a policy;
2. after a push of a new version V, writes `release.canary(FILE, model, V)`: step 1 (serve stable
   and V, labels unchanged); the label `canary` -> V follows with `tfxp release canary V`
   once the server reports V AVAILABLE (TF Serving refuses a label on a version not loaded yet).

A server polling FILE must re-read it between the pin and the push: the run's Transform, Trainer
and Evaluator take minutes, a poll (`--model_config_file_poll_wait_seconds`) usually less. Only
local files and folders (release edits the file in place).
"""

from __future__ import annotations

import os
from dataclasses import asdict

from tfxp.serving import release

MODES = ("replace", "canary")


class CanaryPushError(ValueError):
    """The model config file can't take a canary push (the message says why and what to do)."""


def prepare(config_file: str, model: str, serving_dir: str) -> dict:
    """Checks `config_file` names `model` at `serving_dir` and pins what it serves; returns what was done
    ({"pinned": bool, "labels", "versions"}). Raises CanaryPushError (config untouched)."""
    try:
        st = release.status(config_file, model)
        base = release.base_path(config_file, model)
    except release.ReleaseError as exc:
        raise CanaryPushError(f"--model-config-file: {exc}") from None
    if os.path.realpath(base) != os.path.realpath(serving_dir):
        raise CanaryPushError(
            f"--model-config-file: model {model!r} has base_path {base}, but this run pushes to {serving_dir}; "
            "point it there (the server and the pipeline must see the same version folders)"
        )
    if not st.versions:
        raise CanaryPushError(
            f"--model-config-file: model {model!r} serves no version yet; push the first one with "
            "--push-mode replace (a canary needs a stable version beside it)"
        )
    try:
        pinned = release.pin(config_file, model)
    except release.ReleaseError as exc:
        raise CanaryPushError(f"--model-config-file: {exc}") from None
    return {"pinned": pinned.wrote, "labels": pinned.labels, "versions": pinned.versions}


def label_canary(config_file: str, model: str, version: int) -> dict:
    """After the Pusher published `version`: step 1 of `release.canary` (or both steps if the config
    already serves it). Returns the summary's `release` record (mode, version, done, labels, versions,
    message, next). Raises CanaryPushError when the release refuses (the config is untouched)."""
    try:
        result = release.canary(config_file, model, version)
    except release.ReleaseError as exc:
        raise CanaryPushError(str(exc)) from None
    record = {"mode": "canary", "version": version, **asdict(result)}
    record["next"] = (
        None
        if result.done
        else f"tfxp release canary {version} --model-config-file {config_file} --model {model} --server HOST:PORT"
    )
    return record
