"""Prometheus metrics, named after TF Serving's (`:tensorflow:serving:*`, made Prometheus-legal)."""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import CONTENT_TYPE_LATEST  # noqa: F401  (re-exported for the REST front end)

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.request_count = Counter(
            "tensorflow_serving_request_count", "Requests by model, API, protocol and status.",
            ["model_name", "api", "protocol", "status"], registry=self.registry,
        )
        self.request_latency = Histogram(
            "tensorflow_serving_request_latency_seconds", "Request latency, end to end in the server.",
            ["model_name", "api", "protocol"], buckets=_LATENCY_BUCKETS, registry=self.registry,
        )
        self.batch_size = Histogram(
            "tensorflow_serving_batching_processed_batch_size", "Rows per executed batch (server-side batching).",
            ["model_name"], buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024), registry=self.registry,
        )
        self.loaded_versions = Gauge(
            "tensorflow_serving_loaded_versions", "Model versions currently serving.",
            ["model_name"], registry=self.registry,
        )

    @contextmanager
    def observe(self, model: str, api: str, protocol: str) -> Iterator[dict]:
        """Times one request; the caller sets outcome["status"] (a status code name)."""
        outcome = {"status": "OK"}
        started = time.perf_counter()
        try:
            yield outcome
        except Exception:
            if outcome["status"] == "OK":
                outcome["status"] = "UNKNOWN"
            raise
        finally:
            self.request_latency.labels(model, api, protocol).observe(time.perf_counter() - started)
            self.request_count.labels(model, api, protocol, outcome["status"]).inc()

    def on_repository_event(self, name: str, version: int, event: str) -> None:
        self.loaded_versions.labels(name).inc(1 if event == "loaded" else -1)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
