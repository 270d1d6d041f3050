"""Conditional effects and contrasts against a hand computation from the posterior draws."""

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import special

import bayesmm as bm
from bayesmm.design.build import DataError

from .conftest import quiet_fit

pytestmark = pytest.mark.slow  # every test here uses a fitted model


@pytest.fixture(scope="module")
def interaction_fit():
    rng = np.random.default_rng(1)
    n = 300
    data = pd.DataFrame({"x": rng.normal(2, 1, n), "f": rng.choice(["a", "b", "c"], n),
                         "z": rng.normal(size=n), "g": rng.choice(list("pqrstu"), n)})  # fmt: skip
    eta = -0.5 + 0.8 * data.x + 0.5 * (data.f == "b") - 1.0 * (data.f == "c") + 0.6 * data.x * (data.f == "c")
    data["y"] = rng.binomial(1, special.expit(eta + 0.3 * data.z))
    model = bm.Model("y ~ x * f + z + (1 | g)", data, family="bernoulli")
    return quiet_fit(model, draws=250, chains=2, random_seed=3)


def _fixef_draws(fit):
    values = fit.idata.posterior["fixef"].values
    return {name: values[..., j].ravel() for j, name in enumerate(fit.design.fixef_names)}


def _by_hand(fit, x, f, z):
    """E(y) at (x, f, z) without group effects, per posterior draw."""
    b = _fixef_draws(fit)
    eta = b["Intercept"] + b["x"] * x + b["z"] * z
    if f != "a":
        eta = eta + b[f"f[T.{f}]"] + b[f"x:f[T.{f}]"] * x
    return special.expit(eta)


def test_conditional_effects_of_an_interaction(interaction_fit):
    fit = interaction_fit
    data = fit.model.model_frame
    table = fit.conditional_effects("x:f", resolution=7)
    assert list(table.columns[:2]) == ["x", "f"] and len(table) == 21
    np.testing.assert_allclose(np.unique(table.x), np.linspace(data.x.min(), data.x.max(), 7))
    for _, row in table.iterrows():
        draws = _by_hand(fit, row.x, row.f, data.z.mean())  # z at its mean
        assert row.estimate == pytest.approx(draws.mean(), rel=1e-10)
        assert row["q2.5"] == pytest.approx(np.quantile(draws, 0.025), rel=1e-10)
        assert row["q97.5"] == pytest.approx(np.quantile(draws, 0.975), rel=1e-10)
    # by= spells the same thing; a numeric by takes its mean and mean +- 1 SD (brms).
    pd.testing.assert_frame_equal(table, fit.conditional_effects("x", by="f", resolution=7), check_like=True)
    around = fit.conditional_effects("f", by="x")
    np.testing.assert_allclose(np.unique(around.x), data.x.mean() + np.array([-1, 0, 1]) * data.x.std())
    # On the linear scale, at the reference level, the curve is the line Intercept + x b_x + z b_z.
    linear = fit.conditional_effects("x", scale="linear", conditions={"z": 0.0}, resolution=3)
    b = _fixef_draws(fit)
    expected = [np.mean(b["Intercept"] + b["x"] * x) for x in linear.x]
    np.testing.assert_allclose(linear.estimate, expected, rtol=1e-10)


def test_group_effects_widen_the_band(interaction_fit):
    population = interaction_fit.conditional_effects("f")
    new_group = interaction_fit.conditional_effects("f", re_form=None)
    width = lambda t: (t["q97.5"] - t["q2.5"]).to_numpy()  # noqa: E731
    assert np.all(width(new_group) > width(population))


def test_contrasts_by_hand(interaction_fit):
    fit = interaction_fit
    data = fit.model.model_frame
    table = fit.contrasts("f").set_index("contrast")
    assert list(table.index) == ["b - a", "c - a", "c - b"]
    x, z = data.x.mean(), data.z.mean()
    difference = _by_hand(fit, x, "c", z) - _by_hand(fit, x, "a", z)
    assert table.loc["c - a", "estimate"] == pytest.approx(difference.mean(), rel=1e-10)
    assert table.loc["c - a", "p_direction"] == pytest.approx(
        max(np.mean(difference > 0), np.mean(difference < 0))
    )
    with pytest.raises(DataError, match="'x' is a number, not a factor"):
        fit.contrasts("x")
    with pytest.raises(DataError, match=r"'w' is not a predictor of this model; its predictors are x, f, z"):
        fit.conditional_effects("w")


def test_hypothesis_reads_r_style_level_names(interaction_fit):
    r_style = interaction_fit.hypothesis(["fb > 0", "x:fc - fc < 1"])
    formulaic = interaction_fit.hypothesis(["f[T.b] > 0", "x:f[T.c] - f[T.c] < 1"])
    np.testing.assert_array_equal(r_style.to_numpy(), formulaic.to_numpy())


def test_the_plot_draws_one_band_per_level(interaction_fit):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ax = interaction_fit.plot_conditional_effects("x", by="f", points=True)
    assert [line.get_label() for line in ax.get_lines()] == ["f = a", "f = b", "f = c"]
    assert len(ax.collections) == 4  # three bands and the data
    table = interaction_fit.conditional_effects("x", by="f")
    np.testing.assert_allclose(ax.get_lines()[2].get_ydata(), table[table.f == "c"].estimate)
