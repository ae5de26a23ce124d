"""Request logging (`tfxp serve --request-log`): the PredictionLog each API writes over REST and gRPC,
refused requests, file naming and rotation, sampling and logging failures, through a real server."""

from __future__ import annotations

import base64
import json
import logging
import os
import time

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf
from click.testing import CliRunner
from serving_harness import MODEL_NAME, publish, start_server
from taxi_data import TAXI, TIPS, raw_feature_spec, read_csv_rows, to_example
from tensorflow_serving.apis import (
    classification_pb2,
    inference_pb2,
    model_pb2,
    predict_pb2,
    prediction_log_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from tfxp.models import features as F
from tfxp.serving.request_log import FILE_NAME_PATTERN, RequestLogger, file_name, file_start_time

VERSION = 1
ROTATE_SECONDS = 0.5  # the module's server starts a new file this often
TIMEOUT = 60


# --------------------------------------------------------------------------- fixtures and helpers
@pytest.fixture(scope="module")
def logging_server(model_dir, tmp_path_factory):
    """(server, log folder): the trained taxi model as version 1, every request logged."""
    base = tmp_path_factory.mktemp("request_log") / MODEL_NAME
    publish(model_dir, base, VERSION)
    log_dir = base.parent / "log"
    server = start_server(base, request_log_dir=log_dir, log_sampling=1.0, request_log_rotate_seconds=ROTATE_SECONDS)
    yield server, log_dir
    server.stop()


@pytest.fixture(scope="module")
def stub(logging_server):
    channel = grpc.insecure_channel(f"127.0.0.1:{logging_server[0].server.grpc_port}")
    yield prediction_service_pb2_grpc.PredictionServiceStub(channel)
    channel.close()


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    return read_csv_rows(limit=8)


@pytest.fixture(scope="module")
def examples(rows) -> list[bytes]:
    return [to_example(r, raw_feature_spec()) for r in rows]


def log_files(log_dir) -> list[str]:
    """The folder's log files in the order they were started (one process: by sequence number)."""
    names = [n for n in os.listdir(log_dir) if FILE_NAME_PATTERN.match(n)]
    return [os.path.join(log_dir, n) for n in sorted(names, key=lambda n: int(FILE_NAME_PATTERN.match(n)["seq"]))]


def read_records(log_dir) -> list[prediction_log_pb2.PredictionLog]:
    """Every complete record, read while the server still writes (the current file stays open)."""
    if not os.path.isdir(log_dir):
        return []
    return [
        prediction_log_pb2.PredictionLog.FromString(r.numpy())
        for path in log_files(log_dir)
        for r in tf.data.TFRecordDataset(path)
    ]


@pytest.fixture
def new_records(logging_server):
    """A function giving the records written since the test started (requests run one at a time)."""
    log_dir = logging_server[1]
    start = len(read_records(log_dir))
    return lambda: read_records(log_dir)[start:]


def rest_url(logging_server, action: str, version: int | None = None) -> str:
    server = logging_server[0].server
    path = f"/v1/models/{MODEL_NAME}" + (f"/versions/{version}" if version is not None else "")
    return f"http://127.0.0.1:{server.rest_port}{path}:{action}"


def post(url: str, body: dict) -> requests.Response:
    return requests.post(url, data=json.dumps(body), headers={"Content-Type": "application/json"}, timeout=TIMEOUT)


def spec(signature: str) -> model_pb2.ModelSpec:
    """The model_spec every record of this module's server carries: taxi, version 1, the signature."""
    result = model_pb2.ModelSpec(name=MODEL_NAME, signature_name=signature)
    result.version.value = VERSION
    return result


def assert_metadata(record, signature: str) -> None:
    assert record.log_metadata.model_spec == spec(signature)
    assert record.log_metadata.sampling_config.sampling_rate == 1.0
    assert abs(record.log_metadata.timestamp_secs - time.time()) < 60


def raw_columns(rows) -> dict[str, np.ndarray]:
    """predict_raw's inputs: one [N] array per model input, blank cells as the missing markers."""
    out = {}
    for feature in TAXI.features:
        cells = [r[feature.name] for r in rows]
        if feature.dtype is F.DType.STRING:
            out[feature.name] = np.array([c.encode() for c in cells], dtype=object)
        elif feature.dtype is F.DType.INT:
            out[feature.name] = np.array([int(float(c)) if c else F.MISSING_INT for c in cells], dtype=np.int64)
        else:
            out[feature.name] = np.array([float(c) if c else F.MISSING_FLOAT for c in cells], dtype=np.float32)
    return out


def predict_request(signature: str, inputs: dict) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL_NAME
    request.model_spec.signature_name = signature
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    return request


def json_columns(columns: dict[str, np.ndarray]) -> dict[str, list]:
    return {k: [v.decode() if isinstance(v, bytes) else v.item() for v in a] for k, a in columns.items()}


def json_example(row: dict[str, str]) -> dict:
    """A CSV row as a REST :classify/:regress example object (blank cells left out)."""
    out = {}
    for name, feature_spec in raw_feature_spec().items():
        text = row.get(name, "")
        if text == "" or name == TIPS:
            continue
        if feature_spec.dtype == tf.string:
            out[name] = text
        elif feature_spec.dtype.is_integer:
            out[name] = int(float(text))
        else:
            out[name] = float(text)
    return out


def example_values(example: tf.train.Example) -> dict:
    values = {}
    for name, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        values[name] = list(getattr(feature, kind).value) if kind else []
    return values


def assert_inputs(logged, sent: dict[str, np.ndarray]) -> None:
    assert set(logged) == set(sent)
    for key, value in sent.items():
        np.testing.assert_array_equal(tf.make_ndarray(logged[key]), value)  # NaN markers equal NaN


def examples_request(message, signature: str, examples: list[bytes]):
    request = message()
    request.model_spec.name = MODEL_NAME
    request.model_spec.signature_name = signature
    request.input.example_list.examples.extend(tf.train.Example.FromString(e) for e in examples)
    return request


# --------------------------------------------------------------------------- what each API logs
def test_predict_serving_default_over_grpc_and_rest(logging_server, stub, examples, new_records):
    response = stub.Predict(predict_request("serving_default", {"examples": examples[:3]}), timeout=TIMEOUT)
    answer = post(
        rest_url(logging_server, "predict"),
        {"instances": [{"b64": base64.b64encode(e).decode()} for e in examples[3:5]]},
    )
    assert answer.status_code == 200, answer.text

    grpc_log, rest_log = new_records()
    for record in (grpc_log, rest_log):
        assert record.WhichOneof("log_type") == "predict_log"
        assert record.predict_log.request.model_spec == spec("serving_default")
        assert_metadata(record, "serving_default")
    assert list(tf.make_ndarray(grpc_log.predict_log.request.inputs["examples"])) == examples[:3]
    assert grpc_log.predict_log.response == response  # the response the client got, exactly
    assert list(tf.make_ndarray(rest_log.predict_log.request.inputs["examples"])) == examples[3:5]
    assert rest_log.predict_log.response.model_spec == spec("serving_default")
    np.testing.assert_allclose(
        tf.make_ndarray(rest_log.predict_log.response.outputs["probability"]), answer.json()["predictions"], atol=1e-6
    )


def test_predict_raw_columns_over_grpc_and_rest(logging_server, stub, rows, new_records):
    columns = raw_columns(rows[:4])
    response = stub.Predict(predict_request("predict_raw", columns), timeout=TIMEOUT)
    answer = post(
        rest_url(logging_server, "predict"), {"signature_name": "predict_raw", "inputs": json_columns(columns)}
    )
    assert answer.status_code == 200, answer.text

    grpc_log, rest_log = new_records()
    for record in (grpc_log, rest_log):
        assert record.WhichOneof("log_type") == "predict_log"
        assert record.predict_log.request.model_spec == spec("predict_raw")
        assert_metadata(record, "predict_raw")
        assert_inputs(record.predict_log.request.inputs, columns)
    assert grpc_log.predict_log.response == response
    np.testing.assert_allclose(
        tf.make_ndarray(rest_log.predict_log.response.outputs["probability"]), answer.json()["outputs"], atol=1e-6
    )


def test_classify_and_regress_over_grpc_and_rest(logging_server, stub, rows, examples, new_records):
    classify_request = examples_request(classification_pb2.ClassificationRequest, "classification", examples[:3])
    classified = stub.Classify(classify_request, timeout=TIMEOUT)
    regress_request = examples_request(regression_pb2.RegressionRequest, "regression", examples[:2])
    regressed = stub.Regress(regress_request, timeout=TIMEOUT)
    json_examples = [json_example(r) for r in rows[4:7]]
    rest_classified = post(
        rest_url(logging_server, "classify", VERSION), {"signature_name": "classification", "examples": json_examples}
    )
    rest_regressed = post(
        rest_url(logging_server, "regress"), {"signature_name": "regression", "examples": json_examples[:2]}
    )
    assert rest_classified.status_code == rest_regressed.status_code == 200, (rest_classified.text, rest_regressed.text)

    grpc_classify, grpc_regress, rest_classify, rest_regress = new_records()
    assert [r.WhichOneof("log_type") for r in (grpc_classify, grpc_regress, rest_classify, rest_regress)] == [
        "classify_log",
        "regress_log",
        "classify_log",
        "regress_log",
    ]
    for record in (grpc_classify, rest_classify):
        assert record.classify_log.request.model_spec == spec("classification")
        assert_metadata(record, "classification")
    for record in (grpc_regress, rest_regress):
        assert record.regress_log.request.model_spec == spec("regression")
        assert_metadata(record, "regression")
    # gRPC: the request's tf.Examples and the response as the client got them.
    assert grpc_classify.classify_log.request.input == classify_request.input
    assert grpc_classify.classify_log.response == classified
    assert grpc_regress.regress_log.request.input == regress_request.input
    assert grpc_regress.regress_log.response == regressed
    # REST: the JSON examples as tf.Examples, and the answer's labels, scores and values.
    logged = rest_classify.classify_log.request.input.example_list.examples
    assert len(logged) == 3
    for example, sent in zip(logged, json_examples, strict=True):
        values = example_values(example)
        assert set(values) == set(sent)
        for name, value in sent.items():
            expected = value.encode() if isinstance(value, str) else value
            assert values[name] == pytest.approx([expected]), name
    classifications = rest_classify.classify_log.response.result.classifications
    answered = rest_classified.json()["results"]
    assert [[c.label for c in row.classes] for row in classifications] == [[c[0] for c in r] for r in answered]
    np.testing.assert_allclose(
        [[c.score for c in row.classes] for row in classifications], [[c[1] for c in r] for r in answered], atol=1e-6
    )
    assert rest_regress.regress_log.request.input.example_list.examples[:] == logged[:2]
    assert [r.value for r in rest_regress.regress_log.response.result.regressions] == pytest.approx(
        rest_regressed.json()["results"]
    )


def test_multi_inference_over_grpc(stub, examples, new_records):
    request = inference_pb2.MultiInferenceRequest()
    for signature, method in (("classification", "classify"), ("regression", "regress")):
        task = request.tasks.add(method_name=f"tensorflow/serving/{method}")
        task.model_spec.name = MODEL_NAME
        task.model_spec.signature_name = signature
    request.input.example_list.examples.extend(tf.train.Example.FromString(e) for e in examples[:2])
    response = stub.MultiInference(request, timeout=TIMEOUT)

    (record,) = new_records()
    assert record.WhichOneof("log_type") == "multi_inference_log"
    logged = record.multi_inference_log
    assert [t.model_spec for t in logged.request.tasks] == [spec("classification"), spec("regression")]
    assert [t.method_name for t in logged.request.tasks] == [t.method_name for t in request.tasks]
    assert logged.request.input == request.input
    assert logged.response == response
    assert record.log_metadata.model_spec == spec("")  # name and version; each task names its signature
    assert record.log_metadata.sampling_config.sampling_rate == 1.0


# --------------------------------------------------------------------------- refused requests
def test_a_refused_request_is_logged_with_a_response_without_outputs(logging_server, stub, rows, new_records):
    """The model refuses a missing required input (INVALID_ARGUMENT / 400): logged with its inputs."""
    refused = dict(rows[1], fare="")
    columns = raw_columns([rows[0], refused])
    with pytest.raises(grpc.RpcError) as info:
        stub.Predict(predict_request("predict_raw", columns), timeout=TIMEOUT)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    answer = post(
        rest_url(logging_server, "predict"), {"signature_name": "predict_raw", "inputs": json_columns(columns)}
    )
    assert answer.status_code == 400 and "fare" in answer.json()["error"], answer.text

    for record in new_records():
        assert record.WhichOneof("log_type") == "predict_log"
        assert record.predict_log.request.model_spec == spec("predict_raw")
        assert_inputs(record.predict_log.request.inputs, columns)
        assert record.predict_log.response.model_spec == spec("predict_raw")
        assert len(record.predict_log.response.outputs) == 0  # the refusal marker
        assert_metadata(record, "predict_raw")


def test_a_refused_classify_is_logged_with_its_examples_and_no_result(logging_server, rows, new_records):
    """A tf.Example without a required feature: the model refuses it (REST 400), after decoding."""
    example = json_example(rows[0])
    del example["fare"]
    answer = post(rest_url(logging_server, "classify"), {"signature_name": "classification", "examples": [example]})
    assert answer.status_code == 400, answer.text

    (record,) = new_records()
    assert record.WhichOneof("log_type") == "classify_log"
    (logged,) = record.classify_log.request.input.example_list.examples
    assert set(example_values(logged)) == set(example)
    assert record.classify_log.response == classification_pb2.ClassificationResponse(model_spec=spec("classification"))
    assert_metadata(record, "classification")


def test_examples_with_context_are_logged_as_the_merged_examples_the_model_ran(stub, examples, new_records):
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = MODEL_NAME
    request.model_spec.signature_name = "regression"
    context = tf.train.Example.FromString(examples[0])
    listed = request.input.example_list_with_context
    listed.context.CopyFrom(context)
    own = tf.train.Example()
    own.features.feature["fare"].float_list.value.append(123.0)
    listed.examples.extend([own, tf.train.Example.FromString(examples[1])])
    stub.Regress(request, timeout=TIMEOUT)

    (record,) = new_records()
    merged = tf.train.Example()
    merged.CopyFrom(context)
    merged.features.feature["fare"].CopyFrom(own.features.feature["fare"])
    first, second = record.regress_log.request.input.example_list.examples
    # Compared as {feature: values}: the record holds the context's and the example's map entries,
    # which read as the merged map (protobuf's cpp `==` may compare them before merging).
    assert example_values(first) == example_values(merged)
    assert example_values(first)["fare"] == [123.0]
    expected = example_values(context) | example_values(tf.train.Example.FromString(examples[1]))
    assert example_values(second) == expected


def test_refused_before_decoding_is_logged_with_an_empty_request(stub, examples, new_records):
    """A tensor that can't be decoded: the request is logged with its model_spec only."""
    request = predict_request("serving_default", {})
    request.inputs["examples"].dtype = tf.string.as_datatype_enum
    request.inputs["examples"].tensor_shape.dim.add(size=1)
    request.inputs["examples"].string_val.extend([examples[0], examples[1]])  # 2 values for a [1] tensor
    with pytest.raises(grpc.RpcError) as info:
        stub.Predict(request, timeout=TIMEOUT)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    classify = examples_request(classification_pb2.ClassificationRequest, "classification", [])
    with pytest.raises(grpc.RpcError) as info:
        stub.Classify(classify, timeout=TIMEOUT)  # "Input is empty."
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    predict_log, classify_log = new_records()
    assert predict_log.predict_log.request == predict_pb2.PredictRequest(model_spec=spec("serving_default"))
    assert predict_log.predict_log.response == predict_pb2.PredictResponse(model_spec=spec("serving_default"))
    assert classify_log.classify_log.request == classification_pb2.ClassificationRequest(
        model_spec=spec("classification")
    )
    assert not classify_log.classify_log.response.HasField("result")
    assert classify_log.classify_log.response.model_spec == spec("classification")


def test_requests_that_resolve_no_version_are_not_logged(logging_server, stub, examples, new_records):
    for name, version in ((MODEL_NAME, 99), ("no_such_model", None)):
        request = predict_request("serving_default", {"examples": examples[:1]})
        request.model_spec.name = name
        if version is not None:
            request.model_spec.version.value = version
        with pytest.raises(grpc.RpcError) as info:
            stub.Predict(request, timeout=TIMEOUT)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
    answer = post(rest_url(logging_server, "regress", 99), {"examples": [{"fare": 1.0}]})
    assert answer.status_code == 404, answer.text
    assert new_records() == []


# --------------------------------------------------------------------------- files
def test_files_rotate_by_time_and_their_names_carry_their_start(logging_server, stub, examples, new_records):
    log_dir = logging_server[1]
    time.sleep(ROTATE_SECONDS)  # the current file is due: the next record starts a new one
    before = set(log_files(log_dir))
    started = time.time()
    for i in range(3):
        stub.Predict(predict_request("serving_default", {"examples": examples[i : i + 1]}), timeout=TIMEOUT)
        time.sleep(ROTATE_SECONDS * 1.2)
    new = [p for p in log_files(log_dir) if p not in before]
    assert len(new) == 3, new
    starts = [file_start_time(p) for p in new]
    assert all(s is not None for s in starts), new
    assert starts == sorted(starts) and len(set(starts)) == 3
    assert started - 0.01 <= starts[0] and starts[-1] <= time.time()
    assert starts[-1] - starts[0] >= 2 * ROTATE_SECONDS
    for path, start in zip(new, starts, strict=True):
        (record,) = [prediction_log_pb2.PredictionLog.FromString(r.numpy()) for r in tf.data.TFRecordDataset(path)]
        # timestamp_secs is read just before the write that starts the file: a second boundary may fall between
        assert start - 1 <= record.log_metadata.timestamp_secs <= start + ROTATE_SECONDS
    assert len(new_records()) == 3


def test_file_names_parse_back_to_their_start():
    name = file_name(1796423415.123, 4242, 0)
    assert name == "prediction_log-20261204T223015.123Z-4242-0.tfrecord"
    assert file_start_time(name) == pytest.approx(1796423415.123, abs=1e-6)
    assert file_start_time(f"/some/folder/{name}") == file_start_time(name)
    for other in (
        "prediction_log-20261304T223015.123Z-4242-0.tfrecord",  # month 13
        "prediction_log-20261204-223015-4242-17.tfrecord",  # the old naming
        "prediction_log-20261204T223015.123Z-4242-0.tfrecord.tmp",
        "README",
    ):
        assert file_start_time(other) is None, other


def test_a_file_rotates_after_max_records(tmp_path):
    logger = RequestLogger(str(tmp_path), 1.0, max_records_per_file=2)
    try:
        for _ in range(5):
            logger.log(lambda: b"")
    finally:
        logger.close()
    logger.log(lambda: b"")  # after close: counted, no new file
    assert logger.failures == 1
    files = log_files(tmp_path)
    assert [sum(1 for _ in tf.data.TFRecordDataset(p)) for p in files] == [2, 2, 1]
    assert all(file_start_time(p) is not None for p in files)


# --------------------------------------------------------------------------- sampling and failures
def test_sampling_zero_logs_nothing_and_a_rate_logs_its_share(tmp_path):
    def never_built():
        raise AssertionError("a request that was not sampled was built")

    silent = RequestLogger(str(tmp_path / "none"), 0.0)
    for _ in range(1000):
        silent.log(never_built)
    silent.close()
    assert os.listdir(tmp_path / "none") == []

    logger = RequestLogger(str(tmp_path / "quarter"), 0.25)
    for _ in range(4000):
        logger.log(lambda: b"")
    logger.close()
    records = read_records(tmp_path / "quarter")
    assert 850 <= len(records) <= 1150, len(records)  # binomial(4000, 0.25): sd 27
    assert {r.log_metadata.sampling_config.sampling_rate for r in records} == {0.25}


def test_a_logging_failure_is_counted_and_never_fails_the_request(logging_server, examples, tmp_path, caplog):
    """The log folder replaced by a file: records can't be written; the data plane still answers."""
    from tfxp.serving.dataplane import DataPlane, ModelSpec

    log_dir = tmp_path / "log"
    logger = RequestLogger(str(log_dir), 1.0)
    os.rmdir(log_dir)
    log_dir.write_text("not a folder")
    plane = DataPlane(logging_server[0].server.repository, request_logger=logger)
    with caplog.at_level(logging.ERROR, logger="tfxp.serving.request_log"):
        for _ in range(2):
            result = plane.predict(ModelSpec(MODEL_NAME), {"examples": np.array(examples[:2], dtype=object)})
            assert result.value["probability"].shape == (2,)
    logger.close()
    assert logger.failures == 2
    failures = [r for r in caplog.records if "request log record not written" in r.getMessage()]
    assert len(failures) == 1  # a second failure within the minute is counted, not logged again


# --------------------------------------------------------------------------- the command line
@pytest.fixture
def captured_run(monkeypatch):
    from tfxp.serving import server

    seen = []
    monkeypatch.setattr(server, "run", seen.append)
    return seen


def test_cli_request_log_rotate_seconds(captured_run, tmp_path):
    from tfxp.cli import main

    base = ["serve", "--model-base-path", str(tmp_path), "--model-name", "m", "--log-file", str(tmp_path / "serve.log")]
    log = ["--request-log", str(tmp_path / "log")]
    assert CliRunner().invoke(main, [*base, *log, "--request-log-rotate-seconds", "5"]).exit_code == 0
    assert CliRunner().invoke(main, [*base, *log]).exit_code == 0
    assert [o.request_log_rotate_seconds for o in captured_run] == [5.0, 60.0]
    for args in (["--request-log-rotate-seconds", "5"], [*log, "--request-log-rotate-seconds", "0"]):
        result = CliRunner().invoke(main, [*base, *args])
        assert result.exit_code == 2, result.output
    assert len(captured_run) == 2
    help_text = CliRunner().invoke(main, ["serve", "--help"]).output
    assert "--request-log-rotate-seconds" in help_text and "Default: 60." in help_text
