"""Server start-up and configuration: ports bound before models load, base-path warnings, the
console and the log file of `tfxp serve`, --model-config-file-poll-wait-seconds, and turning
HandleReloadConfigRequest off. Real servers on loopback, real (small) SavedModels."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent import futures
from pathlib import Path

import grpc
import pytest
import requests
from click.testing import CliRunner
from google.protobuf import text_format
from grpc_health.v1 import health_pb2, health_pb2_grpc
from serving_harness import BackgroundServer
from tensorflow_serving.apis import model_management_pb2, model_service_pb2_grpc
from tensorflow_serving.config import model_server_config_pb2

from tfxp.pipeline.cli import main
from tfxp.serving import server as server_lib
from tfxp.serving.options import ServerOptions

sys.path.append(os.path.dirname(os.path.abspath(__file__)))  # test_servable's model builders live beside this file
from test_servable import save_half_plus_two_tf1, save_half_plus_two_tf2

ROOT = Path(__file__).resolve().parents[2]
TFXP = str(Path(sys.executable).with_name("tfxp"))
# A line of TensorFlow's C++ logger ("2026-... I tensorflow/core/...cc:113] ...") or absl's ("E0000 ...").
CPP_LOG_LINE = re.compile(r"(^|\s)[IWEF]\d{4} |\.cc:\d+\]")


@pytest.fixture(scope="module")
def tf1_model(tmp_path_factory) -> Path:
    return save_half_plus_two_tf1(tmp_path_factory.mktemp("tf1") / "model")


@pytest.fixture(scope="module")
def tf2_model(tmp_path_factory) -> Path:
    return save_half_plus_two_tf2(tmp_path_factory.mktemp("tf2") / "model")


def _busy_port() -> socket.socket:
    """A listening socket on a free loopback port (another program holding it)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def _wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


def _start_in_process(options: ServerOptions):
    return asyncio.run(server_lib.start(options))


# ------------------------------------------------------------------ ports before models


@pytest.mark.parametrize("which", ["rest", "grpc"])
def test_a_port_in_use_fails_before_any_model_loads(tf1_model, tmp_path, caplog, which):
    shutil.copytree(tf1_model, tmp_path / "m" / "1")
    caplog.set_level(logging.INFO, logger="tfxp.serving")
    busy = _busy_port()
    port = busy.getsockname()[1]
    ports = {"rest_port": 0, "grpc_port": 0, f"{which}_port": port}
    options = ServerOptions(model_base_path=tmp_path / "m", model_name="m", **ports)
    try:
        with pytest.raises(OSError) as error:
            _start_in_process(options)
    finally:
        busy.close()
    assert f"{'REST' if which == 'rest' else 'gRPC'} port 127.0.0.1:{port} can't be bound" in str(error.value)
    assert not [r for r in caplog.records if "loaded" in r.getMessage()]


def test_a_bad_batching_file_fails_before_any_model_loads(tf1_model, tmp_path, caplog):
    shutil.copytree(tf1_model, tmp_path / "m" / "1")
    (tmp_path / "batching.config").write_text("max_batch_size { value: 0 }\n")
    caplog.set_level(logging.INFO, logger="tfxp.serving")
    with pytest.raises(ValueError, match="max_batch_size must be positive"):
        _start_in_process(
            ServerOptions(
                model_base_path=tmp_path / "m",
                model_name="m",
                rest_port=0,
                grpc_port=0,
                enable_batching=True,
                batching_parameters_file=tmp_path / "batching.config",
            )
        )
    assert not [r for r in caplog.records if "loaded" in r.getMessage()]


def test_a_grpc_port_held_by_another_grpc_server_is_in_use(tmp_path):
    # gRPC's sockets set SO_REUSEPORT: a second gRPC server would share the port and half the calls.
    other = grpc.server(futures.ThreadPoolExecutor(1))
    port = other.add_insecure_port("127.0.0.1:0")
    other.start()
    try:
        with pytest.raises(OSError, match=f"gRPC port 127.0.0.1:{port} can't be bound"):
            _start_in_process(ServerOptions(model_base_path=tmp_path, model_name="m", rest_port=0, grpc_port=port))
    finally:
        other.stop(None)


def test_a_missing_base_path_warns_and_the_server_still_starts(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="tfxp.serving")
    server = BackgroundServer(
        ServerOptions(model_base_path=tmp_path / "absent", model_name="m", rest_port=0, grpc_port=0, poll_seconds=0)
    )
    try:
        assert requests.get(f"http://127.0.0.1:{server.server.rest_port}/v1/models/m", timeout=5).status_code == 404
        messages = [r.getMessage() for r in caplog.records]
        assert f"base path {tmp_path / 'absent'} of model m does not exist" in messages
    finally:
        server.stop()


def test_a_malformed_http_request_is_one_log_line_without_a_traceback(tmp_path, caplog):
    """aiohttp logged each malformed request at ERROR with a traceback: a fuzzer flooded the log."""
    caplog.set_level(logging.DEBUG, logger="aiohttp.server")
    server = BackgroundServer(
        ServerOptions(model_base_path=tmp_path, model_name="m", rest_port=0, grpc_port=0, poll_seconds=0)
    )
    try:
        with socket.create_connection(("127.0.0.1", server.server.rest_port), timeout=5) as sock:
            sock.sendall(b"GET /v1/models/m HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n")
            reply = sock.recv(4096)
        assert reply.split(b" ", 2)[1] == b"400", reply
        records = [r for r in caplog.records if r.name == "aiohttp.server"]
        assert records and all(r.exc_info is None and r.levelno == logging.WARNING for r in records), records
        assert "400 BadHttpMessage" in records[0].getMessage() and "\n" not in records[0].getMessage()
        # ... and the server keeps serving.
        assert requests.get(f"http://127.0.0.1:{server.server.rest_port}/v1/models/m", timeout=5).status_code == 404
    finally:
        server.stop()


# ------------------------------------------------------------------ tfxp serve: console and log file


def _serve(args: list[str], log_file: Path) -> subprocess.Popen:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="0")  # TensorFlow's C++ logger at its most talkative
    return subprocess.Popen(
        [TFXP, "serve", "--rest-port", "0", "--grpc-port", "0", "--log-file", str(log_file), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )


def test_tfxp_serve_console_has_the_servers_lines_and_the_log_file_the_rest(tf1_model, tmp_path):
    base = tmp_path / "half_plus_two"
    shutil.copytree(tf1_model, base / "00000123")
    log_file = tmp_path / "logs" / "serve.log"
    proc = _serve(["--model-base-path", str(base), "--poll-seconds", "0.2"], log_file)
    try:
        started = proc.stdout.readline()  # printed once serving
        assert started.startswith("serving half_plus_two: REST http://127.0.0.1:"), started
        status_url = f"{re.search(r'REST (http://[0-9.:]+)', started).group(1)}/v1/models/half_plus_two"
        broken = shutil.copytree(tf1_model, tmp_path / "staging")
        (broken / "saved_model.pb").write_bytes(b"broken")  # fails to load; 123 keeps serving
        broken.rename(base / "00000124")  # in one step: the poller never sees it half made
        _wait_for(
            lambda: (
                [(s["version"], s["state"]) for s in requests.get(status_url, timeout=5).json()["model_version_status"]]
                == [("124", "END"), ("123", "AVAILABLE")]
            )
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    console = stderr.splitlines()
    assert console[0] == f"tfxp serve: log file {log_file} (TensorFlow's own log lines, tracebacks)"
    version_lines = [line for line in console if " version " in line]
    assert len(version_lines) == 2, console
    assert version_lines[0].startswith(f"loaded half_plus_two version 123 from {base / '00000123'} in ")
    assert version_lines[1].startswith(f"error: failed to load half_plus_two version 124 from {base / '00000124'}: ")
    assert not [line for line in console + stdout.splitlines() if CPP_LOG_LINE.search(line)], console
    assert "Traceback" not in stderr
    logged = log_file.read_text()
    assert CPP_LOG_LINE.search(logged)  # TensorFlow's C++ lines went to the log file
    assert "failed to load half_plus_two version 124" in logged and "Traceback" in logged


def test_tfxp_serve_port_in_use_exits_1(tmp_path):
    busy = _busy_port()
    port = busy.getsockname()[1]
    try:
        proc = _serve(
            ["--model-base-path", str(tmp_path), "--model-name", "m", "--rest-port", str(port)], tmp_path / "serve.log"
        )
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        busy.close()
    assert proc.returncode == 1
    assert f"error: REST port 127.0.0.1:{port} can't be bound: Address already in use" in stderr
    assert "serving" not in stdout


def test_serve_flags_reach_the_options(monkeypatch, tmp_path):
    seen = []
    monkeypatch.setattr(server_lib, "run", seen.append)
    config = tmp_path / "models.config"
    config.write_text("model_config_list {}\n")
    log_file = tmp_path / "serve.log"
    result = CliRunner().invoke(
        main,
        [
            "serve",
            "--model-config-file",
            str(config),
            "--log-file",
            str(log_file),
            "--model-config-file-poll-wait-seconds",
            "2.5",
            "--disable-reload-config-request",
            "--enable-signature-method-name-check",
        ],
    )
    assert result.exit_code == 0, result.output
    (options,) = seen
    assert options.model_config_file_poll_seconds == 2.5 and options.enable_reload_config_request is False
    assert options.enable_signature_method_name_check is True
    assert log_file.exists()
    result = CliRunner().invoke(
        main,
        [
            "serve",
            "--model-base-path",
            str(tmp_path),
            "--log-file",
            str(log_file),
            "--model-config-file-poll-wait-seconds",
            "1",
        ],
    )
    assert result.exit_code == 2 and "needs --model-config-file" in result.output
    assert len(seen) == 1


def test_default_log_file_is_under_xdg_state_home(monkeypatch, tmp_path):
    monkeypatch.setattr(server_lib, "run", lambda options: None)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert CliRunner().invoke(main, ["serve", "--model-base-path", str(tmp_path)]).exit_code == 0
    assert (tmp_path / "state" / "tfxp" / "serve.log").exists()


# ------------------------------------------------------------------ model config: file poll, reload request


def _config_text(models: dict[str, Path]) -> str:
    return (
        "model_config_list {\n"
        + "".join(
            f'  config {{ name: "{name}" base_path: "{base}" model_platform: "tensorflow" }}\n'
            for name, base in models.items()
        )
        + "}\n"
    )


def _available(server, name: str) -> bool:
    try:
        return any(s.state == "AVAILABLE" for s in server.server.repository.status(name))
    except Exception:  # noqa: BLE001 - NOT_FOUND while the model is not configured
        return False


def test_model_config_file_is_polled_and_applied(tf1_model, tf2_model, tmp_path, caplog):
    shutil.copytree(tf1_model, tmp_path / "a" / "1")
    shutil.copytree(tf2_model, tmp_path / "b" / "1")
    config = tmp_path / "models.config"
    config.write_text(_config_text({"a": tmp_path / "a"}))
    caplog.set_level(logging.INFO, logger="tfxp.serving")
    server = BackgroundServer(
        ServerOptions(
            model_config_file=config, model_config_file_poll_seconds=0.2, rest_port=0, grpc_port=0, poll_seconds=0.2
        )
    )
    rest = f"http://127.0.0.1:{server.server.rest_port}"
    health = health_pb2_grpc.HealthStub(grpc.insecure_channel(f"127.0.0.1:{server.server.grpc_port}"))
    try:
        assert _available(server, "a") and not _available(server, "b")
        config.write_text(_config_text({"b": tmp_path / "b"}))  # b added, a removed
        _wait_for(lambda: _available(server, "b") and server.server.repository.model_names() == ["b"])
        assert requests.get(f"{rest}/v1/models/a", timeout=5).status_code == 404
        assert (
            health.Check(health_pb2.HealthCheckRequest(service="b"), timeout=5).status
            == health_pb2.HealthCheckResponse.SERVING
        )
        config.write_text("model_config_list { config { name: ")  # a broken edit: the current config stays
        time.sleep(1.0)
        config.write_text("")  # an empty file (e.g. mid-write): no action
        time.sleep(0.6)
        assert server.server.repository.model_names() == ["b"] and _available(server, "b")
        errors = [
            r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("tfxp.serving")
        ]
        assert len(errors) == 2  # once each, not on every poll
        assert errors[0].startswith("model config file not applied") and errors[1].endswith(
            " is empty; the current config keeps serving"
        )
    finally:
        server.stop()


def _reload_request(models: dict[str, Path]) -> model_management_pb2.ReloadConfigRequest:
    request = model_management_pb2.ReloadConfigRequest()
    request.config.CopyFrom(text_format.Parse(_config_text(models), model_server_config_pb2.ModelServerConfig()))
    return request


@pytest.mark.parametrize("enabled", [True, False])
def test_reload_config_request_can_be_turned_off(tf1_model, tf2_model, tmp_path, enabled):
    shutil.copytree(tf1_model, tmp_path / "a" / "1")
    shutil.copytree(tf2_model, tmp_path / "b" / "1")
    server = BackgroundServer(
        ServerOptions(
            model_base_path=tmp_path / "a",
            model_name="a",
            rest_port=0,
            grpc_port=0,
            poll_seconds=0,
            enable_reload_config_request=enabled,
        )
    )
    stub = model_service_pb2_grpc.ModelServiceStub(grpc.insecure_channel(f"127.0.0.1:{server.server.grpc_port}"))
    try:
        request = _reload_request({"a": tmp_path / "a", "b": tmp_path / "b"})
        if enabled:
            assert stub.HandleReloadConfigRequest(request, timeout=60).status.error_code == 0
            assert _available(server, "a") and _available(server, "b")
            # An empty config changes nothing (ServerCore::ReloadConfig: "Taking no action for empty config").
            empty = model_management_pb2.ReloadConfigRequest()
            assert stub.HandleReloadConfigRequest(empty, timeout=10).status.error_code == 0
            assert server.server.repository.model_names() == ["a", "b"]
        else:
            with pytest.raises(grpc.RpcError) as error:
                stub.HandleReloadConfigRequest(request, timeout=10)
            assert error.value.code() == grpc.StatusCode.UNIMPLEMENTED
            assert server.server.repository.model_names() == ["a"]
    finally:
        server.stop()


@pytest.mark.parametrize(
    "args, words",
    [
        ([], "exactly one of --model-base-path and --model-config-file"),
        (["--model-base-path", "m", "--model-config-file", "CONFIG"], "exactly one of"),
        (["--model-config-file", "CONFIG", "--model-name", "x"], "--model-name goes with --model-base-path"),
        (["--model-base-path", "m", "--model-name", "bad name"], "starting with a letter or digit"),
    ],
)
def test_serve_model_source_usage_errors(monkeypatch, tmp_path, args, words):
    """The model-source rule `tfxp serve` shares with `tfxp monitor` (cli/_common.model_source_name)."""
    monkeypatch.setattr(server_lib, "run", lambda options: pytest.fail("the server must not start"))
    config = tmp_path / "models.config"
    config.write_text("model_config_list {}\n")
    args = [str(config) if a == "CONFIG" else str(tmp_path / a) if a == "m" else a for a in args]
    result = CliRunner().invoke(main, ["serve", "--log-file", str(tmp_path / "serve.log"), *args])
    assert result.exit_code == 2 and words in result.output, result.output
