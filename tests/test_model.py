"""The PyMC graph against a hand computation: X beta + Z b, the family's scipy log-density."""

import numpy as np
import pandas as pd
import pymc as pm
import pytest
from scipy import special, stats

import bayesmm as bm

from .conftest import at_random_point


@pytest.fixture(scope="module")
def frame():
    rng = np.random.default_rng(42)
    n = 60
    return pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "z": rng.normal(size=n),
            "g": rng.choice(list("abcdef"), size=n),
            "h": rng.choice(["u", "v", "w"], size=n),
            "exposure": rng.uniform(1, 3, size=n),
            "trials": rng.integers(5, 15, size=n),
            "y": rng.normal(size=n),
            "count": rng.poisson(2, size=n),
            "binary": rng.integers(0, 2, size=n),
        }
    ).assign(
        successes=lambda d: np.minimum(d["count"], d["trials"]),
        proportion=lambda d: rng.beta(2, 3, size=n),
        positive=lambda d: rng.gamma(2.0, 1.5, size=n),
    )


def _dense_eta(model, values):
    design = model.design
    blocks = []
    for group, terms in design.groups.items():
        r = values[f"r_{group}"]
        start = 0
        for term in terms:
            # Level-major order, as the columns of the term's Z block.
            blocks.append(r[:, start : start + term.n_terms].ravel())
            start += term.n_terms
    eta = design.X @ values["fixef"] + model.Z @ np.concatenate(blocks)
    return eta + (design.offset if design.offset is not None else 0.0)


def test_gaussian_with_several_terms_and_an_offset(frame):
    model = bm.Model("y ~ x + offset(0.5 * z) + (1 + x | g) + (0 + z | g) + (1 | h)", frame)
    loglik, values = at_random_point(model)
    eta = _dense_eta(model, values)
    assert model.design.fixef_names == ["Intercept", "x"]
    assert values["r_g"].shape == (6, 3)
    assert loglik == pytest.approx(stats.norm(eta, values["sigma"]).logpdf(frame.y).sum(), rel=1e-9)


def test_centering_keeps_the_reported_intercept_on_the_user_scale(frame):
    # With x far from zero the sampled intercept is at mean(x); the reported one at x = 0.
    shifted = frame.assign(x=frame.x + 100.0)
    model = bm.Model("y ~ x + (1 | g)", shifted)
    loglik, values = at_random_point(model, seed=3)
    eta = _dense_eta(model, values)
    assert loglik == pytest.approx(stats.norm(eta, values["sigma"]).logpdf(shifted.y).sum(), rel=1e-9)


@pytest.mark.parametrize(
    "formula, family, link, logpmf",
    [
        (
            "binary ~ x + (1 | g)",
            "bernoulli",
            None,
            lambda y, mu, d, p: stats.bernoulli(special.expit(mu)).logpmf(y),
        ),
        (
            "binary ~ x + (1 | g)",
            "bernoulli",
            "probit",
            lambda y, mu, d, p: stats.bernoulli(special.ndtr(mu)).logpmf(y),
        ),
        (
            "cbind(successes, trials - successes) ~ x + (x || g)",
            "binomial",
            None,
            lambda y, mu, d, p: stats.binom(d.trials, special.expit(mu)).logpmf(y),
        ),
        (
            "successes ~ x + (1 | g)",
            "binomial",
            "cloglog",
            lambda y, mu, d, p: stats.binom(d.trials, -np.expm1(-np.exp(mu))).logpmf(y),
        ),
        (
            "proportion ~ x + (1 | g)",
            "beta",
            None,
            lambda y, mu, d, p: stats.beta(
                special.expit(mu) * p["phi"], (1 - special.expit(mu)) * p["phi"]
            ).logpdf(y),
        ),
        (
            "count ~ x + (1 | g)",
            "negativebinomial",
            None,
            lambda y, mu, d, p: stats.nbinom(p["alpha"], p["alpha"] / (p["alpha"] + np.exp(mu))).logpmf(y),
        ),
        (
            "positive ~ x + (1 | g)",
            "gamma",
            None,
            lambda y, mu, d, p: stats.gamma(p["shape"], scale=np.exp(mu) / p["shape"]).logpdf(y),
        ),
        (
            "y ~ x + (1 | g)",
            "student",
            None,
            lambda y, mu, d, p: stats.t(p["nu"], mu, p["sigma"]).logpdf(y),
        ),
        (
            "positive ~ x + (x || g)",
            "lognormal",
            None,
            lambda y, mu, d, p: stats.lognorm(p["sigma"], scale=np.exp(mu)).logpdf(y),
        ),
        (
            "count ~ x + offset(log(exposure)) + (1 + x | g)",
            "poisson",
            None,
            lambda y, mu, d, p: stats.poisson(np.exp(mu)).logpmf(y),
        ),
    ],
)
def test_other_families_match_scipy(frame, formula, family, link, logpmf):
    trials = "trials" if formula.startswith("successes") else None
    model = bm.Model(formula, frame, family=family, link=link, trials=trials)
    loglik, values = at_random_point(model, seed=7)
    eta = _dense_eta(model, values)
    expected = logpmf(model.design.y, eta, frame, values).sum()
    assert loglik == pytest.approx(expected, rel=1e-8)


def test_uncorrelated_terms_have_no_correlation_parameters(frame):
    model = bm.Model("y ~ x + (x || g)", frame)
    names = {v.name for v in model.pymc_model.deterministics}
    assert "cor_g" not in names
    assert "sd_g" in names


def test_compound_symmetry_covariance(frame):
    model = bm.Model("y ~ x + cs(1 + x + z | g)", frame)
    assert model.priors.loc["cor(g)", "prior"] == "Uniform(lower=-0.5, upper=1)"
    assert model.priors.loc["cor(g)", "class"] == "cs"
    loglik, values = at_random_point(model, seed=5)
    eta = _dense_eta(model, values)
    assert loglik == pytest.approx(stats.norm(eta, values["sigma"]).logpdf(frame.y).sum(), rel=1e-9)
    cors = pm.draw(model.pymc_model["cor_g"], random_seed=1)
    assert cors.shape == (3,) and np.ptp(cors) == 0  # one correlation for every pair
