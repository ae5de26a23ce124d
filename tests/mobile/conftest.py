"""A real conversion of the session's trained model, gated on 500 real rows it never saw."""
from __future__ import annotations

import os

import pytest

from taxi_data import read_csv_rows

MODEL_NAME = "taxi"
MODEL_VERSION = 3


@pytest.fixture(scope="session")
def eval_rows() -> list[dict[str, str]]:
    # The session's Transform and model saw rows 0-1999; these 500 are new (with their own OOV values).
    return read_csv_rows()[2000:2500]


@pytest.fixture(scope="session")
def transform_dir(transformed) -> str:
    return os.path.dirname(transformed[0].transform_savedmodel_dir)


@pytest.fixture(scope="session")
def converted(trained_model, eval_rows, tmp_path_factory):
    """(ConversionResult, SavedModel dir) of a converted folder output/mobile/taxi/3-like.

    No Transform output is passed: the conversion uses the copy the SavedModel carries.
    """
    from tfxp.mobile import convert

    out = tmp_path_factory.mktemp("mobile") / MODEL_NAME / str(MODEL_VERSION)
    result = convert.convert(trained_model[0], out, eval_rows=eval_rows,
                             model_version=MODEL_VERSION, model_name=MODEL_NAME)
    return result, trained_model[0]


@pytest.fixture(scope="session")
def odd_rows(eval_rows) -> list[dict[str, str]]:
    """Real rows edited to hold unseen categories, odd values and blank (missing) optional cells.

    Every row has an answer: rows without one (a required cell blank) are `contract_rows`' business.
    """
    base = eval_rows[:8]
    blank_optional = ("trip_seconds", "pickup_latitude", "pickup_longitude", "dropoff_latitude", "dropoff_longitude",
                      "company", "pickup_census_tract", "dropoff_census_tract", "pickup_community_area",
                      "dropoff_community_area")
    return [
        dict(base[0], company="Never Seen Cab Co."),
        dict(base[1], payment_type="Bitcoin"),
        dict(base[2], dropoff_census_tract="17031999999", pickup_census_tract="17031888888"),
        dict(base[3], pickup_community_area="78", dropoff_community_area="99"),
        dict(base[4], **{name: "" for name in blank_optional}),
        dict(base[5], company="", trip_seconds="", dropoff_census_tract=""),
        # Required ints outside their categories (clipped by the transform), a payment type near a known one.
        dict(base[6], trip_start_hour="30", trip_start_day="0", trip_start_month="13",
             payment_type=base[6]["payment_type"] + " "),
        # Everything unseen or missing at once.
        dict(base[7], company="Brand New Taxi", payment_type="Crypto", pickup_census_tract="",
             dropoff_census_tract="17000000001", pickup_community_area="", dropoff_community_area="0",
             pickup_latitude="", dropoff_longitude="", trip_seconds="-7"),
    ]
