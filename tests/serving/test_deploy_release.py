"""The release deploy files (issue 22): the labelled models.canary.config works as shipped, with the flag the
Compose/Kubernetes files pass; the KServe canary files use the field their deployment mode honours."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import reference_models as rm
import requests
import yaml
from serving_harness import BackgroundServer

from tfxp.serving.config import ConfigError, load_model_server_config, version_labels, version_policy
from tfxp.serving.options import ServerOptions

DEPLOY = Path(__file__).resolve().parents[2] / "tfxp" / "serving" / "deploy"
RUNTIME = "2.16.1"


def _isvc(name: str) -> dict:
    [doc] = [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]
    return doc


def test_the_labelled_config_labels_only_versions_it_serves():
    [model] = load_model_server_config(DEPLOY / "models.canary.config").model_config_list.config
    labels = version_labels(model)
    policy = version_policy(model)
    assert set(labels) == {"stable", "canary"} and labels["stable"] != labels["canary"]
    assert policy.kind == "specific" and set(labels.values()) == set(policy.versions)


def test_the_labelled_config_starts_only_with_the_flag_and_then_answers_by_label(tmp_path):
    """models.canary.config as shipped, its base path pointed at real versions of those numbers."""
    [model] = load_model_server_config(DEPLOY / "models.canary.config").model_config_list.config
    labels = version_labels(model)
    for b, version in enumerate(sorted(labels.values()), start=2):
        rm.write_half_plus_two_tf1(tmp_path, "taxi", version_dir=str(version), b=float(b))
    config = tmp_path / "models.config"
    config.write_text((DEPLOY / "models.canary.config").read_text().replace("/models/taxi", str(tmp_path / "taxi")))
    options = {"model_config_file": config, "rest_port": 0, "grpc_port": 0, "poll_seconds": 0}
    with pytest.raises(ConfigError, match="not currently available for inference"):
        BackgroundServer(ServerOptions(**options))
    server = BackgroundServer(ServerOptions(**options, allow_version_labels_for_unavailable_models=True))
    try:
        url = f"http://127.0.0.1:{server.server.rest_port}/v1/models/taxi/labels"
        answers = {
            label: requests.post(f"{url}/{label}:predict", json={"instances": [2.0]}, timeout=10).json()
            for label in labels
        }
        # x = 2: stable (the older version, b = 2) answers 3, canary (b = 3) answers 4.
        assert answers == {"stable": {"predictions": [3.0]}, "canary": {"predictions": [4.0]}}
    finally:
        server.stop()


def test_serverless_canary_uses_canary_traffic_percent():
    isvc = _isvc("kserve-canary-serverless.yaml")
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Serverless"
    predictor = isvc["spec"]["predictor"]
    assert 0 < predictor["canaryTrafficPercent"] < 100 and "canary" not in isvc["spec"]
    assert predictor["model"]["runtimeVersion"] == RUNTIME and isvc["metadata"]["name"] == "taxi"
    assert "#5335" in (DEPLOY / "kserve-canary-serverless.yaml").read_text()


def test_standard_canary_uses_spec_canary_not_the_ignored_field():
    text = (DEPLOY / "kserve-canary-standard.yaml").read_text()
    isvc = _isvc("kserve-canary-standard.yaml")
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Standard"
    # canaryTrafficPercent is silently ignored in this mode (kserve/kserve#5335): it must not appear as a field.
    assert not re.search(r"^\s*canaryTrafficPercent:", text, re.MULTILINE)
    canaries = isvc["spec"]["canary"]
    assert sum(c["trafficPercent"] for c in canaries) <= 100
    names = [c["predictor"]["name"] for c in canaries]
    assert len(set(names)) == len(names) and all(names)
    storage = {c["predictor"]["model"]["storageUri"] for c in canaries}
    assert isvc["spec"]["predictor"]["model"]["storageUri"] not in storage  # the canary serves another version
    assert {c["predictor"]["model"]["runtimeVersion"] for c in canaries} == {RUNTIME}
