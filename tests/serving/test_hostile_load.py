"""Serving under hostile load (issue 26): a real `tfxp serve` process on loopback, spoken to over raw sockets.

The server runs with small limits (1 s header read timeout, 2 s keep-alive, 24 connections, a 48 MB
in-flight request budget) so each rule shows in seconds. Each test can fail: it asserts what the client
gets on the wire (a JSON error, a closed connection and when) or what the server's process holds (RSS).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import reference_models as rm  # beside this file; conftest.py puts this folder on sys.path
import requests

MODEL = "hp"
HEADER_READ_TIMEOUT = 1.0
KEEPALIVE_TIMEOUT = 2.0
MAX_CONNECTIONS = 24
LINGERING_SECONDS = 2.0  # _http_guard.ConnectionLimits.lingering_seconds
CLOSE_SLACK = 1.0  # seconds a close may come after its timeout (event-loop timers, a busy machine)


@dataclass
class Served:
    rest_port: int
    grpc_port: int
    process: subprocess.Popen
    log_file: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    def rss_bytes(self) -> int:
        """The server process's resident set size now (/proc/PID/statm: pages)."""
        resident_pages = int(Path(f"/proc/{self.process.pid}/statm").read_text().split()[1])
        return resident_pages * os.sysconf("SC_PAGE_SIZE")


def start_serve(model_base_path: Path, log_file: Path, *flags: str) -> Served:
    """`tfxp serve` in its own process (this checkout's code: PYTHONPATH is inherited), on free ports."""
    args = [sys.executable, "-c", "from tfxp.cli import main; main()", "serve", "--model-base-path"]
    args += [str(model_base_path), "--model-name", MODEL, "--rest-port", "0", "--grpc-port", "0"]
    args += ["--log-file", str(log_file), *flags]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="1", PYTHONUNBUFFERED="1")
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    started = process.stdout.readline() if process.stdout else ""  # printed once serving
    match = re.search(r"REST http://[0-9.]+:([0-9]+)\s+gRPC [0-9.]+:([0-9]+)", started)
    if not match:
        process.kill()
        pytest.fail(f"tfxp serve did not start: {started!r}\n{log_file.read_text(errors='replace')[-3000:]}")
    return Served(int(match.group(1)), int(match.group(2)), process, log_file)


def stop_serve(served: Served) -> None:
    served.process.send_signal(signal.SIGTERM)
    try:
        served.process.wait(30)
    except subprocess.TimeoutExpired:
        served.process.kill()
        served.process.wait()


@pytest.fixture(scope="module")
def model_base_path(tmp_path_factory) -> Path:
    return rm.write_half_plus_two_tf2(tmp_path_factory.mktemp("models"), MODEL)


@pytest.fixture(scope="module")
def served(model_base_path, tmp_path_factory) -> Iterator[Served]:
    log_file = tmp_path_factory.mktemp("log") / "serve.log"
    server = start_serve(
        model_base_path,
        log_file,
        "--header-read-timeout",
        str(HEADER_READ_TIMEOUT),
        "--keepalive-timeout",
        str(KEEPALIVE_TIMEOUT),
        "--max-connections",
        str(MAX_CONNECTIONS),
    )
    yield server
    stop_serve(server)


# --------------------------------------------------------------------------- raw HTTP


@dataclass
class Exchange:
    """What a raw-socket client got: the bytes before the server closed (or `wait` ran out) and when."""

    data: bytes
    closed: bool
    seconds: float  # from the last byte sent to the close (or to giving up)

    @property
    def status(self) -> int | None:
        match = re.match(rb"HTTP/1\.[01] (\d{3}) ", self.data)
        return int(match.group(1)) if match else None

    def header(self, name: str) -> str | None:
        head = self.data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
        for line in head.split("\r\n")[1:]:
            key, _, value = line.partition(":")
            if key.strip().lower() == name.lower():
                return value.strip()
        return None

    @property
    def body(self) -> bytes:
        return self.data.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in self.data else b""


def exchange(port: int, raw: bytes, wait: float = 6.0) -> Exchange:
    """Sends `raw` on a new connection and reads until the server closes it or `wait` seconds pass."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        sock.sendall(raw)
        sent = time.monotonic()
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except TimeoutError:
            return Exchange(data, False, time.monotonic() - sent)
        except ConnectionResetError:
            pass
        return Exchange(data, True, time.monotonic() - sent)


def assert_json_error(answer: Exchange, status: int) -> dict:
    assert answer.status == status, answer.data[:300]
    assert answer.header("Content-Type") == "application/json", answer.data[:300]
    body = json.loads(answer.body)
    assert isinstance(body.get("error"), str) and body["error"], body
    return body


# Requests aiohttp's HTTP parser refuses before any handler runs (the fuzz findings).
PARSER_REFUSED = {
    "lower-case method": b"get /v1/models/hp HTTP/1.1\r\nHost: a\r\n\r\n",
    "unknown method": b"FOO\x01 /v1/models/hp HTTP/1.1\r\nHost: a\r\n\r\n",
    "raw byte in the path": b"GET /v1/models/\xff HTTP/1.1\r\nHost: a\r\n\r\n",
    "request line over 8,190 bytes": b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: a\r\n\r\n",
    "path *": b"GET * HTTP/1.1\r\nHost: a\r\n\r\n",
    "header without a colon": b"GET /v1/models/hp HTTP/1.1\r\nHost a\r\n\r\n",
    "bad chunk size": b"POST /v1/models/hp:predict HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
}


@pytest.mark.parametrize("raw", PARSER_REFUSED.values(), ids=PARSER_REFUSED.keys())
def test_what_the_http_parser_refuses_is_a_json_400_and_the_connection_closes(served, raw):
    answer = exchange(served.rest_port, raw)
    assert_json_error(answer, 400)
    assert answer.closed and answer.seconds < 1.0


def test_an_unknown_expect_is_a_json_417(served):
    answer = exchange(served.rest_port, b"GET /v1/models/hp HTTP/1.1\r\nHost: a\r\nExpect: bogus\r\n\r\n")
    assert assert_json_error(answer, 417)["error"] == "Unknown Expect: bogus"


@pytest.mark.parametrize("raw", [b"GET /v1/models/hp\r\n\r\n", b"GET /readyz HTTP/0.9\r\n\r\n"], ids=["no", "0.9"])
def test_http_0_9_is_closed_unanswered(served, raw):
    """A request line without a version (HTTP/0.9) has no status line to carry an error: closed, no bytes."""
    answer = exchange(served.rest_port, raw)
    assert answer.closed and answer.data == b"" and answer.seconds < 1.0


def test_a_good_request_after_the_garbage_is_answered(served):
    answer = exchange(served.rest_port, b"GET /v1/models/hp HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert answer.status == 200 and json.loads(answer.body)["model_version_status"][0]["state"] == "AVAILABLE"


# --------------------------------------------------------------------------- connection timeouts and limits


def test_a_slow_header_is_closed_after_the_header_read_timeout(served):
    """Half a request head, then nothing (slowloris): 408 JSON and closed after --header-read-timeout."""
    answer = exchange(served.rest_port, b"GET /v1/models/hp HTTP/1.1\r\nHost: a\r\n")
    assert answer.closed
    assert HEADER_READ_TIMEOUT - 0.1 <= answer.seconds <= HEADER_READ_TIMEOUT + CLOSE_SLACK
    assert_json_error(answer, 408)


def test_a_connection_sending_nothing_is_closed_after_the_header_read_timeout(served):
    answer = exchange(served.rest_port, b"")
    assert answer.closed and answer.seconds <= HEADER_READ_TIMEOUT + CLOSE_SLACK
    assert_json_error(answer, 408)


def test_an_idle_keep_alive_connection_is_closed_after_the_keepalive_timeout(served):
    """After a good answer, an idle connection is closed --keepalive-timeout later, with nothing more sent."""
    answer = exchange(served.rest_port, b"GET /v1/models/hp HTTP/1.1\r\nHost: a\r\n\r\n")
    assert answer.status == 200 and answer.closed
    assert KEEPALIVE_TIMEOUT - 0.1 <= answer.seconds <= KEEPALIVE_TIMEOUT + CLOSE_SLACK
    assert answer.data.count(b"HTTP/1.1") == 1  # no stray 408 on an idle keep-alive connection


def test_a_declared_huge_body_is_refused_at_once_and_closed_after_lingering(served):
    """`Content-Length: 10^12`: the 413 comes before any body byte is awaited; the connection closes after
    the short lingering read (aiohttp's default lingers 10 s)."""
    raw = b"POST /v1/models/hp:predict HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000000000\r\n\r\n"
    answer = exchange(served.rest_port, raw)
    assert_json_error(answer, 413)
    assert answer.closed and answer.seconds <= LINGERING_SECONDS + CLOSE_SLACK


def test_connections_over_the_limit_get_a_json_503_at_once_and_cost_the_others_nothing(served):
    held = [socket.create_connection(("127.0.0.1", served.rest_port)) for _ in range(MAX_CONNECTIONS)]
    try:
        time.sleep(0.2)  # every held connection accepted
        refused = exchange(served.rest_port, b"GET /v1/models/hp HTTP/1.1\r\nHost: a\r\n\r\n")
        assert refused.closed and refused.seconds < 0.5
        assert "maximum of 24" in assert_json_error(refused, 503)["error"]
        # A held connection is still served.
        held[0].sendall(b"GET /v1/models/hp HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        held[0].settimeout(5)
        assert held[0].recv(65536).startswith(b"HTTP/1.1 200 OK")
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.2)
    assert requests.get(f"{served.url}/v1/models/{MODEL}", timeout=5).status_code == 200


def test_held_connections_are_all_freed_by_the_timeouts(served):
    """MAX_CONNECTIONS slow-header connections: closed by the header read timeout, then new clients are served."""
    held = [socket.create_connection(("127.0.0.1", served.rest_port)) for _ in range(MAX_CONNECTIONS)]
    try:
        for sock in held:
            sock.sendall(b"GET /v1/mod")
        time.sleep(HEADER_READ_TIMEOUT + CLOSE_SLACK)
        for sock in held:
            sock.settimeout(1)
            assert b"408 Request Timeout" in sock.recv(65536)
        assert requests.get(f"{served.url}/v1/models/{MODEL}", timeout=5).status_code == 200
    finally:
        for sock in held:
            sock.close()


def test_a_grpc_connection_without_a_handshake_is_closed_after_the_header_read_timeout(served):
    """gRPC's server_handshake_timeout_ms is the header read timeout: a silent TCP connection is closed."""
    answer = exchange(served.grpc_port, b"")
    assert answer.closed and answer.seconds <= HEADER_READ_TIMEOUT + CLOSE_SLACK


def test_an_idle_grpc_connection_is_closed_after_the_keepalive_timeout(served):
    """gRPC's max_connection_idle_ms is the keep-alive timeout: the channel gets a GOAWAY and goes IDLE.

    gRPC checks idleness on its own timer: measured, the GOAWAY comes ~2x the timeout after the last RPC."""
    import grpc
    from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{served.grpc_port}") as channel:
        states: list = []
        channel.subscribe(states.append)
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = MODEL
        assert stub.GetModelStatus(request, timeout=5).model_version_status[0].state == 30  # AVAILABLE
        answered = time.monotonic()
        while states[-1] != grpc.ChannelConnectivity.IDLE and time.monotonic() - answered < 2 * KEEPALIVE_TIMEOUT + 2:
            time.sleep(0.05)
        assert states[-1] == grpc.ChannelConnectivity.IDLE, states
        assert time.monotonic() - answered >= KEEPALIVE_TIMEOUT - 0.1
        assert stub.GetModelStatus(request, timeout=5).model_version_status  # it reconnects
