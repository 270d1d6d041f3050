"""Parameter recovery: simulate from known parameters, fit, and find them again.

Each check asks the true value to lie within 3 posterior SDs of the posterior
mean (``conftest.assert_recovered`` says why 3).
"""

import numpy as np
import pandas as pd
import pytest
from scipy import special

import bayesmm as bm

from .conftest import assert_recovered, assert_replicates_match, quiet_fit

pytestmark = pytest.mark.slow  # every test here samples, or uses a fit that does

SETTINGS = dict(draws=1000, tune=1000, chains=4, random_seed=11)


def _groups(rng, n_groups, per_group):
    g = np.repeat(np.arange(n_groups), per_group)
    return g, pd.Categorical([f"g{i:02d}" for i in g])


def _effects(rng, n_groups, sds, cor=0.0):
    cov = np.diag(sds) @ np.array([[1.0, cor], [cor, 1.0]])[: len(sds), : len(sds)] @ np.diag(sds)
    return rng.multivariate_normal(np.zeros(len(sds)), cov, size=n_groups)


@pytest.fixture(scope="module")
def gaussian_slopes():
    rng = np.random.default_rng(101)
    g, labels = _groups(rng, 40, 12)
    x = rng.uniform(-2, 2, size=g.size)
    r = _effects(rng, 40, [1.0, 0.5], cor=0.6)
    y = 2.0 + 0.7 * x + r[g, 0] + r[g, 1] * x + rng.normal(0, 0.6, size=g.size)
    data = pd.DataFrame({"y": y, "x": x, "g": labels})
    return quiet_fit(bm.Model("y ~ x + (1 + x | g)", data), **SETTINGS)


def test_gaussian_correlated_slopes(gaussian_slopes):
    assert_recovered(
        gaussian_slopes,
        {
            "Intercept": 2.0,
            "x": 0.7,
            "sd(Intercept|g)": 1.0,
            "sd(x|g)": 0.5,
            "cor(Intercept,x|g)": 0.6,
            "sigma": 0.6,
        },
    )
    # The positive correlation is detected, not just covered.
    assert gaussian_slopes.summary().loc["cor(Intercept,x|g)", "q2.5"] > 0


def test_bernoulli_random_intercepts():
    rng = np.random.default_rng(202)
    g, labels = _groups(rng, 50, 30)
    x = rng.normal(size=g.size)
    r = _effects(rng, 50, [0.8])
    y = rng.binomial(1, special.expit(-0.5 + 1.0 * x + r[g, 0]))
    data = pd.DataFrame({"y": y, "x": x, "g": labels})
    fit = quiet_fit(bm.Model("y ~ x + (1 | g)", data, family="bernoulli"), **SETTINGS)
    assert_recovered(fit, {"Intercept": -0.5, "x": 1.0, "sd(Intercept|g)": 0.8})


def test_binomial_with_cbind_and_probit():
    rng = np.random.default_rng(303)
    g, labels = _groups(rng, 30, 8)
    x = rng.normal(size=g.size)
    n = rng.integers(10, 30, size=g.size)
    r = _effects(rng, 30, [0.5])
    from scipy.stats import norm

    s = rng.binomial(n, norm.cdf(0.3 - 0.6 * x + r[g, 0]))
    data = pd.DataFrame({"s": s, "f": n - s, "x": x, "g": labels})
    fit = quiet_fit(bm.Model("cbind(s, f) ~ x + (1 | g)", data, family="binomial", link="probit"), **SETTINGS)
    assert_recovered(fit, {"Intercept": 0.3, "x": -0.6, "sd(Intercept|g)": 0.5})


def test_poisson_with_offset_and_uncorrelated_slopes():
    rng = np.random.default_rng(404)
    g, labels = _groups(rng, 40, 15)
    x = rng.normal(size=g.size)
    exposure = rng.uniform(0.5, 4.0, size=g.size)
    r = _effects(rng, 40, [0.6, 0.3])
    y = rng.poisson(exposure * np.exp(0.5 + 0.3 * x + r[g, 0] + r[g, 1] * x))
    data = pd.DataFrame({"y": y, "x": x, "exposure": exposure, "g": labels})
    # Seed 12, not the file's 11: this model's sd(Intercept|g) mixes at a bulk ESS of about 450
    # of 4000 (14 seeds: 273-585, R-hat up to 1.017), and after stop 37's changes to the
    # rounding of sums seed 11 drew a tail case (R-hat 1.029, ESS 186); stop 36's build gave
    # the same spread over the 14 seeds (mean ESS 476 against 466 now).
    model = bm.Model("y ~ x + offset(log(exposure)) + (x || g)", data, family="poisson")
    fit = quiet_fit(model, **{**SETTINGS, "random_seed": 12})
    assert_recovered(fit, {"Intercept": 0.5, "x": 0.3, "sd(Intercept|g)": 0.6, "sd(x|g)": 0.3})
    assert "cor(Intercept,x|g)" not in fit.summary().index


def test_beta_proportions():
    rng = np.random.default_rng(505)
    g, labels = _groups(rng, 30, 15)
    x = rng.normal(size=g.size)
    r = _effects(rng, 30, [0.4])
    mu = special.expit(-0.4 + 0.8 * x + r[g, 0])
    y = rng.beta(mu * 20, (1 - mu) * 20)
    data = pd.DataFrame({"y": y, "x": x, "g": labels})
    fit = quiet_fit(bm.Model("y ~ x + (1 | g)", data, family="beta"), **SETTINGS)
    assert_recovered(fit, {"Intercept": -0.4, "x": 0.8, "sd(Intercept|g)": 0.4, "phi": 20.0})


def _one_intercept_layout(seed, n_groups=40, per_group=15, sd=0.5):
    rng = np.random.default_rng(seed)
    g, labels = _groups(rng, n_groups, per_group)
    x = rng.normal(size=g.size)
    r = _effects(rng, n_groups, [sd])
    return rng, x, labels, r[g, 0]


def test_negative_binomial_counts_and_their_zeros():
    rng, x, labels, r = _one_intercept_layout(606)
    mu = np.exp(1.0 + 0.5 * x + r)
    y = rng.negative_binomial(2.0, 2.0 / (2.0 + mu))
    data = pd.DataFrame({"y": y, "x": x, "g": labels})
    fit = quiet_fit(bm.Model("y ~ x + (1 | g)", data, family="negativebinomial"), **SETTINGS)
    assert_recovered(fit, {"Intercept": 1.0, "x": 0.5, "sd(Intercept|g)": 0.5, "alpha": 2.0})
    assert_replicates_match(fit, y)


def test_nb1_counts_whose_variance_grows_linearly_with_the_mean():
    rng, x, labels, r = _one_intercept_layout(616)
    mu = np.exp(1.5 + 0.5 * x + r)
    phi = 3.0  # variance mu (1 + phi)
    y = rng.negative_binomial(mu / phi, 1 / (1 + phi))
    data = pd.DataFrame({"y": y, "x": x, "g": labels})
    fit = quiet_fit(bm.Model("y ~ x + (1 | g)", data, family="nbinom1"), **SETTINGS)
    assert_recovered(fit, {"Intercept": 1.5, "x": 0.5, "sd(Intercept|g)": 0.5, "phi": phi})
    assert_replicates_match(fit, y)


def test_beta_binomial_overdispersed_successes():
    rng, x, labels, r = _one_intercept_layout(626)
    trials = rng.integers(10, 30, size=x.size)
    mu, phi = special.expit(-0.5 + 0.8 * x + r), 8.0
    y = rng.binomial(trials, rng.beta(mu * phi, (1 - mu) * phi))
    data = pd.DataFrame({"y": y, "n": trials, "x": x, "g": labels})
    fit = quiet_fit(bm.Model("y | trials(n) ~ x + (1 | g)", data, family="beta_binomial"), **SETTINGS)
    assert_recovered(fit, {"Intercept": -0.5, "x": 0.8, "sd(Intercept|g)": 0.5, "phi": phi})


def test_cumulative_ordinal_with_random_intercepts():
    # brms's cumulative("logit"): P(y <= k) = logistic(Intercept[k] - eta), eta without intercept.
    rng, x, labels, r = _one_intercept_layout(636, sd=0.8)
    thresholds = np.array([-1.0, 0.3, 1.5])
    latent = 0.9 * x + r + rng.logistic(size=x.size)
    y = 1 + (latent[:, None] > thresholds).sum(axis=1)
    data = pd.DataFrame({"y": y, "x": x, "g": labels})
    fit = quiet_fit(bm.Model("y ~ x + (1 | g)", data, family="cumulative"), **SETTINGS)
    truth = {"x": 0.9, "sd(Intercept|g)": 0.8, **{f"Intercept[{k + 1}]": t for k, t in enumerate(thresholds)}}
    assert_recovered(fit, truth)


def test_categorical_choices_with_random_intercepts():
    rng, x, labels, r = _one_intercept_layout(646, sd=0.6)
    r3 = _effects(rng, 40, [0.6])[pd.Series(labels).cat.codes.to_numpy(), 0]
    logits = np.column_stack([np.zeros(x.size), 0.4 + 0.9 * x + r, -0.3 - 0.7 * x + r3])
    p = special.softmax(logits, axis=1)
    y = 1 + (p.cumsum(axis=1)[:, :-1] < rng.random(x.size)[:, None]).sum(axis=1)
    data = pd.DataFrame({"y": y, "x": x, "g": labels})
    fit = quiet_fit(bm.Model("y ~ x + (1 | g)", data, family="categorical"), **SETTINGS)
    assert_recovered(fit, {"mu2:Intercept": 0.4, "mu2:x": 0.9, "mu3:Intercept": -0.3, "mu3:x": -0.7,
                           "sd(mu2:Intercept|g)": 0.6, "sd(mu3:Intercept|g)": 0.6})  # fmt: skip


def test_gamma_positive_responses():
    rng, x, labels, r = _one_intercept_layout(707)
    mu = np.exp(0.5 - 0.3 * x + r)
    y = rng.gamma(4.0, mu / 4.0)
    model = bm.Model("y ~ x + (1 | g)", pd.DataFrame({"y": y, "x": x, "g": labels}), family="gamma")
    # Informative levels slow the non-centred intercept (README): sample longer, as the diagnostics advise.
    fit = quiet_fit(model, **{**SETTINGS, "draws": 2000})
    assert_recovered(fit, {"Intercept": 0.5, "x": -0.3, "sd(Intercept|g)": 0.5, "shape": 4.0})


def test_student_t_heavy_tails():
    rng, x, labels, r = _one_intercept_layout(808)
    y = 2.0 + 1.0 * x + r + 0.5 * rng.standard_t(4.0, size=x.size)
    fit = quiet_fit(
        bm.Model("y ~ x + (1 | g)", pd.DataFrame({"y": y, "x": x, "g": labels}), family="student"), **SETTINGS
    )
    assert_recovered(fit, {"Intercept": 2.0, "x": 1.0, "sd(Intercept|g)": 0.5, "sigma": 0.5, "nu": 4.0})


def test_lognormal():
    rng, x, labels, r = _one_intercept_layout(909)
    y = np.exp(1.0 + 0.4 * x + r + rng.normal(0, 0.3, size=x.size))
    data = pd.DataFrame({"y": y, "x": x, "g": labels})
    # Informative levels slow the non-centred intercept (README): sample longer, as the diagnostics advise.
    # At 4 x 2000 R-hat of sd(Intercept|g) reached 1.022 with freshly compiled code on PyMC 6 (the draws
    # differ in the last bits between a fresh and a cached compile, and this SD sits on the threshold).
    fit = quiet_fit(bm.Model("y ~ x + (1 | g)", data, family="lognormal"), **{**SETTINGS, "draws": 4000})
    assert_recovered(fit, {"Intercept": 1.0, "x": 0.4, "sd(Intercept|g)": 0.5, "sigma": 0.3})


def test_compound_symmetry_recovers_the_common_correlation():
    rng = np.random.default_rng(1001)
    # Levels only moderately informed by their data (8 rows, residual SD 1): this test is about the
    # cs() covariance, not the non-centred intercept's slow mixing on very informative levels (README).
    g, labels = _groups(rng, 60, 8)
    x, z = rng.normal(size=g.size), rng.normal(size=g.size)
    sds = np.array([1.0, 0.6, 0.4])
    corr = 0.5 + 0.5 * np.eye(3)
    r = rng.multivariate_normal(np.zeros(3), sds[:, None] * corr * sds[None, :], size=60)
    y = 1.0 + 0.5 * x - 0.3 * z + r[g, 0] + r[g, 1] * x + r[g, 2] * z + rng.normal(0, 1.0, size=g.size)
    data = pd.DataFrame({"y": y, "x": x, "z": z, "g": labels})
    fit = quiet_fit(bm.Model("y ~ x + z + cs(1 + x + z | g)", data), **SETTINGS)
    table = fit.summary()
    pairs = ["cor(Intercept,x|g)", "cor(Intercept,z|g)", "cor(x,z|g)"]
    assert table.loc[pairs, "mean"].nunique() == 1  # one shared correlation
    assert_recovered(
        fit, {"sd(Intercept|g)": 1.0, "sd(x|g)": 0.6, "sd(z|g)": 0.4, pairs[0]: 0.5, "sigma": 1.0}
    )
