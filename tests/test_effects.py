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


# -- estimated marginal means -------------------------------------------------------


@pytest.fixture(scope="module")
def two_factor_fit():
    """y ~ A * B + x with three levels of A, two of B, balanced within A except that B's
    second level is rarer (unbalanced on purpose: equal and proportional weights differ)."""
    rng = np.random.default_rng(5)
    a = np.repeat(["a1", "a2", "a3"], 60)
    b = np.tile(np.r_[np.repeat("b1", 45), np.repeat("b2", 15)], 3)
    x = rng.normal(1.0, 1.0, a.size)
    eta = -0.3 + 0.6 * (a == "a2") + 1.2 * (a == "a3") - 0.8 * (b == "b2") + 0.4 * x
    data = pd.DataFrame(
        {"y": rng.poisson(np.exp(eta)), "A": a, "B": b, "x": x, "g": rng.choice(list("pqrs"), a.size)}
    )
    return quiet_fit(
        bm.Model("y ~ A * B + x + (1 | g)", data, family="poisson"), draws=250, chains=2, random_seed=4
    )


def _cell_draws(fit, a, b, x):
    """The linear predictor at (A = a, B = b, x) without group effects, per draw."""
    f = _fixef_draws(fit)
    eta = f["Intercept"] + f["x"] * x
    if a != "a1":
        eta = eta + f[f"A[T.{a}]"]
    if b != "b1":
        eta = eta + f[f"B[T.{b}]"] + (f[f"A[T.{a}]:B[T.{b}]"] if a != "a1" else 0.0)
    return eta


def test_marginal_means_average_the_cells_on_the_link_scale(two_factor_fit):
    """emmeans's definition: the linear predictor at every cell of the reference grid (x at
    its mean), averaged over B with equal weights, then back-transformed."""
    fit = two_factor_fit
    x = fit.model.model_frame["x"].mean()
    means = fit.marginal_means("A")
    assert list(means.table["A"]) == ["a1", "a2", "a3"]
    for k, a in enumerate(["a1", "a2", "a3"]):
        by_hand = np.exp((_cell_draws(fit, a, "b1", x) + _cell_draws(fit, a, "b2", x)) / 2)
        np.testing.assert_allclose(means.draws[:, k], by_hand, rtol=1e-10)
        assert means.table.loc[k, "estimate"] == pytest.approx(by_hand.mean(), rel=1e-10)
    linear = fit.marginal_means("A", scale="linear")
    np.testing.assert_allclose(np.exp(linear.draws), means.draws, rtol=1e-12)
    # Proportional weights: B's levels as often as in the data (3 to 1).
    weighted = fit.marginal_means("A", weights="proportional")
    by_hand = np.exp(0.75 * _cell_draws(fit, "a2", "b1", x) + 0.25 * _cell_draws(fit, "a2", "b2", x))
    np.testing.assert_allclose(weighted.draws[:, 1], by_hand, rtol=1e-10)


def test_marginal_means_by_a_factor_and_their_contrasts(two_factor_fit):
    fit = two_factor_fit
    x = fit.model.model_frame["x"].mean()
    means = fit.marginal_means("A", by="B")
    assert len(means.table) == 6
    row = means.table.index[(means.table["A"] == "a3") & (means.table["B"] == "b2")][0]
    np.testing.assert_allclose(means.draws[:, row], np.exp(_cell_draws(fit, "a3", "b2", x)), rtol=1e-10)
    pairs = means.contrasts()
    assert len(pairs) == 6 and set(pairs["B"]) == {"b1", "b2"}  # three pairs within each level of B
    pair = pairs[(pairs["B"] == "b2") & (pairs["contrast"] == "a3 - a1")].iloc[0]
    first = means.table.index[(means.table["A"] == "a1") & (means.table["B"] == "b2")][0]
    difference = means.draws[:, row] - means.draws[:, first]
    assert pair["estimate"] == pytest.approx(difference.mean(), rel=1e-12)
    with pytest.raises(DataError, match=r"'x' is a number, not a factor"):
        fit.marginal_means("x")
    with pytest.raises(DataError, match=r"'C' is not a predictor of this model"):
        fit.marginal_means("C")
    with pytest.raises(ValueError, match=r"weights must be 'equal' or 'proportional'"):
        fit.marginal_means("A", weights="cells")
