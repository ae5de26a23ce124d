"""Benchmark: `tfxp serve` under hostile load (issue 26), bounded and on loopback only.

A server process serves a half_plus_two model (y = 0.5 x + 2, built here); while a well-behaved client
asks for the model's status and a 3-row predict every 50 ms, this script
  1. bursts concurrent large REST bodies (1, 4, 8, 16 x 60 MB JSON predict requests, each under
     --max-request-bytes), recording the answers' statuses, the server's RSS before, peak and 3 s after;
  2. opens slow connections (half a request head, then nothing) and idle ones, recording the server's
     open descriptors before, while held and after, and when the server closed them;
  3. sends HTTP parser-level garbage on raw sockets, counting JSON answers, closes and anything else;
  4. sends gRPC requests whose model name is not UTF-8, counting the log lines they add;
and records the well-behaved client's p50/p99 latency in each phase.

`--server-pythonpath DIR` runs the server from another checkout (e.g. `git archive` of the commit before
issue 26) for a before/after comparison; `--request-memory-budget-bytes N` is passed to the server.
Writes bench/results/hostile_load.json (or --output) and prints a table.
Run: make bench-hostile  (= python -m bench.hostile_load)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
from tabulate import tabulate

from bench.common import child_env, machine_info, write_json

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "hostile_load.json"
MODEL = "hp"
BODY_BYTES = 60 * 10**6
BURSTS = (1, 4, 8, 16)
SLOW_CONNECTIONS = 1000  # the 1,000 slow connections; below the default --max-connections of 1,024
GOOD_EVERY_SECONDS = 0.05
SETTLE_SECONDS = 3.0
CLOSE_WAIT = 100.0  # seconds to wait for the server to close held connections (its keep-alive: 75 s)
REQUEST_TIMEOUT_SECONDS = 300  # a 60 MB body takes tens of seconds to decode on 2 busy cores
NUMBER = b"0.123456789012345,"  # 18 bytes: a 60 MB body holds 3.3 M numbers


def write_model(folder: Path) -> Path:
    """half_plus_two as a TF2 SavedModel: serving_default x float32 [None] -> y = 0.5 x + 2."""
    import tensorflow as tf

    class HalfPlusTwo(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def serve(self, x):
            return {"y": 0.5 * x + 2.0}

    module = HalfPlusTwo()
    base = folder / MODEL
    tf.saved_model.save(module, str(base / "1"), signatures={"serving_default": module.serve})
    return base


class Server:
    """`tfxp serve` in its own process on free ports."""

    def __init__(self, base: Path, log_file: Path, pythonpath: str, flags: list[str]):
        env = child_env()
        env["PYTHONPATH"] = pythonpath
        env["PYTHONUNBUFFERED"] = "1"
        args = [sys.executable, "-c", "from tfxp.cli import main; main()", "serve", "--model-base-path", str(base)]
        args += ["--model-name", MODEL, "--rest-port", "0", "--grpc-port", "0", "--log-file", str(log_file)]
        args += ["--request-timeout", str(REQUEST_TIMEOUT_SECONDS), *flags]
        # cwd: `python -c` puts the working directory first on sys.path, before PYTHONPATH.
        self.process = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=log_file.parent
        )
        line = self.process.stdout.readline() if self.process.stdout else ""
        match = re.search(r"REST http://[0-9.]+:([0-9]+)\s+gRPC [0-9.]+:([0-9]+)", line)
        if not match:
            self.process.kill()
            raise RuntimeError(f"tfxp serve did not start: {line!r}")
        self.rest_port, self.grpc_port = int(match.group(1)), int(match.group(2))
        self.log_file = log_file

    def rss(self) -> int:
        pages = int(Path(f"/proc/{self.process.pid}/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.process.pid}/fd"))

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class GoodClient:
    """A well-behaved client: a status request and a 3-row predict every GOOD_EVERY_SECONDS, latencies kept."""

    def __init__(self, port: int):
        self.url = f"http://127.0.0.1:{port}/v1/models/{MODEL}"
        self.samples: list[tuple[float, float, bool]] = []  # (start, seconds, ok)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> GoodClient:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        session = requests.Session()
        while not self._stop.is_set():
            for call in (
                lambda: session.get(self.url, timeout=30),
                lambda: session.post(f"{self.url}:predict", json={"instances": [1.0, 2.0, 5.0]}, timeout=30),
            ):
                started = time.monotonic()
                try:
                    ok = call().status_code == 200
                except requests.RequestException:
                    ok = False
                self.samples.append((started, time.monotonic() - started, ok))
            self._stop.wait(GOOD_EVERY_SECONDS)

    def stats(self, since: float, until: float) -> dict:
        window = [(seconds, ok) for started, seconds, ok in self.samples if since <= started < until]
        times = sorted(seconds for seconds, _ in window)
        if not times:
            return {"n": 0}
        return {
            "n": len(times),
            "failed": sum(not ok for _, ok in window),
            "p50_ms": round(1000 * statistics.median(times), 1),
            "p99_ms": round(1000 * times[min(len(times) - 1, int(0.99 * len(times)))], 1),
            "max_ms": round(1000 * times[-1], 1),
        }


def _peak_rss(server: Server, stop: threading.Event, peak: list[int]) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], server.rss())
        stop.wait(0.05)


def large_body() -> bytes:
    count = BODY_BYTES // len(NUMBER)
    return b'{"instances": [' + NUMBER * (count - 1) + NUMBER[:-1] + b"]}"


def burst(server: Server, good: GoodClient, count: int, body: bytes) -> dict:
    """`count` concurrent large predict requests; statuses, RSS before / peak / after, good client's latency."""
    statuses: list[int | str] = []
    url = f"http://127.0.0.1:{server.rest_port}/v1/models/{MODEL}:predict"

    def send() -> None:
        try:
            statuses.append(requests.post(url, data=body, timeout=REQUEST_TIMEOUT_SECONDS).status_code)
        except requests.RequestException as exc:
            statuses.append(type(exc).__name__)

    before = server.rss()
    peak, stop = [before], threading.Event()
    sampler = threading.Thread(target=_peak_rss, args=(server, stop, peak), daemon=True)
    sampler.start()
    started = time.monotonic()
    senders = [threading.Thread(target=send) for _ in range(count)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join()
    seconds = time.monotonic() - started
    time.sleep(SETTLE_SECONDS)  # the server trims freed memory a moment after the answers
    stop.set()
    sampler.join()
    return {
        "requests": count,
        "body_bytes": len(body),
        "statuses": {str(s): statuses.count(s) for s in sorted(set(statuses), key=str)},
        "seconds": round(seconds, 2),
        "rss_before_mb": round(before / 2**20),
        "rss_peak_mb": round(peak[0] / 2**20),
        "rss_after_mb": round(server.rss() / 2**20),
        "good_client": good.stats(started, started + seconds),
    }


def slow_connections(server: Server, good: GoodClient, count: int) -> dict:
    """`count` connections sending half a request head, and `count // 10` idle ones after an answer."""
    fds_before = server.fds()
    opened = time.monotonic()
    slow, idle = [], []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", server.rest_port))
        sock.sendall(b"GET /v1/models/hp HTTP/1.1\r\nHost: a\r\n")
        slow.append(sock)
    for _ in range(count // 10):
        sock = socket.create_connection(("127.0.0.1", server.rest_port))
        sock.sendall(b"GET /v1/models/hp HTTP/1.1\r\nHost: a\r\n\r\n")
        idle.append(sock)
    time.sleep(1.0)
    fds_held = server.fds()
    held_until = time.monotonic()
    closed_after = {"slow": _closed_after(slow, opened, CLOSE_WAIT), "idle": _closed_after(idle, opened, CLOSE_WAIT)}
    fds_after = server.fds()
    for sock in slow + idle:
        sock.close()
    return {
        "slow_connections": count,
        "idle_connections": count // 10,
        "fds_before": fds_before,
        "fds_held": fds_held,
        "fds_after_closed_by_server": fds_after,
        "closed_after_seconds": closed_after,
        "good_client_while_held": good.stats(opened, held_until),
    }


def _closed_after(sockets: list[socket.socket], since: float, limit: float) -> dict:
    """Seconds from `since` until the server closed each socket: min / median / max, and how many stayed open."""
    times = []
    for sock in sockets:
        sock.settimeout(max(limit - (time.monotonic() - since), 0.01))
        try:
            while sock.recv(65536):
                pass
            times.append(time.monotonic() - since)
        except TimeoutError:
            pass
        except OSError:
            times.append(time.monotonic() - since)
    times.sort()
    if not times:
        return {"closed": 0, "still_open": len(sockets)}
    return {
        "closed": len(times),
        "still_open": len(sockets) - len(times),
        "min": round(times[0], 2),
        "median": round(statistics.median(times), 2),
        "max": round(times[-1], 2),
    }


GARBAGE = {
    "lower-case method": b"get /v1/models/hp HTTP/1.1\r\nHost: a\r\n\r\n",
    "bad method": b"FOO\x01 / HTTP/1.1\r\nHost: a\r\n\r\n",
    "raw byte in path": b"GET /v1/\xff HTTP/1.1\r\nHost: a\r\n\r\n",
    "request line > 8190": b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: a\r\n\r\n",
    "path *": b"GET * HTTP/1.1\r\nHost: a\r\n\r\n",
    "Expect: bogus": b"GET /v1/models/hp HTTP/1.1\r\nHost: a\r\nExpect: bogus\r\nConnection: close\r\n\r\n",
    "HTTP/0.9": b"GET /v1/models/hp\r\n\r\n",
    "bad chunk": b"POST /v1/models/hp:predict HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
}


def garbage(server: Server) -> dict:
    """Each parser-level case: its status, Content-Type, and whether the connection was closed."""
    results = {}
    for name, raw in GARBAGE.items():
        with socket.create_connection(("127.0.0.1", server.rest_port), timeout=5) as sock:
            sock.sendall(raw)
            data, closed = b"", False
            try:
                while chunk := sock.recv(65536):
                    data += chunk
                closed = True
            except TimeoutError:
                pass
            except ConnectionResetError:
                closed = True
        status = re.match(rb"HTTP/\d\.\d (\d{3})", data)
        content_type = re.search(rb"(?i)\r\ncontent-type: ([^\r]*)", data)
        results[name] = {
            "status": int(status.group(1)) if status else None,
            "status_line": data.split(b"\r\n", 1)[0].decode("latin-1") if data else "",
            "content_type": content_type.group(1).decode() if content_type else None,
            "closed": closed,
        }
    return results


def non_utf8_model_names(server: Server, count: int) -> dict:
    """`count` gRPC Predicts whose model name is not UTF-8; the log lines they added."""
    import grpc
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "ab"
    raw = request.SerializeToString().replace(b"ab", b"\xff\xfe")
    lines_before = _log_lines(server.log_file)
    codes: dict[str, int] = {}
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        call = channel.unary_unary(
            "/tensorflow.serving.PredictionService/Predict",
            request_serializer=lambda data: data,
            response_deserializer=lambda data: data,
        )
        for _ in range(count):
            try:
                call(raw, timeout=10)
                code = "OK"
            except grpc.RpcError as exc:
                code = exc.code().name
            codes[code] = codes.get(code, 0) + 1
    time.sleep(0.5)
    return {"requests": count, "codes": codes, "log_lines_added": _log_lines(server.log_file) - lines_before}


def _log_lines(path: Path) -> int:
    return len(path.read_bytes().splitlines()) if path.exists() else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server-pythonpath", default=str(ROOT), help="the checkout whose tfxp serves")
    parser.add_argument("--request-memory-budget-bytes", type=int, default=None)
    parser.add_argument("--slow-connections", type=int, default=SLOW_CONNECTIONS)
    parser.add_argument("--bursts", default=",".join(map(str, BURSTS)), help="concurrent large bodies per burst")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    flags = []
    if args.request_memory_budget_bytes is not None:
        flags += ["--request-memory-budget-bytes", str(args.request_memory_budget_bytes)]
    results: dict = {"machine": machine_info(), "server_pythonpath": args.server_pythonpath, "flags": flags}
    with tempfile.TemporaryDirectory(prefix="tfxp-hostile-") as tmp:
        base = write_model(Path(tmp))
        server = Server(base, Path(tmp) / "serve.log", args.server_pythonpath, flags)
        try:
            time.sleep(1.0)
            results["rss_start_mb"] = round(server.rss() / 2**20)
            body = large_body()
            with GoodClient(server.rest_port) as good:
                time.sleep(3.0)
                results["good_client_idle"] = good.stats(0, time.monotonic())
                results["bursts"] = [burst(server, good, int(n), body) for n in args.bursts.split(",")]
                results["slow"] = slow_connections(server, good, args.slow_connections)
            results["garbage"] = garbage(server)
            results["non_utf8_model_names"] = non_utf8_model_names(server, 500)
            results["rss_end_mb"] = round(server.rss() / 2**20)
        finally:
            server.stop()
    write_json(args.output, results)
    _print(results, args.output)
    return 0


def _print(results: dict, output: Path) -> None:
    rows = [
        [
            f"{b['requests']} x {b['body_bytes'] // 10**6} MB",
            json.dumps(b["statuses"]),
            b["rss_before_mb"],
            b["rss_peak_mb"],
            b["rss_after_mb"],
            b["good_client"].get("p99_ms"),
            b["good_client"].get("max_ms"),
        ]
        for b in results["bursts"]
    ]
    print(tabulate(rows, headers=["burst", "statuses", "RSS before MB", "peak", "after", "good p99 ms", "good max"]))
    slow = results["slow"]
    print(
        f"\n{slow['slow_connections']} slow + {slow['idle_connections']} idle connections: fds "
        f"{slow['fds_before']} -> {slow['fds_held']} held -> {slow['fds_after_closed_by_server']} after; closed "
        f"after {json.dumps(slow['closed_after_seconds'])}; good client p99 "
        f"{slow['good_client_while_held'].get('p99_ms')} ms"
    )
    garbage_rows = [[k, v["status_line"], v["content_type"], v["closed"]] for k, v in results["garbage"].items()]
    print("\n" + tabulate(garbage_rows, headers=["garbage", "answer", "Content-Type", "closed"]))
    names = results["non_utf8_model_names"]
    print(f"\n{names['requests']} gRPC non-UTF-8 model names: {names['codes']}, {names['log_lines_added']} log lines")
    print(f"results: {output}")


if __name__ == "__main__":
    sys.exit(main())
