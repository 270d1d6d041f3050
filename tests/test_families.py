"""Every family in the registry through the same checks: its pointwise log-likelihood
(from its scipy declaration) against PyMC's log-density of the likelihood it builds (from its
PyMC declaration), and the mean of its draws against its mean. (The category families,
cumulative and categorical, whose linear predictors are shaped by their categories, have
these checks in test_ordinal.py and test_categorical.py.)"""

from types import SimpleNamespace

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import pytest

import bayesmm as bm

# A value for each distributional parameter any family declares.
VALUES = {"sigma": 1.3, "nu": 6.0, "alpha": 2.5, "phi": 8.0, "shape": 3.0, "zi": 0.2, "hu": 0.3}
CATEGORIES = {"cumulative", "categorical"}
ONE_PREDICTOR = sorted(set(bm.FAMILIES) - CATEGORIES)


def _setting(name: str, link: str | None = None):
    family = bm.get_family(name, link)
    n = 30
    rng = np.random.default_rng(sum(map(ord, name)))
    eta = rng.normal(0.2, 0.4, n)
    if family.link.name == "identity" and not family.continuous:  # counts on the identity link
        eta = np.abs(eta) + 1.0
    if family.link.name == "inverse":
        eta = np.abs(eta) + 0.5
    params = {p: np.full(n, VALUES[p]) for p in (*family.params, *family.parts)}
    trials = np.full(n, 12.0) if family.needs_trials else None
    return family, eta, params, trials, rng


def test_the_checks_cover_every_family_but_the_category_ones():
    assert len(ONE_PREDICTOR) == len(bm.FAMILIES) - 2 and "exponential" in ONE_PREDICTOR


@pytest.mark.parametrize("name", ONE_PREDICTOR)
def test_log_likelihood_is_pymcs_log_density(name):
    family, eta, params, trials, rng = _setting(name)
    y = family.draw(eta, params, trials, rng)
    design = SimpleNamespace(y=y, trials=trials, response_name="y", n_obs=len(y))
    with pm.Model():
        observed = family.likelihood("y", pt.as_tensor(eta), {k: pt.as_tensor(v) for k, v in params.items()},
                                     design, None)  # fmt: skip
        pymc = np.asarray(pm.logp(observed, y).eval(), dtype=float)
    ours = family.log_likelihood(y, eta, params, trials)
    np.testing.assert_allclose(ours, pymc, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", ONE_PREDICTOR)
def test_draws_average_to_the_mean(name):
    family, eta, params, trials, rng = _setting(name)
    reps = 20_000
    draws = family.draw(np.broadcast_to(eta, (reps, len(eta))), params, trials, rng)
    mean = family.mean(eta, params, trials)
    se = draws.std(axis=0) / np.sqrt(reps)
    assert np.all(np.abs(draws.mean(axis=0) - mean) < 5 * se + 1e-9), name


def test_the_simple_families_declare_their_distribution_once():
    """likelihood, log_likelihood and draw are not written again by a family with a standard
    distribution; they come from Family, reading its declaration."""
    declared = [c for c in map(bm.get_family, ONE_PREDICTOR) if type(c).pymc_name is not None]
    assert {c.name for c in declared} >= {"gaussian", "student", "lognormal", "gamma", "beta", "exponential",
                                          "bernoulli", "binomial", "beta_binomial", "poisson",
                                          "negativebinomial", "nbinom1"}  # fmt: skip
    for family in declared:
        for method in ("likelihood", "draw"):
            assert getattr(type(family), method) is getattr(bm.Family, method), (family.name, method)


def test_a_new_family_is_found_in_its_own_file():
    from bayesmm.families.exponential import Exponential

    assert bm.FAMILIES["exponential"] is Exponential
    assert bm.get_family("exponential").continuous


def test_lognormal_default_intercept_prior_is_the_gaussians_for_log_y():
    """Its scale is brms's max(2.5, mad(log y)): log y was once logged again inside
    (response_scale on the logged design), NaN where log y < 0 and a floor of 2.5 whatever
    the spread, here 5 on the log scale."""
    import warnings

    import pandas as pd

    rng = np.random.default_rng(3)
    data = pd.DataFrame({"y": np.exp(rng.normal(1.0, 7.5, 60)), "g": np.repeat(list("abcdef"), 10)})
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        model = bm.Model("y ~ 1 + (1 | g)", data, family="lognormal")
    prior = {e.parameter: e.prior for e in model.prior_entries}["Intercept"]
    log_y = np.log(data.y)
    assert prior.params["mu"] == pytest.approx(np.median(log_y))
    assert prior.params["sigma"] == pytest.approx(1.4826 * np.median(np.abs(log_y - np.median(log_y))))
    assert prior.params["sigma"] > 2.5
