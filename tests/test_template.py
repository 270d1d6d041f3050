"""The engine's programs written from the design (bayesmm.inference.template) against PyMC's
model: log-density, gradient and every variable of the trace at random points, for each
family, link, term form and prior family the template covers; and what it leaves to the graph."""

import numpy as np
import pandas as pd
import pytensor
import pytest
from pytensor.compile.mode import Mode

import bayesmm as bm
from bayesmm.inference import blocks, engine, native, sampling, template

from .conftest import quiet_fit
from .test_engine import _EXPAND, _LOGP, _opcodes, _user_data

pytestmark = pytest.mark.skipif(engine.cfuncs() is None, reason="the extension module is not built")


def _data(seed=5):
    rng = np.random.default_rng(seed)
    n = 180
    g = rng.integers(0, 9, n)
    h = np.tile(np.arange(6), n // 6 + 1)[:n]
    x, u = rng.normal(size=n), rng.normal(40, 12, n)
    eta = 0.2 + 0.4 * x + rng.normal(0, 0.6, 9)[g]
    return pd.DataFrame({
        "g": np.array(list("abcdefghi"))[g], "h": h.astype(str), "x": x, "u": u,
        "c": np.where(rng.random(n) < 0.5, "lo", "hi"),
        "count": rng.poisson(np.exp(eta)), "yes": (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int),
        "k": rng.binomial(7, 1 / (1 + np.exp(-eta))), "trials": 7, "y": eta + rng.normal(0, 0.5, n),
        "gx": rng.normal(size=9)[g], "hg": [f"{a}.{b}" for a, b in zip(h, g, strict=True)],
        "w": rng.normal(0.3, 0.7, n), "pos": np.exp(eta + rng.normal(0, 0.3, n)),
        "prop": 1 / (1 + np.exp(-eta - rng.normal(0, 0.5, n))),
        "wt": rng.uniform(0.2, 3.0, n), "s": rng.uniform(0.1, 0.6, n),
        "cen": (rng.random(n) < 0.2).astype(int), "k1": rng.integers(1, 5, n),
        "c4": rng.choice([-1, 0, 1, 2], n, p=[0.15, 0.55, 0.15, 0.15]), "up": rng.uniform(1.2, 2.0, n),
    }).assign(  # interval bounds above y, truncation bounds around it
        y2=lambda d: d["y"] + d["up"], p2=lambda d: d["pos"] * d["up"], lo=lambda d: d["pos"] / d["up"],
        hi=lambda d: d["pos"] * 3.0, ylo=lambda d: d["y"] - d["up"], hx=lambda d: d["h"].astype(float) / 5.0,
        k0=lambda d: np.where(d["count"] == 0, 0, d["k"]),  # a third of them 0
        c2=lambda d: d["count"] + 2, cp=lambda d: d["count"] + 1, c3=lambda d: d["c4"].where(d["c4"] != 1, 0),
    )  # fmt: skip


_CENTRED = {"centered": True}
_WEIBULL = bm.Prior("Weibull", alpha=2, beta=1)
_CAUCHY = bm.Prior("Cauchy", alpha=0.1, beta=2.0)
_POSITIVE = bm.Prior("Uniform", lower=0, upper=1)
_NORMAL = bm.Prior("Normal", mu=0.2, sigma=2)
_NONCENTRED = {"centered": False}
# A known covariance of g's nine levels (gr(g, cov = A)).
_B = np.random.default_rng(3).normal(size=(9, 9))
_KNOWN = {
    "data2": {
        "A": pd.DataFrame(_B @ _B.T / 9 + np.eye(9), index=list("abcdefghi"), columns=list("abcdefghi"))
    }
}
CASES = [
    ("y ~ x + (1 | g) + (1 | h)", "gaussian", {}),
    ("y ~ 1 + (1 | g) + (1 | h)", "gaussian", _NONCENTRED),
    ("y ~ x + u + c + (1 | g)", "gaussian", _NONCENTRED),
    ("count ~ x + (1 | g)", "poisson", _CENTRED),
    ("count ~ x + c + (1 | g) + (1 | h)", "poisson", _NONCENTRED),
    ("count ~ 0 + x + (1 | g)", "poisson", {}),
    ("yes ~ x + u + (1 | g) + (1 | h)", "bernoulli", {}),
    ("yes ~ c + (1 | g)", "bernoulli", _CENTRED),
    ("cbind(k, trials - k) ~ x + (1 | g)", "binomial", _NONCENTRED),
    ("cbind(k, trials - k) ~ u + (1 | h)", "binomial", _CENTRED),
    ("count ~ x", "poisson", {}),
    ("count ~ x + gx + (1 | g)", "poisson", _NONCENTRED),  # a predictor constant within levels
    # Centred terms drawn around the fixed effects of predictors constant within their levels
    # (epil's subjects' baseline counts, VerbAgg's subjects' anger).
    ("count ~ x + gx + (1 | g)", "poisson", _CENTRED),
    ("yes ~ x + gx + c + (1 | g) + (1 | h)", "bernoulli", _CENTRED),
    # A nested pair with the parent's effects integrated out of the child's prior (grouseticks'
    # broods in locations, Pastes' casks in batches), with and without predictors constant
    # within the child's levels; and a term nested in two crossed ones, centred around both.
    ("count ~ x + (1 | h) + (1 | hg)", "poisson", _CENTRED),
    ("y ~ x + gx + (1 | g) + (1 | hg)", "gaussian", _CENTRED),
    ("count ~ x + gx + (1 | g) + (1 | hg)", "poisson", _CENTRED),
    ("count ~ x + (1 | h) + (1 | g) + (1 | hg)", "poisson", _CENTRED),
    # ... with slopes whose prior is not centred at 0 (a nested child's levels start at their mean).
    ("count ~ x + gx + (1 | g) + (1 | hg)", "poisson", {**_CENTRED, "priors": {"b": _NORMAL}}),
    # Prior families: the template's table of each (bayesmm.inference.kernel's).
    ("count ~ x + (1 | g)", "poisson", {"priors": {"b": bm.Prior("StudentT", nu=4, mu=0.5, sigma=2),
                                                   "Intercept": bm.Prior("Normal", mu=1, sigma=3),
                                                   "sd": bm.Prior("HalfNormal", sigma=1.5)}}),
    ("y ~ x + (1 | g) + (1 | h)", "gaussian", {"priors": {"sd": bm.Prior("Exponential", lam=2.0),
                                                         "sigma": bm.Prior("HalfCauchy", beta=2.0)},
                                              **_NONCENTRED}),
    ("count ~ x + (1 | g)", "poisson", {"priors": {"sd": bm.Prior("Gamma", alpha=2, beta=1)}}),
    ("count ~ x + (1 | g)", "poisson", {"priors": {"sd": bm.Prior("Gamma", mu=1.5, sigma=0.8)},
                                        **_NONCENTRED}),
    # The negative binomial (its shape's Gamma prior), and offsets (Owls' log brood size).
    ("count ~ x + (1 | g)", "negativebinomial", {}),
    ("count ~ x + c + (1 | g) + (1 | h) + offset(log(u))", "negativebinomial", _NONCENTRED),
    ("count ~ x + offset(0.1 * u)", "poisson", {}),
    # Terms of several columns: uncorrelated ((x || g), diag()), correlated (the LKJ prior's
    # C-vine), several terms of one factor, columns that are not fixed slopes, non-centred and
    # centred; the slopes sheared by their mean group effects.
    ("count ~ x + (x || g)", "poisson", _NONCENTRED),
    ("count ~ x + (x | g)", "poisson", _NONCENTRED),
    ("yes ~ x + w + (x + w | g) + (1 | h)", "bernoulli", _NONCENTRED),
    ("y ~ x + (x | g) + (1 | h)", "gaussian", {"priors": {"cor": bm.Prior("LKJ", eta=2.0)}, **_NONCENTRED}),
    ("count ~ x + (1 | g) + (0 + w | g)", "poisson", {}),
    ("count ~ x + diag(x + w | g)", "poisson", _CENTRED),
    ("count ~ x + (x | g)", "poisson", _CENTRED),
    ("cbind(k, trials - k) ~ x + w + (x + w | h)", "binomial", _CENTRED),
    ("count ~ 0 + x + (x | g)", "poisson", _NONCENTRED),
    ("count ~ c + (c | g)", "negativebinomial", _NONCENTRED),
    # One correlation: compound symmetry and AR(1) (its Uniform prior on an interval).
    ("count ~ x + cs(x + w | g)", "poisson", _NONCENTRED),
    ("count ~ x + cs(x | g) + (1 | h)", "poisson", _CENTRED),
    ("count ~ x + ar1(0 + factor(h) | g)", "poisson", _NONCENTRED),
    ("yes ~ x + ar1(0 + factor(h) | g)", "bernoulli", {"priors": {"cor(g)": _POSITIVE}, **_CENTRED}),
    # Zero-inflated and hurdle counts, their zi= and hu= formulas (the default ~ 1, slopes and
    # group effects, whose intercept is sheared), and a Gaussian dispersion= formula.
    ("count ~ x + (1 | g)", "zero_inflated_poisson", {}),
    ("count ~ x + (1 | g)", "zero_inflated_negbinomial", {"zi": "~ x + (1 | h)", **_NONCENTRED}),
    ("count ~ x + c + (1 | g)", "hurdle_poisson", _CENTRED),
    ("count ~ x + (1 | g)", "hurdle_negbinomial", {"hu": "~ c"}),
    ("y ~ x + (1 | g)", "gaussian", {"dispersion": "~ x + (1 | h)", **_NONCENTRED}),
    ("y ~ x + (1 | g)", "gaussian", {"dispersion": "~ 1", **_CENTRED}),
    # Continuous families: Student-t (nu and sigma constant or by formula), lognormal, gamma
    # and beta (their dispersion by formula).
    ("y ~ x + (1 | g)", "student", _NONCENTRED),
    ("y ~ x + (1 | g) + (1 | h)", "student", {"dpars": {"nu": "~ 1"}, "dispersion": "~ x", **_CENTRED}),
    ("pos ~ x + (1 | g)", "lognormal", {}),
    ("pos ~ x + (x | g)", "gamma", _NONCENTRED),
    ("pos ~ x + (1 | g)", "gamma", {"dispersion": "~ x", **_CENTRED}),
    ("prop ~ x + (1 | g) + (1 | h)", "beta", {}),
    ("prop ~ x + (1 | g)", "beta", {"dispersion": "~ x + (1 | h)", **_NONCENTRED}),
    # Slopes through the QR decomposition of their columns, sheared or not, one prior family
    # or Normal priors of their own.
    ("y ~ x + u + (1 | g)", "gaussian", {"decomp": "QR", **_NONCENTRED}),
    ("count ~ x + w + c + (x | g)", "poisson", {"decomp": "QR", **_CENTRED}),
    ("yes ~ x + gx + (1 | g)", "bernoulli", {"decomp": "QR", "priors": {"b": _NORMAL}, **_CENTRED}),
    # NB1 (a negative binomial of shape mu / phi, row by row) and the beta-binomial.
    ("count ~ x + (1 | g)", "nbinom1", {}),
    ("count ~ x + c + (1 | g)", "nbinom1", {"dispersion": "~ x", **_CENTRED}),
    ("cbind(k, trials - k) ~ x + (1 | g)", "beta_binomial", {}),
    ("cbind(k, trials - k) ~ x + (1 | g)", "beta_binomial", {"link": "probit", "dispersion": "~ w"}),
    # The other links (an offset keeps the mean away from 0 at the test's points where it
    # must be: positive, or for sqrt, where PyMC's log(1 - P(0)) of a small mean loses digits).
    ("pos ~ x + (1 | g)", "gaussian", {"link": "log"}),
    ("pos ~ x + (1 | g)", "student", {"link": "log"}),
    ("pos ~ x + (1 | g) + offset(u)", "gamma", {"link": "identity"}),
    ("pos ~ x + (1 | g) + offset(u)", "gamma", {"link": "inverse", "dispersion": "~ x"}),
    ("pos ~ x + (1 | g)", "exponential", {}),
    ("pos | weights(wt) ~ x + (1 | g) + offset(u)", "exponential", {"link": "inverse"}),
    ("prop ~ x + (1 | g)", "beta", {"link": "probit"}),
    ("prop ~ x + (1 | g)", "beta", {"link": "cloglog"}),
    ("count ~ x + (1 | g) + offset(u)", "poisson", {"link": "identity"}),
    ("count ~ x + (1 | g) + offset(u)", "negativebinomial", {"link": "sqrt"}),
    ("count ~ x + (1 | g) + offset(u)", "zero_inflated_negbinomial", {"link": "identity"}),
    ("count ~ x + (1 | g) + offset(w + 3)", "hurdle_poisson", {"link": "sqrt"}),
    # Likelihood weights (each row's log-likelihood times its weight) and known SEs.
    ("y | weights(wt) ~ x + (1 | g)", "gaussian", _NONCENTRED),
    ("count | weights(wt) ~ x + (1 | g)", "zero_inflated_negbinomial", {"zi": "~ x"}),
    ("cbind(k, trials - k) | weights(wt) ~ x + (1 | g)", "binomial", {"link": "probit"}),
    ("pos | weights(wt) ~ x + (1 | g)", "gamma", {"dispersion": "~ x"}),
    ("y | se(s) ~ x + (1 | g)", "gaussian", _CENTRED),
    ("y | se(s, sigma = TRUE) ~ x + (1 | g) + (1 | h)", "student", {}),
    # The probit and cloglog links.
    ("yes ~ x + (1 | g)", "bernoulli", {"link": "probit"}),
    ("yes ~ x + c + (1 | g) + (1 | h)", "bernoulli", {"link": "cloglog", **_NONCENTRED}),
    ("cbind(k, trials - k) ~ x + (1 | g)", "binomial", {"link": "probit", **_CENTRED}),
    ("cbind(k, trials - k) ~ u + (1 | h)", "binomial", {"link": "cloglog"}),
    ("y ~ x + (1 | g) + offset(u)", "gaussian", _CENTRED),
    # Ordinal (the ordered thresholds take the intercept's place) and categorical responses
    # (a linear predictor per category but the first, the mean's formula or its own).
    ("k1 ~ x + (1 | g)", "cumulative", {}),
    ("k1 | weights(wt) ~ x + c + (x | g) + (1 | h)", "cumulative", _CENTRED),
    ("k1 ~ x + (1 | g)", "cumulative", {"link": "probit", **_NONCENTRED}),
    ("k1 ~ x + (1 | g)", "categorical", {}),
    ("k1 ~ x + (1 | g)", "categorical", {"dpars": {"mu3": "~ 1", "mu4": "~ w + (1 | h)"}}),
    # Weibull lifetimes (the linear predictor models the mean; a shape formula).
    ("pos ~ x + (1 | g)", "weibull", {}),
    ("pos ~ x + (1 | g) + offset(u)", "weibull", {"link": "identity", "dispersion": "~ x"}),
    # Censoring (right, left and interval, brms's codes) and truncation (each row's bounds).
    ("y | cens(cen) ~ x + (1 | g)", "gaussian", _NONCENTRED),
    ("y | cens(c4, y2) + trunc(lb = ylo) ~ x + (1 | g)", "gaussian", {"dispersion": "~ x", **_CENTRED}),
    ("pos | cens(c4, p2) ~ x + (1 | g)", "lognormal", {}),
    ("pos | weights(wt) + cens(c4, p2) ~ x + (1 | g)", "weibull", {"dispersion": "~ x", **_NONCENTRED}),
    ("pos | trunc(lb = lo, ub = hi) ~ x + (1 | g)", "weibull", {}),
    ("pos | cens(c4, p2) + trunc(ub = hi) ~ x + (1 | g)", "exponential", {}),
    ("pos | trunc(lb = lo) ~ x + (1 | g)", "lognormal", {"link": "identity"}),
    # The gamma's CDF is P(k, k y / mu), differentiated in its sampled shape k too.
    ("pos | cens(c4, p2) ~ x + (1 | g)", "gamma", {}),
    ("pos | cens(cen) + trunc(lb = lo, ub = hi) ~ x + (1 | g)", "gamma", {"dispersion": "~ x", **_CENTRED}),
    # Priors of more families: location-scale (sheared where slopes are), positive, flat.
    ("count ~ x + (1 | g)", "poisson", {"priors": {"sd": _WEIBULL, "b": _CAUCHY}}),
    ("yes ~ x + (x | g)", "bernoulli", {"priors": {"b": bm.Prior("Laplace", mu=0.1, b=1.5),
                                                  "sd": bm.Prior("LogNormal", mu=-0.5, sigma=0.7)}}),
    ("y ~ x + w + (1 | g)", "gaussian", {"priors": {"Intercept": bm.Prior("Gumbel", mu=0.2, beta=2.0),
                                                     "sigma": bm.Prior("LogNormal", sigma=1.0)}}),
    ("y ~ x + (1 | g)", "gaussian", {"priors": {"b": bm.Prior("Flat"), "sigma": bm.Prior("HalfFlat")}}),
    # Varying monotonic effects: the term's column is mo(x)'s transform, sampled.
    ("count ~ mo(k1) + (mo(k1) | g)", "poisson", _NONCENTRED),
    ("y ~ x + mo(k1) + (1 + mo(k1) | g) + (1 | h)", "gaussian", {"centered": {"h": True}}),
    # The negative binomial's, Student-t's and beta's CDFs are incomplete beta functions,
    # differentiated in their shapes too (Boik and Robison-Cox).
    ("count | cens(c3, c2) ~ x + (1 | g)", "negativebinomial", {}),
    ("cp | trunc(lb = 1, ub = c2) ~ x + (1 | g)", "nbinom1", {"dispersion": "~ x"}),
    ("y | cens(c4, y2) ~ x + (1 | g)", "student", {}),
    ("y | trunc(lb = ylo) ~ x + (1 | g)", "student", {"dispersion": "~ x", **_CENTRED}),
    ("pos | cens(cen) ~ x + (1 | g)", "student", {"link": "log"}),
    ("prop | cens(cen) ~ x + (1 | g)", "beta", {}),
    # A count's CDF is the incomplete gamma function. Its right-censored rows are left out
    # here: PyMC's Poisson logccdf is log(1 - F), which loses digits where F is near 1 (its
    # gradient 6e-8 off at these points); test_the_tails_... holds the template's to scipy.
    ("count | cens(c3, c2) ~ x + (1 | g)", "poisson", {}),
    ("cp | trunc(lb = 1, ub = c2) ~ x + (1 | g)", "poisson", {"link": "sqrt", **_NONCENTRED}),
    # Gaussian models with one grouping factor's effects integrated out (the default with one
    # factor; bayesmm.inference.woodbury): from sufficient statistics (each covariance
    # structure, several terms, QR, priors of other families, no intercept, offsets), and
    # beside sampled factors, from the rows' residuals.
    ("y ~ x + (x | g)", "gaussian", {}),
    ("y ~ 1 + (1 | g) + offset(u)", "gaussian", {"priors": {"sd": bm.Prior("Gamma", alpha=2, beta=1)}}),
    ("y ~ 0 + x + (x || g)", "gaussian", {}),
    ("y ~ x + w + cs(x + w | g)", "gaussian", {"decomp": "QR"}),
    ("y ~ x + (1 | g) + (0 + w | g)", "gaussian", {}),
    ("y ~ x + ar1(0 + factor(h) | g)", "gaussian", {}),
    ("y ~ x + (1 | g) + (x | h)", "gaussian", {"collapsed": True}),
    ("y ~ x + gx + (1 | g) + (1 | h) + offset(u)", "gaussian", {"collapsed": True, "centered": {"h": True}}),
    # Smooths (s(w) of the Bernoulli model partially centred: see the test below) and
    # Hilbert-space GPs of each kernel, of two predictors and by a factor.
    ("y ~ s(x) + (1 | g)", "gaussian", {"collapsed": False}),
    ("count ~ s(x, k = 6) + w + (1 | g)", "poisson", {}),
    ("yes ~ s(x) + s(w) + (1 | h)", "bernoulli", {}),
    ("y ~ gp(x) + (1 | g)", "gaussian", {"collapsed": False}),
    ("count ~ gp(x, cov = 'matern32') + (1 | g)", "poisson",
     {"priors": {"lscale": bm.Prior("InverseGamma", alpha=3, beta=2)}}),
    ("count ~ gp(x, w, k = 4) + (1 | g)", "poisson", {}),
    ("count ~ gp(x, cov = 'matern52', by = c) + (1 | g)", "poisson", {}),
    # The negative binomial's shape by formula, plain and zero-altered.
    ("count ~ x + (1 | g)", "negativebinomial", {"dispersion": "~ x"}),
    ("count ~ x + (1 | g)", "zero_inflated_negbinomial", {"dispersion": "~ x + (1 | h)"}),
    ("count ~ x + (1 | g)", "hurdle_negbinomial", {"dispersion": "~ c"}),
    # The zero-altered NB1 and the zero-inflated binomial.
    ("count ~ x + (1 | g)", "zero_inflated_nbinom1", {}),
    ("count ~ x + (1 | g)", "hurdle_nbinom1", {"hu": "~ x", "dispersion": "~ c", **_CENTRED}),
    ("k0 ~ x + (1 | g)", "zero_inflated_binomial", {"trials": "trials"}),
    ("k0 | weights(wt) ~ x + (1 | g)", "zero_inflated_binomial",
     {"trials": "trials", "link": "probit", "zi": "~ x"}),
    # Reduced-rank terms (rr(): the loadings, the SDs and correlations they imply), sampled
    # and integrated out.
    ("y ~ x + rr(x + w | g, 1)", "gaussian", _NONCENTRED),
    ("count ~ x + rr(x + w | g, 2) + (1 | h)", "poisson", {}),
    ("yes ~ x + rr(0 + factor(h) | g, 2)", "bernoulli", {}),
    ("y ~ x + rr(x + w | g, 2) + (1 | h)", "gaussian", {"collapsed": True}),
    # Levels with a known covariance (gr(cov = A): the effects times A's Cholesky factor).
    ("y ~ x + (1 | gr(g, cov = A))", "gaussian", _KNOWN),
    ("count ~ x + (1 + x | gr(g, cov = A)) + (1 | h)", "poisson", _KNOWN),
    # Monotonic effects (the simplex's transform and its Dirichlet prior).
    ("count ~ mo(k1) + (1 | g)", "poisson", {}),
    ("y ~ x + mo(k1) + (1 | g)", "gaussian",
     {"collapsed": False, "priors": {"simo(mo(k1))": bm.Prior("Dirichlet", a=[2, 1, 3])}}),
]  # fmt: skip


def _model(formula, family, options):
    model = bm.Model(formula, _data(), family=family, **options)
    return model, sampling.data_model(model.sampled_model, model.design.n_obs).model


def _run(logp, expand, x):
    """The programs run by the engine's C functions at ``x``: log-density, gradient, trace."""
    user = _user_data(logp, expand)
    c_logp, c_expand = (f(c.address) for f, c in zip((_LOGP, _EXPAND), engine.cfuncs(), strict=True))
    n_dim, n_expanded = x.size, logp.layout["n_expanded"]
    gradient, value, trace = np.zeros(n_dim), np.zeros(1), np.zeros(n_expanded)
    assert c_logp(n_dim, x.ctypes.data, gradient.ctypes.data, value.ctypes.data, user.ctypes.data) == 0
    assert c_expand(n_dim, n_expanded, x.ctypes.data, trace.ctypes.data, user.ctypes.data) == 0
    return value[0], gradient, trace


def _pymc(pymc_model):
    """PyMC's log-density, its gradient and the trace's other variables as a function of the
    free variables' values (PyTensor's Python linker, unrewritten)."""
    values = [pymc_model.rvs_to_values[rv] for rv in pymc_model.free_RVs]
    logp = pymc_model.logp()
    remaining = [v for v in pymc_model.unobserved_value_vars if v.name not in {u.name for u in values}]
    outputs = [logp, *pytensor.grad(logp, values), *remaining]
    mode = Mode(linker="py", optimizer=None)
    function = pytensor.function(values, outputs, mode=mode, on_unused_input="ignore")
    return values, function


@pytest.mark.parametrize(("formula", "family", "options"), CASES)
def test_the_written_programs_are_pymcs_log_density_gradient_and_trace(formula, family, options):
    model, pymc_model = _model(formula, family, options)
    assert template.why_not(pymc_model, model) is None
    logp, expand = template.program(pymc_model, model)
    layout = logp.layout
    assert layout == engine.graphs(pymc_model).layout  # names, shapes and order of the trace
    # PyMC's cloglog Bernoulli takes log(1 - p) of p = -expm1(-exp(eta)), which rounds to
    # log(0) = -inf once eta > 3.6 (the template's -exp(eta) is exact): points nearer the
    # prior's centre keep every eta below that. PyMC's OrderedProbit and the normal's log-CDF
    # divide by pt.sqrt(2.0), a float32 constant (2.4e-8 off), which moves their log-density
    # by up to 1.4e-8 and gradient by up to 3.5e-7 relative here; test_the_ordinal_... and
    # test_the_tails_... hold the template's to scipy's at 1e-12.
    normal_cdf = (family == "cumulative" and options.get("link") == "probit") or (
        family in ("gaussian", "lognormal") and ("cens(" in formula or "trunc(" in formula)
    )
    # The unrewritten gradient of PyMC's normal log-CDF (the reference here; its rewrites
    # remove this) is NaN wherever a row's z is beyond 8.3 on the side its switch does not
    # take (the other branch's log1p(-1) = -inf times 0): censored normal rows take points
    # nearer the centre, and such points are passed over.
    # The incomplete gamma and beta functions' tails (the censored gamma, Poisson, negative
    # binomials, Student-t and beta): PyMC takes log F as log(gammainc) or log(betainc), which
    # near F = 1 keeps the absolute digits of 1 - F, not its relative ones, so an interval's
    # log(F(y2) - F(y)) in the upper tail (a difference of two such logs, as in brms's
    # log_diff_exp) loses digits, up to all of them: a censored gamma's log-density was 2e-4
    # off at one of 40 points, where PyMC's finite differences disagree with its own gradient
    # (the template's log F keeps 1 - F's digits: engine.c's gamma_log_tail and beta_log_tail,
    # held to scipy by test_the_tails_... and test_the_incomplete_...). Such points are passed
    # over, and PyMC's lost digits (up to 5e-8 in the gradient) are allowed for.
    gamma_cdf = family in ("gamma", "poisson", "negativebinomial", "nbinom1", "student", "beta") and (
        "cens(" in formula or "trunc(" in formula
    )
    spread = 0.4 if options.get("link") == "cloglog" or normal_cdf or gamma_cdf else 0.8
    if normal_cdf or gamma_cdf:
        _assert_pymcs(pymc_model, logp, expand, rtol=1e-7, spread=spread, atol=1e-6, smooth=gamma_cdf)
    else:
        _assert_pymcs(pymc_model, logp, expand, spread=spread)


def _assert_pymcs(pymc_model, logp, expand, rtol=1e-10, spread=0.8, atol=1e-9, smooth=False):
    """The programs' log-density, gradient and trace are PyMC's at 4 random points (each
    coordinate Normal(0, ``spread``)); points where PyMC's gradient is not finite (its
    normal log-CDF's, see above) are passed over, the programs' finite there too; with
    ``smooth``, so are points where PyMC's log-density's central difference along a random
    direction is not its gradient's (to 1e-6: it has lost its digits there, see above)."""
    layout = logp.layout
    values, function = _pymc(pymc_model)
    rng = np.random.default_rng(11)
    compared = 0
    for _ in range(40):
        x = rng.normal(0.0, spread, layout["n_dim"])
        pieces = list(zip(layout["slices"][: len(values)], layout["shapes"][: len(values)], strict=True))
        theirs = function(*[x[a:b].reshape(s) for (a, b), s in pieces])
        ours = _run(logp, expand, x)
        assert np.isfinite(ours[0]) and np.all(np.isfinite(ours[1]))  # else the comparison says little
        gradient = np.concatenate([np.ravel(g) for g in theirs[1 : 1 + len(values)]])
        if not np.all(np.isfinite(gradient)):
            continue
        if smooth:
            u, h = rng.normal(size=x.size), 1e-5
            ahead, behind = (
                function(*[(x + s * u)[a:b].reshape(z) for (a, b), z in pieces])[0] for s in (h, -h)
            )
            if abs((ahead - behind) / (2 * h) - gradient @ u) > 1e-6 * (1 + abs(gradient @ u)):
                continue
        trace = np.concatenate([x, *[np.ravel(v) for v in theirs[1 + len(values) :]]])
        np.testing.assert_allclose(ours[0], theirs[0], rtol=rtol)
        np.testing.assert_allclose(ours[1], gradient, rtol=10 * rtol, atol=atol)
        np.testing.assert_allclose(ours[2], trace, rtol=rtol, atol=1e-12)
        compared += 1
        if compared == 4:
            return
    pytest.fail(f"PyMC's gradient is finite at {compared} of 40 points")


def test_a_partially_centred_smooth_is_among_the_cases():
    """The case of a smooth whose coefficients are partially centred (weights above 0:
    bayesmm.model.parameterization.smooth_centring) stays one, so that its prior is tested."""
    model, _ = _model("yes ~ s(x) + s(w) + (1 | h)", "bernoulli", {})
    assert max(float(np.max(w)) for w in model.smooth_weights) > 0.5


@pytest.mark.parametrize(
    ("formula", "family", "options", "reason"),
    [
        ("count ~ mo(k1) + (mo(k1) | g)", "poisson", {"centered": True}, "centred effects of mo(k1)"),
        ("k1 ~ x + (1 | g)", "cumulative", {"priors": {"Intercept[2]": _NORMAL}}, "different families"),
        (
            "count ~ x + (1 | g)",
            "poisson",
            {"priors": {"b": bm.Prior("SkewNormal", alpha=2.0)}},
            "SkewNormal",
        ),
        (
            "y ~ x + hx + (x | g) + (1 | h)",
            "gaussian",
            {"collapsed": True, "centered": True},
            "collapsed factor",
        ),
    ],
)
def test_what_the_template_does_not_write_takes_the_graph(formula, family, options, reason):
    model, pymc_model = _model(formula, family, options)
    why = template.why_not(pymc_model, model)
    assert why is not None and reason in why
    assert template.program(pymc_model, model) is None


def _written(n_dim: int, write):
    """x -> (value, gradient) of the program ``write(tape, x)`` writes, run by the engine."""
    from bayesmm.inference.tape import Tape

    from .test_engine import _LOGP

    tape = Tape(n_dim)
    x = tape.x(0, (n_dim,))
    total = write(tape, x)
    program = engine.Program(*engine.finish(tape, [total.view, tape.backward(total, [x], n_dim)]), {})
    user = _user_data(program, program)
    c_logp = _LOGP(engine.cfuncs()[0].address)

    def run(point):
        point = np.ascontiguousarray(point, dtype=float)
        gradient, value = np.zeros(n_dim), np.zeros(1)
        assert (
            c_logp(n_dim, point.ctypes.data, gradient.ctypes.data, value.ctypes.data, user.ctypes.data) == 0
        )
        return value[0], gradient

    run.program = program  # kept alive with the function
    return run


@pytest.mark.parametrize(
    "kind",
    [
        "gaussian",
        "lognormal",
        "weibull",
        "exponential",
        "poisson",
        "gamma",
        "negativebinomial",
        "student",
        "beta",
    ],
)
@pytest.mark.parametrize("upper", [False, True])
def test_the_tails_of_censored_rows_are_exact(kind, upper):
    """log F(y) and log(1 - F(y)) as the template writes them for censored and truncated rows,
    against scipy's logcdf and logsf with z from -30 to 30 (the normal), (y / scale)^k from
    1e-12 to 700 (the Weibull and the exponential), counts 0..12 at means from 1e-3 to
    200 (the Poisson), or k y / mu from 0.05 k to 6 k at shapes k from 0.2 to 50 (the gamma,
    both sides of the incomplete gamma functions' split), counts 0..12 at means 1e-2..100 and
    shapes 0.3..30 (the negative binomial), z from -30 to 30 at nu 0.5..50 (the Student-t),
    means 0.02..0.98 at precisions 0.5..100 (the beta): values at 1e-12, gradients (in the
    gamma's, negative binomial's, Student-t's and beta's shapes too) against central
    differences."""
    from scipy import special, stats

    from bayesmm.inference import densities

    n = 13
    if kind in ("gaussian", "lognormal"):  # x = (mu, log sigma) per row; z = (y - mu) / sigma
        y = np.exp(np.linspace(-2.0, 2.0, n)) if kind == "lognormal" else np.linspace(-3.0, 3.0, n)
        z = np.linspace(-30.0, 30.0, n)
        response = np.log(y) if kind == "lognormal" else y
        point = np.concatenate([response - z * 0.5, np.full(n, np.log(0.5))])

        def scipy(x):
            d = stats.norm(x[:n], np.exp(x[n:]))
            return d.logsf(response) if upper else d.logcdf(response)
    elif kind == "poisson":  # x = (log mu, unused) per row; F(y) = Q(y + 1, mu)
        y = np.arange(n, dtype=float)
        point = np.concatenate([np.linspace(np.log(1e-3), np.log(200.0), n), np.zeros(n)])

        def scipy(x):
            d = stats.poisson(np.exp(x[:n]))
            return d.logsf(y) if upper else d.logcdf(y)
    elif kind == "gamma":  # x = (log mu, log shape) per row; F(y) = P(k, k y / mu)
        y = np.exp(np.linspace(-1.0, 1.0, n))
        shape = np.exp(np.linspace(np.log(0.2), np.log(50.0), n))
        scaled = shape * np.roll(np.exp(np.linspace(np.log(0.05), np.log(6.0), n)), 5)  # k y / mu
        point = np.concatenate([np.log(shape * y / scaled), np.log(shape)])

        def scipy(x):
            k = np.exp(x[n:])
            d = stats.gamma(k, scale=np.exp(x[:n]) / k)
            return d.logsf(y) if upper else d.logcdf(y)
    elif kind == "negativebinomial":  # x = (log mu, log alpha); F(y) = I_p(alpha, y + 1)
        y = np.arange(n, dtype=float)
        point = np.concatenate(
            [np.linspace(np.log(1e-2), np.log(100.0), n), np.roll(np.linspace(-1.2, 3.4, n), 4)]
        )

        def scipy(x):
            alpha = np.exp(x[n:])
            d = stats.nbinom(alpha, alpha / (alpha + np.exp(x[:n])))
            return d.logsf(y) if upper else d.logcdf(y)
    elif kind == "student":  # x = (mu, log nu); sigma 1.3
        y = np.linspace(-3.0, 3.0, n)
        point = np.concatenate([y - np.linspace(-30.0, 30.0, n) * 1.3, np.roll(np.linspace(-0.7, 3.9, n), 6)])

        def scipy(x):
            d = stats.t(np.exp(x[n:]), x[:n], 1.3)
            return d.logsf(y) if upper else d.logcdf(y)
    elif kind == "beta":  # x = (logit mu, log phi)
        y = np.linspace(0.02, 0.98, n)
        point = np.concatenate([np.linspace(-3.9, 3.9, n)[::-1], np.roll(np.linspace(-0.7, 4.6, n), 3)])

        def scipy(x):
            mu, phi = special.expit(x[:n]), np.exp(x[n:])
            d = stats.beta(mu * phi, (1 - mu) * phi)
            return d.logsf(y) if upper else d.logcdf(y)
    else:  # x = (eta, log shape) per row, the log link
        y = np.exp(np.linspace(-1.0, 1.0, n))
        power = np.exp(np.linspace(np.log(1e-12), np.log(700.0), n))  # (y / scale)^k, y / mu
        shape = np.full(n, 1.0 if kind == "exponential" else 1.7)
        scale = y / power ** (1.0 / shape)
        log_mu = np.log(scale) + (special.gammaln(1.0 + 1.0 / shape) if kind == "weibull" else 0.0)
        point = np.concatenate([log_mu, np.log(shape)])

        def scipy(x):
            k = np.exp(x[n:]) if kind == "weibull" else 1.0
            d = stats.weibull_min(k, scale=np.exp(x[:n]) / special.gamma(1.0 + 1.0 / k))
            return d.logsf(y) if upper else d.logcdf(y)

    def write(t, x):
        rate = t.exp(t.piece(x, n, n))
        params = {"sigma": rate, "shape": rate, "alpha": rate, "nu": rate, "phi": rate}
        if kind == "student":
            params["sigma"] = t.constant(1.3)
        link = {"gaussian": "identity", "lognormal": "identity", "student": "identity", "beta": "logit"}.get(
            kind, "log"
        )
        return t.sum(densities._log_tail(t, kind, link, y, t.piece(x, 0, n), params, upper))

    ours = _written(2 * n, write)
    value, gradient = ours(point)
    assert np.isfinite(value) and np.all(np.isfinite(gradient))
    theirs = scipy(point)
    assert value == pytest.approx(float(np.sum(theirs)), rel=1e-12)
    step = 1e-6
    differences = [(np.sum(scipy(point + step * e)) - np.sum(scipy(point - step * e))) / (2 * step)
                   for e in np.eye(2 * n)]  # fmt: skip
    np.testing.assert_allclose(gradient, differences, rtol=1e-5, atol=1e-6)


def test_the_incomplete_gamma_functions_shape_derivative_and_digamma_are_exact():
    """dP(a, x)/da (a censored gamma model's shape; engine.c's gamma_p_da, on both sides of
    its series / continued-fraction split) against Richardson-extrapolated central differences
    of scipy's gammainc (good to about 1e-11 here), and digamma (gammaln's derivative, in
    both) against scipy's at 1e-14 (its asymptotic series from 6 on was 1.5e-11 off at 1)."""
    from scipy import special

    pairs = np.array([(0.2, 1e-3), (0.2, 3.0), (1.5, 0.7), (3.0, 2.9), (3.0, 3.1), (10.0, 30.0),
                      (50.0, 40.0), (50.0, 70.0), (0.7, 25.0), (200.0, 190.0), (0.01, 1e-3)])  # fmt: skip
    a, x, n = pairs[:, 0], pairs[:, 1], len(pairs)

    def central(function, h):
        return (function(a + h * a, x) - function(a - h * a, x)) / (2 * h * a)

    def extrapolated(function):
        return (4 * central(function, 1e-4) - central(function, 2e-4)) / 3

    # differences of whichever of P and Q is below 1/2 (the other's lose their digits near 1)
    small = special.gammainc(a, x) < 0.5
    lower = np.where(small, extrapolated(special.gammainc), -extrapolated(special.gammaincc))
    for upper in (False, True):
        ours = _written(n, lambda t, v, up=upper: t.sum(t.log_gammainc(t.piece(v, 0, n), t.constant(x), up)))
        tail = special.gammaincc(a, x) if upper else special.gammainc(a, x)
        np.testing.assert_allclose(ours(a)[1] * tail, -lower if upper else lower, rtol=1e-9)
    points = np.array([1e-3, 0.3, 1.0, 2.5, 5.9, 6.1, 9.99, 10.0, 30.0, 1e3, 1e6, -0.5, -2.3])
    gradient = _written(len(points), lambda t, v: t.sum(t.gammaln(v)))(points)[1]
    np.testing.assert_allclose(gradient, special.digamma(points), rtol=1e-14)


def test_the_incomplete_beta_functions_derivatives_are_exact():
    """The derivatives of log I_x(a, b) and log(1 - I_x(a, b)) (the censored negative
    binomial's, Student-t's and beta's; engine.c's Boik and Robison-Cox fraction on both
    sides of its split) in a and b against Richardson-extrapolated central differences of
    scipy's betainc or betaincc, whichever is below 1/2 (1e-9), and in x against the density
    over I (1e-13); shapes 0.2..60 and 0.3..40 (mpmath at 50 digits agreed to 1.5e-14)."""
    from scipy import special

    rng = np.random.default_rng(2)
    n = 40
    a, b = (
        np.exp(rng.uniform(np.log(0.2), np.log(60.0), n)),
        np.exp(rng.uniform(np.log(0.3), np.log(40.0), n)),
    )
    x = rng.uniform(0.001, 0.999, n)

    def extrapolated(function, which):
        def central(h):
            step = [np.zeros(n), np.zeros(n)]
            step[which] = h * (a, b)[which]
            ahead, behind = function(a + step[0], b + step[1], x), function(a - step[0], b - step[1], x)
            return (ahead - behind) / (2 * h * (a, b)[which])

        return (4 * central(1e-4) - central(2e-4)) / 3

    lower = special.betainc(a, b, x)
    small = lower < 0.5
    for upper in (False, True):
        ours = _written(
            3 * n,
            lambda t, v, up=upper: t.sum(
                t.log_betainc(t.piece(v, 0, n), t.piece(v, n, n), t.piece(v, 2 * n, n), up)
            ),
        )
        gradient = ours(np.concatenate([a, b, x]))[1]
        tail = special.betaincc(a, b, x) if upper else lower
        for which in (0, 1):
            expected = np.where(
                small, extrapolated(special.betainc, which), -extrapolated(special.betaincc, which)
            )
            np.testing.assert_allclose(
                gradient[which * n : (which + 1) * n] * tail, -expected if upper else expected, rtol=1e-9
            )
        density = np.exp((a - 1) * np.log(x) + (b - 1) * np.log1p(-x) - special.betaln(a, b))
        np.testing.assert_allclose(gradient[2 * n :] * tail, -density if upper else density, rtol=1e-13)


@pytest.mark.parametrize("link", ["logit", "probit"])
def test_the_ordinal_log_likelihood_is_exact_where_pymcs_loses_digits(link):
    """The ordinal log-likelihood the template writes against bayesmm's numpy one (scipy's
    log_expit and log_ndtr on each category's side) at linear predictors far out in either
    tail, values at 1e-12, gradients against central differences. PyMC's OrderedLogistic
    is 2e-13 off there (a difference of two probabilities near 1), its OrderedProbit 2e-8
    (pt.sqrt(2.0) in float32)."""
    from bayesmm.families.categories import Cumulative
    from bayesmm.inference import densities

    rng = np.random.default_rng(4)
    n, k = 60, 5
    y = np.concatenate([np.arange(1, k + 1), rng.integers(1, k + 1, n - k)]).astype(float)
    family = Cumulative(link)
    family.categories = tuple("abcde")
    family._configure(None)
    case = type("Case", (), {"y": y, "link": link, "weights": None})

    def write(tape, x):
        rows = densities._Rows(tape, n, None)
        return densities._cumulative(tape, case, rows, tape.piece(x, 0, n), tape.piece(x, n, k - 1))

    ours = _written(n + k - 1, write)

    def numpy(x):
        params = dict(zip(family.params, x[n:], strict=True))
        return float(np.sum(family.log_likelihood(y, x[:n], params)))

    for shift in (-9.0, 0.0, 9.0):  # the rows' categories far in the upper tail, near, far in the lower
        cut = np.sort(rng.normal(0.0, 1.5, k - 1)) + np.array([0.0, 0.01, 0.02, 2.0])  # two close
        x = np.concatenate([shift + rng.normal(0.0, 1.0, n), cut])
        value, gradient = ours(x)
        assert np.isfinite(value) and value == pytest.approx(numpy(x), rel=1e-12)
        step = 1e-6
        differences = [(numpy(x + step * e) - numpy(x - step * e)) / (2 * step) for e in np.eye(x.size)]
        np.testing.assert_allclose(gradient, differences, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("formula", "family", "options"), [
    ("yes ~ x + gx + (1 | g) + (1 | h)", "bernoulli", _CENTRED),
    ("count ~ x + (1 | h) + (1 | hg)", "poisson", _CENTRED),
])  # fmt: skip
def test_a_model_of_many_rows_runs_them_in_row_blocks(formula, family, options):
    """Over blocks.MIN_ROWS rows the programs' row-by-row runs go a chunk of rows at a time
    (bayesmm.inference.blocks), sums chunk by chunk: still PyMC's values."""
    rows = pd.concat([_data(seed) for seed in range(25)], ignore_index=True)
    assert len(rows) >= blocks.MIN_ROWS
    model = bm.Model(formula, rows, family=family, **options)
    pymc_model = sampling.data_model(model.sampled_model, model.design.n_obs).model
    logp, expand = template.program(pymc_model, model)
    assert engine.OP["OP_BLOCK"] in _opcodes(logp.ints)
    _assert_pymcs(pymc_model, logp, expand, rtol=1e-9)


@pytest.mark.slow
def test_a_fit_and_its_refit_read_programs_written_from_the_design(monkeypatch):
    """No PyMC model is built for a covered model (bayesmm's NUTS samples programs laid out
    from the design), and a refit on new data writes its programs again from the new design
    (what it reads of the data changes with it)."""
    sampling.clear_compiled()
    monkeypatch.setattr(native, "compile_model", lambda *a, **k: pytest.fail("PyMC's model was compiled"))
    data = _data()
    model = bm.Model("count ~ x + (1 | g)", data, family="poisson")
    fit = quiet_fit(model, draws=200, tune=200, chains=2, random_seed=3)
    other = bm.Model("count ~ x + (1 | g)", data.assign(count=data["count"] * 2), family="poisson")
    refit = quiet_fit(other, draws=200, tune=200, chains=2, random_seed=3)
    assert model._pymc_model is None and other._pymc_model is None and not sampling._COMPILED
    assert fit.idata.attrs["laid_out_by"] == refit.idata.attrs["laid_out_by"] == "design"
    b = fit.idata.posterior["fixef"].mean(("chain", "draw")).values
    b2 = refit.idata.posterior["fixef"].mean(("chain", "draw")).values
    # Doubling the counts raises the intercept by about log 2 and leaves the slope.
    assert b2[0] - b[0] == pytest.approx(np.log(2), abs=0.15)
    assert b2[1] == pytest.approx(b[1], abs=0.1)


def test_the_template_off_translates_the_graph(monkeypatch):
    model, pymc_model = _model("count ~ x + (1 | g)", "poisson", {})
    monkeypatch.setenv("BAYESMM_TEMPLATE", "0")
    starting = native.StartingPoints(pymc_model, {})
    assert native._written(pymc_model, starting, model) is None
    monkeypatch.setenv("BAYESMM_TEMPLATE", "1")
    assert native._written(pymc_model, starting, model).graphs is None
