"""The model repository: finds versions on disk, loads, warms, routes and unloads them.

Mirrors TF Serving's behaviour: integer-named version directories under each
model's base path; a version policy (latest N / all / specific) chooses which to
serve; a new version is loaded and warmed up *before* an old one is unloaded,
and unloading waits for the old version's in-flight requests.
"""
from __future__ import annotations

import contextlib
import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Iterator

from serving.config import VersionPolicy
from serving.errors import Code, ServingError
from serving.servable import Servable, is_complete_version

log = logging.getLogger(__name__)

# TF Serving's ModelVersionStatus.State names.
START, LOADING, AVAILABLE, UNLOADING, END = "START", "LOADING", "AVAILABLE", "UNLOADING", "END"
UNLOAD_GRACE_SECONDS = 30.0


@dataclass(frozen=True)
class ModelConfig:
    name: str
    base_path: str
    policy: VersionPolicy = VersionPolicy()
    labels: dict[str, int] = field(default_factory=dict)


@dataclass
class VersionStatus:
    version: int
    state: str
    error_code: str = "OK"
    error_message: str = ""


class _Model:
    def __init__(self, config: ModelConfig):
        self.config = config
        self.servables: dict[int, Servable] = {}
        self.status: dict[int, VersionStatus] = {}
        self.failed_mtime: dict[int, float] = {}  # don't retry a broken version until it changes


class ModelRepository:
    def __init__(self, configs: list[ModelConfig], warm_up: bool = True):
        self._models = {c.name: _Model(c) for c in configs}
        self._lock = threading.RLock()
        self._warm_up = warm_up
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.listeners: list = []  # callables(name, version, event) for metrics/logging

    # -- lifecycle --------------------------------------------------------------
    def start(self, poll_seconds: float) -> None:
        """Loads what is on disk now (so the server starts ready), then polls if asked."""
        self.poll_once()
        if poll_seconds > 0:
            self._thread = threading.Thread(target=self._poll_loop, args=(poll_seconds,),
                                            name="model-repository-poll", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)

    def _poll_loop(self, poll_seconds: float) -> None:
        while not self._stop.wait(poll_seconds):
            try:
                self.poll_once()
            except Exception:  # noqa: BLE001 - a bad poll must not kill the poller
                log.exception("model repository poll failed")

    def reload_config(self, configs: list[ModelConfig]) -> None:
        """Replaces the whole config (TF Serving's HandleReloadConfigRequest semantics)."""
        with self._lock:
            removed = [m for name, m in self._models.items() if name not in {c.name for c in configs}]
            for config in configs:
                if config.name in self._models:
                    self._models[config.name].config = config
                else:
                    self._models[config.name] = _Model(config)
        for model in removed:
            for version in list(model.servables):
                self._unload(model, version)
            with self._lock:
                self._models.pop(model.config.name, None)
        self.poll_once()

    # -- polling ----------------------------------------------------------------
    def poll_once(self) -> None:
        with self._lock:
            models = list(self._models.values())
        for model in models:
            self._sync(model)

    def _on_disk(self, model: _Model) -> list[int]:
        base = model.config.base_path
        if not os.path.isdir(base):
            return []
        versions = []
        for entry in os.listdir(base):
            if entry.isdigit() and is_complete_version(os.path.join(base, entry)):
                versions.append(int(entry))
        return versions

    def _sync(self, model: _Model) -> None:
        available = self._on_disk(model)
        wanted = model.config.policy.select(available)
        # Load new versions first, newest first, so "latest" moves forward as soon as possible.
        for version in sorted(wanted - set(model.servables), reverse=True):
            self._load(model, version)
        # Availability first: an unwanted version stays until a wanted one is serving
        # (a new version that fails to load must not leave the model with none),
        # unless it vanished from disk.
        serving_wanted = wanted & set(model.servables)
        for version in sorted(set(model.servables) - wanted):
            if serving_wanted or version not in available:
                self._unload(model, version)

    def _load(self, model: _Model, version: int) -> None:
        path = os.path.join(model.config.base_path, str(version))
        mtime = os.path.getmtime(path)
        if model.failed_mtime.get(version) == mtime:
            return
        with self._lock:
            model.status[version] = VersionStatus(version, LOADING)
        try:
            servable = Servable(model.config.name, version, path)
            warmed = servable.warm_up() if self._warm_up else 0
        except Exception as exc:  # noqa: BLE001 - a broken version is reported, not fatal
            log.exception("failed to load %s version %d", model.config.name, version)
            model.failed_mtime[version] = mtime
            with self._lock:
                model.status[version] = VersionStatus(version, END, "UNKNOWN", f"{type(exc).__name__}: {exc}")
            return
        with self._lock:
            model.servables[version] = servable
            model.status[version] = VersionStatus(version, AVAILABLE)
        log.info("loaded %s version %d (%d warmup requests)", model.config.name, version, warmed)
        self._notify(model.config.name, version, "loaded")

    def _unload(self, model: _Model, version: int) -> None:
        with self._lock:
            servable = model.servables.pop(version, None)
            if servable is None:
                return
            model.status[version] = VersionStatus(version, UNLOADING)
        # Routing no longer picks it; requests already holding it finish first.
        if not servable.wait_idle(UNLOAD_GRACE_SECONDS):
            log.warning("unloading %s version %d with requests still in flight", model.config.name, version)
        with self._lock:
            model.status[version] = VersionStatus(version, END)
        log.info("unloaded %s version %d", model.config.name, version)
        self._notify(model.config.name, version, "unloaded")

    def _notify(self, name: str, version: int, event: str) -> None:
        for listener in self.listeners:
            listener(name, version, event)

    # -- routing ------------------------------------------------------------------
    def model_names(self) -> list[str]:
        with self._lock:
            return sorted(self._models)

    def _resolve(self, name: str, version: int | None, label: str | None) -> Servable:
        if version is not None and label is not None:
            raise ServingError(Code.INVALID_ARGUMENT, "Both version and version_label cannot be set")
        model = self._models.get(name)
        if model is None:
            raise ServingError(Code.NOT_FOUND, f"Servable not found for request: Latest({name})")
        if label is not None:
            if label not in model.config.labels:
                raise ServingError(Code.NOT_FOUND, f"Unrecognized servable version label: {label}")
            version = model.config.labels[label]
        if version is None:
            if not model.servables:
                raise ServingError(Code.NOT_FOUND, f"Servable not found for request: Latest({name})")
            return model.servables[max(model.servables)]
        servable = model.servables.get(version)
        if servable is None:
            raise ServingError(Code.NOT_FOUND, f"Servable not found for request: Specific({name}, {version})")
        return servable

    @contextlib.contextmanager
    def servable(self, name: str, version: int | None = None, label: str | None = None) -> Iterator[Servable]:
        """Holds a version for the duration of one request (unloading waits for it)."""
        with self._lock:
            servable = self._resolve(name, version, label)
            servable.acquire()
        try:
            yield servable
        finally:
            servable.release()

    def status(self, name: str, version: int | None = None, label: str | None = None) -> list[VersionStatus]:
        with self._lock:
            model = self._models.get(name)
            if model is None:
                raise ServingError(Code.NOT_FOUND, f"Could not find any versions of model {name}")
            if label is not None:
                if version is not None:
                    raise ServingError(Code.INVALID_ARGUMENT, "Both version and version_label cannot be set")
                if label not in model.config.labels:
                    raise ServingError(Code.NOT_FOUND, f"Unrecognized servable version label: {label}")
                version = model.config.labels[label]
            if version is not None:
                if version not in model.status:
                    raise ServingError(Code.NOT_FOUND, f"Could not find version {version} of model {name}")
                return [model.status[version]]
            if not model.status:
                raise ServingError(Code.NOT_FOUND, f"Could not find any versions of model {name}")
            return [model.status[v] for v in sorted(model.status, reverse=True)]

    def ready(self) -> bool:
        """True when every configured model has at least one AVAILABLE version."""
        with self._lock:
            return all(m.servables for m in self._models.values())
