"""Canary / promote / rollback over a TF Serving text `ModelServerConfig` (TF-free logic).

Labels `stable` and `canary` drive the release. TF Serving refuses a label on a
version that is not AVAILABLE when the config is applied (server_core.cc
`UpdateModelVersionLabelMap`), so a change that labels a version not served now is
written in two steps: step 1 adds the version to the `specific` policy with the
labels unchanged; step 2 (once the server reports the version AVAILABLE) moves the
labels. Without a server to ask, only step 1 is written; running the same command
again sees step 1 done and writes step 2. No write ever labels a version the
previous config did not serve.

Writes are atomic (temp file + `os.replace` in the config's folder). Text protos
lose comments when re-serialized. Each write appends a JSON line to
`<config>.release.log`. Errors raise `ReleaseError` and leave the config untouched.
"""

from __future__ import annotations

import getpass
import json
import os
import tempfile
import time
from dataclasses import dataclass, field

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from tfxp.files import parse_version
from tfxp.serving import config as config_lib

STABLE = "stable"
CANARY = "canary"


class ReleaseError(ValueError):
    """A release change refused; the config file is untouched."""


@dataclass
class ReleaseResult:
    """What a release command did: `done` False means step 1 was written and the command must be re-run."""

    model: str
    labels: dict[str, int]
    versions: list[int]
    done: bool
    wrote: bool
    message: str = ""
    on_disk: list[int] = field(default_factory=list)


def _load(path: str) -> model_server_config_pb2.ModelServerConfig:
    try:
        cfg = config_lib._parse_text(path, model_server_config_pb2.ModelServerConfig())
        return config_lib.validate_model_server_config(cfg, source=path)
    except config_lib.ConfigError as e:
        raise ReleaseError(str(e)) from e


def _model(cfg: model_server_config_pb2.ModelServerConfig, name: str | None, path: str):
    models = list(cfg.model_config_list.config)
    if name is None:
        if len(models) != 1:
            raise ReleaseError(f"{path}: {len(models)} models; name one with --model")
        return models[0]
    for m in models:
        if m.name == name:
            return m
    raise ReleaseError(f"{path}: unknown model {name!r} (have {[m.name for m in models]})")


def versions_on_disk(base_path: str) -> list[int]:
    """Version folders under a local `base_path`, ascending ([] if absent); a version's name follows
    tfxp.files.parse_version, the rule the server's repository uses (ASCII decimal, leading zeros allowed)."""
    try:
        names = os.listdir(base_path)
    except OSError:
        return []
    found = {parse_version(n) for n in names if os.path.isdir(os.path.join(base_path, n))}
    return sorted(found - {None})


def _served(model, on_disk: list[int]) -> set[int]:
    return config_lib.version_policy(model).select(on_disk)


def base_path(config_path: str, model: str | None = None) -> str:
    """The model's base_path as the server resolves it (relative to the config file's folder).
    Raises ReleaseError for a config that doesn't parse or an unknown model."""
    m = _model(_load(config_path), model, config_path)
    return config_lib.resolve_base_path(m.base_path, os.path.dirname(os.path.abspath(config_path)))


def status(config_path: str, model: str | None = None) -> ReleaseResult:
    """The model's versions on disk, served versions and labels (stable defaults to the latest served)."""
    cfg = _load(config_path)
    m = _model(cfg, model, config_path)
    on_disk = versions_on_disk(config_lib.resolve_base_path(m.base_path, os.path.dirname(os.path.abspath(config_path))))
    served = sorted(_served(m, on_disk))
    labels = dict(m.version_labels)
    if STABLE not in labels and served:
        labels[STABLE] = served[-1]
    return ReleaseResult(m.name, labels, served, True, False, on_disk=on_disk)


def _apply(config_path, model, command, before: ReleaseResult, target_labels, target_versions, is_available):
    """Writes the change from `before` (the caller's `status`) to the target labels and versions: step 2 when
    every labelled version is served and available (`is_available`, default: served by the config), else step 1."""
    cfg = _load(config_path)
    m = _model(cfg, model, config_path)
    is_available = is_available or (lambda _m, version: version in before.versions)
    for v in target_versions:
        if v not in before.on_disk:
            raise ReleaseError(f"version {v} of model {m.name!r} is not on disk under {m.base_path}")
    served_now = set(before.versions)
    wanted = sorted(set(target_versions))
    new_targets = {v for v in target_labels.values() if v not in served_now}
    labels = dict(m.version_labels)
    done = True
    if new_targets or not all(is_available(m.name, v) for v in target_labels.values()):
        # Step 1: serve the union, labels unchanged (keep stable's version served).
        wanted = sorted(served_now | set(wanted))
        done = False
    else:
        labels = dict(target_labels)
    if (
        wanted == sorted(served_now)
        and labels == dict(m.version_labels)
        and config_lib.version_policy(m).kind == "specific"
    ):
        return ReleaseResult(m.name, labels, wanted, done, False, "no change", before.on_disk)
    old = {"labels": dict(m.version_labels), "versions": sorted(served_now)}
    m.model_version_policy.specific.ClearField("versions")
    m.model_version_policy.specific.versions.extend(wanted)
    m.ClearField("version_labels")
    for k, v in labels.items():
        m.version_labels[k] = v
    _write(config_path, cfg)
    _log(config_path, command, m.name, old, {"labels": labels, "versions": wanted})
    msg = (
        ""
        if done
        else f"step 1 written; once {sorted(target_labels.values())} are AVAILABLE run the same command again"
    )
    return ReleaseResult(m.name, labels, wanted, done, True, msg, before.on_disk)


def _write(path: str, cfg) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".release-", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text_format.MessageToString(cfg))
    os.replace(tmp, path)


def _log(path, command, model, before, after) -> None:
    entry = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "user": getpass.getuser(),
        "command": command,
        "model": model,
        "from": before,
        "to": after,
    }
    with open(f"{path}.release.log", "a", encoding="utf-8") as f:
        f.write(json.dumps(entry, sort_keys=True) + "\n")


def pin(config_path: str, model: str | None = None) -> ReleaseResult:
    """Pins the versions served now in a `specific` policy, `stable` on the latest of them (kept if set).

    Under `latest` a new version folder is served as soon as it appears; pinned, it waits for a label
    (the pipeline's canary push pins before it publishes). No change (`wrote` False) when already
    `specific`. Raises ReleaseError when the model serves no version (nothing to keep stable).
    """
    st = status(config_path, model)
    if STABLE not in st.labels:
        raise ReleaseError(f"model {st.model!r} serves no version; nothing to pin")
    return _apply(config_path, model, "pin", st, st.labels, st.versions, None)


def canary(config_path: str, model: str | None, version: int, is_available=None) -> ReleaseResult:
    """Serve stable and `version`; label `canary` -> `version` (two steps if it is not served yet)."""
    st = status(config_path, model)
    stable = st.labels.get(STABLE)
    if stable is None:
        raise ReleaseError(f"model {st.model!r} serves no version; nothing to keep stable")
    if version == stable:
        raise ReleaseError(f"version {version} is already stable")
    targets = {STABLE: stable, CANARY: version}
    return _apply(config_path, model, f"canary {version}", st, targets, [stable, version], is_available)


def promote(config_path: str, model: str | None = None, is_available=None) -> ReleaseResult:
    """stable -> the canary's version, canary removed; the new stable stays served."""
    st = status(config_path, model)
    if CANARY not in st.labels:
        raise ReleaseError(f"model {st.model!r} has no canary to promote")
    v = st.labels[CANARY]
    return _apply(config_path, model, "promote", st, {STABLE: v}, [v], is_available)


def rollback(config_path: str, model: str | None = None, to: int | None = None, is_available=None) -> ReleaseResult:
    """stable -> `to` or the version before stable on disk; canary removed."""
    st = status(config_path, model)
    stable = st.labels.get(STABLE)
    if to is None:
        earlier = [v for v in st.on_disk if stable is not None and v < stable]
        if not earlier:
            raise ReleaseError(f"model {st.model!r}: no version earlier than stable {stable} on disk")
        to = earlier[-1]
    return _apply(config_path, model, f"rollback --to {to}", st, {STABLE: to}, [to], is_available)
