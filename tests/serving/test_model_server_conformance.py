"""`tfxp serve` as TF Serving 2.16.1's `model_servers/tensorflow_model_server_test.py` runs
`tensorflow_model_server`: a server process per case, the model config tests ported
(testGoodModelConfig, testBadModelConfig, testModelConfigReload, testModelConfigReloadWithZeroPollPeriod),
on the same models (TF Serving's TF1 half_plus_two and half_plus_three, `reference_models.py`) and config
files (`servables/tensorflow/testdata/{good,bad}_model_config.txt`, the reload test's config text).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
import reference_models as rm
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

TFXP = str(Path(sys.executable).with_name("tfxp"))
# testdata/bad_model_config.txt, whole.
BAD_MODEL_CONFIG = "improperly formatted file"
# testdata/good_model_config.txt, with the model paths substituted as the test does.
GOOD_MODEL_CONFIG = """model_config_list: {{
  config: {{
    name: "half_plus_two",
    base_path: "{half_plus_two}",
    model_platform: "tensorflow"
  }},
  config: {{
    name: "half_plus_three",
    base_path: "{half_plus_three}",
    model_platform: "tensorflow"
  }}
}}
"""
# testModelConfigReload's base_config_proto.
RELOAD_CONFIG = """
    model_config_list: {{
      config: {{
        name: "{name}",
        base_path: "{model_path}",
        model_platform: "tensorflow"
      }}
    }}
    """
RPC_TIMEOUT = 5.0


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("testdata")
    return {
        "half_plus_two": rm.write_half_plus_two_tf1(folder, "half_plus_two"),
        "half_plus_three": rm.write_half_plus_two_tf1(folder, "half_plus_three", b=3.0),
    }


class Server:
    """RunServer: `tfxp serve --model-config-file F [--model-config-file-poll-wait-seconds N]` on free ports."""

    def __init__(self, config: Path, log_file: Path, poll_period: float | None = None, wait: bool = True):
        args = [TFXP, "serve", "--model-config-file", str(config), "--rest-port", "0", "--grpc-port", "0"]
        if poll_period is not None:
            args += ["--model-config-file-poll-wait-seconds", str(poll_period)]
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="1")
        self.proc = subprocess.Popen(
            [*args, "--log-file", str(log_file)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        self.address = ""
        if wait:
            started = self.proc.stdout.readline()  # printed once serving
            match = re.search(r"gRPC ([0-9.]+:[0-9]+)", started)
            assert match, (started, self.proc.stderr.read() if self.proc.poll() is not None else "")
            self.address = match.group(1)

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        _, stderr = self.proc.communicate(timeout=60)
        return stderr


def verify_predict(address: str, model_name: str, expected_output: float, specify_output: bool = True) -> None:
    """VerifyPredictRequest: x = [2.0] to serving_default, y back, and the model spec answered."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = "serving_default"
    request.inputs["x"].dtype = types_pb2.DT_FLOAT
    request.inputs["x"].float_val.append(2.0)
    request.inputs["x"].tensor_shape.dim.add().size = 1
    if specify_output:
        request.output_filter.append("y")
    with grpc.insecure_channel(address) as channel:
        result = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, RPC_TIMEOUT)
    assert "y" in result.outputs and result.outputs["y"].dtype == types_pb2.DT_FLOAT
    assert list(result.outputs["y"].float_val) == [expected_output]
    assert result.model_spec.name == model_name and result.model_spec.signature_name == "serving_default"
    assert result.model_spec.version.value == rm.VERSION


def test_good_model_config(models, tmp_path):
    config = tmp_path / "good_model_config.conf"
    config.write_text(GOOD_MODEL_CONFIG.format(**models))
    server = Server(config, tmp_path / "serve.log")
    try:
        for specify_output in (True, False):
            verify_predict(server.address, "half_plus_two", 3.0, specify_output)
            verify_predict(server.address, "half_plus_three", 4.0, specify_output)
    finally:
        server.stop()


def test_bad_model_config(tmp_path):
    config = tmp_path / "bad_model_config.txt"
    config.write_text(BAD_MODEL_CONFIG)
    server = Server(config, tmp_path / "serve.log", wait=False)
    _, stderr = server.proc.communicate(timeout=120)  # it exits by itself, before binding or loading
    assert server.proc.returncode == 1
    # TF Serving's stderr holds protobuf's parse error for its message type (the test's needle) ...
    assert "Error parsing text-format tensorflow.serving.ModelServerConfig" in stderr, stderr
    # ... and ParseProtoTextFile's status naming the file; ours also says where and what.
    assert f"Invalid protobuf file: '{config}'" in stderr
    assert '1:1: Message type "tensorflow.serving.ModelServerConfig" has no field named "improperly".' in stderr


def test_model_config_reload(models, tmp_path):
    config = tmp_path / "model_config.txt"
    config.write_text(RELOAD_CONFIG.format(name="half_plus_two", model_path=models["half_plus_two"]))
    server = Server(config, tmp_path / "serve.log", poll_period=1)
    try:
        verify_predict(server.address, "half_plus_two", 3.0, specify_output=False)
        # Rewritten in place, as the test does (open(config_path, 'w')): truncated, then written.
        with open(config, "w") as f:
            f.write(RELOAD_CONFIG.format(name="half_plus_three", model_path=models["half_plus_three"]))
        rewritten = time.monotonic()
        # TF Serving's test sleeps 10 s, then asks; asked every 0.2 s here, to measure the delay.
        while True:
            try:
                verify_predict(server.address, "half_plus_three", 4.0, specify_output=False)
                break
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.NOT_FOUND, exc
                assert time.monotonic() - rewritten < 10, "half_plus_three not served 10 s after the rewrite"
                time.sleep(0.2)
        # Within the poll: the next read of the file (1 s) plus the load, not a later file-system poll.
        assert time.monotonic() - rewritten < 3
    finally:
        server.stop()


def test_model_config_reload_with_zero_poll_period(models, tmp_path):
    config = tmp_path / "model_config.txt"
    config.write_text(RELOAD_CONFIG.format(name="half_plus_two", model_path=models["half_plus_two"]))
    poll_period = 0
    server = Server(config, tmp_path / "serve.log", poll_period=poll_period)
    try:
        verify_predict(server.address, "half_plus_two", 3.0, specify_output=False)
        with open(config, "w") as f:
            f.write(RELOAD_CONFIG.format(name="half_plus_three", model_path=models["half_plus_three"]))
        time.sleep(poll_period + 1)
        verify_predict(server.address, "half_plus_two", 3.0, specify_output=False)  # the old config still serves
        with pytest.raises(grpc.RpcError) as info:
            verify_predict(server.address, "half_plus_three", 4.0, specify_output=False)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        server.stop()
