"""Never a confident answer from a value the model never learned (issue 17), on every path.

A car table made here (no download), with the cases public tables had: a required float, an optional
float with blanks, a small int category, a string category, and a temperature in degrees Celsius that
is -1 in some rows. `tfxp init` -> `tfxp run --project` -> served by a real server on loopback; each
case is sent through REST and gRPC `serving_default` (tf.Examples), `predict_raw` (named tensors),
Classify and Regress, and run on the pushed TFLite model. Every path gives the same answer, or every
path refuses it (the servers name the input; TFLite answers NaN, its "no answer").
"""

from __future__ import annotations

import base64
import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

ROWS = 600
FEATURES = {"weight": "float", "horsepower": "float", "cylinders": "int", "origin": "string", "temp_c": "int"}
REFUSED = "refused"


def _cars(path: Path) -> Path:
    """600 cars: efficient (yes/no) depends on every column, so each one matters to the model."""
    rng = np.random.default_rng(17)
    rows = []
    for _ in range(ROWS):
        cylinders = int(rng.choice([3, 4, 4, 4, 5, 6, 6, 8, 8]))
        weight = float(np.round(rng.normal(1500 + 300 * cylinders, 250), 1))
        horsepower = float(np.round(40 + 18 * cylinders + rng.normal(0, 12), 1))
        origin = str(rng.choice(["usa", "europe", "japan"], p=[0.5, 0.25, 0.25]))
        temp_c = int(rng.choice([-1, -1, -1, 0, 2, 5, 8, 10, 12, 15, 18, 20, 22, 25, 28, 30, -5, -10, -15, 3, 7, 33]))
        score = (
            -(weight - 2900) / 500
            - (horsepower - 130) / 60
            + {"usa": -0.7, "europe": 0.3, "japan": 0.9}[origin]
            - 0.04 * temp_c
            + rng.normal(0, 0.5)
        )
        rows.append(
            {
                "weight": weight,
                "horsepower": "" if rng.random() < 0.08 else horsepower,  # 8% unknown horsepower
                "cylinders": cylinders,
                "origin": origin,
                "temp_c": temp_c,
                "efficient": "yes" if score > 0 else "no",
            }
        )
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[*FEATURES, "efficient"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def _tfxp(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-m", "tfxp.cli", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=900
    )


@pytest.fixture(scope="module")
def pushed(tmp_path_factory):
    """(run summary, CSV rows) after `tfxp init` and `tfxp run --project` on the car table."""
    work = tmp_path_factory.mktemp("cars")
    data = _cars(work / "cars.csv")
    init = _tfxp("init", "--data", str(data), "--label", "efficient", "--positive", "yes", "--dir", "project", cwd=work)
    assert init.returncode == 0, init.stderr[-3000:]
    run = _tfxp("run", "--project", "project", "--output", "out", "--train-steps", "300", "--json", cwd=work)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    summary = json.loads(run.stdout)
    assert summary["pushed_version"] and summary["mobile_pushed"], summary
    return summary, list(csv.DictReader(open(data)))


# -- one row through every path -----------------------------------------------------------------


def _example(row: dict):
    """A tf.Example holding the row's values as they are (NaN included); None leaves the feature out."""
    import tensorflow as tf

    feature = {}
    for name, value in row.items():
        if value is None:
            continue
        kind = FEATURES[name]
        if kind == "float":
            feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
        elif kind == "int":
            feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
        else:
            feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()]))
    return tf.train.Example(features=tf.train.Features(feature=feature))


def _raw_value(name: str, value):
    from tfxp.rows import MISSING_FLOAT, MISSING_INT, MISSING_STRING

    if value is not None:
        return value
    return {"float": MISSING_FLOAT, "int": MISSING_INT, "string": MISSING_STRING}[FEATURES[name]]


class Paths:
    """Answers for one row (P(efficient)) through each serving path, or REFUSED with the error text."""

    def __init__(self, summary: dict, server):
        self.name = Path(summary["pushed_path"]).parent.name
        self.rest = f"http://127.0.0.1:{server.server.rest_port}/v1/models/{self.name}"
        self.grpc_target = f"127.0.0.1:{server.server.grpc_port}"
        self.mobile_path = summary["mobile_path"]

    def all(self, row: dict) -> dict[str, tuple[str, object]]:
        paths = {
            "REST serving_default": self.rest_serving_default,
            "REST predict_raw": self.rest_predict_raw,
            "REST classify": self.rest_classify,
            "REST regress": self.rest_regress,
            "gRPC serving_default": self.grpc_serving_default,
            "gRPC predict_raw": self.grpc_predict_raw,
            "gRPC Classify": self.grpc_classify,
            "TFLite float": self.tflite,
        }
        return {name: path(row) for name, path in paths.items()}

    def _post(self, verb: str, body: dict, pick) -> tuple[str, object]:
        import requests

        # json.dumps writes NaN as TF Serving's JSON reader reads it (rapidjson's kParseNanAndInfFlag).
        answer = requests.post(f"{self.rest}:{verb}", data=json.dumps(body), timeout=60)
        if answer.status_code != 200:
            assert answer.status_code == 400, answer.text
            return REFUSED, answer.json()["error"]
        return "answer", pick(answer.json())

    def rest_serving_default(self, row):
        b64 = base64.b64encode(_example(row).SerializeToString()).decode()
        return self._post("predict", {"instances": [{"b64": b64}]}, lambda j: j["predictions"][0])

    def rest_predict_raw(self, row):
        instance = {name: _raw_value(name, row.get(name)) for name in FEATURES}
        return self._post(
            "predict", {"signature_name": "predict_raw", "instances": [instance]}, lambda j: j["predictions"][0]
        )

    def rest_classify(self, row):
        example = {k: v for k, v in row.items() if v is not None}
        return self._post(
            "classify",
            {"signature_name": "classification", "examples": [example]},
            lambda j: dict(j["results"][0])["yes"],
        )

    def rest_regress(self, row):
        example = {k: v for k, v in row.items() if v is not None}
        return self._post("regress", {"signature_name": "regression", "examples": [example]}, lambda j: j["results"][0])

    def _grpc(self, call, request, pick) -> tuple[str, object]:
        import grpc

        try:
            return "answer", pick(call(request, timeout=60))
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error
            return REFUSED, error.details()

    def _stub(self):
        import grpc
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        return prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(self.grpc_target))

    def grpc_serving_default(self, row):
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        request.model_spec.name = self.name
        request.inputs["examples"].CopyFrom(tf.make_tensor_proto([_example(row).SerializeToString()]))
        return self._grpc(self._stub().Predict, request, lambda r: r.outputs["probability"].float_val[0])

    def grpc_predict_raw(self, row):
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        dtypes = {"float": tf.float32, "int": tf.int64, "string": tf.string}
        request = predict_pb2.PredictRequest()
        request.model_spec.name = self.name
        request.model_spec.signature_name = "predict_raw"
        for name, kind in FEATURES.items():
            value = _raw_value(name, row.get(name))
            request.inputs[name].CopyFrom(tf.make_tensor_proto([value], dtype=dtypes[kind]))
        return self._grpc(self._stub().Predict, request, lambda r: r.outputs["probability"].float_val[0])

    def grpc_classify(self, row):
        from tensorflow_serving.apis import classification_pb2

        request = classification_pb2.ClassificationRequest()
        request.model_spec.name = self.name
        request.model_spec.signature_name = "classification"
        request.input.example_list.examples.append(_example(row))
        return self._grpc(
            self._stub().Classify,
            request,
            lambda r: {c.label: c.score for c in r.result.classifications[0].classes}["yes"],
        )

    def tflite(self, row):
        from tfxp.mobile.runtime import MobileModel

        cells = {k: ("" if v is None else v) for k, v in row.items()}
        answer = MobileModel(self.mobile_path, "float").predict([cells])[0]
        if answer is None or (isinstance(answer, float) and math.isnan(answer)):
            return REFUSED, "NaN"
        return "answer", answer


@pytest.fixture(scope="module")
def paths(pushed):
    from serving_harness import BackgroundServer

    from tfxp.serving.options import ServerOptions

    summary, _ = pushed
    base = Path(summary["pushed_path"]).parent
    server = BackgroundServer(
        ServerOptions(model_base_path=base, model_name=base.name, rest_port=0, grpc_port=0, poll_seconds=0)
    )
    try:
        yield Paths(summary, server)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def base_row() -> dict:
    """A typical car (every value present), whose answer is far from 0 and 1, so changes show."""
    return {"weight": 2900.0, "horsepower": 128.5, "cylinders": 4, "origin": "europe", "temp_c": 12}


def _logit(p: float) -> float:
    """log(p / (1 - p)), finite for p of 0 or 1 (float32 saturates: 0 hp answered 1.0 on one run)."""
    p = min(max(p, 1e-12), 1 - 1e-7)
    return math.log(p / (1 - p))


def _answer(results: dict) -> float:
    """The one answer every path gave (within float32 noise); fails naming the paths that differ."""
    kinds = {name: kind for name, (kind, _) in results.items()}
    assert set(kinds.values()) == {"answer"}, results
    values = {name: float(value) for name, (_, value) in results.items()}
    reference = values["gRPC predict_raw"]
    for name, value in values.items():
        assert value == pytest.approx(reference, abs=1e-5), (name, values)
    return reference


def _refused(results: dict, feature: str) -> None:
    """Every path refused: the servers' messages name `feature`; TFLite gave no answer (NaN)."""
    for name, (kind, message) in results.items():
        assert kind == REFUSED, (name, results)
        if name != "TFLite float":
            assert feature in message, (name, message)


# -- the cases --------------------------------------------------------------------------------------


def test_nan_in_a_required_float_is_refused_on_every_path(paths, base_row):
    _refused(paths.all(dict(base_row, weight=math.nan)), "weight")


def test_an_all_nan_row_is_refused_on_every_path(paths, base_row):
    """Once the bias-only output: 200 with a confident probability."""
    _refused(paths.all(dict(base_row, weight=math.nan, horsepower=math.nan)), "weight")


def test_a_missing_optional_number_is_answered_alike_and_not_read_as_zero(paths, base_row):
    missing = _answer(paths.all(dict(base_row, horsepower=None)))
    # NaN is the missing marker: in a tf.Example it is read as absent too, the same answer.
    assert _answer(paths.all(dict(base_row, horsepower=math.nan))) == pytest.approx(missing, abs=1e-5)
    zero = _answer(paths.all(dict(base_row, horsepower=0.0)))
    assert abs(_logit(missing) - _logit(zero)) > 1e-2, (missing, zero)  # 0 hp is a value; missing is not 0


def test_unseen_and_mis_cased_categories_share_the_trained_unknown_id(paths, base_row):
    unseen = _answer(paths.all(dict(base_row, origin="mars")))
    cased = _answer(paths.all(dict(base_row, origin="USA")))
    assert unseen == pytest.approx(cased, abs=1e-6)


def test_an_int_category_outside_its_range_is_unknown_not_clipped(paths, base_row):
    above = _answer(paths.all(dict(base_row, cylinders=12)))
    below = _answer(paths.all(dict(base_row, cylinders=-3)))
    assert above == pytest.approx(below, abs=1e-6)  # both the unknown id
    largest = _answer(paths.all(dict(base_row, cylinders=8)))
    assert abs(_logit(above) - _logit(largest)) > 1e-3, (above, largest)  # once clipped: 12 answered as 8


def test_a_real_minus_one_is_a_number_on_every_path(paths, base_row):
    """-1 was the int missing marker: predict_raw refused -1 C and TFLite answered NaN."""
    minus_one = _answer(paths.all(dict(base_row, temp_c=-1)))
    zero = _answer(paths.all(dict(base_row, temp_c=0)))
    assert abs(_logit(minus_one) - _logit(zero)) > 1e-5, (minus_one, zero)


def test_missing_required_int_is_refused_naming_it(paths, base_row):
    _refused(paths.all(dict(base_row, temp_c=None)), "temp_c")


def test_a_number_beyond_z_limit_is_refused_on_every_path(paths, base_row):
    """1e30 kg was answered (0.0 by TF, NaN by LiteRT's XNNPACK: float32 overflow in the network).
    Beyond features.Z_LIMIT standard deviations every path refuses it; a heavy but learnable
    value (2x the heaviest car) is still answered alike."""
    _refused(paths.all(dict(base_row, weight=1e30)), "weight")
    _refused(paths.all(dict(base_row, horsepower=-1e12)), "horsepower")  # optional, but present
    _answer(paths.all(dict(base_row, temp_c=2**62)))  # a vocabulary int: unknown, not a number
    _answer(paths.all(dict(base_row, weight=10000.0)))


def test_the_transform_reads_missing_and_unknown_values_as_their_own_ids(pushed, base_row):
    """What the model is given, from the SavedModel's own transform_features signature."""
    import tensorflow as tf

    from tfxp.models import features as F

    summary, _ = pushed
    loaded = tf.saved_model.load(summary["pushed_path"])
    rows = [dict(base_row, horsepower=None), dict(base_row, cylinders=12), dict(base_row, origin="mars")]
    with_label = []  # transform_features parses the label too
    for row in rows:
        example = _example(row)
        example.features.feature["efficient"].bytes_list.value.append(b"yes")
        with_label.append(example.SerializeToString())
    out = loaded.signatures["transform_features"](examples=tf.constant(with_label))
    out = {k: v.numpy().reshape(-1) for k, v in out.items()}
    assert out["horsepower_xf"][0] == 0.0 and out[F.indicator_name("horsepower")][0] == 1.0  # the mean, flagged
    assert out[F.indicator_name("horsepower")][1] == 0.0
    spec = json.loads((Path(summary["mobile_path"]) / "model_spec.json").read_text())
    inputs = {i["name"]: i for i in spec["inputs"]}
    size = inputs["cylinders"]["preprocessing"]["size"]
    assert out["cylinders_xf"][1] == size + 1 == inputs["cylinders"]["preprocessing"]["oov_id"]
    assert out["origin_xf"][2] == inputs["origin"]["preprocessing"]["oov_id"]
    assert "never as 0" in inputs["horsepower"]["meaning"], inputs["horsepower"]["meaning"]
