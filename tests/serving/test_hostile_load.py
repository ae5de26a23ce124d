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
    "HTTP/2.1": b"GET /v1/models/hp HTTP/2.1\r\nHost: a\r\n\r\n",
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


def test_http_2_text_on_the_rest_port_is_a_json_505_in_http_1_1_and_closed(served):
    """A version this HTTP/1 port doesn't speak is not answered as if it did (aiohttp: `HTTP/2.0 200 OK`).
    (aiohttp's parser itself refuses other versions, e.g. 2.1 or 3.0: a JSON 400 above.)"""
    answer = exchange(served.rest_port, b"GET /v1/models/hp HTTP/2.0\r\nHost: a\r\n\r\n")
    assert answer.data.startswith(b"HTTP/1.1 505 "), answer.data[:300]
    assert "HTTP/2.0" in assert_json_error(answer, 505)["error"]
    assert answer.closed and answer.seconds < 1.0


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


def _hold_all_connections(port: int) -> list[socket.socket]:
    """MAX_CONNECTIONS open connections, all accepted: the server notices a closed connection on its own
    time, so one closed just before (the previous test's) may still count and get this test a 503; then
    this tries again."""
    for _ in range(20):
        held = [socket.create_connection(("127.0.0.1", port)) for _ in range(MAX_CONNECTIONS)]
        time.sleep(0.2)
        if not any(_has_data(sock) for sock in held):  # an over-limit connection gets its 503 at once
            return held
        for sock in held:
            sock.close()
        time.sleep(0.5)
    raise AssertionError("the server kept refusing connections it should have freed")


def _has_data(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return bool(sock.recv(1, socket.MSG_PEEK))
    except BlockingIOError:
        return False
    finally:
        sock.setblocking(True)


def test_connections_over_the_limit_get_a_json_503_at_once_and_cost_the_others_nothing(served):
    held = _hold_all_connections(served.rest_port)
    try:
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
    held = _hold_all_connections(served.rest_port)
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


# --------------------------------------------------------------------------- memory budget

LARGE_BODY_NUMBERS = 2_000_000  # "1.25," each: a 10 MB JSON body, charged 40x (serving.memory.REST_JSON_EXPANSION)
BUDGET_BYTES = 850 * 10**6  # two such bodies at once (2 x 400 MB) and small requests beside them
BURST = 8
RSS_RETURN_SLACK = 150 * 2**20  # RSS after the burst may exceed RSS before it by this much


def large_body() -> bytes:
    return b'{"instances": [' + b"1.25," * (LARGE_BODY_NUMBERS - 1) + b"1.25]}"


@pytest.fixture(scope="module")
def budgeted(model_base_path, tmp_path_factory) -> Iterator[Served]:
    log_file = tmp_path_factory.mktemp("log") / "serve.log"
    server = start_serve(model_base_path, log_file, "--request-memory-budget-bytes", str(BUDGET_BYTES))
    yield server
    stop_serve(server)


def _post(url: str, body: bytes, statuses: list) -> None:
    try:
        response = requests.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=120)
        statuses.append((response.status_code, response.headers.get("Content-Type"), response.text[:200]))
    except requests.RequestException as exc:
        statuses.append((type(exc).__name__, None, str(exc)))


def test_a_burst_over_the_memory_budget_gets_429s_while_a_good_client_is_served(budgeted):
    """8 concurrent 10 MB bodies against a budget of two: some answered, the others 429 JSON (after waiting
    at most 1 s); a client asking for status and small predictions meanwhile gets every answer; the server's
    RSS returns near where it started (freed memory trimmed back to the OS)."""
    import threading

    url = f"{budgeted.url}/v1/models/{MODEL}:predict"
    body = large_body()
    warmup: list = []
    _post(url, body, warmup)  # the first large request grows lasting pools (TF's, the interpreter's)
    assert warmup[0][0] == 200, warmup
    time.sleep(1.0)
    rss_before = budgeted.rss_bytes()

    good: list[tuple[int, float]] = []
    stop = threading.Event()

    def well_behaved() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                started = time.monotonic()
                status = session.get(f"{budgeted.url}/v1/models/{MODEL}", timeout=30).status_code
                small = session.post(url, json={"instances": [1.0, 2.0]}, timeout=30)
                good.append((status, time.monotonic() - started))
                good.append((small.status_code, 0.0))
                time.sleep(0.05)

    peak = [rss_before]

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], budgeted.rss_bytes())
            time.sleep(0.05)

    helpers = [threading.Thread(target=well_behaved), threading.Thread(target=sample)]
    for helper in helpers:
        helper.start()
    statuses: list = []
    senders = [threading.Thread(target=_post, args=(url, body, statuses)) for _ in range(BURST)]
    try:
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join()
    finally:
        stop.set()
        for helper in helpers:
            helper.join()

    codes = [status for status, _, _ in statuses]
    assert set(codes) <= {200, 429}, statuses
    assert codes.count(200) >= 2 and codes.count(429) >= 1, codes
    refused = next(s for s in statuses if s[0] == 429)
    assert refused[1] == "application/json" and "memory budget" in json.loads(refused[2])["error"]
    assert good and all(status == 200 for status, _ in good), good
    assert max(seconds for _, seconds in good) < 5.0
    assert peak[0] - rss_before > 2 * RSS_RETURN_SLACK  # the burst did take memory...
    time.sleep(2.0)
    assert budgeted.rss_bytes() - rss_before < RSS_RETURN_SLACK  # ... and gave it back


def test_a_grpc_request_over_the_memory_budget_is_resource_exhausted(budgeted):
    """A Predict whose message alone is charged more than the budget's free part waits, then RESOURCE_EXHAUSTED;
    alone it runs (charged the whole budget at most)."""
    import threading

    import grpc
    import numpy as np
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    # 60 M float32 = 240 MB on the wire, charged 4x: more than the whole budget.
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.ones(60_000_000, np.float32)))
    payload = request.SerializeToString()
    with grpc.insecure_channel(
        f"127.0.0.1:{budgeted.grpc_port}",
        options=[("grpc.max_send_message_length", 2**31 - 1), ("grpc.max_receive_message_length", 2**31 - 1)],
    ) as channel:
        call = channel.unary_unary(
            "/tensorflow.serving.PredictionService/Predict",
            request_serializer=lambda data: data,
            response_deserializer=predict_pb2.PredictResponse.FromString,
        )
        # While a REST body holds part of the budget, the whole-budget gRPC request can't fit.
        holding: list = []
        rest = threading.Thread(target=_post, args=(f"{budgeted.url}/v1/models/{MODEL}:predict", large_body(), holding))
        rest.start()
        time.sleep(0.3)
        with pytest.raises(grpc.RpcError) as refused:
            call(payload, timeout=60)
        rest.join()
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "memory budget" in refused.value.details()
        assert holding[0][0] == 200
        assert len(call(payload, timeout=120).outputs["y"].float_val) == 60_000_000


# --------------------------------------------------------------------------- client-triggered log lines


def test_grpc_requests_with_non_utf8_names_add_a_bounded_number_of_log_lines(served):
    """libprotobuf writes a C++ ERROR line per string field that is not UTF-8; routed through a
    rate limiter, 200 such requests add at most log_limits.BURST of them (one per minute after)."""
    import grpc
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "ab"
    raw = request.SerializeToString().replace(b"ab", b"\xff\xfe")
    before = served.log_file.read_bytes().count(b"invalid UTF-8")
    with grpc.insecure_channel(f"127.0.0.1:{served.grpc_port}") as channel:
        call = channel.unary_unary("/tensorflow.serving.PredictionService/Predict")
        for _ in range(200):
            with pytest.raises(grpc.RpcError) as refused:
                call(raw, timeout=10)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    time.sleep(0.5)
    added = served.log_file.read_bytes().count(b"invalid UTF-8") - before
    assert 1 <= added <= 5, added


def test_malformed_http_requests_add_a_bounded_number_of_log_lines(served):
    """aiohttp reports each parser error (a traceback at ERROR, made one warning line here): at most
    log_limits.BURST a minute of each kind."""
    before = served.log_file.read_bytes().count(b"InvalidURLError")
    for _ in range(50):
        assert exchange(served.rest_port, b"GET /\xff HTTP/1.1\r\nHost: a\r\n\r\n").status == 400
    time.sleep(0.3)
    assert 0 < served.log_file.read_bytes().count(b"InvalidURLError") - before <= 5
