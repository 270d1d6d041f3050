"""Gaussian processes gp(x) by their Hilbert-space approximation: the basis's covariance is
the kernel's (exponentiated quadratic and Matern 3/2 and 5/2), the spectral densities
integrate to the variance, the length scale's prior is tuned to the data, and a fit
recovers a known curve."""

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

import bayesmm as bm
from bayesmm.design.gp import GaussianProcess, gp_term, spectral_density

from .bad_input.helpers import refused
from .conftest import quiet_fit

KERNELS = {
    "exp_quad": lambda d, s: np.exp(-0.5 * (d / s) ** 2),
    "matern32": lambda d, s: (1 + np.sqrt(3) * d / s) * np.exp(-np.sqrt(3) * d / s),
    "matern52": lambda d, s: (1 + np.sqrt(5) * d / s + 5 * d**2 / (3 * s**2)) * np.exp(-np.sqrt(5) * d / s),
}


@pytest.mark.parametrize("kernel", sorted(KERNELS))
def test_the_spectral_density_is_pymcs(kernel):
    """PyMC's own power spectral densities (pm.gp.cov's, which its HSGP uses), at random
    frequencies, length scales and SDs."""
    import pymc as pm

    rng = np.random.default_rng(3)
    classes = {"exp_quad": pm.gp.cov.ExpQuad, "matern32": pm.gp.cov.Matern32, "matern52": pm.gp.cov.Matern52}
    for _ in range(5):
        frequencies, lengthscale, sd = rng.uniform(0, 4, 7), rng.uniform(0.2, 3), rng.uniform(0.3, 2)
        pymc = sd**2 * classes[kernel](1, ls=lengthscale).power_spectral_density(frequencies[:, None]).eval()
        np.testing.assert_allclose(spectral_density(kernel, frequencies, sd, lengthscale), pymc, rtol=1e-12)


@pytest.mark.parametrize("kernel", sorted(KERNELS))
def test_the_spectral_density_integrates_to_the_variance(kernel):
    # k(0) = (1 / 2 pi) * integral of S(w) over the line.
    total, _ = integrate.quad(lambda w: spectral_density(kernel, w, 1.7, 0.8), -np.inf, np.inf)
    assert total / (2 * np.pi) == pytest.approx(1.7**2, rel=1e-8)


@pytest.mark.parametrize("kernel", sorted(KERNELS))
def test_the_basis_covariance_approximates_the_kernel(kernel):
    """phi diag(S(w)) phi' against k(x, x') on [0, 10], length scale 2, 50 functions, c = 2
    (the raw basis, before bayesmm centres it on the rows). The error is largest at the ends:
    with c = 1.5 it is 0.04-0.07 there (the boundary pulls the function to zero), with c = 2
    below 0.003."""
    x = np.linspace(0, 10, 60)
    term = GaussianProcess("x", 50, 2.0, kernel, 5.0, 10.0, np.zeros((60, 50)))
    phi = term.basis(x)
    approximate = phi @ np.diag(spectral_density(kernel, term.frequencies, 1.0, 2.0)) @ phi.T
    exact = KERNELS[kernel](np.abs(x[:, None] - x[None, :]), 2.0)
    assert np.max(np.abs(approximate - exact)) < 0.005


def test_the_length_scale_prior_leaves_one_percent_outside():
    from scipy import stats

    x = np.random.default_rng(1).uniform(0, 10, 200)
    term = gp_term("x", x, 20, 1.25, "exp_quad")
    a, b = term.lscale_prior
    shortest = 1.75 * 1.25 * (term.L / term.c) / 20  # what 20 functions resolve
    assert stats.invgamma.cdf(shortest, a, scale=b) == pytest.approx(0.01, rel=1e-3)
    assert stats.invgamma.sf(np.ptp(x), a, scale=b) == pytest.approx(0.01, rel=1e-3)
    # The basis is centred on the rows: the intercept carries the function's mean.
    np.testing.assert_allclose(term.Z.mean(axis=0), 0.0, atol=1e-12)


@pytest.mark.parametrize(
    ("formula", "change", "message"),
    [
        ("y ~ gp(f)", lambda d: d.assign(f=np.where(d["x"] > 5, "a", "b")), r"gp\(f\) smooths a number"),
        ('y ~ gp(x, cov = "rbf")', lambda d: d, r"gp\(\) takes numeric columns and k = "),
        ("y ~ gp(x, c = 0.5)", lambda d: d, r"c = \(boundary factor, > 1\)"),
        ("y ~ gp(x):z", lambda d: d.assign(z=1.0), r"a Gaussian process gp\(x\) is a term of its own"),
        ("y ~ gp(x, z, k = 40)", lambda d: d, r"40\^2 = 1600 basis functions .* at most 1000"),
        ("y ~ gp(x, x)", lambda d: d, r"gp\(\) names a column twice"),
        ("y ~ gp(x, z)", lambda d: d.assign(z=2.0), r"gp\(x, z\): 'z' takes one value only"),
        ("y ~ gp(x, w)", lambda d: d, r"column 'w' in gp\(w\) is not in the data"),
        ("y ~ gp(x, z)", lambda d: d.assign(z=np.where(d.x > 5, "a", "b")), r"gp\(z\) smooths a number"),
    ],
)  # fmt: skip
def test_what_is_not_a_gaussian_process_is_refused(formula, change, message):
    refused(formula, change(_surface()), message)


@pytest.mark.slow
def test_a_gaussian_process_recovers_a_curve():
    rng = np.random.default_rng(4)
    n = 250
    x = rng.uniform(0, 10, n)
    curve = np.sin(1.2 * x) * np.exp(-0.1 * x)
    g = rng.integers(0, 6, n)
    data = pd.DataFrame({"y": curve + rng.normal(0, 0.3, 6)[g] + rng.normal(0, 0.25, n), "x": x, "g": g})
    fit = quiet_fit(bm.Model("y ~ gp(x) + (1 | g)", data), draws=1000, chains=2, random_seed=1)
    assert fit.idata.attrs["compiled_by"] == "engine"
    assert {"sdgp(gp(x))", "lscale(gp(x))"} <= set(fit.summary().index)
    effect = fit.conditional_effects("x", resolution=50)
    truth = np.sin(1.2 * effect["x"]) * np.exp(-0.1 * effect["x"])
    shift = np.mean(effect["estimate"] - truth)  # the group effects' mean sits in the level
    # Against the truth (noise SD 0.25): RMSE below 0.1, the 95% band covering at least 80%.
    assert np.sqrt(np.mean((effect["estimate"] - shift - truth) ** 2)) < 0.1
    assert np.mean((effect["q2.5"] - shift <= truth) & (truth <= effect["q97.5"] - shift)) >= 0.8
    with pytest.raises(bm.DataError, match=r"gp\(x\): new value 30 of .x. lies outside the approximation's"):
        fit.predict(pd.DataFrame({"x": [30.0], "g": [0]}))


def test_simulate_draws_functions_with_the_kernels_covariance():
    layout = pd.DataFrame({"x": np.linspace(0, 10, 40)})
    params = {"Intercept": 0.0, "sdgp(gp(x))": 1.0, "lscale(gp(x))": 2.0, "sigma": 1e-6}
    sims = bm.simulate("~ gp(x, k = 50, c = 2)", layout, params=params, seed=3, nsim=4000).to_numpy()
    # Over data sets the rows covary as the kernel centred on the rows, C K C (the intercept
    # carries the function's mean over the rows): within about 3 Monte Carlo SEs.
    x = layout["x"].to_numpy()
    centre = np.eye(40) - 1 / 40
    expected = centre @ KERNELS["exp_quad"](np.abs(x[:, None] - x[None, :]), 2.0) @ centre
    assert np.max(np.abs(np.cov(sims) - expected)) < 0.1


def _two_curves(seed=6, n=300):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 10, n)
    f = rng.choice(["a", "b"], n)
    truth = np.where(f == "a", np.sin(x), np.cos(0.5 * x))
    return pd.DataFrame({"y": truth + rng.normal(0, 0.25, n), "x": x, "f": f})


def test_a_gaussian_process_per_level_of_a_factor():
    data = _two_curves()
    model = bm.Model("y ~ f + gp(x, by = f)", data)
    assert [g.name for g in model.design.gps] == ["gp(x, by = f)[a]", "gp(x, by = f)[b]"]
    assert {"sdgp(gp(x, by = f)[b])", "lscale(gp(x, by = f)[b])"} <= set(model.priors.index)
    for gp in model.design.gps:
        own = (data["f"] == gp.level).to_numpy()
        np.testing.assert_allclose(gp.Z[~own], 0.0)
        np.testing.assert_allclose(gp.Z[own].mean(axis=0), 0.0, atol=1e-12)  # centred over its own rows
        np.testing.assert_allclose(
            gp.columns(data["x"].to_numpy(), data["f"].to_numpy())[1], gp.Z, atol=1e-12
        )


@pytest.mark.slow
def test_gaussian_processes_by_a_factor_recover_each_curve():
    data = _two_curves()
    fit = quiet_fit(bm.Model("y ~ f + gp(x, by = f)", data), draws=1000, chains=2, random_seed=1)
    effects = fit.conditional_effects("x:f", resolution=30)
    for level, truth in {"a": np.sin, "b": lambda g: np.cos(0.5 * g)}.items():
        rows = effects[effects["f"] == level]
        assert np.sqrt(np.mean((rows["estimate"] - truth(rows["x"])) ** 2)) < 0.1, level


# -- gp(x, z): several columns, one length scale ------------------------------------------


@pytest.mark.parametrize("dimension", [2, 3])
@pytest.mark.parametrize("kernel", sorted(KERNELS))
def test_the_spectral_density_in_d_dimensions_integrates_to_the_variance(kernel, dimension):
    # The variance is the density's integral over R^d / (2 pi)^d: radially, with the sphere's
    # area 2 pi r (d = 2) or 4 pi r^2 (d = 3).
    area = {2: lambda r: 2 * np.pi * r, 3: lambda r: 4 * np.pi * r**2}[dimension]
    density = lambda r: spectral_density(kernel, r, 1.3, 1.7, dimension=dimension) * area(r)  # noqa: E731
    total, _ = integrate.quad(density, 0, np.inf, limit=500)
    assert total / (2 * np.pi) ** dimension == pytest.approx(1.3**2, rel=1e-8)


@pytest.mark.parametrize(("kernel", "bound"), [("exp_quad", 0.02), ("matern32", 0.06)])
def test_a_two_column_basis_approximates_the_isotropic_kernel(kernel, bound):
    # 25 functions per column (625), c = 2, length scale 2 on a 30 x 30 grid over [0, 10] x [0, 6]:
    # the basis's covariance against the kernel of the Euclidean distance (measured 0.011 and
    # 0.040; Matern 3/2's spectral density decays slower, so its truncation costs more).
    grid = np.column_stack([np.linspace(0, 10, 30).repeat(30), np.tile(np.linspace(0, 6, 30), 30)])
    term = gp_term(("x", "z"), grid, 25, 2.0, kernel)
    term.means = None
    phi = term.basis(grid)
    approximate = phi @ np.diag(term.density(1.0, 2.0)) @ phi.T
    distance = np.sqrt(((grid[:, None, :] - grid[None, :, :]) ** 2).sum(axis=-1))
    assert term.n_basis == 625 and term.frequencies.shape == (625,)
    assert np.max(np.abs(approximate - KERNELS[kernel](distance, 2.0))) < bound


def _surface(seed=2, n=300):
    rng = np.random.default_rng(seed)
    x, z = rng.uniform(0, 10, n), rng.uniform(0, 10, n)
    return pd.DataFrame({"y": np.sin(x / 2) * np.cos(z / 3) + rng.normal(0, 0.2, n), "x": x, "z": z})


def test_gp_of_two_columns_is_one_term_with_a_basis_per_pair_of_functions():
    model = bm.Model("y ~ gp(x, z, k = 8)", _surface())
    (gp,) = model.design.gps
    assert gp.name == "gp(x, z)" and gp.predictors == ("x", "z") and gp.key == "x_z"
    assert gp.Z.shape == (300, 64) and np.allclose(gp.Z.mean(axis=0), 0.0)
    assert model.design.formula.special_terms == ['gp(x, z, k = 8, c = 1.25, cov = "exp_quad")']
    # The length scale's prior: 1% above the diagonal of the data's box.
    lower, upper = stats.invgamma.ppf([0.01, 0.99], gp.lscale_prior[0], scale=gp.lscale_prior[1])
    assert upper == pytest.approx(np.hypot(*np.ptp(_surface()[["x", "z"]].to_numpy(), axis=0)), rel=1e-3)
    assert 0 < lower < upper


def test_simulate_draws_surfaces_from_a_two_column_gp():
    values = np.linspace(0, 10, 12)
    grid = pd.DataFrame({"x": np.repeat(values, 12), "z": np.tile(values, 12)})
    params = {"Intercept": 0.0, "sdgp(gp(x, z))": 1.5, "lscale(gp(x, z))": 3.0, "sigma": 1e-6}
    sims = bm.simulate("~ gp(x, z, k = 12, c = 1.5)", grid, params=params, seed=4, nsim=3000).to_numpy()
    # Each simulated surface is centred over the rows (the basis is); its spread is the SD's.
    covariance = np.cov(sims)
    assert 0.6 * 1.5**2 < np.mean(np.diag(covariance)) < 1.1 * 1.5**2
    near = np.corrcoef(sims[0], sims[1])[0, 1]  # neighbours 0.91 apart in z
    far = np.corrcoef(sims[0], sims[11])[0, 1]  # 10 apart
    assert near > 0.8 and far < near - 0.5


@pytest.mark.slow
def test_a_gaussian_process_of_two_columns_recovers_a_surface(tmp_path):
    data = _surface()
    fit = quiet_fit(bm.Model("y ~ gp(x, z, k = 10)", data), draws=1000, chains=2, random_seed=1)
    assert fit.idata.attrs["compiled_by"] == "engine"
    assert {"sdgp(gp(x, z))", "lscale(gp(x, z))"} <= set(fit.summary().index)
    grid = pd.DataFrame({"x": np.repeat(np.linspace(1, 9, 9), 9), "z": np.tile(np.linspace(1, 9, 9), 9)})
    draws = fit.predict(grid, kind="mean", summary=False).values.reshape(-1, len(grid))
    truth = np.sin(grid["x"] / 2) * np.cos(grid["z"] / 3)
    mean = draws.mean(axis=0)
    low, high = np.quantile(draws, [0.025, 0.975], axis=0)
    # Against the truth (noise SD 0.2, 300 rows): RMSE below 0.1, the 95% band covering >= 80%.
    assert np.sqrt(np.mean((mean - truth) ** 2)) < 0.1
    assert np.mean((low <= truth) & (truth <= high)) >= 0.8
    with pytest.raises(bm.DataError, match=r"gp\(x, z\): new value 30 of 'z' lies outside"):
        fit.predict(pd.DataFrame({"x": [5.0], "z": [30.0]}))
    fit.save(tmp_path / "surface.nc")  # save/load keeps both columns' domains and the basis
    loaded = bm.load(tmp_path / "surface.nc").predict(grid, kind="mean", summary=False)
    assert np.allclose(loaded.values.reshape(-1, len(grid)), draws)
