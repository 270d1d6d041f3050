"""Estimation methods beside NUTS: Laplace agrees on a well-identified Gaussian model and
departs on binary data in small clusters with a large group SD, as the lecture says."""

import numpy as np
import pandas as pd
import pytest
from scipy import special

import bayesmm as bm
from bayesmm.inference.approximate import _negative_hessian


def test_the_finite_difference_hessian_is_exact_for_a_quadratic():
    A = np.array([[3.0, 1.0], [1.0, 2.0]])
    H = _negative_hessian(lambda x: A @ x + 1.0, np.array([0.3, -2.0]))
    np.testing.assert_allclose(H, A, rtol=1e-8)


def test_unknown_methods_are_refused_by_name(sleepstudy):
    model = bm.Model("Reaction ~ Days + (1 | Subject)", sleepstudy)
    with pytest.raises(
        ValueError, match=r"method must be one of nuts, laplace, advi, got 'pathfinder' \(pathfinder"
    ):
        model.fit(method="pathfinder")


@pytest.fixture(scope="module")
def gaussian():
    rng = np.random.default_rng(4)
    g = np.repeat(np.arange(30), 10)
    x = rng.normal(size=g.size)
    y = 1.0 + 0.5 * x + rng.normal(0, 0.8, 30)[g] + rng.normal(0, 1.0, g.size)
    return bm.Model("y ~ x + (1 | g)", pd.DataFrame({"y": y, "x": x, "g": [f"g{i}" for i in g]}))


@pytest.mark.slow
def test_laplace_agrees_with_nuts_on_a_gaussian_model(gaussian):
    comparison = bm.compare_methods(gaussian, methods=["nuts", "laplace", "advi"], draws=1000, chains=2,
                                    random_seed=1)  # fmt: skip
    nuts, laplace = comparison.table["nuts"], comparison.table["laplace"]
    # Its group effects integrated out (collapsed), Laplace is lme4's approximation of the marginal.
    assert ((laplace["mean"] - nuts["mean"]).abs() <= 0.25 * nuts["sd"]).all(), comparison.table
    assert ((laplace["sd"] / nuts["sd"]).between(0.75, 1.3)).all(), comparison.table
    assert set(comparison.seconds) == {"nuts", "laplace", "advi"}
    laplace_fit = comparison.fits["laplace"]
    assert laplace_fit.summary().header.startswith("Approximation: draws from a laplace approximation")
    assert laplace_fit.ranef("g")["mean"].shape == (30, 1)  # group effects drawn from their conditional
    ax = comparison.plot()
    assert len(ax.get_legend().get_texts()) == 3


@pytest.mark.slow
def test_laplace_departs_on_binary_data_with_small_clusters():
    rng = np.random.default_rng(2)
    g = np.repeat(np.arange(60), 3)
    x = rng.normal(size=g.size)
    y = rng.binomial(1, special.expit(-0.5 + 0.5 * x + rng.normal(0, 2.0, 60)[g]))
    model = bm.Model(
        "y ~ x + (1 | g)", pd.DataFrame({"y": y, "x": x, "g": [f"g{i}" for i in g]}), family="bernoulli"
    )
    comparison = bm.compare_methods(model, methods=["nuts", "laplace"], draws=1000, chains=2, random_seed=1)
    sd = comparison.table.loc["sd(Intercept|g)"]
    # The joint mode's curvature in log sd is not the posterior's spread: the approximation of
    # the group SD is far wider and higher than the posterior NUTS samples.
    assert sd[("laplace", "mean")] > sd[("nuts", "q97.5")]
    assert sd[("laplace", "sd")] > 3 * sd[("nuts", "sd")]
