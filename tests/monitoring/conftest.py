"""Fixtures of tests/monitoring: taxi rows in random order and a model base path whose version 1 carries a
monitoring reference (tests/monitoring_data.py)."""

from __future__ import annotations

import pytest
from monitoring_data import make_base_path, shuffled_rows


@pytest.fixture(scope="session")
def rows() -> list[dict]:
    return shuffled_rows()


@pytest.fixture(scope="session")
def base_path(tmp_path_factory, rows):
    return make_base_path(tmp_path_factory.mktemp("models"), rows)
