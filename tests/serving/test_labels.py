"""Label routing of clients (issue 22): a stable hash sends canary_percent of keys to `canary`."""

import pytest

from tfxp.serving.client import route_label


def test_split_is_stable_and_near_the_percent():
    keys = [f"rider-{i}" for i in range(2000)]
    share = sum(route_label(k, 10) == "canary" for k in keys) / len(keys)
    assert 0.07 < share < 0.13
    assert [route_label(k, 10) for k in keys] == [route_label(k, 10) for k in keys]
    assert {route_label(k, 0) for k in keys} == {"stable"}
    assert {route_label(k, 100) for k in keys} == {"canary"}


def test_percent_outside_0_100_is_refused():
    with pytest.raises(ValueError, match="0-100"):
        route_label("k", 101)
