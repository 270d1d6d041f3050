"""bm.simulate draws data with the given parameters: recover them over many simulations."""

import numpy as np
import pandas as pd
import pytest

import bayesmm as bm


@pytest.fixture(scope="module")
def layout():
    return pd.DataFrame(
        {"g": np.repeat([f"g{i}" for i in range(40)], 10), "x": np.tile(np.linspace(-1, 1, 10), 40)}
    )


def test_gaussian_random_intercepts(layout):
    params = {"Intercept": 3.0, "sd(Intercept|g)": 2.0, "sigma": 0.5}
    sims = bm.simulate("~ 1 + (1 | g)", layout, params=params, seed=1, nsim=300)
    assert sims.shape == (400, 300)
    level_means = sims.groupby(layout.g.to_numpy()).mean()  # 40 x 300
    within = sims - level_means.loc[layout.g.to_numpy()].to_numpy()
    assert sims.to_numpy().mean() == pytest.approx(3.0, abs=0.1)  # SE about 2 / sqrt(40 * 300)
    assert within.to_numpy().std() * np.sqrt(10 / 9) == pytest.approx(0.5, rel=0.02)
    assert level_means.to_numpy().var(axis=0, ddof=1).mean() == pytest.approx(4.0 + 0.25 / 10, rel=0.05)


def test_correlated_slopes_and_poisson(layout):
    params = {"Intercept": 0.5, "x": 0.3, "sd(Intercept|g)": 0.4, "sd(x|g)": 0.3, "cor(Intercept,x|g)": 0.5}
    sims = bm.simulate("count ~ x + (1 + x | g)", layout, family="poisson", params=params, seed=2, nsim=400)
    values = sims.to_numpy()
    assert np.all(values == np.round(values)) and values.min() >= 0
    # E[y | x] = exp(b0 + b1 x + (sd0^2 + 2 cor sd0 sd1 x + sd1^2 x^2) / 2) for lognormal group effects.
    x = layout.x.to_numpy()
    variance = 0.4**2 + 2 * 0.5 * 0.4 * 0.3 * x + 0.3**2 * x**2
    expected = np.exp(0.5 + 0.3 * x + variance / 2)
    for value in (-1.0, 1.0):
        rows = np.isclose(x, value)
        assert values[rows].mean() == pytest.approx(expected[rows][0], rel=0.05)


def test_parameter_names_are_checked(layout):
    with pytest.raises(ValueError, match="simulate needs values for sd\\(Intercept\\|g\\), sigma"):
        bm.simulate("~ 1 + (1 | g)", layout, params={"Intercept": 0})
    with pytest.raises(ValueError, match="unknown parameter\\(s\\) slope"):
        bm.simulate(
            "~ 1 + (1 | g)", layout, params={"Intercept": 0, "sd(Intercept|g)": 1, "sigma": 1, "slope": 2}
        )


def test_user_data_untouched(layout):
    before = layout.copy()
    bm.simulate("y ~ 1 + (1 | g)", layout, params={"Intercept": 0, "sd(Intercept|g)": 1, "sigma": 1}, seed=0)
    pd.testing.assert_frame_equal(layout, before)
