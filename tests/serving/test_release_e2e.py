"""`tfxp release` against a running `tfxp serve` polling its model config file (issue 22): pin, canary, promote
and roll back with real processes and real SavedModels, while a load loop asks by label `stable` (REST) and
without a label (gRPC) throughout and must see no failed request."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest
import reference_models as rm
import requests
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

TFXP = str(Path(sys.executable).with_name("tfxp"))
MODEL = "m"
# Version v is TF Serving's half_plus_two with b = v: x = 2 answers 1 + v, so an answer names its version.
VERSIONS = (1, 2)


def _answer_version(y: float) -> int:
    return round(y - 1.0)


@pytest.fixture()
def base(tmp_path) -> Path:
    for version in VERSIONS:
        rm.write_half_plus_two_tf1(tmp_path, MODEL, version_dir=str(version), b=float(version))
    return tmp_path / MODEL


class Serve:
    """`tfxp serve --model-config-file F --model-config-file-poll-wait-seconds 1` on free ports."""

    def __init__(self, config: Path, log_file: Path):
        args = [TFXP, "serve", "--model-config-file", str(config), "--model-config-file-poll-wait-seconds", "1"]
        args += ["--rest-port", "0", "--grpc-port", "0", "--log-file", str(log_file)]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started = self.proc.stdout.readline()  # printed once serving
        match = re.search(r"REST http://([0-9.]+:[0-9]+)\s+gRPC ([0-9.]+:[0-9]+)", started)
        assert match, (started, self.proc.stderr.read() if self.proc.poll() is not None else "")
        self.rest, self.grpc = match.group(1), match.group(2)

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.communicate(timeout=60)[1]


class LoadLoop(threading.Thread):
    """Asks by label `stable` over REST and without a label over gRPC until stopped; records every answer's
    version (None for a failed request) in order."""

    def __init__(self, server: Serve):
        super().__init__(daemon=True)
        self.server, self.stopping = server, threading.Event()
        self.stable: list[int | None] = []
        self.latest: list[int | None] = []
        self.failures: list[str] = []

    def run(self) -> None:
        session = requests.Session()
        url = f"http://{self.server.rest}/v1/models/{MODEL}/labels/stable:predict"
        with grpc.insecure_channel(self.server.grpc) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            while not self.stopping.is_set():
                response = session.post(url, json={"instances": [2.0]}, timeout=10)
                if response.status_code == 200:
                    self.stable.append(_answer_version(response.json()["predictions"][0]))
                else:
                    self.stable.append(None)
                    self.failures.append(f"REST stable: {response.status_code} {response.text}")
                try:
                    self.latest.append(_answer_version(stub.Predict(_request(), 10).outputs["y"].float_val[0]))
                except grpc.RpcError as exc:
                    self.latest.append(None)
                    self.failures.append(f"gRPC: {exc.code()} {exc.details()}")


def _request() -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    request.inputs["x"].dtype = types_pb2.DT_FLOAT
    request.inputs["x"].float_val.append(2.0)
    request.inputs["x"].tensor_shape.dim.add().size = 1
    return request


def _release(config: Path, server: Serve, *args: str) -> dict:
    command = [TFXP, "release", *args, "--model-config-file", str(config), "--server", server.rest, "--json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _by_label(server: Serve, label: str) -> int:
    url = f"http://{server.rest}/v1/models/{MODEL}/labels/{label}:predict"
    response = requests.post(url, json={"instances": [2.0]}, timeout=10)
    assert response.status_code == 200, response.text
    return _answer_version(response.json()["predictions"][0])


def _wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.2)


def test_canary_promote_and_rollback_against_a_polling_server_lose_no_request(base, tmp_path):
    config = tmp_path / "models.config"
    policy = "model_version_policy { specific { versions: 1 } }"
    config.write_text(f'model_config_list {{ config {{ name: "{MODEL}" base_path: "{base}" {policy} }} }}\n')
    server = Serve(config, tmp_path / "serve.log")
    loop = LoadLoop(server)
    try:
        assert _release(config, server, "pin")["labels"] == {"stable": 1}
        _wait_for(lambda: _label_ok(server, "stable"))
        loop.start()
        phases = []

        def mark() -> None:
            time.sleep(1.5)  # requests go on after each change, too
            phases.append(len(loop.stable))

        result = _release(config, server, "canary", "2")  # waits for AVAILABLE, then labels
        assert result["done"] and result["labels"] == {"stable": 1, "canary": 2}
        _wait_for(lambda: _label_ok(server, "canary"))
        assert (_by_label(server, "stable"), _by_label(server, "canary")) == (1, 2)  # both answer by label
        mark()
        result = _release(config, server, "promote")
        assert result["labels"] == {"stable": 2} and result["versions"] == [2]
        _wait_for(lambda: _by_label(server, "stable") == 2)
        mark()
        result = _release(config, server, "rollback")  # two steps: serve 1 again, then move the label
        assert result["done"] and result["labels"] == {"stable": 1} and result["versions"] == [1]
        _wait_for(lambda: _by_label(server, "stable") == 1)
        mark()
        # The loop may be in its gRPC half when the last mark is taken: let it answer by label once more.
        _wait_for(lambda: len(loop.stable) > phases[-1], 10)
    finally:
        loop.stopping.set()
        if loop.is_alive():
            loop.join(30)
        log = server.stop()
    assert loop.failures == [], (loop.failures[:5], log[-2000:])
    # Requests ran through every change, and `stable` answered 1, then 2 after promote, then 1 again.
    assert len(phases) == 3 and 0 < phases[0] < phases[1] < phases[2] < len(loop.stable)
    assert _runs(loop.stable) == [1, 2, 1], _runs(loop.stable)
    entries = [json.loads(line) for line in Path(f"{config}.release.log").read_text().splitlines()]
    commands = [e["command"] for e in entries]
    # Each change that labels a version not served is two writes (TF Serving's safe order).
    assert commands == ["pin", "canary 2", "canary 2", "promote", "rollback --to 1", "rollback --to 1"], commands


def _label_ok(server: Serve, label: str) -> bool:
    url = f"http://{server.rest}/v1/models/{MODEL}/labels/{label}:predict"
    return requests.post(url, json={"instances": [2.0]}, timeout=10).status_code == 200


def _runs(values: list) -> list:
    """[1, 1, 2, 2, 1] -> [1, 2, 1]."""
    return [v for i, v in enumerate(values) if i == 0 or values[i - 1] != v]
