"""Label parity with TF Serving: a version label may only point at an AVAILABLE version
(server_core.cc UpdateModelVersionLabelMap; server_core_test.cc AssignLabelToUnavailableVersion*),
at start-up, on a config-file poll and on gRPC HandleReloadConfigRequest, unless
--allow-version-labels-for-unavailable-models. Real SavedModels, real servers on loopback."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
import requests
from google.protobuf import text_format
from serving_harness import BackgroundServer
from tensorflow_serving.apis import model_management_pb2, model_service_pb2_grpc
from tensorflow_serving.config import model_server_config_pb2
from test_servable import save_half_plus_two_tf1

from tfxp.serving.config import VersionPolicy
from tfxp.serving.errors import Code, ServingError
from tfxp.serving.options import ServerOptions
from tfxp.serving.repository import ModelConfig, ModelRepository

ROOT = Path(__file__).resolve().parents[2]
TFXP = str(Path(sys.executable).with_name("tfxp"))
MODEL = "half_plus_two"


def _refusal(version: int) -> str:
    return (
        f"Request to assign label to version {version} of model {MODEL}, which is not currently available for inference"
    )


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """Versions 1 and 2 of half_plus_two on disk."""
    model = save_half_plus_two_tf1(tmp_path_factory.mktemp("tf1") / "model")
    base = tmp_path_factory.mktemp("models") / MODEL
    for version in (1, 2):
        shutil.copytree(model, base / str(version))
    return base


def _config(base: Path, versions: list[int], labels: dict[str, int]) -> ModelConfig:
    return ModelConfig(MODEL, str(base), VersionPolicy("specific", versions=frozenset(versions)), labels)


def _loaded(repository: ModelRepository) -> set[int]:
    return {s.version for s in repository.status(MODEL) if s.state == "AVAILABLE"}


def _label_version(repository: ModelRepository, label: str) -> int:
    with repository.servable(MODEL, label=label) as servable:
        return servable.version


def test_a_label_needs_an_available_version_and_a_refused_reload_keeps_the_old_config(base):
    with pytest.raises(ServingError) as error:  # start-up: nothing is loaded yet
        ModelRepository([_config(base, [1], {"stable": 1})], warm_up=False)
    assert error.value.code is Code.FAILED_PRECONDITION and error.value.message == _refusal(1)

    repository = ModelRepository([_config(base, [1], {})], warm_up=False)
    repository.poll_once()
    repository.reload_config([_config(base, [1], {"stable": 1})])  # version 1 is AVAILABLE
    assert _label_version(repository, "stable") == 1
    # Adding version 2 and labelling it in one config: the label is checked before 2 loads.
    with pytest.raises(ServingError) as error:
        repository.reload_config([_config(base, [1, 2], {"stable": 1, "canary": 2})])
    assert error.value.code is Code.FAILED_PRECONDITION and error.value.message == _refusal(2)
    assert _loaded(repository) == {1}  # the old policy is still in force: 2 was not loaded
    with pytest.raises(ServingError, match="Unrecognized servable version label: canary"):
        _label_version(repository, "canary")
    # TF Serving's safe order: serve 2 first, then label it.
    repository.reload_config([_config(base, [1, 2], {"stable": 1})])
    assert _loaded(repository) == {1, 2}
    repository.reload_config([_config(base, [1, 2], {"stable": 1, "canary": 2})])
    assert (_label_version(repository, "stable"), _label_version(repository, "canary")) == (1, 2)
    # Unloading a labelled version is the config's business (TF Serving does not stop it);
    # but a label may not move onto a version that is gone.
    repository.reload_config([_config(base, [2], {"stable": 2})])
    with pytest.raises(ServingError, match=_refusal(1)):
        repository.reload_config([_config(base, [1, 2], {"stable": 1})])
    repository.stop()


def test_the_flag_allows_new_labels_on_unavailable_versions_but_not_moving_one(base):
    flag = {"allow_version_labels_for_unavailable_models": True}
    repository = ModelRepository([_config(base, [1], {"stable": 1, "canary": 7})], warm_up=False, **flag)
    repository.poll_once()
    assert _label_version(repository, "stable") == 1
    with pytest.raises(ServingError) as error:  # the label resolves; the version is not served
        _label_version(repository, "canary")
    assert error.value.code is Code.NOT_FOUND
    # A label keeping its (unavailable) version is fine (AssignLabelToUnavailableVersionAllowed) ...
    repository.reload_config([_config(base, [1], {"stable": 1, "canary": 7, "new": 9})])
    # ... moving an existing one onto an unavailable version is not
    # (AssignExistingLabelToUnavailableVersionDisallowed).
    with pytest.raises(ServingError, match=_refusal(2)):
        repository.reload_config([_config(base, [1, 2], {"stable": 2})])
    assert _label_version(repository, "stable") == 1 and _loaded(repository) == {1}
    repository.stop()


def _config_text(base: Path, versions: list[int], labels: dict[str, int]) -> str:
    specific = " ".join(f"versions: {v}" for v in versions)
    label_lines = "".join(f'    version_labels {{ key: "{k}" value: {v} }}\n' for k, v in labels.items())
    return (
        "model_config_list {\n  config {\n"
        f'    name: "{MODEL}"\n    base_path: "{base}"\n    model_platform: "tensorflow"\n'
        f"    model_version_policy {{ specific {{ {specific} }} }}\n{label_lines}  }}\n}}\n"
    )


def _wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


def _label_answers(rest_url: str, label: str) -> requests.Response:
    return requests.post(f"{rest_url}/v1/models/{MODEL}/labels/{label}:predict", json={"instances": [1.0]}, timeout=10)


def test_tfxp_serve_refuses_a_labelled_config_at_start_unless_the_flag(base, tmp_path):
    config = tmp_path / "models.config"
    config.write_text(_config_text(base, [1, 2], {"stable": 1}))
    done = subprocess.run(
        [TFXP, "serve", "--model-config-file", str(config), "--rest-port", "0", "--grpc-port", "0"]
        + ["--log-file", str(tmp_path / "serve.log")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 1, done.stderr
    assert _refusal(1) in done.stderr and "--allow-version-labels-for-unavailable-models" in done.stderr
    options = ServerOptions(
        model_config_file=config,
        rest_port=0,
        grpc_port=0,
        poll_seconds=0,
        allow_version_labels_for_unavailable_models=True,
    )
    server = BackgroundServer(options)
    try:
        response = _label_answers(f"http://127.0.0.1:{server.server.rest_port}", "stable")
        assert response.status_code == 200 and response.json() == {"predictions": [2.5]}
    finally:
        server.stop()


def test_a_polled_config_labelling_an_unloaded_version_is_refused_and_the_old_one_serves(base, tmp_path, caplog):
    config = tmp_path / "models.config"
    config.write_text(_config_text(base, [1], {}))
    options = ServerOptions(
        model_config_file=config, rest_port=0, grpc_port=0, poll_seconds=0.2, model_config_file_poll_seconds=0.2
    )
    server = BackgroundServer(options)
    rest_url = f"http://127.0.0.1:{server.server.rest_port}"
    try:
        caplog.set_level(logging.ERROR, logger="tfxp.serving")
        config.write_text(_config_text(base, [1, 2], {"stable": 1, "canary": 2}))  # label and load at once
        _wait_for(lambda: any(_refusal(2) in r.getMessage() for r in caplog.records))
        time.sleep(1.0)  # several more polls: logged once, nothing applied
        assert sum(_refusal(2) in r.getMessage() for r in caplog.records) == 1
        assert _label_answers(rest_url, "stable").json() == {"error": "Unrecognized servable version label: stable"}
        assert requests.get(f"{rest_url}/v1/models/{MODEL}/versions/2", timeout=5).status_code == 404
        config.write_text(_config_text(base, [1, 2], {}))  # step 1: serve 2
        _wait_for(lambda: requests.get(f"{rest_url}/v1/models/{MODEL}/versions/2", timeout=5).status_code == 200)
        config.write_text(_config_text(base, [1, 2], {"stable": 1, "canary": 2}))  # step 2: label it
        _wait_for(lambda: _label_answers(rest_url, "canary").status_code == 200)
        assert _label_answers(rest_url, "stable").json() == {"predictions": [2.5]}
    finally:
        server.stop()


def test_handle_reload_config_request_answers_the_refusal_as_its_grpc_status(base, tmp_path):
    config = tmp_path / "models.config"
    config.write_text(_config_text(base, [1], {}))
    server = BackgroundServer(ServerOptions(model_config_file=config, rest_port=0, grpc_port=0, poll_seconds=0))
    stub = model_service_pb2_grpc.ModelServiceStub(grpc.insecure_channel(f"127.0.0.1:{server.server.grpc_port}"))

    def reload(text: str):
        request = model_management_pb2.ReloadConfigRequest()
        request.config.CopyFrom(text_format.Parse(text, model_server_config_pb2.ModelServerConfig()))
        return stub.HandleReloadConfigRequest(request, timeout=60)

    try:
        # As model_service_impl.cc `return ToGRPCStatus(status)`: the RPC fails with the status.
        with pytest.raises(grpc.RpcError) as error:
            reload(_config_text(base, [1, 2], {"canary": 2}))
        assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert error.value.details() == _refusal(2)
        assert server.server.repository.status(MODEL)[0].version == 1  # the old config stays
        with pytest.raises(grpc.RpcError) as error:  # an invalid config: INVALID_ARGUMENT
            reload(_config_text(base, [1], {}).replace(MODEL, "../up", 1))
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert reload(_config_text(base, [1], {"stable": 1})).status.error_code == 0
        response = _label_answers(f"http://127.0.0.1:{server.server.rest_port}", "stable")
        assert response.json() == {"predictions": [2.5]}
    finally:
        server.stop()
