"""bench.floor_server: the servers the serving floor is measured on answer the requests bench/serving.py sends."""

from __future__ import annotations

import subprocess
import sys
import time

import grpc
import pytest
import requests
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from bench.serving import ROOT, _free_port


def test_floor_server_answers_grpc_predict_and_rest_predict_empty():
    rest_port, grpc_port = _free_port(), _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bench.floor_server", str(rest_port), str(grpc_port)], cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                assert requests.get(f"http://127.0.0.1:{rest_port}/readyz", timeout=1).status_code == 200
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline and proc.poll() is None, "floor server did not start"
                time.sleep(0.2)
        answer = requests.post(f"http://127.0.0.1:{rest_port}/v1/models/taxi:predict", data=b'{"instances": [1]}')
        assert answer.status_code == 200 and answer.json() == {}
        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"127.0.0.1:{grpc_port}"))
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "taxi"
        assert stub.Predict(request, timeout=10) == predict_pb2.PredictResponse()
    finally:
        proc.terminate()
        proc.wait(10)


def test_serving_targets_are_relative_to_floor_plus_model_time():
    from bench.serving import _targets

    def protocol(p50, unbatched, batched):
        return {
            "unbatched": {"concurrency_1": {"p50_ms": p50}, "concurrency_32": {"requests_per_s": unbatched}},
            "batched": {"concurrency_32": {"requests_per_s": batched}},
        }

    results = {
        "in_process": {"single": {"p50_ms": 0.5}},
        "floor": {"grpc": {"concurrency_1": {"p50_ms": 0.3}}, "rest": {"concurrency_1": {"p50_ms": 1.0}}},
        "grpc": protocol(1.2, 1000, 900),
        "rest": protocol(2.4, 500, 600),
    }
    targets = _targets(results)
    grpc_p50, rest_p50 = targets["grpc_p50_vs_floor_plus_model"], targets["rest_p50_vs_floor_plus_model"]
    assert grpc_p50["ratio"] == pytest.approx(1.2 / 0.8) and grpc_p50["target"] == "<= 1.5"
    assert rest_p50["ratio"] == pytest.approx(1.6) and not rest_p50["met"]
    assert targets["grpc_batched_vs_unbatched_c32"]["met"] is False
    assert targets["rest_batched_vs_unbatched_c32"]["ratio"] == pytest.approx(1.2)
    assert targets["rest_batched_vs_unbatched_c32"]["met"]
