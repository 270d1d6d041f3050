"""Values that used to pass every check and then fail inside the sampler ("All
initialization points failed") are refused before sampling, naming the culprit; unusual
but valid input (nullable dtypes, non-ASCII names) works."""

import numpy as np
import pandas as pd
import pytest

import bayesmm as bm
from bayesmm.spec.priors import PriorError

from .helpers import frame, unchanged


def refused(data, error, message, formula="y ~ x + (1 | g)", **options):
    with unchanged(data), pytest.raises(error, match=message):
        bm.Model(formula, data, **options)


def test_infinite_predictor():
    data = frame()
    data.loc[3, "x"] = np.inf
    refused(data, bm.DataError, r"the predictor 'x' has infinite values in 1 rows \(first: row 3\)")


def test_infinite_predictor_inside_a_transform_and_a_bar_term():
    data = frame()
    data.loc[4, "x"] = 0.0
    refused(
        data, bm.DataError, r"the predictor 'log\(x\)' has infinite values in 7 rows", formula="y ~ log(x)"
    )
    data = frame()
    data.loc[2, "x"] = -np.inf
    refused(
        data,
        bm.DataError,
        r"the predictor 'x in \(1 \+ x \| g\)' has infinite values",
        formula="y ~ 1 + (1 + x | g)",
    )


def test_infinite_response():
    data = frame()
    data.loc[0, "y"] = np.inf
    refused(data, bm.DataError, "the response 'y' has infinite values in 1 rows")


def test_infinite_trials():
    data = frame()
    data["n"] = data["n"].astype(float)
    data.loc[1, "n"] = np.inf
    refused(
        data,
        bm.DataError,
        "the trials column 'n' has infinite values in 1 rows",
        formula="count ~ x + (1 | g)",
        family="binomial",
        trials="n",
    )


def test_trials_as_text():
    data = frame()
    data["n"] = data["n"].astype(str).where(data.index != 2, "ten")
    refused(
        data,
        bm.DataError,
        r"the trials column 'n' must hold numbers of trials; it holds '10' \(text\) in 30 rows",
        formula="count ~ x + (1 | g)",
        family="binomial",
        trials="n",
    )


def test_constant_response():
    data = frame().assign(y=2.5)
    refused(data, bm.DataError, "the response 'y' is 2.5 in every one of the 30 rows; a constant response")


def test_constant_count_response_warns():
    data = frame().assign(count=0)
    with pytest.warns(UserWarning, match="the response 'count' is 0 in every one of the 30 rows"):
        bm.Model("count ~ x + (1 | g)", data, family="poisson")


def test_log_offset_of_zero_exposure():
    data = frame().assign(n=lambda d: d["n"].where(d.index != 5, 0))
    refused(
        data,
        bm.DataError,
        r"the offset 'offset\(log\(n\)\)' has infinite values in 1 rows \(first: row 5\) "
        r"\(the log of a zero exposure\?\)",
        formula="count ~ x + offset(log(n)) + (1 | g)",
        family="poisson",
    )


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: bm.Prior("Normal", mu=0, sigma=0),
            "parameter sigma is a scale or shape and must be > 0, got 0",
        ),
        (lambda: bm.Prior("Normal", mu=0, sigma=-2), "parameter sigma is a scale or shape and must be > 0"),
        (lambda: bm.Prior("Normal", mu=np.nan, sigma=1), "parameter mu must be a finite number, got nan"),
        (lambda: bm.Prior("HalfStudentT", nu=3, sigma=np.inf), "parameter sigma must be a finite number"),
        (lambda: bm.Prior("Exponential", lam=0), "parameter lam is a scale or shape and must be > 0"),
        (lambda: bm.Prior("Gamma", alpha=-1, beta=1), "parameter alpha is a scale or shape and must be > 0"),
        (lambda: bm.Prior("Cauchy", alpha=0, beta=0), "parameter beta is a scale or shape and must be > 0"),
        (
            lambda: bm.Prior("StudentT", nu=0, mu=0, sigma=1),
            "parameter nu is a scale or shape and must be > 0",
        ),
    ],
)
def test_priors_that_cannot_exist_are_refused_at_once(make, message):
    with pytest.raises(PriorError, match=message):
        make()


def test_negative_location_and_skew_are_fine():
    assert bm.Prior("Cauchy", alpha=-3, beta=1).params["alpha"] == -3
    assert bm.Prior("Normal", mu=-10, sigma=1).params["mu"] == -10


def test_priors_given_as_a_list_or_with_a_vector_of_the_wrong_length():
    data = frame()
    refused(
        data,
        PriorError,
        "priors must be a dict from parameter or class names to Prior",
        priors=[bm.Prior("Normal", mu=0, sigma=1)],
    )
    refused(
        data,
        PriorError,
        r"the prior for 'b' has vector parameters of length 3 but 'b' covers 2 parameter\(s\) "
        r"\(x, day\)",
        formula="y ~ x + day + (1 | g)",
        priors={"b": bm.Prior("Normal", mu=0, sigma=[1, 2, 3])},
    )


def test_a_vector_class_prior_of_the_right_length_is_split_in_table_order():
    model = bm.Model("y ~ x + day + (1 | g)", frame(), priors={"b": bm.Prior("Normal", mu=0, sigma=[1, 2])})
    table = model.priors
    assert table.loc["x", "prior"] == "Normal(mu=0, sigma=1)"
    assert table.loc["day", "prior"] == "Normal(mu=0, sigma=2)"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"draws": True}, "draws must be a whole number, 1 or more; got True"),
        ({"draws": 10.5}, "draws must be a whole number, 1 or more; got 10.5"),
        ({"random_seed": "abc"}, "random_seed must be a non-negative whole number or None; got 'abc'"),
        ({"cores": 0}, r"cores must be a whole number, 1 or more \(or None for all\); got 0"),
        (
            {"target_accept": 1.5},
            r"target_accept must be a number between 0 and 1 \(e.g. 0.8 or 0.95\); got 1.5",
        ),
        ({"target_accept": "high"}, "target_accept must be a number between 0 and 1"),
        ({"chains": 0}, "chains must be a whole number, 1 or more; got 0"),
        ({"tune": -1}, "tune must be a whole number, 0 or more; got -1"),
    ],
)
def test_sampler_arguments_are_checked_before_compiling(options, message, monkeypatch):
    model = bm.Model("y ~ x + (1 | g)", frame())
    monkeypatch.setattr(type(model), "pymc_model", property(lambda self: pytest.fail("compiled")))
    with pytest.raises(ValueError, match=message):
        model.fit(**options)


def test_trials_with_a_family_that_has_none():
    refused(
        frame(),
        ValueError,
        "family 'poisson' has no number of trials",
        formula="count ~ x",
        family="poisson",
        trials="n",
    )


def test_nullable_dtypes_are_used_as_their_values():
    plain = frame()
    nullable = plain.astype({"x": "Float64", "day": "Int64", "count": "Int64", "f": "string", "g": "string"})
    nullable["flag"] = pd.array([True, False] * 15, dtype="boolean")
    plain["flag"] = [True, False] * 15
    formula = "y ~ x + day + f + flag + (1 | g)"
    a, b = bm.Model(formula, plain), bm.Model(formula, nullable)
    np.testing.assert_array_equal(a.design.X, b.design.X)
    assert a.design.fixef_names == b.design.fixef_names
    assert a.design.group_levels("g") == b.design.group_levels("g")


def test_nullable_missing_entries_are_dropped_like_nan():
    data = frame().astype({"day": "Int64", "f": "string"})
    data.loc[[2, 7], "day"] = pd.NA
    data.loc[11, "f"] = pd.NA
    with (
        unchanged(data),
        pytest.warns(
            UserWarning, match=r"dropped 3 of 30 rows with missing values \(in day \(2\), f \(1\)\)"
        ),
    ):
        model = bm.Model("y ~ x + day + f + (1 | g)", data)
    assert model.design.n_obs == 27


def test_pyarrow_strings():
    pytest.importorskip("pyarrow")
    data = frame().astype({"f": "string[pyarrow]", "g": "string[pyarrow]"})
    model = bm.Model("y ~ x + f + (1 | g)", data)
    assert model.design.fixef_names == ["Intercept", "x", "f[T.b]", "f[T.c]"]


def test_duplicated_column_names():
    data = frame()
    data.columns = ["y", "x", "x", "count", "n", "f", "g"]
    refused(data, bm.DataError, "the data have more than one column named 'x'")


def test_non_ascii_names_everywhere():
    data = frame().rename(columns={"g": "组", "x": "température", "y": "réaction"})
    model = bm.Model("réaction ~ température + (1 + température | 组)", data)
    assert model.design.fixef_names == ["Intercept", "température"]
    assert model.design.random[0].sd_names == ["sd(Intercept|组)", "sd(température|组)"]
    assert "sd(Intercept|组)" in model.priors.index
