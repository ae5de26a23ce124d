"""A real server on loopback serving a real trained taxi model (or an external one).

Set TFXP_SERVING_TARGET_REST=http://host:8501 and TFXP_SERVING_TARGET_GRPC=host:8500
to run the contract tests against another server (e.g. the real tensorflow/serving
container started from serving/deploy/, serving this project's pushed model as
`taxi`); tests that must write model directories are skipped then.
"""

from __future__ import annotations

import os

import pytest
from serving_harness import FIRST_VERSION, MODEL_NAME, ServerHandle, publish, start_server
from taxi_data import raw_feature_spec, read_csv_rows, to_example

# The first 24 CSV rows have blank floats, ints and strings (all three missing markers).
CONTRACT_ROWS = 24


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    """Real CSV rows for the contract tests (test modules may shadow this with their own)."""
    return read_csv_rows(limit=CONTRACT_ROWS)


@pytest.fixture(scope="module")
def examples(rows) -> list[bytes]:
    spec = raw_feature_spec()
    return [to_example(r, spec) for r in rows]


@pytest.fixture(scope="session")
def model_dir(trained_model) -> str:
    return trained_model[0]


@pytest.fixture(scope="module")
def served(model_dir, tmp_path_factory):
    """The contract-test target: our server on loopback, or an external one from the environment."""
    rest, grpc_target = os.environ.get("TFXP_SERVING_TARGET_REST"), os.environ.get("TFXP_SERVING_TARGET_GRPC")
    if rest and grpc_target:
        yield ServerHandle(rest.rstrip("/"), grpc_target, MODEL_NAME, None, None)
        return
    base = tmp_path_factory.mktemp("serving") / MODEL_NAME
    publish(model_dir, base, FIRST_VERSION)
    background = start_server(base)
    try:
        yield ServerHandle(
            f"http://127.0.0.1:{background.server.rest_port}",
            f"127.0.0.1:{background.server.grpc_port}",
            MODEL_NAME,
            base,
            FIRST_VERSION,
            background.server,
            background.loop,
        )
    finally:
        background.stop()


@pytest.fixture
def own_server_only(served):
    if served.external:
        pytest.skip("writes model directories; only runs against the project's own server")
    return served


# --------------------------------------------------------------------------- reference models (issue 10)
# TF Serving's own test models, built by tests/serving/reference_models.py; test modules here may
# `import reference_models` for their expected answers.
import sys  # noqa: E402

sys.path.append(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def reference_model_paths(tmp_path_factory) -> dict:
    """{model name: base path} of every reference model (half_plus_two TF1 in 00000123/, half_plus_two_tf2,
    tf_saved_model_save, keras_sequential), built once. Shared: copy a model before changing its folder."""
    import reference_models

    return reference_models.write_all(tmp_path_factory.mktemp("reference_models"))
