"""Projects shipped with tfxp (package data): `taxi`, the default of `tfxp run`."""

from __future__ import annotations

import functools
from pathlib import Path

TAXI = Path(__file__).resolve().parent / "taxi"


@functools.lru_cache(maxsize=1)
def taxi_problem():
    """The embedded taxi project's Problem (tfxp.models.features.Problem), from its project.yaml."""
    from tfxp import project

    return project.load(TAXI).problem()


@functools.lru_cache(maxsize=1)
def taxi_gates() -> tuple:
    """The embedded taxi project's Evaluator gates (tfxp.project.Gate), from its project.yaml: the one
    place they are written, read by `tfxp run` and `tfxp compile` alike."""
    from tfxp import project

    return tuple(project.load(TAXI).thresholds)
