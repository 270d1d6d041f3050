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


@pytest.mark.parametrize("formula", ["y ~ x + w", "y ~ x * w + (1 + x | g)"])
def test_qr_decomposition_is_the_same_model_in_other_coordinates(formula):
    # decomp="QR" samples theta = R* (b + shift) where the default samples u = sd(x) (b + shift):
    # at matching points the log densities differ by the constant log Jacobian
    # sum(log sd(x_j)) - log |det R*|, whatever the point.
    from bayesmm.model.builder import qr_factors
    from bayesmm.model.fixed import fixed_center

    rng = np.random.default_rng(8)
    n = 80
    x = rng.normal(3, 1, n)
    data = pd.DataFrame({"x": x, "w": 0.8 * x + rng.normal(0, 0.3, n), "g": rng.choice(list("abcde"), n)})
    data["y"] = 1 + data.x - data.w + rng.normal(size=n)
    plain, qr = bm.Model(formula, data, decomp=None), bm.Model(formula, data, decomp="QR")
    design = plain.design
    slopes = [j for j, name in enumerate(design.fixef_names) if name != "Intercept"]
    Xc = design.X[:, slopes] - fixed_center(design)[slopes]
    R, R_inverse = qr_factors(Xc, [design.fixef_names[j] for j in slopes])
    constant = np.sum(np.log(Xc.std(axis=0))) - np.sum(np.log(np.diag(R)))
    logp_qr, logp_plain = qr.pymc_model.compile_logp(), plain.pymc_model.compile_logp()
    (sampled,) = [v.name for v in plain.pymc_model.value_vars if v.name.startswith("b_")]
    for seed in range(3):
        point = {k: np.random.default_rng(seed).normal(scale=0.5, size=np.shape(v))
                 for k, v in qr.pymc_model.initial_point().items()}  # fmt: skip
        matching = {k: v for k, v in point.items() if k != "b_qr"}
        matching[sampled] = Xc.std(axis=0) * (R_inverse @ point["b_qr"])
        assert logp_qr(point) - logp_plain(matching) == pytest.approx(constant, abs=1e-8)


def test_qr_decomposition_refuses_collinear_columns_and_unknown_names():
    data = pd.DataFrame({"x": [1.0, 2, 3, 4, 5, 6], "y": [1.0, 3, 2, 5, 4, 6]})
    data["x2"] = 2 * data.x
    with pytest.raises(bm.DataError, match="decomp='QR' needs linearly independent .*'x2'"):
        bm.Model("y ~ x + x2", data, decomp="QR")
    with pytest.raises(
        ValueError, match="decomp takes 'auto', 'QR' or None \\(as brms's decomp\\), got 'qr'"
    ):
        bm.Model("y ~ x", data, decomp="qr")


def test_qr_decomposition_is_chosen_when_a_slope_column_is_nearly_a_combination_of_others():
    # Variance inflation factors: the owlet model's interaction 170; cbpp's period dummies 1.4.
    owls = (
        "SiblingNegotiation ~ (FoodTreatment + ArrivalTime) * SexParent + offset(log(BroodSize)) + (1 | Nest)"
    )
    model = bm.Model(owls, bm.datasets.load("Owls"), family="zero_inflated_negbinomial")
    assert model.decomp == "QR" and "b_qr" in model.pymc_model.named_vars
    assert (
        bm.Model(owls, bm.datasets.load("Owls"), family="zero_inflated_negbinomial", decomp=None).decomp
        is None
    )
    cbpp = bm.Model("cbind(incidence, size - incidence) ~ period + (1 | herd)", bm.datasets.load("cbpp"),
                    family="binomial")  # fmt: skip
    assert cbpp.decomp is None
    data = pd.DataFrame({"x": [1.0, 2, 3, 4, 5, 6], "y": [1.0, 3, 2, 5, 4, 6]})
    assert bm.Model("y ~ x", data).decomp is None  # one slope: nothing to decorrelate
