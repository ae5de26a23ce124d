"""tfxp.serving.release on temp configs and real version folders (TF-free logic)."""

import json
import os

import pytest

from tfxp.serving import release

CONFIG = 'model_config_list { config { name: "m" base_path: "models/m" model_platform: "tensorflow" } }\n'


@pytest.fixture()
def cfg(tmp_path):
    for v in (1, 2, 3):
        os.makedirs(tmp_path / "models" / "m" / str(v))
    path = tmp_path / "models.config"
    path.write_text(CONFIG)
    return str(path)


def test_status_defaults_stable_to_latest(cfg):
    st = release.status(cfg)
    assert st.labels == {"stable": 3} and st.versions == [3] and st.on_disk == [1, 2, 3]


def test_canary_two_steps_then_promote_and_rollback(cfg):
    r = release.canary(cfg, None, 2)
    assert not r.done and r.versions == [2, 3] and r.labels == {}  # step 1: labels unchanged
    r = release.canary(cfg, None, 2)  # re-run completes
    assert r.done and r.labels == {"stable": 3, "canary": 2}
    r = release.promote(cfg)
    assert r.done and r.labels == {"stable": 2} and r.versions == [2]
    r = release.rollback(cfg)
    assert not r.done
    r = release.rollback(cfg)
    assert r.done and r.labels == {"stable": 1} and r.versions == [1]
    lines = open(cfg + ".release.log").read().splitlines()
    assert len(lines) == 5 and json.loads(lines[0])["command"] == "canary 2"


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda c: release.promote(c), "no canary"),
        (lambda c: release.canary(c, None, 3), "already stable"),
        (lambda c: release.canary(c, None, 9), "not on disk"),
        (lambda c: release.canary(c, "nope", 2), "unknown model"),
    ],
)
def test_bad_input_refused_config_untouched(cfg, call, words):
    with pytest.raises(release.ReleaseError, match=words):
        call(cfg)
    assert open(cfg).read() == CONFIG


def test_rollback_with_no_earlier_version(cfg, tmp_path):
    release.rollback(cfg, to=1)
    release.rollback(cfg, to=1)
    before = open(cfg).read()
    with pytest.raises(release.ReleaseError, match="no version earlier"):
        release.rollback(cfg)
    assert open(cfg).read() == before


def test_unparseable_config_refused(tmp_path):
    p = tmp_path / "bad.config"
    p.write_text("model_config_list { nope")
    with pytest.raises(release.ReleaseError, match="Invalid protobuf file"):
        release.status(str(p))


def test_cli_two_runs_complete_a_canary_and_refusals_exit_3(cfg):
    from click.testing import CliRunner

    from tfxp.cli.release import release as cli

    run = CliRunner().invoke
    r = run(cli, ["canary", "2", "--model-config-file", cfg])
    assert r.exit_code == 0 and "run the same command again" in r.output
    r = run(cli, ["canary", "2", "--model-config-file", cfg, "--json"])
    assert r.exit_code == 0 and json.loads(r.output)["labels"] == {"canary": 2, "stable": 3}
    before = open(cfg).read()
    r = run(cli, ["rollback", "--to", "9", "--model-config-file", cfg])
    assert r.exit_code == 3 and open(cfg).read() == before


def test_version_folders_follow_the_servers_version_rule(tmp_path):
    """As tfxp.files.parse_version (the server's rule): ASCII decimal only, leading zeros allowed; "²" (which
    str.isdigit() accepts and int() rejects) and "v4" are no versions and stop nothing."""
    for name in ("1", "003", "²", "v4"):
        os.makedirs(tmp_path / name)
    (tmp_path / "5").write_text("a file, not a version")
    assert release.versions_on_disk(str(tmp_path)) == [1, 3]


def test_pin_keeps_what_is_served_in_a_specific_policy_once(cfg, tmp_path):
    from click.testing import CliRunner

    from tfxp.cli.release import release as cli

    r = CliRunner().invoke(cli, ["pin", "--model-config-file", cfg, "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["labels"] == {"stable": 3} and json.loads(r.output)["versions"] == [3]
    assert "specific" in open(cfg).read()
    os.makedirs(tmp_path / "models" / "m" / "4")  # a new folder: pinned, it is not served by the policy
    assert release.status(cfg).versions == [3]
    assert release.pin(cfg).wrote is False  # already pinned
    log = [json.loads(line) for line in open(cfg + ".release.log")]
    assert [e["command"] for e in log] == ["pin"]
    empty = tmp_path / "empty.config"
    empty.write_text(CONFIG.replace("models/m", "nothing"))
    r = CliRunner().invoke(cli, ["pin", "--model-config-file", str(empty)])
    assert r.exit_code == 3 and "serves no version" in r.output
