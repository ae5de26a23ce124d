"""tfxp.files: the one version-name rule of the publisher and the server; tree copies."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tfxp import files

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def test_publisher_and_server_share_one_version_rule():
    from tfxp.pipeline import publish
    from tfxp.serving import repository

    assert publish.is_version_name is repository.is_version_name is files.is_version_name
    assert repository.parse_version is files.parse_version


@pytest.mark.parametrize(
    "name, version",
    [
        ("1", 1),
        ("00000123", 123),
        (str(2**63 - 1), 2**63 - 1),
        ("0" * 5000 + "7", 7),
        (str(2**63), None),
        ("9" * 5000, None),
        ("\u00b2", None),
        ("-1", None),
        (" 1", None),
        ("", None),
        ("1a", None),
    ],
)
def test_version_names(name, version):
    assert files.parse_version(name) == version
    assert files.is_version_name(name) is (version is not None)


def test_publisher_ignores_names_beyond_int64_as_the_server_does(tmp_path):
    from tfxp.pipeline import publish

    (tmp_path / "5").mkdir()
    (tmp_path / str(2**64)).mkdir()  # TF Serving never loads it; the next version must not be derived from it
    assert publish.latest_version(str(tmp_path)) == 5


def test_copy_tree_copies_nested_files_and_refuses_a_missing_source(tmp_path):
    import tensorflow as tf

    source = tmp_path / "source"
    (source / "variables").mkdir(parents=True)
    (source / "saved_model.pb").write_bytes(b"pb")
    (source / "variables" / "variables.index").write_bytes(b"index")
    target = tmp_path / "target" / "deep"
    files.copy_tree(str(source) + "/", str(target))
    assert (target / "saved_model.pb").read_bytes() == b"pb"
    assert (target / "variables" / "variables.index").read_bytes() == b"index"
    (source / "saved_model.pb").write_bytes(b"new")
    files.copy_tree(str(source), str(target))  # overwrites
    assert (target / "saved_model.pb").read_bytes() == b"new"
    with pytest.raises(tf.errors.NotFoundError, match="no directory"):
        files.copy_tree(str(tmp_path / "missing"), str(tmp_path / "out"))


def test_model_code_does_not_import_the_publisher():
    """models/signatures.py used to import tfxp.pipeline.publish (and with it the pipeline) for copy_tree."""
    code = (
        "import json, sys\nimport tfxp.models.signatures\nimport tfxp.files\n"
        "print(json.dumps([m for m in sys.modules if m.startswith('tfxp.pipeline')]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PROJECT_ROOT
    ).stdout
    assert json.loads(out.strip().splitlines()[-1]) == []


def test_files_module_is_tensorflow_free():
    code = "import json, sys\nimport tfxp.files\nprint(json.dumps('tensorflow' in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PROJECT_ROOT
    ).stdout
    assert json.loads(out.strip().splitlines()[-1]) is False
