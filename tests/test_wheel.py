"""A built wheel works: tfxp's wheel, pip-installed into a fresh venv with the lock as constraints,
runs `tfxp` from any directory, reading the taxi project (data, schema, spec) as package data.

The venv is new and outside the checkout, and every command runs from a temporary directory without
PYTHONPATH, so nothing can come from the source tree: a file missing from setup.py's package_data,
or a path derived from the checkout, fails here and not in an editable install.
Cost: building the wheel ~1 s; the install 60-95 s from PyPI (about 1 GB, TensorFlow 590 MB); each run ~35 s.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from pipeline_harness import write_csv
from taxi_data import read_csv_rows

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
# Rows and steps that bless on taxi (as tests/pipeline/test_e2e.py): the run must push.
ROWS = 3000
TRAIN_STEPS = 120
# What a source distribution of the project holds (the Dockerfile copies the same).
SOURCES = ("setup.py", "pyproject.toml", "README.md", "tfxp")
BUILD_JUNK = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")


def _run(cmd: list[str], *, cwd: Path, timeout: float, env: dict | None = None) -> subprocess.CompletedProcess:
    """Runs `cmd`, failing the test with its output when it exits non-zero."""
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(
            f"{' '.join(map(str, cmd))} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
        )
    return proc


def _user_env() -> dict[str, str]:
    """The environment of a user who installed the wheel: no source tree on sys.path, no venv activated.

    TF_USE_LEGACY_KERAS goes too (make and the test harness set it): tfxp must set it itself.
    """
    drop = {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "TF_USE_LEGACY_KERAS"}
    return {**{k: v for k, v in os.environ.items() if k not in drop}, "TF_CPP_MIN_LOG_LEVEL": "3"}


@dataclass(frozen=True)
class Install:
    wheel: Path
    venv: Path
    seconds: float  # `pip install -c requirements.lock <wheel>`

    def bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """tfxp's wheel, built from a copy of the sources (a build in the checkout would leave build/ there)."""
    work = tmp_path_factory.mktemp("wheel")
    src = work / "src"
    src.mkdir()
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, src / name, ignore=BUILD_JUNK)
        else:
            shutil.copy2(source, src / name)
    # The test's own venv has the locked setuptools and wheel: no build isolation, nothing downloaded.
    build = ["wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(work / "dist"), str(src)]
    _run([sys.executable, "-m", "pip", *build], cwd=work, timeout=300)
    (built,) = (work / "dist").glob("tfxp-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory):
    """A fresh venv (the Python `make` uses) with the wheel installed, the lock as constraints.

    With the `mobile` extra (tflite-runtime), which MobilePusher's parity gate runs on: without it
    `tfxp run` still pushes to serving, and reports the TFLite variants as not pushed.
    """
    python = _run([str(ROOT / ".ci" / "find-python")], cwd=ROOT, timeout=60).stdout.strip()
    venv = tmp_path_factory.mktemp("venv") / "venv"
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    # The user's environment for the install too: a PYTHONPATH into a source tree would let pip see
    # packages the fresh venv does not have.
    _run([python, "-m", "venv", str(venv)], cwd=elsewhere, timeout=120, env=_user_env())
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    _run([*pip, "pip==24.2"], cwd=elsewhere, timeout=300, env=_user_env())  # the pip `make` installs
    start = time.monotonic()
    _run(
        [*pip, "-c", str(ROOT / "requirements.lock"), f"{wheel}[mobile]"], cwd=elsewhere, timeout=1200, env=_user_env()
    )
    install = Install(wheel, venv, time.monotonic() - start)
    print(f"\npip install -c requirements.lock {wheel.name}[mobile]: {install.seconds:.1f} s")
    yield install
    shutil.rmtree(venv, ignore_errors=True)  # ~1.5 GB


def test_wheel_ships_the_code_and_every_project_file(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    tree = {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "tfxp").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    code = {n for n in tree if n.endswith(".py")}
    projects = {n for n in tree if n.startswith("tfxp/projects/")}
    assert code - names == set()
    assert projects - names == set()
    assert {"tfxp/projects/taxi/schema.pbtxt", "tfxp/projects/taxi/data/taxi.csv"} <= names
    # model_spec.json's JSON Schema, which apps and tests validate specs with (issue 18).
    assert "tfxp/mobile/model_spec.schema.json" in names


def test_installed_package_finds_its_data_and_stages_its_wheel(installed, tmp_path):
    """Paths come from the installed package, and Beam workers get the wheel pip installed from."""
    code = (
        "import json\n"
        "from tfxp.pipeline import config as c\n"
        "print(json.dumps({'package': str(c.PACKAGE_ROOT), 'data': c.DEFAULT_DATA.is_file(),"
        " 'schema': c.DEFAULT_SCHEMA.is_file(), 'checkout': c.is_source_checkout(),"
        " 'beam': list(c.with_project_dependency(c.DEFAULT_BEAM_ARGS))}))\n"
    )
    found = json.loads(_run([installed.bin("python"), "-c", code], cwd=tmp_path, env=_user_env(), timeout=60).stdout)
    assert Path(found["package"]).is_relative_to(installed.venv), found["package"]
    assert found["data"] and found["schema"] and not found["checkout"]
    assert found["beam"][-1] == f"--extra_package={installed.wheel}"


def test_help_from_any_directory(installed, tmp_path):
    out = _run([installed.bin("tfxp"), "--help"], cwd=tmp_path, env=_user_env(), timeout=120).stdout
    for command in ("init", "run", "compile", "schema", "serve", "predict", "convert", "mobile-predict"):
        assert f"\n  {command} " in out, (command, out)


def test_run_from_any_directory_pushes_a_model(installed, tmp_path):
    write_csv(tmp_path / "data" / "taxi.csv", read_csv_rows(limit=ROWS))
    run = ["run", "--data", "data/taxi.csv", "--output", "out", "--train-steps", str(TRAIN_STEPS), "--json"]
    proc = subprocess.run(
        [installed.bin("tfxp"), *run], cwd=tmp_path, env=_user_env(), capture_output=True, text=True, timeout=900
    )
    try:
        summary = json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"no JSON summary (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr[-5000:]}")
    assert proc.returncode == 0, (summary.get("error"), proc.stderr[-3000:])
    assert summary["result"] == "pushed" and summary["blessed"] is True
    assert sum(summary["rows"].values()) == ROWS
    pushed = Path(summary["pushed_path"])
    # --output is relative to where tfxp runs, not to the package.
    assert pushed.parent == tmp_path / "out" / "serving" / "taxi"
    assert (pushed / "saved_model.pb").is_file()
    assert summary["mobile_pushed"] is True, summary["mobile_rejected"]
    assert Path(summary["mobile_path"]).parent == tmp_path / "out" / "mobile" / "taxi"


def _wine_csv(path: Path) -> Path:
    """scikit-learn's wine data (178 rows, 13 measurements, 3 cultivars), as a user's CSV with a string label."""
    import sklearn.datasets

    lines = (Path(sklearn.datasets.__file__).parent / "data" / "wine_data.csv").read_text().splitlines()[1:]
    rows = [line.split(",") for line in lines if line.strip()]
    header = [f"x{i:02d}" for i in range(13)] + ["cultivar"]
    return write_csv(path, [dict(zip(header, r[:-1] + [f"class_{r[-1]}"], strict=True)) for r in rows])


def test_init_then_run_the_project_from_any_directory(installed, tmp_path):
    """`tfxp init` and `tfxp run --project` from the wheel: a user's own data, no checkout anywhere."""
    _wine_csv(tmp_path / "wine.csv")
    init = ["init", "--data", "wine.csv", "--label", "cultivar", "--dir", "wine"]
    _run([installed.bin("tfxp"), *init], cwd=tmp_path, env=_user_env(), timeout=300)
    assert (tmp_path / "wine" / "project.yaml").is_file() and (tmp_path / "wine" / "schema.pbtxt").is_file()
    run = ["run", "--project", "wine", "--output", "out", "--train-steps", "300", "--json"]
    proc = subprocess.run(
        [installed.bin("tfxp"), *run], cwd=tmp_path, env=_user_env(), capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    summary = json.loads(proc.stdout)
    assert summary["result"] == "pushed" and sum(summary["rows"].values()) == 178
    assert (Path(summary["pushed_path"]) / "saved_model.pb").is_file()
    assert Path(summary["pushed_path"]).parent == tmp_path / "out" / "serving" / "wine"
