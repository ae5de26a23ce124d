"""Prometheus metrics, named after TF Serving's (`:tensorflow:serving:*`, made Prometheus-legal).

Label values are bounded: a model name taken from a request is used only when it names a model the
server knows (configured, or seen loading); every other name is counted as `UNKNOWN_MODEL`, so a
client sending made-up names can't grow the metrics page (TF Serving labels by any requested name).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from prometheus_client import (
    CONTENT_TYPE_LATEST,  # noqa: F401  (re-exported for the REST front end)
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30)
# The label of requests for a model the server does not have. Model names can't start with "<".
UNKNOWN_MODEL = "<unknown>"
_NAMES_TTL_SECONDS = 1.0


class Metrics:
    def __init__(self, model_names: Callable[[], Iterable[str]] | None = None) -> None:
        """`model_names` lists the configured models (e.g. `ModelRepository.model_names`); models
        that load a version (`on_repository_event`) are known too."""
        self._model_names = model_names
        self._names: frozenset = frozenset()
        self._names_read_at = -_NAMES_TTL_SECONDS
        self._seen_models: set[str] = set()
        self._lock = threading.Lock()
        self.registry = CollectorRegistry()
        self.request_count = Counter(
            "tensorflow_serving_request_count",
            "Requests by model, API, protocol and status.",
            ["model_name", "api", "protocol", "status"],
            registry=self.registry,
        )
        self.request_latency = Histogram(
            "tensorflow_serving_request_latency_seconds",
            "Request latency, end to end in the server.",
            ["model_name", "api", "protocol"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "tensorflow_serving_batching_processed_batch_size",
            "Rows per executed batch (server-side batching).",
            ["model_name"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
            registry=self.registry,
        )
        self.loaded_versions = Gauge(
            "tensorflow_serving_loaded_versions",
            "Model versions currently serving.",
            ["model_name"],
            registry=self.registry,
        )

    def use_model_names(self, model_names: Callable[[], Iterable[str]]) -> None:
        """Where the configured model names come from (set once the repository exists)."""
        with self._lock:
            self._model_names = model_names
            self._names_read_at = -_NAMES_TTL_SECONDS

    def model_label(self, name: str) -> str:
        """`name` if the server knows that model, else UNKNOWN_MODEL."""
        with self._lock:
            if name in self._seen_models:
                return name
        return name if name in self._configured_models() else UNKNOWN_MODEL

    def _configured_models(self) -> frozenset:
        """The configured names, re-read at most once a second (a flood of made-up names must not
        contend for the repository's lock)."""
        if self._model_names is None:
            return frozenset()
        now = time.monotonic()
        with self._lock:
            if now - self._names_read_at < _NAMES_TTL_SECONDS:
                return self._names
        names = frozenset(self._model_names())
        with self._lock:
            self._names, self._names_read_at = names, now
        return names

    @contextmanager
    def observe(self, model: str, api: str, protocol: str) -> Iterator[dict]:
        """Times one request; the caller sets outcome["status"] (a status code name).

        `api` and `protocol` must come from a fixed set (the callers' route names); `model` may be
        anything a client sent.
        """
        outcome = {"status": "OK"}
        started = time.perf_counter()
        try:
            yield outcome
        except Exception:
            if outcome["status"] == "OK":
                outcome["status"] = "UNKNOWN"
            raise
        finally:
            label = self.model_label(model)
            self.request_latency.labels(label, api, protocol).observe(time.perf_counter() - started)
            self.request_count.labels(label, api, protocol, outcome["status"]).inc()

    def on_repository_event(self, name: str, version: int, event: str) -> None:
        with self._lock:
            self._seen_models.add(name)
        if event in ("loaded", "unloaded"):
            self.loaded_versions.labels(name).inc(1 if event == "loaded" else -1)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
