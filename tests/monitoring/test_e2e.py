"""End to end, as the issue's acceptance: a pipeline run -> `tfxp serve --request-log` -> eval rows replayed
over REST and gRPC (serving_default tf.Examples, predict_raw columns, Classify) -> `tfxp monitor`.

A clean replay exits 0; the same kind of rows with one categorical feature shifted (payment_type) and
one numeric feature scaled (fare x 3), logged an hour later, exits 3 naming exactly those two features
(skew against the version's training statistics, drift against the clean hour). Everything is real:
the pipeline, the server (a subprocess), the clients, the PredictionLog files, TFDV's statistics.
"""

from __future__ import annotations

import base64
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from pipeline_harness import tfxp_run, write_csv
from taxi_data import read_csv_rows

ROWS = 4500
MODEL = "watched"
REPLAYED = 700  # rows per phase: a verdict needs 500 (the default min_rows)
CHUNK = 10
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_USE_LEGACY_KERAS": "1"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def pushed(tmp_path_factory):
    """(base path, eval records) of a blessed, pushed taxi model."""
    import tensorflow as tf

    work = tmp_path_factory.mktemp("monitoring")
    data = write_csv(work / "data" / "taxi.csv", read_csv_rows(limit=ROWS))
    code, summary, stderr = tfxp_run(data, work / "out", name=MODEL, train_steps=100)
    assert code == 0, (summary, stderr[-3000:])
    files = tf.io.gfile.glob(
        str(work / "out" / "pipelines" / MODEL / "CsvExampleGen" / "examples" / "*" / "Split-eval" / "*")
    )
    records = [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]
    assert len(records) >= 2 * REPLAYED
    # The eval split keeps the CSV's order, whose stretches differ from the whole (tests/monitoring/test_monitor.py
    # `rows`): a replay draws eval rows at random, as traffic would arrive.
    random.Random(5).shuffle(records)
    return work / "out" / "serving" / MODEL, records


@pytest.fixture(scope="module")
def logged(pushed, tmp_path_factory):
    """Two phases of replayed traffic through one `tfxp serve --request-log`: (clean log files, shifted ones)."""
    base, records = pushed
    logs = tmp_path_factory.mktemp("logs")
    rest, grpc = _free_port(), _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tfxp.cli", "serve", "--model-base-path", str(base), "--rest-port", str(rest),
         "--grpc-port", str(grpc), "--request-log", str(logs), "--request-log-rotate-seconds", "1"],
        env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        _wait_ready(rest, server)
        clean = records[:REPLAYED]
        _replay(clean, rest, grpc)
        time.sleep(1.5)  # past the logger's rotation: the next record starts a new file
        middle = time.time()
        time.sleep(0.05)
        _replay([_shifted(r) for r in records[REPLAYED : 2 * REPLAYED]], rest, grpc)
    finally:
        server.terminate()
        server.wait(30)
    files = sorted(p for p in logs.iterdir() if p.is_file())
    from tfxp.serving.request_log import file_start_time

    before = [p for p in files if file_start_time(p.name) < middle]
    after = [p for p in files if file_start_time(p.name) >= middle]
    assert before and after, files
    return base, before, after


def _wait_ready(rest: int, server: subprocess.Popen) -> None:
    deadline = time.time() + 120
    while time.time() < deadline:
        assert server.poll() is None, server.stderr.read()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{rest}/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail("tfxp serve did not become ready")


def _shifted(record: bytes) -> bytes:
    """The same row with payment_type's two main values swapped and fare scaled by 3."""
    from tfxp.rows import example_class

    example = example_class().FromString(record)
    features = example.features.feature
    payment = features["payment_type"].bytes_list.value
    if payment:
        payment[0] = {b"Cash": b"Credit Card", b"Credit Card": b"Cash"}.get(payment[0], payment[0])
    fare = features["fare"].float_list.value
    if fare:
        fare[0] = fare[0] * 3
    return example.SerializeToString()


def _replay(records: list[bytes], rest: int, grpc: int) -> None:
    """Chunks of rows in turn: REST serving_default, gRPC predict_raw, gRPC Classify, REST classify, gRPC
    Regress (the binary model's probability); and a request the model refuses (a fare far beyond its
    range) every 20 chunks."""
    import grpc as grpc_lib
    from tensorflow_serving.apis import classification_pb2, prediction_service_pb2_grpc, regression_pb2

    from tfxp.rows import example_class, example_row
    from tfxp.serving.client import GrpcClient, RestClient, ServingClientError

    channel = grpc_lib.insecure_channel(f"127.0.0.1:{grpc}")
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    rest_default = RestClient(f"http://127.0.0.1:{rest}", MODEL)
    grpc_raw = GrpcClient(f"127.0.0.1:{grpc}", MODEL, signature="predict_raw")
    for index, start in enumerate(range(0, len(records), CHUNK)):
        chunk = records[start : start + CHUNK]
        rows = [example_row(r) for r in chunk]
        route = index % 5
        if route == 0:
            rest_default.predict(rows)
        elif route == 1:
            grpc_raw.predict(rows)
        elif route == 2:
            request = classification_pb2.ClassificationRequest()
            request.model_spec.name, request.model_spec.signature_name = MODEL, "classification"
            for record in chunk:
                request.input.example_list.examples.add().ParseFromString(record)
            stub.Classify(request, timeout=30)
        elif route == 3:
            body = {
                "signature_name": "classification",
                "examples": [_json_example(example_class().FromString(r)) for r in chunk],
            }
            _post(rest, f"/v1/models/{MODEL}:classify", body)
        else:
            regress = regression_pb2.RegressionRequest()
            regress.model_spec.name, regress.model_spec.signature_name = MODEL, "regression"
            for record in chunk:
                regress.input.example_list.examples.add().ParseFromString(record)
            stub.Regress(regress, timeout=30)
        if index % 20 == 0:
            with pytest.raises(ServingClientError):
                rest_default.predict([{**rows[0], "fare": "1e30"}])
    rest_default.close()
    grpc_raw.close()
    channel.close()


def _json_example(example) -> dict:
    """A tf.Example as TF Serving's REST classify JSON: each feature's first value (bytes base64)."""
    values = {}
    for name, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        items = list(getattr(feature, kind).value) if kind else []
        if items:
            value = items[0]
            values[name] = {"b64": base64.b64encode(value).decode()} if isinstance(value, bytes) else value
    return values


def _post(port: int, path: str, body: dict) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def _monitor(logs: Path, base: Path, *args: str) -> tuple[int, dict]:
    done = subprocess.run(
        [sys.executable, "-m", "tfxp.cli", "monitor", "--logs", str(logs), "--model-base-path", str(base),
         "--json", *args],
        env=ENV, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    try:
        return done.returncode, json.loads(done.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"no JSON (exit {done.returncode}): {done.stdout[-2000:]} {done.stderr[-3000:]}")


def _folder(tmp_path: Path, files: list[Path], hour: int) -> Path:
    """`files` copied into a folder of their own as if logged on 2026-12-01 from <hour>:00 on: each record's
    log_metadata.timestamp_secs and each file name's start moved by the same amount (order kept)."""
    import calendar

    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    from tfxp.monitoring.logs import read_records
    from tfxp.serving.request_log import file_name, file_start_time

    folder = tmp_path / f"hour{hour}"
    folder.mkdir()
    shift = calendar.timegm((2026, 12, 1, hour, 0, 0)) - min(file_start_time(p.name) for p in files)
    for index, path in enumerate(sorted(files)):
        with tf.io.TFRecordWriter(str(folder / file_name(file_start_time(path.name) + shift, 1, index))) as writer:
            for record in read_records(str(path)):
                log = prediction_log_pb2.PredictionLog.FromString(record)
                log.log_metadata.timestamp_secs += int(shift)
                writer.write(log.SerializeToString())
    return folder


def test_a_clean_replay_exits_0_with_a_verdict(logged, tmp_path):
    base, clean, _ = logged
    code, report = _monitor(_folder(tmp_path, clean, 0), base)
    assert code == 0, json.dumps(report["findings"], indent=1)[:3000]
    [window] = report["windows"]
    assert window["verdict"] == "ok" and window["rows"] >= REPLAYED
    assert window["refused"] >= 1 and window["refused_ratio"] > 0
    kinds = {(f["feature"], f["kind"]) for f in report["findings"]}
    # Every model input and the prediction distribution are compared with the training statistics.
    assert {("fare", "skew"), ("payment_type", "skew"), ("<prediction>", "skew")} <= kinds
    statistics = {f["feature"]: f["statistic"] for f in report["findings"]}
    assert statistics["payment_type"] == "l_infinity" and statistics["fare"] == "jensen_shannon_divergence"
    assert report["skipped"] == []


def test_a_shifted_hour_exits_3_naming_exactly_the_shifted_features(logged, tmp_path):
    base, clean, shifted = logged
    folder = _folder(tmp_path, clean, 0)
    for path in _folder(tmp_path, shifted, 1).iterdir():
        shutil.move(path, folder / path.name)
    prom, page = tmp_path / "tfxp_monitor.prom", tmp_path / "report.html"
    code, report = _monitor(folder, base, "--window", "1h", "--textfile", str(prom), "--html", str(page))
    assert code == 3
    first, second = report["windows"]
    assert first["verdict"] == "ok" and second["verdict"] == "over_threshold"
    over = {(f["feature"], f["kind"]) for f in report["findings"] if f["over"]}
    features = {name for name, _ in over if name != "<prediction>"}
    assert features == {"fare", "payment_type"}, over
    assert {("fare", "skew"), ("fare", "drift"), ("payment_type", "skew"), ("payment_type", "drift")} <= over
    assert all(f["window_start"] == "2026-12-01T01:00:00Z" for f in report["findings"] if f["over"])
    # The Prometheus textfile and the HTML page of the same pass, written before the exit code 3.
    from prometheus_client.parser import text_string_to_metric_families

    samples = {
        (s.name, s.labels.get("feature")): s.value
        for family in text_string_to_metric_families(prom.read_text())
        for s in family.samples
    }
    assert samples[("tfxp_monitor_skew_score", "fare")] > samples[("tfxp_monitor_skew_threshold", "fare")]
    assert (
        samples[("tfxp_monitor_drift_score", "payment_type")]
        > samples[("tfxp_monitor_drift_threshold", "payment_type")]
    )
    html = page.read_text()
    assert html.count("<svg") >= 4 and "payment_type" in html and "over threshold" in html


def test_a_window_with_too_few_rows_gets_no_verdict(logged, tmp_path):
    base, clean, _ = logged
    code, report = _monitor(_folder(tmp_path, clean, 0), base, "--min-rows", "100000")
    assert code == 0
    [window] = report["windows"]
    assert window["verdict"] == "too_few_rows" and "100000" in window["note"]
    assert report["findings"] == []
