"""Server-side batching and sampled request logging, through a real server."""

from __future__ import annotations

import base64
import glob
import re
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf
from serving_harness import MODEL_NAME, publish, serving_front_end, start_server
from taxi_data import TAXI, raw_feature_spec, read_csv_rows, to_example
from tensorflow_serving.apis import classification_pb2, predict_pb2, prediction_log_pb2, prediction_service_pb2_grpc


@pytest.fixture(scope="module")
def examples() -> list[bytes]:
    return [to_example(r, raw_feature_spec()) for r in read_csv_rows(limit=64)]


def _request(examples, signature="serving_default"):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL_NAME
    request.model_spec.signature_name = signature
    request.inputs["examples"].CopyFrom(tf.make_tensor_proto(examples, dtype=tf.string))
    return request


def _histogram_count(rest_url: str, name: str) -> float:
    text = requests.get(f"{rest_url}/monitoring/prometheus/metrics", timeout=5).text
    match = re.search(rf'^{name}_count{{model_name="{MODEL_NAME}"}} ([0-9.e+]+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


def _batching_server(model_dir, tmp_path, batch_timeout_micros: int):
    """A server of the model as version 1, batching (at most 64 rows, 2 batch threads), and a gRPC stub to it."""
    base = tmp_path / MODEL_NAME
    publish(model_dir, base, 1)
    params = tmp_path / "batching.config"
    params.write_text(
        f"max_batch_size {{ value: 64 }}\nbatch_timeout_micros {{ value: {batch_timeout_micros} }}\n"
        "num_batch_threads { value: 2 }\nmax_enqueued_batches { value: 100 }\n"
    )
    server = start_server(base, enable_batching=True, batching_parameters_file=params)
    stub = prediction_service_pb2_grpc.PredictionServiceStub(
        grpc.insecure_channel(f"127.0.0.1:{server.server.grpc_port}")
    )
    return server, stub


def test_concurrent_requests_are_batched_and_answered_correctly(model_dir, tmp_path, examples):
    server, stub = _batching_server(model_dir, tmp_path, batch_timeout_micros=20_000)
    rest_url = f"http://127.0.0.1:{server.server.rest_port}"
    try:
        expected = tf.make_ndarray(stub.Predict(_request(examples), timeout=30).outputs["probability"])
        before = _histogram_count(rest_url, "tensorflow_serving_batching_processed_batch_size")
        chunks = [examples[i : i + 2] for i in range(0, 64, 2)]  # 32 requests of 2 rows

        def call(i):
            if i == 7:  # a bad request in the same burst must not fail its batch mates
                with pytest.raises(grpc.RpcError) as info:
                    stub.Predict(_request(chunks[i], signature="no_such_signature"), timeout=30)
                return info.value.code()
            return tf.make_ndarray(stub.Predict(_request(chunks[i]), timeout=30).outputs["probability"])

        with ThreadPoolExecutor(32) as pool:
            results = list(pool.map(call, range(32)))
        assert results[7] == grpc.StatusCode.FAILED_PRECONDITION  # TF Serving: unknown signature in Predict
        for i, result in enumerate(results):
            if i != 7:
                np.testing.assert_allclose(result, expected[2 * i : 2 * i + 2], atol=1e-6)
        batches = _histogram_count(rest_url, "tensorflow_serving_batching_processed_batch_size") - before
        assert 0 < batches < 31, f"{batches} batches for 31 requests: nothing was merged"
    finally:
        server.stop()


def test_concurrent_classify_requests_are_batched(model_dir, tmp_path, examples):
    """Classify fetches all of a classes+scores signature's outputs, so its requests batch like Predict's."""
    server, stub = _batching_server(model_dir, tmp_path, batch_timeout_micros=20_000)
    rest_url = f"http://127.0.0.1:{server.server.rest_port}"

    def classify(chunk):
        request = classification_pb2.ClassificationRequest()
        request.model_spec.name = MODEL_NAME
        request.model_spec.signature_name = "classification"
        request.input.example_list.examples.extend(tf.train.Example.FromString(e) for e in chunk)
        result = stub.Classify(request, timeout=30).result
        return [[(c.label, c.score) for c in row.classes] for row in result.classifications]

    try:
        expected = classify(examples)
        before = _histogram_count(rest_url, "tensorflow_serving_batching_processed_batch_size")
        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(classify, [examples[i : i + 4] for i in range(0, 64, 4)]))
        batches = _histogram_count(rest_url, "tensorflow_serving_batching_processed_batch_size") - before
    finally:
        server.stop()
    for i, rows in enumerate(results):
        assert [[label for label, _ in row] for row in rows] == [["0", "1"]] * 4
        np.testing.assert_allclose(
            [[s for _, s in row] for row in rows],
            [[s for _, s in row] for row in expected[4 * i : 4 * i + 4]],
            atol=1e-6,
        )
    assert 0 < batches < 16, f"{batches} batches for 16 requests: nothing was merged"


def test_sampled_requests_are_logged_as_prediction_logs(model_dir, tmp_path, examples):
    base = tmp_path / MODEL_NAME
    publish(model_dir, base, 1)
    log_dir = tmp_path / "request-log"
    server = start_server(base, request_log_dir=log_dir, log_sampling=1.0)
    stub = prediction_service_pb2_grpc.PredictionServiceStub(
        grpc.insecure_channel(f"127.0.0.1:{server.server.grpc_port}")
    )
    try:
        for i in range(3):
            stub.Predict(_request(examples[i : i + 4]), timeout=30)
    finally:
        server.stop()
    records = [r.numpy() for r in tf.data.TFRecordDataset(sorted(glob.glob(str(log_dir / "*.tfrecord"))))]
    assert len(records) == 3
    log = prediction_log_pb2.PredictionLog.FromString(records[0])
    assert log.predict_log.request.model_spec.name == MODEL_NAME
    assert log.predict_log.request.model_spec.version.value == 1
    logged = tf.make_ndarray(log.predict_log.request.inputs["examples"])
    assert list(logged) == examples[0:4]
    assert tf.make_ndarray(log.predict_log.response.outputs["probability"]).shape == (4,)


def _raw_request(rows):
    """A predict_raw PredictRequest: one [N] tensor per model input, blanks as the missing markers."""
    from tfxp.models import features as F

    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL_NAME
    request.model_spec.signature_name = "predict_raw"
    dtypes = {F.DType.INT: (tf.int64, int), F.DType.FLOAT: (tf.float32, float), F.DType.STRING: (tf.string, str)}
    for feature in TAXI.features:
        dtype, cast = dtypes[feature.dtype]
        values = [
            F.missing_value(feature.dtype)
            if r[feature.name] == ""
            else cast(float(r[feature.name]))
            if feature.dtype is F.DType.INT
            else cast(r[feature.name])
            for r in rows
        ]
        request.inputs[feature.name].CopyFrom(tf.make_tensor_proto(values, dtype=dtype))
    return request


def test_a_request_the_model_refuses_does_not_fail_its_batch_mates(model_dir, tmp_path):
    """predict_raw's in-graph checks refuse a merged batch as a whole; each request is re-run alone."""
    server, stub = _batching_server(model_dir, tmp_path, batch_timeout_micros=50_000)
    rows = read_csv_rows(limit=32)
    try:
        expected = tf.make_ndarray(stub.Predict(_raw_request(rows), timeout=30).outputs["probability"])

        def call(i):
            pair = rows[2 * i : 2 * i + 2]
            if i == 5:  # a required input missing: the model's own check refuses it
                pair = [pair[0], dict(pair[1], fare="")]
                with pytest.raises(grpc.RpcError) as info:
                    stub.Predict(_raw_request(pair), timeout=30)
                return info.value.code(), info.value.details()
            return tf.make_ndarray(stub.Predict(_raw_request(pair), timeout=30).outputs["probability"])

        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(call, range(16)))
        code, details = results[5]
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "required input fare is missing" in details
        for i, result in enumerate(results):
            if i != 5:
                np.testing.assert_allclose(result, expected[2 * i : 2 * i + 2], atol=1e-6)
    finally:
        server.stop()


def _rest_predict(rest_url: str, example: bytes, signature: str = "serving_default") -> requests.Response:
    body = {"signature_name": signature, "instances": [{"b64": base64.b64encode(example).decode()}]}
    return requests.post(f"{rest_url}/v1/models/{MODEL_NAME}:predict", json=body, timeout=30)


def test_concurrent_rest_requests_are_batched_and_answered_as_unbatched(model_dir, tmp_path, examples):
    """REST :predict with batching on (small bodies take the event loop's path): the same answers as
    gRPC's unbatched call, merged into batches, a bad request a 400 that fails none of its batch mates."""
    server, stub = _batching_server(model_dir, tmp_path, batch_timeout_micros=20_000)
    rest_url = f"http://127.0.0.1:{server.server.rest_port}"
    try:
        expected = tf.make_ndarray(stub.Predict(_request(examples[:24]), timeout=30).outputs["probability"])
        before = _histogram_count(rest_url, "tensorflow_serving_batching_processed_batch_size")

        def call(i):
            if i == 5:
                return _rest_predict(rest_url, examples[i], signature="no_such_signature")
            return _rest_predict(rest_url, examples[i])

        with ThreadPoolExecutor(24) as pool:
            responses = list(pool.map(call, range(24)))
        assert responses[5].status_code == 400
        assert "no_such_signature" in responses[5].json()["error"]
        for i, response in enumerate(responses):
            if i != 5:
                assert response.status_code == 200, response.text
                np.testing.assert_allclose(response.json()["predictions"][0], expected[i], atol=1e-6)
        batches = _histogram_count(rest_url, "tensorflow_serving_batching_processed_batch_size") - before
        assert 0 < batches < 23, f"{batches} batches for 23 requests: nothing was merged"
    finally:
        server.stop()


def test_batched_rest_requests_hold_no_worker_thread_while_they_wait(model_dir, tmp_path, examples):
    """With one REST worker thread, 8 concurrent 1-row requests still merge into one batch: a request
    waiting for its batch is awaited on the event loop, not by a blocked worker (which would let only
    one request at a time reach the queue: 8 batches of 1, each waiting out the batch timeout)."""
    from tfxp.serving.batching import BatchingRunner
    from tfxp.serving.config import BatchingSettings
    from tfxp.serving.dataplane import DataPlane
    from tfxp.serving.metrics import Metrics
    from tfxp.serving.protocol import RestFrontEnd
    from tfxp.serving.repository import ModelConfig, ModelRepository

    base = tmp_path / MODEL_NAME
    publish(model_dir, base, 1)
    repository = ModelRepository([ModelConfig(MODEL_NAME, str(base))])
    repository.start(0)
    batch_sizes: list[int] = []
    settings = BatchingSettings(max_batch_size=8, batch_timeout_micros=500_000, num_batch_threads=1)
    plane = DataPlane(repository, BatchingRunner(settings, on_batch=lambda model, rows: batch_sizes.append(rows)))
    front = RestFrontEnd(
        plane, Metrics(), max_request_bytes=1 << 20, request_timeout=30, monitoring_path="/metrics", workers=1
    )
    try:
        with serving_front_end(front) as rest_url, ThreadPoolExecutor(8) as pool:
            responses = list(pool.map(lambda i: _rest_predict(rest_url, examples[i]), range(8)))
        assert [r.status_code for r in responses] == [200] * 8
        assert batch_sizes == [8], batch_sizes  # full at 8 rows: run at once, no timeout waited
    finally:
        repository.stop()
