"""brms's addition terms: se(), weights(), cens(), trunc() and Surv(), against known answers.

The censored and truncated log-likelihoods are checked against scipy's, written out here row
by row; integer weights against replicated rows (the same log-density, exactly); the eight
schools against the exact posterior (one-dimensional quadrature over tau, the rest Gaussian:
BDA 5.4); censored, truncated and survival fits against simulated truths."""

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

import bayesmm as bm
from bayesmm.families import additions
from bayesmm.results.plots import kaplan_meier

from .bad_input.helpers import unchanged
from .conftest import assert_recovered, at_random_point, quiet_fit

# -- data ---------------------------------------------------------------------


def _censored_frame(seed=3, n=40):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    y = np.round(np.exp(0.8 + 0.4 * x + rng.normal(0, 0.4, n)), 3) + 0.01
    codes = rng.choice(["none", "left", "right", "interval"], size=n, p=[0.4, 0.2, 0.2, 0.2])
    return pd.DataFrame(
        {
            "y": y,
            "count": rng.poisson(np.exp(1 + 0.3 * x)),
            "x": x,
            "c": codes,
            "y2": np.where(codes == "interval", y * 1.7 + 0.5, np.nan),
            "g": rng.choice(list("abcde"), n),
        }
    )


def _scipy_rows(dist, y, y2, codes, discrete, lower=None, upper=None):
    """Each row's log-likelihood written out with scipy: the density, log F(y), log(1 - F(y))
    or log(F(y2) - F(y)), less log P(lower <= Y <= upper) (counts: F(upper) - F(lower - 1))."""
    out = np.empty(len(y))
    for i in range(len(y)):
        d = dist(i)
        if codes[i] == 0:
            out[i] = d.logpmf(y[i]) if discrete else d.logpdf(y[i])
        elif codes[i] == -1:
            out[i] = np.log(d.cdf(y[i]))
        elif codes[i] == 1:
            out[i] = np.log(d.sf(y[i]))
        elif d.cdf(y[i]) < 0.5:
            out[i] = np.log(d.cdf(y2[i]) - d.cdf(y[i]))
        else:  # in the upper tail the difference of the survival functions keeps its digits
            out[i] = np.log(d.sf(y[i]) - d.sf(y2[i]))
        if lower is not None:
            below = d.cdf(lower[i] - 1) if discrete else d.cdf(lower[i])
            out[i] -= np.log(d.cdf(upper[i]) - below)
    return out


# Each family with its scipy distribution given the mean and the constant parameters.
CONTINUOUS = {
    "gaussian": lambda mu, p: stats.norm(mu, p["sigma"]),
    "student": lambda mu, p: stats.t(p["nu"], mu, p["sigma"]),
    "lognormal": lambda mu, p: stats.lognorm(p["sigma"], scale=np.exp(mu)),
    "gamma": lambda mu, p: stats.gamma(p["shape"], scale=mu / p["shape"]),
    "weibull": lambda mu, p: stats.weibull_min(p["shape"], scale=mu / special.gamma(1 + 1 / p["shape"])),
    "exponential": lambda mu, p: stats.expon(scale=mu),
}
COUNTS = {
    "poisson": lambda mu, p: stats.poisson(mu),
    "negativebinomial": lambda mu, p: stats.nbinom(p["alpha"], p["alpha"] / (p["alpha"] + mu)),
}


def _compare(model, dist, response, y2=None, codes=None, lower=None, upper=None, seed=5):
    loglik, values = at_random_point(model, seed=seed)
    design = model.design
    mu = model.family.link.inverse(design.X @ values["fixef"])
    params = {n: float(values[n]) for n in model.family.constant_params(model.parts)}
    codes = np.zeros(design.n_obs) if codes is None else codes
    rows = _scipy_rows(
        lambda i: dist(mu[i], params), response, y2, codes, model.family.discrete, lower, upper
    )
    assert loglik == pytest.approx(rows.sum(), rel=1e-7)
    # The numpy pointwise values that LOO reads agree row by row.
    eta = model.family.link.link(mu)[None, :]
    constants = {n: np.array([[v]]) for n, v in params.items()}
    numpy_rows = additions.log_likelihood(
        model.family, design.y, eta, constants, design.trials, design.additions
    )[0]
    np.testing.assert_allclose(numpy_rows, rows, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("family", sorted(CONTINUOUS))
def test_censored_continuous_log_likelihood_is_scipys(family):
    data = _censored_frame()
    model = bm.Model("y | cens(c, y2) ~ x", data, family=family)
    codes = data["c"].map(bm.design.additions.CENSORING).to_numpy()
    _compare(model, CONTINUOUS[family], data["y"].to_numpy(), data["y2"].to_numpy(), codes)


@pytest.mark.parametrize("family", sorted(COUNTS))
def test_censored_count_log_likelihood_is_scipys(family):
    data = _censored_frame()
    data = data.assign(c=data["c"].replace("interval", "none"))
    model = bm.Model("count | cens(c) ~ x", data, family=family)
    codes = data["c"].map(bm.design.additions.CENSORING).to_numpy()
    _compare(model, COUNTS[family], data["count"].to_numpy(), None, codes)


@pytest.mark.parametrize("family", ["gaussian", "student", "gamma", "weibull"])
def test_truncated_continuous_log_likelihood_is_scipys(family):
    data = _censored_frame()
    data = data[(data["y"] > 1.0) & (data["y"] < 4.0)].assign(c=lambda d: d["c"].replace("interval", "none"))
    model = bm.Model("y | trunc(lb = 1, ub = 4) + cens(c) ~ x", data, family=family)
    codes = data["c"].map(bm.design.additions.CENSORING).to_numpy()
    n = len(data)
    _compare(model, CONTINUOUS[family], data["y"].to_numpy(), None, codes, np.full(n, 1.0), np.full(n, 4.0))


@pytest.mark.parametrize("family", sorted(COUNTS))
def test_zero_truncated_counts_log_likelihood_is_scipys(family):
    data = _censored_frame()
    data = data[data["count"] > 0].assign(top=lambda d: d["count"] + 3)
    model = bm.Model("count | trunc(lb = 1, ub = top) ~ x", data, family=family)
    n = len(data)
    _compare(
        model, COUNTS[family], data["count"].to_numpy(), None, None, np.full(n, 1.0), data["top"].to_numpy()
    )


def test_bounds_at_the_support_truncate_nothing():
    data = _censored_frame()
    plain = at_random_point(bm.Model("count ~ x", data, family="poisson"))[0]
    assert at_random_point(bm.Model("count | trunc(lb = 0) ~ x", data, family="poisson"))[0] == pytest.approx(
        plain
    )
    positive = at_random_point(bm.Model("y ~ x", data, family="gamma"))[0]
    assert at_random_point(bm.Model("y | trunc(lb = 0) ~ x", data, family="gamma"))[0] == pytest.approx(
        positive
    )


# -- weights and se -------------------------------------------------------------


PRIORS = {
    "Intercept": bm.Prior("Normal", mu=0, sigma=5),
    "b": bm.Prior("Normal", mu=0, sigma=2),
    "sd": bm.Prior("HalfNormal", sigma=1),
    "sigma": bm.Prior("HalfNormal", sigma=2),
    "alpha": bm.Prior("Gamma", alpha=2, beta=0.5),
}


@pytest.mark.parametrize(
    ("formula", "family"),
    [
        ("y ~ 1 + (1 | g)", "gaussian"),
        ("count ~ 1 + (1 | g)", "poisson"),
        ("count ~ 1 + (1 | g)", "zero_inflated_negbinomial"),
        ("k | trials(n) ~ 1 + (1 | g)", "binomial"),
    ],
)
def test_integer_weights_are_replicated_rows(formula, family):
    """The weighted model's log-density and gradient are the replicated data's, at any point:
    priors and parameterization fixed (the defaults follow the data, which replication
    changes), and no slope (a fixed one is centred at the predictors' means, and the mean of a
    varying one is sheared into the intercept: both would move with the replicated rows)."""
    data = _censored_frame().assign(w=lambda d: np.random.default_rng(1).integers(0, 4, len(d)), n=8,
                                    k=lambda d: np.minimum(d["count"], 8))  # fmt: skip
    response, rest = formula.split(" ~ ")
    own = {"gaussian": ["sigma"], "zero_inflated_negbinomial": ["alpha"]}.get(family, [])
    priors = {k: PRIORS[k] for k in ["Intercept", "sd", *own]}
    lhs = f"{response} + weights(w)" if "|" in response else f"{response} | weights(w)"
    weighted = bm.Model(f"{lhs} ~ {rest}", data, family=family, priors=priors, centered=False)
    replicated = bm.Model(
        formula,
        data.loc[data.index.repeat(data["w"])].reset_index(drop=True),
        family=family,
        priors=priors,
        centered=False,
    )
    for model in (weighted, replicated):
        assert [v.name for v in model.pymc_model.free_RVs] == [v.name for v in weighted.pymc_model.free_RVs]
    rng = np.random.default_rng(0)
    for _ in range(3):
        point = {
            k: rng.normal(scale=0.5, size=np.shape(v)) for k, v in weighted.pymc_model.initial_point().items()
        }
        values = [m.pymc_model.compile_logp()(point) for m in (weighted, replicated)]
        assert values[0] == pytest.approx(values[1], rel=1e-9)
        gradients = [m.pymc_model.compile_dlogp()(point) for m in (weighted, replicated)]
        np.testing.assert_allclose(gradients[0], gradients[1], rtol=1e-8)


def test_known_se_is_the_residual_sd():
    data = _censored_frame().assign(s=lambda d: 0.2 + d["x"].abs())
    known = bm.Model("y | se(s) ~ x", data)
    assert "sigma" not in known.priors.index and known.family.params == ()
    loglik, values = at_random_point(known)
    mu = known.design.X @ values["fixef"]
    assert loglik == pytest.approx(stats.norm(mu, data["s"]).logpdf(data["y"]).sum(), rel=1e-9)
    both = bm.Model("y | se(s, sigma = TRUE) ~ x", data)
    loglik, values = at_random_point(both)
    scale = np.sqrt(values["sigma"] ** 2 + data["s"] ** 2)
    mu = both.design.X @ values["fixef"]
    assert loglik == pytest.approx(stats.norm(mu, scale).logpdf(data["y"]).sum(), rel=1e-9)
    student = bm.Model("y | se(s) ~ x", data, family="student")
    assert student.family.params == ("nu",)


# -- predictions from the truncated distribution --------------------------------


def test_truncated_mean_and_draws():
    family = bm.get_family("poisson")
    mu = np.array([[0.3, 1.0, 4.0]])
    extras = bm.design.additions.Additions(lb=np.full(3, 1.0), ub=np.full(3, np.inf))
    mean = additions.mean(family, np.log(mu), {}, None, extras)
    np.testing.assert_allclose(mean, mu / (1 - np.exp(-mu)), rtol=1e-12)  # the zero-truncated Poisson's
    draws = additions.draw(
        family, np.log(np.broadcast_to(mu, (20_000, 3))), {}, None, np.random.default_rng(1), extras
    )
    assert draws.min() == 1
    np.testing.assert_allclose(draws.mean(axis=0), mean[0], rtol=0.03)
    # Both bounds: a normal truncated to [-1, 2] has scipy's truncnorm mean.
    gaussian = bm.get_family("gaussian")
    two = bm.design.additions.Additions(lb=np.full(2, -1.0), ub=np.full(2, 2.0))
    eta = np.array([[0.0, 1.5]])
    sigma = np.array([[1.3]])
    expected = [stats.truncnorm((-1 - m) / 1.3, (2 - m) / 1.3, m, 1.3).mean() for m in eta[0]]
    np.testing.assert_allclose(
        additions.mean(gaussian, eta, {"sigma": sigma}, None, two)[0], expected, rtol=1e-9
    )
    counts = bm.design.additions.Additions(lb=np.full(1, 2.0), ub=np.full(1, 5.0))
    k = np.arange(2, 6)
    pmf = stats.poisson(3.0).pmf(k)
    np.testing.assert_allclose(
        additions.mean(family, np.log([[3.0]]), {}, None, counts)[0], (k * pmf).sum() / pmf.sum()
    )


# -- bad input --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("formula", "family", "change", "message"),
    [
        (
            "y | cens(c, y2) ~ x",
            "gaussian",
            lambda d: d.assign(y2=d["y2"] - 10),
            r"an interval-censored row's upper end in 'y2' must be above the response 'y': row \d+ holds",
        ),
        (
            "y | cens(c) ~ x",
            "gaussian",
            lambda d: d,
            r"row \d+ is interval-censored in cens\(c\) but cens\(\) has no upper bound",
        ),
        (
            "y | cens(c) ~ x",
            "gaussian",
            lambda d: d.assign(c=d["c"].replace("left", "lft")),
            r"column 'c' in cens\(\) holds 'lft' in row \d+, which is not a censoring code",
        ),
        (
            "y | trunc(lb = 2) ~ x",
            "gaussian",
            lambda d: d,
            r"the response 'y' is below trunc\(\)'s lower bound .*: row \d+ holds",
        ),
        (
            "y | trunc(ub = yy) ~ x",
            "gaussian",
            lambda d: d,
            r"column 'yy' in trunc\(\) is not in the data; did you mean 'y'",
        ),
        (
            "y | weights(w) ~ x",
            "gaussian",
            lambda d: d.assign(w=-d["x"]),
            r"the weights in weights\(w\) must be 0 or more: row",
        ),
        ("y | weights(w) ~ x", "gaussian", lambda d: d.assign(w=0.0), r"every weight in weights\(w\) is 0"),
        (
            "y | weights(w) ~ x",
            "gaussian",
            lambda d: d.assign(w="heavy"),
            r"column 'w' in weights\(\) must hold numbers",
        ),
        (
            "y | se(s) ~ x",
            "gaussian",
            lambda d: d.assign(s=d["x"]),
            r"the standard errors in se\(s\) must be positive",
        ),
        ("count | se(s) ~ x", "poisson", lambda d: d.assign(s=1.0), r"family 'poisson' has none"),
        (
            "y | se(s) ~ x",
            "gaussian",
            lambda d: d.assign(s=1.0),
            r"a dispersion= formula for sigma has nothing",
        ),
        (
            "c01 | cens(c) ~ x",
            "bernoulli",
            lambda d: d.assign(c01=(d["x"] > 0).astype(int), c="right"),
            r"cens\(\) \(censoring\) means nothing for family 'bernoulli'",
        ),
        (
            "Surv(y, status) ~ x",
            "weibull",
            lambda d: d.assign(status=np.where(d["x"] > 0, 2, 0)),
            r"Surv\(\)'s status column 'status' must be 0/1 .* mixes 0 and 2",
        ),
    ],
)
def test_bad_addition_input_names_the_column_row_and_value(formula, family, change, message):
    data = change(_censored_frame())
    kwargs = {"dispersion": "~ x"} if "dispersion" in message else {}
    with unchanged(data), pytest.raises((bm.DataError, ValueError), match=message):
        bm.Model(formula, data, family=family, **kwargs)


def test_missing_weights_drop_rows_with_a_warning():
    data = _censored_frame().assign(w=1.0)
    data.loc[[2, 5], "w"] = np.nan
    with pytest.warns(
        UserWarning, match=r"dropped 2 of 40 rows with missing values \(in weights\(w\) \(2\)\)"
    ):
        model = bm.Model("y | weights(w) ~ x", data)
    assert model.design.n_obs == 38 and model.design.additions.weights.shape == (38,)


def test_survs_status_codings_agree():
    data = _censored_frame().assign(event=lambda d: (d["x"] > 0).astype(int))
    codes = [
        bm.Model(f, d, family="weibull").design.additions.cens
        for f, d in [
            ("Surv(y, event) ~ x", data),
            ("Surv(y, event) ~ x", data.assign(event=data["event"] == 1)),
            ("Surv(y, event) ~ x", data.assign(event=data["event"] + 1)),
            ("y | cens(censored) ~ x", data.assign(censored=1 - data["event"])),
        ]
    ]
    for other in codes[1:]:
        np.testing.assert_array_equal(codes[0], other)
    np.testing.assert_array_equal(codes[0], 1 - data["event"])


def test_weibull_likelihood_is_survregs_on_kidney():
    """The maximum of bayesmm's censored Weibull log-likelihood is R's: survival 3.x on R 4.2,
    survreg(Surv(time, status) ~ age + factor(sex) + disease, kidney, dist = "weibull") gives
    log-likelihood -330.3635, slopes below and scale 0.9668405 (shape 1 / scale); its
    intercept is log(scale), bayesmm's log(mean) = log(scale) + lgamma(1 + 1 / shape)."""
    from scipy import optimize

    kidney = bm.datasets.load("kidney", package="survival")
    kidney["disease"] = pd.Categorical(kidney["disease"], categories=["Other", "GN", "AN", "PKD"])
    model = bm.Model("Surv(time, status) ~ age + factor(sex) + disease", kidney, family="weibull")
    design, family = model.design, model.family

    def negative(p):
        eta = (design.X @ p[:-1])[None, :]
        shape = np.array([[np.exp(p[-1])]])
        return -additions.log_likelihood(
            family, design.y, eta, {"shape": shape}, None, design.additions
        ).sum()

    best = optimize.minimize(negative, np.zeros(design.X.shape[1] + 1), method="BFGS")
    assert -best.fun == pytest.approx(-330.3635, abs=1e-4)
    survreg = {
        "age": -0.001907486,
        "factor(sex)[T.2]": 1.607917771,
        "disease[T.GN]": -0.049330984,
        "disease[T.AN]": -0.520640771,
        "disease[T.PKD]": 1.342463697,
    }
    estimates = dict(zip(design.fixef_names, best.x, strict=False))
    for name, value in survreg.items():
        assert estimates[name] == pytest.approx(value, abs=2e-4), name
    shape = np.exp(best.x[-1])
    assert shape == pytest.approx(1 / 0.9668405, rel=1e-4)
    assert estimates["Intercept"] - special.gammaln(1 + 1 / shape) == pytest.approx(3.714427323, abs=2e-4)


def test_simulate_from_a_formula_draws_inside_the_truncation_bounds():
    layout = pd.DataFrame({"g": np.repeat(list("abcdefgh"), 50)})
    params = {"Intercept": 0.0, "sd(Intercept|g)": 0.3}
    sims = bm.simulate(
        "y | trunc(lb = 1) ~ 1 + (1 | g)", layout, family="poisson", params=params, seed=3, nsim=20
    )
    assert sims.to_numpy().min() == 1
    # The zero-truncated Poisson of mean 1 has mean 1 / (1 - e^-1) = 1.582; group effects of
    # SD 0.3 raise it a little.
    assert 1.55 < sims.to_numpy().mean() < 1.75
    weibull = bm.simulate("~ 1", layout, family="weibull", params={"Intercept": np.log(2.0), "shape": 2.0},
                          seed=4, nsim=20)  # fmt: skip
    assert weibull.to_numpy().mean() == pytest.approx(2.0, rel=0.03)


def test_censored_beta_log_likelihood_is_scipys():
    data = _censored_frame().assign(p=lambda d: 1 / (1 + np.exp(-d["x"])), upper=lambda d: (d["p"] + 1) / 2)
    data["upper"] = np.where(data["c"] == "interval", data["upper"], np.nan)
    model = bm.Model("p | cens(c, upper) ~ x", data, family="beta")
    codes = data["c"].map(bm.design.additions.CENSORING).to_numpy()

    def beta(mu, p):
        return stats.beta(mu * p["phi"], (1 - mu) * p["phi"])

    _compare(model, beta, data["p"].to_numpy(), data["upper"].to_numpy(), codes)


def test_other_censoring_is_another_compiled_structure():
    """The censoring lives in the log-density, not in the model's graph: two models that
    differ only in which rows are censored must not share a compiled structure (they did:
    a second Weibull fit in one process sampled the first one's censoring, x 0.18 for 0.49)."""
    from bayesmm.inference import sampling

    data = _censored_frame()
    other = data.assign(c=data["c"].iloc[::-1].to_numpy())

    def key(frame):
        model = bm.Model("y | cens(c, y2) ~ x", frame, family="weibull")
        return sampling.data_model(model.sampled_model, model.design.n_obs).key

    assert key(data) != key(other)
    assert key(data) == key(data.assign(x=data["x"] + 1.0))  # other data, same censoring: reused


def test_kaplan_meier_by_hand():
    # Times 1, 2, 2+, 3, 4+ (+: censored). At t = 1 five are at risk and one fails: 4/5; at
    # t = 2 four (the one censored at 2 among them) and one fails: 4/5 * 3/4; at t = 3 two
    # and one fails: 3/5 * 1/2.
    times, survival = kaplan_meier(np.array([2.0, 1, 3, 2, 4]), np.array([0, 1, 1, 1, 0]) == 1)
    np.testing.assert_array_equal(times, [1.0, 2.0, 3.0])
    np.testing.assert_allclose(survival, [0.8, 0.6, 0.3])


# -- fits ---------------------------------------------------------------------------


def _eight_schools_exact():
    """Posterior means and SDs of mu, tau and each theta_j under mu ~ N(0, 5^2),
    tau ~ half-Cauchy(0, 5), y_j ~ N(theta_j, sigma_j^2): mu and theta are Gaussian given
    tau, so one quadrature over tau gives every moment (BDA 5.4)."""
    y = np.array([28.0, 8, -3, 7, -1, 1, 18, 12])
    s = np.array([15.0, 10, 16, 11, 9, 11, 10, 18])
    tau = np.linspace(1e-6, 300, 600_001)[:, None]
    v = s**2 + tau**2
    precision = 1 / 25 + (1 / v).sum(axis=1, keepdims=True)
    mu_hat = (y / v).sum(axis=1, keepdims=True) / precision
    log_post = (
        stats.halfcauchy(scale=5).logpdf(tau)
        - 0.5 * np.log(v).sum(axis=1, keepdims=True)
        - 0.5 * np.log(precision)
        - 0.5 * ((y**2 / v).sum(axis=1, keepdims=True) - precision * mu_hat**2)
    )
    weight = np.exp(log_post - log_post.max())[:, 0]
    weight /= weight.sum()
    shrink = s**2 / v  # theta_j | mu, tau: mean shrink * mu + (1 - shrink) * y_j
    theta_mean = shrink * mu_hat + (1 - shrink) * y
    theta_var = 1 / (1 / s**2 + 1 / tau**2) + shrink**2 / precision
    moments = {}
    for name, mean, var in [
        ("Intercept", mu_hat[:, 0], 1 / precision[:, 0]),
        ("tau", tau[:, 0], 0.0 * tau[:, 0]),
    ]:
        m = weight @ mean
        moments[name] = (m, np.sqrt(weight @ (var + mean**2) - m**2))
    for j, school in enumerate("ABCDEFGH"):
        m = weight @ theta_mean[:, j]
        moments[school] = (m, np.sqrt(weight @ (theta_var[:, j] + theta_mean[:, j] ** 2) - m**2))
    return moments


@pytest.mark.slow
def test_eight_schools_matches_the_exact_posterior():
    schools = pd.DataFrame(
        {
            "school": list("ABCDEFGH"),
            "y": [28.0, 8, -3, 7, -1, 1, 18, 12],
            "sigma": [15.0, 10, 16, 11, 9, 11, 10, 18],
        }
    )
    priors = {"Intercept": bm.Prior("Normal", mu=0, sigma=5), "sd": bm.Prior("HalfCauchy", beta=5)}
    model = bm.Model("y | se(sigma) ~ 1 + (1 | school)", schools, priors=priors)
    fit = quiet_fit(model, draws=2000, chains=4, random_seed=8)
    exact = _eight_schools_exact()
    table = fit.summary()
    coef = fit.coef()["school"]
    estimates = {
        "Intercept": table.loc["Intercept", ["mean", "sd"]],
        "tau": table.loc["sd(Intercept|school)", ["mean", "sd"]],
        **{j: (coef.loc[j, ("mean", "Intercept")], coef.loc[j, ("sd", "Intercept")]) for j in "ABCDEFGH"},
    }
    assert fit.diagnose()["divergences"].value == 0
    for name, (mean, sd) in exact.items():
        got_mean, got_sd = estimates[name]
        # Means within 0.1 posterior SD, SDs within 10% (the bounds); with 8000
        # draws the Monte Carlo error of a mean is about 0.02 SD.
        assert abs(got_mean - mean) < 0.1 * sd, (name, got_mean, mean, sd)
        assert abs(got_sd / sd - 1) < 0.1, (name, got_sd, sd)


@pytest.mark.slow
def test_censored_gaussian_recovers_the_truth():
    rng = np.random.default_rng(21)
    n, groups = 400, 20
    g = rng.integers(0, groups, n)
    x = rng.normal(size=n)
    y = 2.0 + 1.0 * x + rng.normal(0, 0.8, groups)[g] + rng.normal(0, 1.0, n)
    limit = 1.5  # a detection limit: about 35% of rows below it
    data = pd.DataFrame({"y": np.maximum(y, limit), "c": np.where(y < limit, "left", "none"), "x": x, "g": g})
    fit = quiet_fit(bm.Model("y | cens(c) ~ x + (1 | g)", data), draws=1000, chains=2, random_seed=3)
    assert fit.idata.attrs["compiled_by"] in ("engine", "graph")
    assert_recovered(fit, {"Intercept": 2.0, "x": 1.0, "sd(Intercept|g)": 0.8, "sigma": 1.0})
    # Ignoring the censoring biases the slope towards zero by more than 3 posterior SDs.
    naive = quiet_fit(bm.Model("y ~ x + (1 | g)", data), draws=500, chains=2, random_seed=3).summary()
    assert 1.0 - naive.loc["x", "mean"] > 3 * naive.loc["x", "sd"]


@pytest.mark.slow
def test_weibull_survival_with_a_frailty_recovers_the_truth():
    rng = np.random.default_rng(5)
    n, groups, shape = 500, 25, 1.6
    g = rng.integers(0, groups, n)
    x = rng.normal(size=n)
    mean = np.exp(1.0 + 0.5 * x + rng.normal(0, 0.5, groups)[g])
    time = stats.weibull_min(shape, scale=mean / special.gamma(1 + 1 / shape)).rvs(random_state=rng)
    follow_up = rng.exponential(4.0, n)
    data = pd.DataFrame(
        {"time": np.minimum(time, follow_up), "status": (time <= follow_up).astype(int), "x": x, "g": g}
    )
    assert 0.2 < 1 - data["status"].mean() < 0.5  # a real share of censored rows
    fit = quiet_fit(
        bm.Model("Surv(time, status) ~ x + (1 | g)", data, family="weibull"),
        draws=1000,
        chains=2,
        random_seed=4,
    )
    assert fit.idata.attrs["compiled_by"] == "engine"
    assert_recovered(fit, {"Intercept": 1.0, "x": 0.5, "sd(Intercept|g)": 0.5, "shape": shape})
    # Replicated survival times are drawn without censoring: their mean is the model's.
    draws = fit.predict(kind="response", summary=False, random_seed=1).values.reshape(-1, n)
    means = fit.predict(kind="mean", summary=False).values.reshape(-1, n)
    assert abs(draws.mean() / means.mean() - 1) < 0.02
    loo = fit.loo()
    # The default posterior predictive check is Kaplan-Meier's; the observed curve lies inside
    # the replicated curves' 95% band at the quartiles of the event times.
    ax = fit.plot_ppc()
    assert ax.get_title() == "Survival: observed against replicated"
    times, survival = kaplan_meier(data["time"].to_numpy(), data["status"].to_numpy() == 1)
    for t in np.quantile(times, [0.25, 0.5, 0.75]):
        replicated = (draws[:500] > t).mean(axis=1)
        observed = survival[np.searchsorted(times, t, side="right") - 1]
        assert np.quantile(replicated, 0.025) < observed < np.quantile(replicated, 0.975), t
    # PSIS-LOO reads the censored rows' survival probabilities: finite, and reliable for all but
    # a few influential rows (seed 4: 2 of 500 with k in (0.7, 0.85)).
    assert np.isfinite(loo.elpd) and np.mean(loo.pareto_k.values > 0.7) < 0.01


@pytest.mark.slow
def test_zero_truncated_poisson_recovers_the_truth(tmp_path):
    rng = np.random.default_rng(8)
    n, groups = 600, 15
    g = rng.integers(0, groups, n)
    x = rng.normal(size=n)
    counts = rng.poisson(np.exp(0.2 + 0.6 * x + rng.normal(0, 0.4, groups)[g]))
    data = pd.DataFrame({"y": counts, "x": x, "g": g})[counts > 0]  # capture data: no zeros seen
    fit = quiet_fit(
        bm.Model("y | trunc(lb = 1) ~ x + (1 | g)", data, family="poisson"),
        draws=1000,
        chains=2,
        random_seed=2,
    )
    assert_recovered(fit, {"Intercept": 0.2, "x": 0.6, "sd(Intercept|g)": 0.4})
    replicated = fit.predict(kind="response", summary=False, random_seed=3).values
    assert replicated.min() >= 1
    # The observed mean sits inside the replicated means' 95% band (a plain Poisson's is below it).
    means = replicated.reshape(-1, len(data)).mean(axis=1)
    assert np.quantile(means, 0.025) < data["y"].mean() < np.quantile(means, 0.975)
    # K-fold reads each held-out fold's truncation: its elpd is close to PSIS-LOO's.
    kfold = fit.kfold(K=4, random_seed=1, draws=500, chains=2)
    assert abs(kfold.elpd - fit.loo().elpd) < 2 * kfold.se
    # Saved and loaded, the addition term is read again from the stored model frame.
    path = tmp_path / "ztp.bayesmm"
    fit.save(path)
    loaded = bm.load(path)
    np.testing.assert_array_equal(loaded.design.additions.lb, fit.design.additions.lb)
    pd.testing.assert_frame_equal(loaded.predict(), fit.predict())
