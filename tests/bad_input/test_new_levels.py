"""Grouping values of new data are encoded exactly as the fitted ones."""

import numpy as np
import pandas as pd
import pytest

import bayesmm as bm
from bayesmm.design.build import encode_new_data

from .helpers import frame


def fitted_codes(model, new):
    return encode_new_data(model.design, new).codes[0]


def test_dates_as_groups_match_in_new_data():
    data = frame().assign(
        day_of=lambda d: pd.to_datetime("2024-03-01") + pd.to_timedelta(d["g"].str[1:].astype(int), "D")
    )
    model = bm.Model("y ~ x + (1 | day_of)", data)
    assert model.design.group_levels("day_of")[:2] == ["2024-03-01", "2024-03-02"]
    new = data.head(10)
    np.testing.assert_array_equal(fitted_codes(model, new), model.design.random[0].codes[:10])
    as_text = new.assign(day_of=new["day_of"].dt.strftime("%Y-%m-%d"))
    np.testing.assert_array_equal(fitted_codes(model, as_text), model.design.random[0].codes[:10])


def test_integer_ids_match_float_ids():
    data = frame().assign(id=lambda d: d["g"].str[1:].astype(int))
    model = bm.Model("y ~ x + (1 | id)", data)
    assert model.design.group_levels("id") == ["0", "1", "2", "3", "4", "5"]
    new = data.head(10).assign(id=lambda d: d["id"].astype(float))  # e.g. read from a CSV with gaps
    encoded = encode_new_data(model.design, new)
    assert encoded.new_levels == [[]]
    np.testing.assert_array_equal(encoded.codes[0], model.design.random[0].codes[:10])
    fitted_on_floats = bm.Model("y ~ x + (1 | id)", data.assign(id=data["id"].astype(float)))
    assert fitted_on_floats.design.group_levels("id") == model.design.group_levels("id")


def test_unseen_levels_are_numbered_after_the_fitted_ones():
    data = frame().assign(id=lambda d: d["g"].str[1:].astype(int))
    model = bm.Model("y ~ x + (1 | id)", data)
    new = data.head(3).assign(id=[7, 2, 7])
    encoded = encode_new_data(model.design, new)
    assert encoded.new_levels == [["7"]]
    np.testing.assert_array_equal(encoded.codes[0], [6, 2, 6])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["chain", "draw", "obs"])
def test_grouping_columns_named_like_posterior_dimensions(name):
    from tests.conftest import quiet_fit

    data = frame().rename(columns={"g": name})
    fit = quiet_fit(bm.Model(f"y ~ x + (1 | {name})", data), draws=60, tune=60, chains=2, random_seed=2)
    assert fit.idata.posterior.sizes["chain"] == 2 and fit.idata.posterior.sizes["draw"] == 60
    table = fit.ranef(name)
    assert list(table.index) == [f"g{i}" for i in range(6)]
    predictions = fit.predict(data.head(3))
    assert len(predictions) == 3
