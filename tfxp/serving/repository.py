"""The model repository: finds versions on disk, loads, warms, routes and unloads them.

Mirrors TF Serving's behaviour: version directories under each model's base
path (any ASCII-decimal name, leading zeros included); a version policy (latest
N / all / specific) chooses which to serve; a new version is loaded and warmed up
*before* an old one is unloaded, and unloading waits for the old version's
in-flight requests.

One bad directory, version or model never stops the others: a version that
fails to load is reported (state END with its error) and retried when its files
change; a base path that is missing, unreadable or without versions is logged;
polling carries on for every model.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

# The version-name rule has one home, shared with the publisher (re-exported here).
from tfxp.files import INT64_MAX, is_version_name, parse_version  # noqa: F401
from tfxp.serving.config import VersionPolicy
from tfxp.serving.errors import Code, ServingError
from tfxp.serving.servable import Servable, is_complete_version

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
        # A version that failed to load is retried only once its files change.
        self.failed: dict[int, tuple] = {}
        self.disk_problem: str | None = None  # last warning about the base path (logged once per change)
        self.duplicates: frozenset = frozenset()  # last warned duplicate version directories


class ModelRepository:
    """Owns every model's versions: loading, routing, unloading.

    `allow_version_labels_for_unavailable_models` is TF Serving's
    --allow_version_labels_for_unavailable_models (see `check_labels`). Without it, raises
    ServingError(FAILED_PRECONDITION) when `configs` label any version: nothing is loaded yet.
    """

    def __init__(
        self,
        configs: list[ModelConfig],
        warm_up: bool = True,
        allow_version_labels_for_unavailable_models: bool = False,
    ):
        self.allow_version_labels_for_unavailable_models = allow_version_labels_for_unavailable_models
        self._models: dict[str, _Model] = {}
        self._lock = threading.RLock()  # guards the maps that requests read
        # TF Serving's first ReloadConfig checks labels before any version loads.
        self.check_labels(configs)
        self._models = {c.name: _Model(c) for c in configs}
        self._sync_lock = threading.Lock()  # one poll or reload at a time: no version loads twice
        self._warm_up = warm_up
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.listeners: list = []  # callables(name, version, event) for metrics/logging

    # -- lifecycle --------------------------------------------------------------
    def start(self, poll_seconds: float) -> None:
        """Loads what is on disk now (so the server starts ready), then polls if asked."""
        self.poll_once()
        if poll_seconds > 0:
            self._thread = threading.Thread(
                target=self._poll_loop, args=(poll_seconds,), name="model-repository-poll", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)

    def _poll_loop(self, poll_seconds: float) -> None:
        while not self._stop.wait(poll_seconds):
            try:
                self.poll_once()
            except Exception:  # a bad poll must not kill the poller
                log.exception("model repository poll failed")

    def reload_config(self, configs: list[ModelConfig]) -> None:
        """Replaces the whole config (TF Serving's HandleReloadConfigRequest semantics).

        Raises ServingError(FAILED_PRECONDITION) from `check_labels`, with the old config,
        labels included, still in force: TF Serving assigns the new config before its label
        check fails (its versions never load, its labels never apply); keeping the whole old
        one loses nothing and says the same thing.
        """
        with self._sync_lock:
            with self._lock:
                self.check_labels(configs)
                names = {c.name for c in configs}
                removed = [m for name, m in self._models.items() if name not in names]
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
            self._poll_models()

    def check_labels(self, configs: list[ModelConfig]) -> None:
        """Refuses a label on a version that is not AVAILABLE now, as TF Serving's
        server_core.cc UpdateModelVersionLabelMap (run before the new config's versions load,
        so a config may only label versions the config in force already serves).

        With allow_version_labels_for_unavailable_models, a new label, or one keeping its
        version, may point at any version; moving an existing label to an unavailable
        version is still refused (server_core_test.cc AssignExistingLabelToUnavailableVersion).
        Raises ServingError(FAILED_PRECONDITION) with TF Serving's message.
        """
        with self._lock:
            for config in configs:
                model = self._models.get(config.name)
                old_labels = model.config.labels if model is not None else {}
                available = set(model.servables) if model is not None else set()
                for label, version in config.labels.items():
                    moved = label in old_labels and old_labels[label] != version
                    if version in available or (self.allow_version_labels_for_unavailable_models and not moved):
                        continue
                    raise ServingError(
                        Code.FAILED_PRECONDITION,
                        f"Request to assign label to version {version} of model {config.name}, "
                        "which is not currently available for inference",
                    )

    # -- polling ----------------------------------------------------------------
    def poll_once(self) -> None:
        with self._sync_lock:
            self._poll_models()

    def _poll_models(self) -> None:
        with self._lock:
            models = list(self._models.values())
        for model in models:
            try:
                self._sync(model)
            except Exception:  # one model's trouble never stops the others
                log.exception("polling model %s failed", model.config.name)

    def _on_disk(self, model: _Model) -> dict[int, str]:
        """Complete versions under the base path: version -> directory name."""
        base = model.config.base_path
        try:
            children = sorted(os.listdir(base))
        except FileNotFoundError:
            self._disk_problem(model, f"base path {base} of model {model.config.name} does not exist")
            return {}
        except OSError as exc:
            self._disk_problem(model, f"base path {base} of model {model.config.name} can't be read: {exc}")
            return {}
        by_version: dict[int, list[str]] = {}
        for child in children:  # sorted, so the last of several names wins, as in TF Serving
            version = parse_version(child)
            if version is not None and is_complete_version(os.path.join(base, child)):
                by_version.setdefault(version, []).append(child)
        self._warn_duplicates(model, {v: names for v, names in by_version.items() if len(names) > 1})
        if not by_version:
            self._disk_problem(
                model,
                f"no versions of model {model.config.name} found under base path {base} "
                "(versions are directories named by a number, e.g. 1/, holding a SavedModel)",
            )
        else:
            self._disk_problem(model, None)
        return {version: names[-1] for version, names in by_version.items()}

    def _disk_problem(self, model: _Model, problem: str | None) -> None:
        """Logs a base-path warning once, not on every poll."""
        if problem != model.disk_problem and problem is not None:
            log.warning("%s", problem)
        model.disk_problem = problem

    def _warn_duplicates(self, model: _Model, duplicates: dict[int, list[str]]) -> None:
        key = frozenset((v, tuple(names)) for v, names in duplicates.items())
        if key != model.duplicates:
            for version, names in sorted(duplicates.items()):
                log.warning(
                    "model %s: directories %s are all version %d; loading it from %s/",
                    model.config.name,
                    ", ".join(f"{n}/" for n in names),
                    version,
                    names[-1],
                )
        model.duplicates = key

    def _sync(self, model: _Model) -> None:
        on_disk = self._on_disk(model)
        wanted = model.config.policy.select(on_disk)
        # Load new versions first, newest first, so "latest" moves forward as soon as possible.
        for version in sorted(wanted - set(model.servables), reverse=True):
            self._load(model, version, os.path.join(model.config.base_path, on_disk[version]))
        # Availability first: an unwanted version stays until a wanted one is serving
        # (a new version that fails to load must not leave the model with none),
        # unless it vanished from disk.
        serving_wanted = wanted & set(model.servables)
        for version in sorted(set(model.servables) - wanted):
            if serving_wanted or version not in on_disk:
                self._unload(model, version)

    def _load(self, model: _Model, version: int, path: str) -> None:
        name = model.config.name
        fingerprint = _fingerprint(path)
        if model.failed.get(version) == fingerprint:
            return
        with self._lock:
            model.status[version] = VersionStatus(version, LOADING)
        started = time.monotonic()
        try:
            servable, warmed = self._open(name, version, path)
        except Exception as exc:  # a broken version is reported, not fatal
            # One line on the console; the traceback goes to the log file (see server.console_handler).
            log.error("failed to load %s version %d from %s: %s", name, version, path, _first_line(exc), exc_info=True)
            model.failed[version] = fingerprint
            with self._lock:
                model.status[version] = VersionStatus(version, END, "UNKNOWN", _status_message(exc))
            return
        model.failed.pop(version, None)
        with self._lock:
            model.servables[version] = servable
            model.status[version] = VersionStatus(version, AVAILABLE)
        log.info(
            "loaded %s version %d from %s in %.1f s (%d warmup requests)",
            name,
            version,
            path,
            time.monotonic() - started,
            warmed,
        )
        self._notify(name, version, "loaded")

    def _open(self, name: str, version: int, path: str) -> tuple[Servable, int]:
        """The loaded and warmed-up version, and its number of warmup requests."""
        servable = Servable(name, version, path)
        try:
            return servable, servable.warm_up() if self._warm_up else 0
        except BaseException:
            servable.close()
            raise

    def _unload(self, model: _Model, version: int) -> None:
        with self._lock:
            servable = model.servables.pop(version, None)
            if servable is None:
                return
            model.status[version] = VersionStatus(version, UNLOADING)
        # Routing no longer picks it; requests already holding it finish first.
        if servable.wait_idle(UNLOAD_GRACE_SECONDS):
            servable.close()
        else:  # left to the garbage collector, so the stragglers can still finish
            log.warning("unloading %s version %d with requests still in flight", model.config.name, version)
        with self._lock:
            model.status[version] = VersionStatus(version, END)
        log.info("unloaded %s version %d", model.config.name, version)
        self._notify(model.config.name, version, "unloaded")

    def _notify(self, name: str, version: int, event: str) -> None:
        for listener in self.listeners:
            try:
                listener(name, version, event)
            except Exception:  # a listener's bug must not undo a load
                log.exception("repository listener failed on %s %s version %d", event, name, version)

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
                # ServerCore::GetModelVersionForLabel: INVALID_ARGUMENT, not NOT_FOUND.
                raise ServingError(Code.INVALID_ARGUMENT, f"Unrecognized servable version label: {label}")
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
        """GetModelStatus: the version's state, or every version's, newest first.

        `label` is ignored, as TF Serving's get_model_status_impl.cc ignores
        ModelSpec.version_label: every version is listed, whatever the label.
        Raises ServingError(NOT_FOUND) for an unknown model or version.
        """
        del label
        with self._lock:
            model = self._models.get(name)
            if model is None:
                raise ServingError(Code.NOT_FOUND, f"Could not find any versions of model {name}")
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

    def available(self, name: str) -> bool:
        """True when the model has at least one AVAILABLE version."""
        with self._lock:
            model = self._models.get(name)
            return model is not None and bool(model.servables)


def _fingerprint(path: str) -> tuple:
    """What changes when a version directory's files change (a failed load is retried then)."""
    stamps = []
    for part in ("", "saved_model.pb", "variables", os.path.join("variables", "variables.index")):
        try:
            stat = os.stat(os.path.join(path, part))
            stamps.append((stat.st_mtime_ns, stat.st_size))
        except OSError:
            stamps.append(None)
    return tuple(stamps)


_MAX_STATUS_MESSAGE = 4000


def _first_line(exc: Exception) -> str:
    """The error's type and first line: TF's load errors can run to pages (node definitions, stacks)."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def _status_message(exc: Exception) -> str:
    """The error as GetModelStatus reports it: whole, up to a bound."""
    text = f"{type(exc).__name__}: {exc}".strip()
    return text if len(text) <= _MAX_STATUS_MESSAGE else text[:_MAX_STATUS_MESSAGE] + " ..."
