"""serving.config: TF Serving's config files, parsed for real; the deploy files agree with each other."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from tfxp.serving.config import (
    DEFAULT_PROMETHEUS_PATH,
    BatchingParameters,
    BatchingSettings,
    ConfigError,
    MonitoringConfig,
    MonitoringSettings,
    VersionPolicy,
    load_batching_parameters,
    load_model_server_config,
    load_monitoring_config,
    validate_model_server_config,
    version_labels,
    version_policy,
)

DEPLOY = Path(__file__).resolve().parents[2] / "tfxp" / "serving" / "deploy"
IMAGE = "tensorflow/serving:2.16.1"


def write(tmp_path: Path, text: str, name: str = "test.config") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def one_model(tmp_path: Path, body: str) -> model_server_config_pb2.ModelConfig:
    path = write(tmp_path, f"model_config_list {{ config {{ {body} }} }}")
    return load_model_server_config(path).model_config_list.config[0]


def load_yaml(name: str) -> list[dict]:
    with open(DEPLOY / name) as f:
        return [doc for doc in yaml.safe_load_all(f) if doc is not None]


# ------------------------------------------------------------------ shipped files


def test_shipped_models_config():
    config = load_model_server_config(DEPLOY / "models.config")
    [model] = config.model_config_list.config
    assert model.name == "taxi"
    assert model.base_path == "/models/taxi"  # absolute: left as is
    assert model.model_platform == "tensorflow"
    assert version_policy(model) == VersionPolicy(kind="latest", num_versions=2)
    # Labels stay commented out: they may only point at loaded versions.
    assert version_labels(model) == {}


def test_shipped_batching_config():
    assert load_batching_parameters(DEPLOY / "batching.config") == BatchingSettings(
        max_batch_size=64,
        batch_timeout_micros=1000,
        num_batch_threads=4,
        max_enqueued_batches=100,
        allowed_batch_sizes=(8, 16, 32, 64),
    )


def test_shipped_monitoring_config():
    assert load_monitoring_config(DEPLOY / "monitoring.config") == MonitoringSettings(
        enable=True, path="/monitoring/prometheus/metrics"
    )


# ------------------------------------------------------------------ model server config


@pytest.mark.parametrize("name", ["../x", "a/b", ".hidden", "-x", "a b", "x\\y"])
def test_bad_model_name(tmp_path, name):
    escaped = name.replace("\\", "\\\\")
    path = write(tmp_path, f'model_config_list {{ config {{ name: "{escaped}" base_path: "/m" }} }}')
    with pytest.raises(ConfigError, match="invalid model name") as e:
        load_model_server_config(path)
    assert str(path) in str(e.value)


def test_empty_name(tmp_path):
    path = write(tmp_path, 'model_config_list { config { base_path: "/m" } }')
    with pytest.raises(ConfigError, match="name is empty"):
        load_model_server_config(path)


def test_missing_base_path(tmp_path):
    path = write(tmp_path, 'model_config_list { config { name: "taxi" } }')
    with pytest.raises(ConfigError, match="base_path is empty") as e:
        load_model_server_config(path)
    assert str(path) in str(e.value) and "'taxi'" in str(e.value)


def test_unknown_field(tmp_path):
    path = write(tmp_path, 'model_config_list { config { name: "taxi" base_path: "/m" batch_size: 3 } }')
    with pytest.raises(ConfigError, match="batch_size") as e:
        load_model_server_config(path)
    assert str(path) in str(e.value)


def test_unsupported_platform(tmp_path):
    path = write(tmp_path, 'model_config_list { config { name: "t" base_path: "/m" model_platform: "onnx" } }')
    with pytest.raises(ConfigError, match="model_platform 'onnx'"):
        load_model_server_config(path)


def test_duplicate_model(tmp_path):
    path = write(
        tmp_path, 'model_config_list { config { name: "t" base_path: "/a" } config { name: "t" base_path: "/b" } }'
    )
    with pytest.raises(ConfigError, match="more than once"):
        load_model_server_config(path)


def test_negative_label(tmp_path):
    with pytest.raises(ConfigError, match="label 'stable' points to negative version -1"):
        one_model(tmp_path, 'name: "t" base_path: "/m" version_labels { key: "stable" value: -1 }')


def test_labels(tmp_path):
    model = one_model(
        tmp_path,
        'name: "t" base_path: "/m" version_labels { key: "stable" value: 3 } version_labels { key: "canary" value: 4 }',
    )
    assert version_labels(model) == {"stable": 3, "canary": 4}


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_model_server_config(tmp_path / "absent.config")


def test_relative_base_path_resolves_against_config_dir(tmp_path, monkeypatch):
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    monkeypatch.chdir(tmp_path)  # the working directory must not matter
    path = write(
        conf_dir,
        "model_config_list { "
        'config { name: "a" base_path: "../models/a" } '
        'config { name: "b" base_path: "models/b" } '
        'config { name: "c" base_path: "/abs/c" } '
        'config { name: "d" base_path: "gs://bucket/serving/d" } }',
    )
    paths = [m.base_path for m in load_model_server_config(os.path.relpath(path)).model_config_list.config]
    assert paths == [str(tmp_path / "models" / "a"), str(conf_dir / "models" / "b"), "/abs/c", "gs://bucket/serving/d"]


def test_validate_in_memory_config_for_reload():
    config = text_format.Parse(
        'model_config_list { config { name: "../x" base_path: "/m" } }', model_server_config_pb2.ModelServerConfig()
    )
    with pytest.raises(ConfigError, match="invalid model name"):
        validate_model_server_config(config, source="HandleReloadConfigRequest")
    ok = text_format.Parse(
        'model_config_list { config { name: "t" base_path: "rel" } }', model_server_config_pb2.ModelServerConfig()
    )
    assert validate_model_server_config(ok).model_config_list.config[0].base_path == "rel"


def test_custom_model_config_rejected(tmp_path):
    path = write(tmp_path, "custom_model_config { }")
    with pytest.raises(ConfigError, match="custom_model_config"):
        load_model_server_config(path)


# ------------------------------------------------------------------ version policy


@pytest.mark.parametrize(
    "policy, expected",
    [
        ("", VersionPolicy(kind="latest", num_versions=1)),
        ("model_version_policy { latest { } }", VersionPolicy(kind="latest", num_versions=1)),
        ("model_version_policy { latest { num_versions: 3 } }", VersionPolicy(kind="latest", num_versions=3)),
        ("model_version_policy { all { } }", VersionPolicy(kind="all")),
        (
            "model_version_policy { specific { versions: 5 versions: 7 } }",
            VersionPolicy(kind="specific", versions=frozenset({5, 7})),
        ),
    ],
)
def test_version_policy(tmp_path, policy, expected):
    assert version_policy(one_model(tmp_path, f'name: "t" base_path: "/m" {policy}')) == expected


def test_empty_specific_policy(tmp_path):
    with pytest.raises(ConfigError, match="specific lists no versions"):
        one_model(tmp_path, 'name: "t" base_path: "/m" model_version_policy { specific { } }')


def test_negative_specific_version(tmp_path):
    with pytest.raises(ConfigError, match=r"negative versions \[-2\]"):
        one_model(tmp_path, 'name: "t" base_path: "/m" model_version_policy { specific { versions: -2 } }')


def test_policy_select():
    available = [3, 10, 7, 1]
    assert VersionPolicy().select(available) == {10}
    assert VersionPolicy(num_versions=2).select(available) == {7, 10}
    assert VersionPolicy(kind="all").select(available) == {1, 3, 7, 10}
    assert VersionPolicy(kind="specific", versions=frozenset({3, 4})).select(available) == {3}


# ------------------------------------------------------------------ batching


def test_batching_defaults(tmp_path):
    settings = load_batching_parameters(write(tmp_path, "# nothing set\n"))
    assert settings == BatchingSettings(
        max_batch_size=1000, batch_timeout_micros=0, num_batch_threads=os.cpu_count() or 1, max_enqueued_batches=10
    )
    assert settings.thread_pool_name == "batch_threads" and settings.pad_variable_length_inputs is False


def test_batching_all_fields(tmp_path):
    settings = load_batching_parameters(
        write(
            tmp_path,
            """
        max_batch_size { value: 32 }
        batch_timeout_micros { value: 0 }
        max_enqueued_batches { value: 5 }
        num_batch_threads { value: 2 }
        thread_pool_name { value: "pool" }
        allowed_batch_sizes: [4, 32]
        pad_variable_length_inputs: true
    """,
        )
    )
    assert settings == BatchingSettings(32, 0, 2, 5, "pool", (4, 32), True)


def test_batching_message_matches_tf_serving():
    fields = {
        f.name: (f.number, f.message_type.full_name if f.message_type else f.type)
        for f in BatchingParameters.DESCRIPTOR.fields
    }
    assert BatchingParameters.DESCRIPTOR.full_name == "tensorflow.serving.BatchingParameters"
    assert fields["max_batch_size"] == (1, "google.protobuf.Int64Value")
    assert fields["max_enqueued_batches"] == (3, "google.protobuf.Int64Value")
    assert fields["thread_pool_name"] == (5, "google.protobuf.StringValue")
    assert fields["allowed_batch_sizes"][0] == 6
    # Same wire format as TF Serving's message: a round trip through bytes keeps values.
    params = text_format.Parse("max_batch_size { value: 64 } allowed_batch_sizes: 64", BatchingParameters())
    assert BatchingParameters.FromString(params.SerializeToString()).max_batch_size.value == 64
    assert MonitoringConfig.DESCRIPTOR.full_name == "tensorflow.serving.MonitoringConfig"


@pytest.mark.parametrize(
    "text, problem",
    [
        ("max_batch_size { value: 0 }", "max_batch_size must be positive"),
        ("max_batch_size { value: -4 }", "max_batch_size must be positive"),
        ("num_batch_threads { value: 0 }", "num_batch_threads must be positive"),
        ("max_enqueued_batches { value: 0 }", "max_enqueued_batches must be positive"),
        ("batch_timeout_micros { value: -1 }", "batch_timeout_micros must be >= 0"),
        ("max_batch_size { value: 64 } allowed_batch_sizes: [8, 32]", "must equal max_batch_size"),
        ("max_batch_size { value: 64 } allowed_batch_sizes: [32, 8, 64]", "positive and increasing"),
        ("max_batch_size { value: 64 } allowed_batch_sizes: [8, 8, 64]", "positive and increasing"),
        ("max_batch_size { value: 64 } allowed_batch_sizes: [0, 64]", "positive and increasing"),
        ("max_batch_size: 64", "max_batch_size"),  # a wrapper, not a scalar, in TF Serving's format
        ("batch_size { value: 8 }", "batch_size"),  # unknown field
    ],
)
def test_bad_batching(tmp_path, text, problem):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=problem) as e:
        load_batching_parameters(path)
    assert str(path) in str(e.value)


# ------------------------------------------------------------------ monitoring


def test_monitoring_defaults(tmp_path):
    assert load_monitoring_config(write(tmp_path, "")) == MonitoringSettings(enable=False, path=DEFAULT_PROMETHEUS_PATH)
    assert load_monitoring_config(write(tmp_path, "prometheus_config { enable: true }")).path == DEFAULT_PROMETHEUS_PATH


def test_bad_monitoring(tmp_path):
    with pytest.raises(ConfigError, match="must start with '/'"):
        load_monitoring_config(write(tmp_path, 'prometheus_config { enable: true path: "metrics" }'))
    with pytest.raises(ConfigError, match="port"):
        load_monitoring_config(write(tmp_path, "prometheus_config { enable: true port: 9090 }"))


# ------------------------------------------------------------------ deploy YAML


@pytest.mark.parametrize("name", ["docker-compose.yml", "kubernetes.yaml", "kserve-inferenceservice.yaml"])
def test_yaml_parses(name):
    assert load_yaml(name)


def compose_service() -> dict:
    [compose] = load_yaml("docker-compose.yml")
    return compose["services"]["tf-serving"]


def k8s_docs() -> dict[str, dict]:
    return {doc["kind"]: doc for doc in load_yaml("kubernetes.yaml")}


def k8s_container() -> dict:
    [container] = k8s_docs()["Deployment"]["spec"]["template"]["spec"]["containers"]
    return container


def test_same_image_and_ports():
    service, container = compose_service(), k8s_container()
    assert service["image"] == container["image"] == IMAGE
    assert set(service["ports"]) == {"8500:8500", "8501:8501"}
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"grpc": 8500, "http": 8501}
    assert {p["name"]: p["port"] for p in k8s_docs()["Service"]["spec"]["ports"]} == {"grpc": 8500, "http": 8501}
    [isvc] = load_yaml("kserve-inferenceservice.yaml")
    assert isvc["spec"]["predictor"]["model"]["runtimeVersion"] == IMAGE.split(":")[1]


def test_same_server_flags():
    compose_flags, k8s_flags = compose_service()["command"], k8s_container()["args"]
    assert compose_flags == k8s_flags
    for flag in (
        "--port=8500",
        "--rest_api_port=8501",
        "--model_config_file=/config/models.config",
        "--model_config_file_poll_wait_seconds=60",
        "--allow_version_labels_for_unavailable_models",  # a labelled config (tfxp release) survives a restart
        "--file_system_poll_wait_seconds=1",
        "--enable_batching",
        "--batching_parameters_file=/config/batching.config",
        "--monitoring_config_file=/config/monitoring.config",
        "--rest_api_timeout_in_ms=30000",
    ):
        assert flag in compose_flags


def test_compose_mounts_models_and_configs():
    service = compose_service()
    volumes = set(service["volumes"])
    assert "../../../output/serving/taxi:/models/taxi:ro" in volumes  # <checkout>/output, from tfxp/serving/deploy
    for name in ("models.config", "batching.config", "monitoring.config"):
        assert f"./{name}:/config/{name}:ro" in volumes
        assert (DEPLOY / name).is_file()
    assert "/v1/models/taxi" in " ".join(service["healthcheck"]["test"])


def test_k8s_probe_and_resources():
    container = k8s_container()
    assert container["readinessProbe"]["httpGet"] == {"path": "/v1/models/taxi", "port": "http"}
    assert set(container["resources"]) == {"requests", "limits"}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/models/taxi"]["readOnly"] is True and "/config" in mounts


def test_k8s_configmap_matches_config_files(tmp_path):
    data = k8s_docs()["ConfigMap"]["data"]
    assert set(data) == {"models.config", "batching.config", "monitoring.config"}
    for name, text in data.items():
        write(tmp_path, text, name)
    assert load_model_server_config(tmp_path / "models.config") == load_model_server_config(DEPLOY / "models.config")
    assert load_batching_parameters(tmp_path / "batching.config") == load_batching_parameters(
        DEPLOY / "batching.config"
    )
    assert load_monitoring_config(tmp_path / "monitoring.config") == load_monitoring_config(
        DEPLOY / "monitoring.config"
    )
