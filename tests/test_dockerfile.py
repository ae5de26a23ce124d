"""The pipeline image installs exactly what `make` installs: same pip, same lock, same project install."""

from __future__ import annotations

import re
from pathlib import Path

from tfxp.pipeline.config import IMAGE_PROJECT_ROOT, PROJECT_ROOT

DOCKERFILE = (PROJECT_ROOT / "Dockerfile").read_text()
MAKEFILE = (PROJECT_ROOT / "Makefile").read_text()
LOCK = (PROJECT_ROOT / "requirements.lock").read_text()


def _instructions(kind: str) -> list[str]:
    """Dockerfile instructions of one kind, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    return [line.split(None, 1)[1] for line in joined.splitlines() if line.startswith(kind + " ")]


def _pip_installs(text: str) -> list[str]:
    """The arguments of every `pip install` (any pip path), quiet flags dropped."""
    installs = re.findall(r"pip install ([^&\n]*)", re.sub(r"\\\n\s*", " ", text))
    return [" ".join(a for a in args.split() if a not in ("--quiet", "--upgrade")) for args in installs]


def _make_setup_recipe() -> str:
    return MAKEFILE.split("$(STAMP):", 1)[1].split("\n\n", 1)[0]


def test_image_and_make_install_the_same_way():
    image = _pip_installs(" && ".join(_instructions("RUN")))
    make = _pip_installs(_make_setup_recipe())
    assert image == make == ['"pip==24.2"', "-r requirements.lock", "--no-deps --no-build-isolation -e ."]


def test_image_uses_the_locked_python_and_beam():
    (base,) = [f for f in _instructions("FROM")]
    assert base.startswith("python:3.10")
    beam = re.search(r"^apache-beam==(\S+)$", LOCK, re.M).group(1)
    boot = re.search(r"apache/beam_python(\d+\.\d+)_sdk:(\S+)", DOCKERFILE)
    assert boot and boot.group(1) == "3.10" and boot.group(2) == beam
    # Dataflow starts SDK workers from a custom container through Beam's boot program (its entrypoint).
    assert _instructions("ENTRYPOINT") == ['["/opt/apache/beam/boot"]']


def test_image_holds_the_project_where_compiled_jobs_look_for_it():
    assert _instructions("WORKDIR") == [IMAGE_PROJECT_ROOT]
    copied = {src.rstrip("/") for c in _instructions("COPY") if not c.startswith("--from") for src in c.split()[:-1]}
    packages = {p.name for p in PROJECT_ROOT.iterdir() if (p / "__init__.py").exists()} - {"tests", "bench"}
    assert packages <= copied, packages - copied
    # Compiled jobs read these from the image (pipeline.config.PipelineConfig._project_file).
    assert {"tfxp", "setup.py", "pyproject.toml", "requirements.lock"} <= copied
    assert Path(PROJECT_ROOT / "tfxp" / "projects" / "taxi" / "data" / "taxi.csv").exists()
