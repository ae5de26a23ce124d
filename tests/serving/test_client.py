"""RestClient and GrpcClient against a real server (or an external TF Serving)."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from serving.client import GrpcClient, RestClient, ServingClientError, connect
from taxi_data import raw_feature_spec, read_csv_rows, to_example

ROWS = 50


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return read_csv_rows(limit=ROWS)


@pytest.fixture(scope="module")
def expected(model_dir, rows) -> np.ndarray:
    """The model's own answer, computed in-process from the same SavedModel."""
    loaded = tf.saved_model.load(model_dir)
    examples = tf.constant([to_example(r, raw_feature_spec()) for r in rows])
    return loaded.signatures["serving_default"](examples=examples)["probability"].numpy()


def _clients(served, **kwargs):
    return [RestClient(served.rest_url, served.model, **kwargs), GrpcClient(served.grpc_target, served.model, **kwargs)]


@pytest.mark.parametrize("signature", ["serving_default", "predict_raw"])
def test_both_clients_match_the_model_on_raw_csv_rows(served, rows, expected, signature):
    for client in _clients(served, signature=signature):
        with client:
            got = client.predict(rows)
        np.testing.assert_allclose(got, expected, atol=1e-5, err_msg=type(client).__name__)


def test_status_and_metadata_have_one_shape_for_both_protocols(served):
    rest, grpc_client = _clients(served)
    with rest, grpc_client:
        assert rest.status() == grpc_client.status()
        assert any(s["state"] == "AVAILABLE" for s in rest.status())
        rest_meta, grpc_meta = rest.metadata(), grpc_client.metadata()
        assert rest_meta == grpc_meta
        assert rest_meta["serving_default"]["inputs"] == {"examples": "DT_STRING"}
        assert rest_meta["predict_raw"]["inputs"]["fare"] == "DT_FLOAT"


def test_version_selection_and_unknown_version(served, rows):
    version = max(s["version"] for s in RestClient(served.rest_url, served.model).status())
    for client in _clients(served, version=version):
        with client:
            assert len(client.predict(rows[:3])) == 3
    for client in _clients(served, version=version + 1000, retries=0):
        with client, pytest.raises(ServingClientError) as info:
            client.predict(rows[:1])
        assert info.value.code in (404, "NOT_FOUND")


def test_errors_other_than_unavailable_are_not_retried(served, rows):
    for client in _clients(served, retries=5):
        client.model = "no-such-model"
        started = time.monotonic()
        with client, pytest.raises(ServingClientError) as info:
            client.predict(rows[:1])
        assert info.value.code in (404, "NOT_FOUND")
        assert time.monotonic() - started < 1.0  # 5 retries with backoff would take > 3 s


def test_unavailable_server_is_retried_then_reported():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens
    for client in (RestClient(f"http://127.0.0.1:{port}", "taxi", retries=2, timeout=2),
                   GrpcClient(f"127.0.0.1:{port}", "taxi", retries=2, timeout=2)):
        started = time.monotonic()
        with client, pytest.raises(ServingClientError) as info:
            client.predict([{"fare": "1"}])
        assert info.value.code in (503, "UNAVAILABLE")
        assert time.monotonic() - started >= 0.3  # backoff 0.1 s + 0.2 s happened


def test_connect_chooses_the_protocol_from_the_target(served):
    assert isinstance(connect(served.rest_url, served.model), RestClient)
    assert isinstance(connect(served.grpc_target, served.model), GrpcClient)


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
def test_tfxp_predict_command(served, rows, expected, tmp_path, protocol):
    csv_path = tmp_path / "rows.csv"
    header = list(rows[0])
    csv_path.write_text(",".join(header) + "\n" + "\n".join(
        ",".join(f'"{r[h]}"' if "," in r[h] else r[h] for h in header) for r in rows[:10]) + "\n")
    server = served.rest_url if protocol == "rest" else served.grpc_target
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "predict", "--server", server, "--model", served.model,
         "--rows", str(csv_path), "--protocol", protocol, "--json"],
        capture_output=True, text=True, timeout=120, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    np.testing.assert_allclose(out["probabilities"], expected[:10], atol=1e-5)
    assert out["protocol"] == protocol
