"""The layer rules are the linter's (issue 19): `make lint` fails on an import that reaches sideways.

pyproject.toml bans TensorFlow, TFX and Beam from tfxp/rows.py (and from tfxp/files.py at module
level); tfxp/{models,serving,mobile,schema,monitoring}/ruff.toml ban the packages each must not import (and, for
schema, TensorFlow/TFX/TFDV/Beam at module level). Each test plants
one forbidden import in a copy of the tree and runs the real ruff on it with the repository's config.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of tfxp/ and the ruff config (pyproject.toml) in tmp_path."""
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(ROOT / "tfxp", tmp_path / "tfxp", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def _lint(tree: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", "tfxp"],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _plant(tree: Path, module: str, code: str) -> None:
    path = tree / module
    path.write_text(path.read_text() + "\n\n" + code + "\n")


def test_the_tree_as_it_is_passes(tree):
    result = _lint(tree)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "module, code, message",
    [
        # The edge issue 19 found: models/signatures.py imported the pipeline's publisher inside save().
        (
            "tfxp/models/signatures.py",
            "def _copy():\n    from tfxp.pipeline.publish import copy_tree  # noqa: F401",
            "`tfxp.pipeline` is banned: tfxp.models knows no orchestrator",
        ),
        ("tfxp/models/features.py", "import tfxp.serving.client  # noqa: F401,E402", "tfxp.models knows no server"),
        (
            "tfxp/models/model.py",
            "from tfxp.mobile import runtime  # noqa: F401,E402",
            "tfxp.models knows no converter",
        ),
        (
            "tfxp/serving/protocol/rest.py",
            "from tfxp.mobile.runtime import MobileModel  # noqa: F401,E402",
            "serving and mobile do not import each other",
        ),
        (
            "tfxp/serving/server.py",
            "import tfxp.pipeline.runner  # noqa: F401,E402",
            "tfxp.serving knows no orchestrator",
        ),
        (
            "tfxp/mobile/runtime.py",
            "from tfxp.serving.client import RowError  # noqa: F401,E402",
            "serving and mobile do not import each other",
        ),
        ("tfxp/mobile/parity.py", "from tfxp.cli import main  # noqa: F401,E402", "tfxp.mobile knows no CLI"),
        ("tfxp/rows.py", "def _f():\n    import tensorflow  # noqa: F401", "tfxp/rows.py is TF-free"),
        ("tfxp/schema/check.py", "import tfx  # noqa: F401,E402", "`tfx` is banned at the module level"),
        ("tfxp/schema/rules.py", "from tfxp.serving import client  # noqa: F401,E402", "tfxp.schema knows no server"),
        ("tfxp/files.py", "import tensorflow  # noqa: F401,E402", "`tensorflow` is banned at the module level"),
        (
            "tfxp/monitoring/monitor.py",
            "def _f():\n    from tfxp.pipeline import publish  # noqa: F401",
            "tfxp.monitoring knows no orchestrator",
        ),
        ("tfxp/monitoring/logs.py", "import tfxp.cli  # noqa: F401,E402", "tfxp.monitoring knows no CLI"),
    ],
)
def test_a_forbidden_import_fails_the_lint(tree, module, code, message):
    _plant(tree, module, code)
    result = _lint(tree)
    assert result.returncode == 1, result.stdout
    assert message in result.stdout, result.stdout


def test_allowed_imports_still_pass(tree):
    """What the layers allow: mobile imports models and rows; files loads TensorFlow inside a function."""
    _plant(tree, "tfxp/mobile/runtime.py", "def _f():\n    from tfxp.models import features  # noqa: F401")
    _plant(tree, "tfxp/files.py", "def _g():\n    import tensorflow  # noqa: F401")
    result = _lint(tree)
    assert result.returncode == 0, result.stdout
