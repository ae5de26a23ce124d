"""Clients split traffic between the versions labelled `stable` and `canary` (issue 22): LabelRouter and
`tfxp predict --canary-percent P --route-key-column COL`, against a real server with a labelled config."""

from __future__ import annotations

import csv
import json

import pytest
from click.testing import CliRunner
from serving_harness import MODEL_NAME, BackgroundServer, publish
from taxi_data import read_csv_rows

from tfxp.pipeline.cli import main
from tfxp.serving.client import GrpcClient, LabelRouter, RestClient, route_label, split_by_label
from tfxp.serving.options import ServerOptions

ROWS = 40


@pytest.fixture(scope="module")
def labelled(model_dir, tmp_path_factory):
    """A server with versions 1 (stable) and 2 (canary) of the taxi model: (REST URL, gRPC target)."""
    folder = tmp_path_factory.mktemp("split")
    base = folder / MODEL_NAME
    for version in (1, 2):
        publish(model_dir, base, version)
    config = folder / "models.config"
    config.write_text(
        f'model_config_list {{ config {{ name: "{MODEL_NAME}" base_path: "{base}" '
        "model_version_policy { specific { versions: 1 versions: 2 } } "
        'version_labels { key: "stable" value: 1 } version_labels { key: "canary" value: 2 } } }\n'
    )
    options = ServerOptions(
        model_config_file=config,
        rest_port=0,
        grpc_port=0,
        poll_seconds=0,
        allow_version_labels_for_unavailable_models=True,  # a labelled first config
    )
    server = BackgroundServer(options)
    try:
        yield f"http://127.0.0.1:{server.server.rest_port}", f"127.0.0.1:{server.server.grpc_port}"
    finally:
        server.stop()


def _rows() -> list[dict]:
    return [{**row, "user": f"user-{i}"} for i, row in enumerate(read_csv_rows(limit=ROWS))]


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
def test_label_router_answers_each_row_from_its_keys_label_in_row_order(labelled, protocol):
    rest, grpc_target = labelled
    rows = _rows()
    keys = [row["user"] for row in rows]

    def make(label: str):
        return (
            RestClient(rest, MODEL_NAME, label=label)
            if protocol == "rest"
            else GrpcClient(grpc_target, MODEL_NAME, label=label)
        )

    with LabelRouter(make, 25) as router, make("stable") as alone:
        results, labels = router.predict(rows, keys)
        assert labels == [route_label(key, 25) for key in keys]
        assert 0 < labels.count("canary") < ROWS  # both labels asked
        assert results == pytest.approx(alone.predict(rows))  # the same model: same answers, in row order
        if protocol == "grpc":  # gRPC answers name the version: each label's client got its own
            assert (router.client("stable").last_version, router.client("canary").last_version) == (1, 2)
    with pytest.raises(ValueError, match="0-100"):
        LabelRouter(make, 101)
    with pytest.raises(ValueError, match="2 rows but 1 route keys"):
        LabelRouter(make, 10).predict(rows[:2], keys[:1])


def test_the_split_is_stable_and_near_its_share():
    keys = [f"k{i}" for i in range(10_000)]
    groups = split_by_label(keys, 10)
    assert 0.08 < len(groups["canary"]) / len(keys) < 0.12
    assert split_by_label(keys, 10) == groups and split_by_label(keys, 0) == {"stable": list(range(len(keys)))}
    assert set(split_by_label(keys, 100)) == {"canary"}


def _write(path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_tfxp_predict_splits_by_route_key_and_says_which_label_answered(labelled, tmp_path):
    rest, _ = labelled
    rows = _rows()
    path = tmp_path / "rows.csv"
    _write(path, rows)
    args = ["predict", "--server", rest, "--model", MODEL_NAME, "--rows", str(path)]
    result = CliRunner().invoke(main, [*args, "--canary-percent", "30", "--route-key-column", "user", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["labels"] == [route_label(row["user"], 30) for row in rows]
    assert out["versions"] == {"stable": 1, "canary": 2} and len(out["predictions"]) == ROWS
    table = CliRunner().invoke(main, [*args, "--canary-percent", "30", "--route-key-column", "user"])
    assert table.exit_code == 0 and "canary: version 2" in table.output and " label " in table.output
    for extra, words in (
        (["--canary-percent", "30"], "go together"),
        (["--canary-percent", "30", "--route-key-column", "nope"], "has no column 'nope'"),
        (["--canary-percent", "130", "--route-key-column", "user"], "130"),
        (["--canary-percent", "30", "--route-key-column", "user", "--label", "stable"], "not with --version"),
    ):
        refused = CliRunner().invoke(main, [*args, *extra])
        assert refused.exit_code == 2 and words in refused.output, refused.output
