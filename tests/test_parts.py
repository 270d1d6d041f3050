"""Zero-inflated and hurdle families and distributional formulas (zi=, hu=, dispersion=)."""

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

import bayesmm as bm

from .conftest import assert_recovered, assert_replicates_match, at_random_point, quiet_fit


@pytest.fixture(scope="module")
def counts():
    rng = np.random.default_rng(12)
    n = 80
    return pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "w": rng.normal(size=n),
            "site": rng.choice([f"s{i}" for i in range(8)], size=n),
            "exposure": rng.uniform(1, 3, size=n),
            "trials": rng.integers(3, 10, size=n),
            "y": np.where(rng.random(n) < 0.3, 0, rng.poisson(2.0, size=n)),
            "cont": rng.normal(size=n),
        }
    ).assign(successes=lambda d: np.minimum(d["y"], d["trials"]))


def _eta(values, design):
    eta = design.X @ values[design.var("fixef")]
    for group, terms in design.groups.items():
        r = values[design.var(f"r_{group}")]
        start = 0
        for term in terms:
            eta = eta + term.z_block() @ r[:, start : start + term.n_terms].ravel()
            start += term.n_terms
    return eta + (design.offset if design.offset is not None else 0.0)


def _zero_inflated(zi, log_f, log_f0, y):
    return np.where(y == 0, np.log(zi + (1 - zi) * np.exp(log_f0)), np.log(1 - zi) + log_f)


def _hurdle(hu, log_f, log_f0, y):
    return np.where(y == 0, np.log(hu), np.log(1 - hu) + log_f - np.log(1 - np.exp(log_f0)))


@pytest.mark.parametrize(
    "family, formula, part_formulas, expected",
    [
        (
            "zero_inflated_poisson",
            "y ~ x + offset(log(exposure)) + (1 | site)",
            {"zi": "~ w + (1 | site)"},
            lambda y, e, v, d: _zero_inflated(
                special.expit(e["zi"]), stats.poisson.logpmf(y, np.exp(e[""])), -np.exp(e[""]), y
            ),
        ),
        (
            "zero_inflated_negbinomial",
            "y ~ x + (1 | site)",
            {"zi": "~ 1"},
            lambda y, e, v, d: _zero_inflated(
                special.expit(e["zi"]),
                stats.nbinom.logpmf(y, v["alpha"], v["alpha"] / (v["alpha"] + np.exp(e[""]))),
                stats.nbinom.logpmf(0, v["alpha"], v["alpha"] / (v["alpha"] + np.exp(e[""]))),
                y,
            ),
        ),
        (
            "zero_inflated_binomial",
            "successes ~ x + (1 | site)",
            {"zi": "~ w"},
            lambda y, e, v, d: _zero_inflated(
                special.expit(e["zi"]),
                stats.binom.logpmf(y, d.trials, special.expit(e[""])),
                stats.binom.logpmf(0, d.trials, special.expit(e[""])),
                y,
            ),
        ),
        (
            "hurdle_poisson",
            "y ~ x + (1 | site)",
            {"hu": "~ w + (1 | site)"},
            lambda y, e, v, d: _hurdle(
                special.expit(e["hu"]), stats.poisson.logpmf(y, np.exp(e[""])), -np.exp(e[""]), y
            ),
        ),
        (
            "hurdle_negbinomial",
            "y ~ x",
            {"hu": "~ w", "dispersion": "~ x"},
            lambda y, e, v, d: _hurdle(
                special.expit(e["hu"]),
                stats.nbinom.logpmf(
                    y,
                    np.exp(e["dispersion"]),
                    np.exp(e["dispersion"]) / (np.exp(e["dispersion"]) + np.exp(e[""])),
                ),
                stats.nbinom.logpmf(
                    0,
                    np.exp(e["dispersion"]),
                    np.exp(e["dispersion"]) / (np.exp(e["dispersion"]) + np.exp(e[""])),
                ),
                y,
            ),
        ),
        (
            "zero_inflated_nbinom1",
            "y ~ x + (1 | site)",
            {"zi": "~ w"},
            lambda y, e, v, d: _zero_inflated(
                special.expit(e["zi"]),
                stats.nbinom.logpmf(y, np.exp(e[""]) / v["phi"], 1 / (1 + v["phi"])),
                stats.nbinom.logpmf(0, np.exp(e[""]) / v["phi"], 1 / (1 + v["phi"])),
                y,
            ),
        ),
        (
            "hurdle_nbinom1",
            "y ~ x",
            {"hu": "~ w"},
            lambda y, e, v, d: _hurdle(
                special.expit(e["hu"]),
                stats.nbinom.logpmf(y, np.exp(e[""]) / v["phi"], 1 / (1 + v["phi"])),
                stats.nbinom.logpmf(0, np.exp(e[""]) / v["phi"], 1 / (1 + v["phi"])),
                y,
            ),
        ),
        (
            "nbinom1",
            "y ~ x + (1 | site)",
            {},
            # variance mu (1 + phi): a negative binomial of size mu / phi
            lambda y, e, v, d: stats.nbinom.logpmf(y, np.exp(e[""]) / v["phi"], 1 / (1 + v["phi"])),
        ),
        (
            "beta_binomial",
            "successes ~ x + (1 | site)",
            {"dispersion": "~ w"},
            lambda y, e, v, d: stats.betabinom.logpmf(
                y,
                d.trials,
                special.expit(e[""]) * np.exp(e["dispersion"]),
                (1 - special.expit(e[""])) * np.exp(e["dispersion"]),
            ),
        ),
        (
            "beta_binomial",
            "successes ~ x + (1 | site)",
            {},
            lambda y, e, v, d: stats.betabinom.logpmf(
                y, d.trials, special.expit(e[""]) * v["phi"], (1 - special.expit(e[""])) * v["phi"]
            ),
        ),
        (
            "gaussian",
            "cont ~ x + (1 | site)",
            {"dispersion": "~ w + (1 | site)"},
            lambda y, e, v, d: stats.norm.logpdf(y, e[""], np.exp(e["dispersion"])),
        ),
        (
            "student",
            "cont ~ x + (1 | site)",
            {"dpars": {"nu": "~ w + (1 | site)", "sigma": "~ x"}},
            lambda y, e, v, d: stats.t.logpdf(y, np.exp(e["nu"]), e[""], np.exp(e["dispersion"])),
        ),
    ],
)
def test_log_likelihood_matches_scipy(counts, family, formula, part_formulas, expected):
    trials = "trials" if formula.startswith("successes") else None
    model = bm.Model(formula, counts, family=family, trials=trials, **part_formulas)
    loglik, values = at_random_point(model, seed=3)
    etas = {d.part: _eta(values, d) for d in [model.design, *model.parts.values()]}
    by_hand = expected(model.design.y, etas, values, model.design).sum()
    assert loglik == pytest.approx(by_hand, rel=1e-8)
    # The numpy log-likelihood used for LOO agrees too.
    params = {n: np.array([[values[n]]]) for n in model.family.constant_params(model.parts)}
    for part in model.parts:
        params[model.family.part_parameter(part)] = model.family.part(part).inverse(etas[part])[None, :]
    numpy_loglik = model.family.log_likelihood(model.design.y, etas[""][None, :], params, model.design.trials)
    assert numpy_loglik.sum() == pytest.approx(by_hand, rel=1e-8)


def test_summary_and_prior_names(counts):
    model = bm.Model("y ~ x + (1 | site)", counts, family="zero_inflated_negbinomial", zi="~ w + (1 | site)")
    table = model.priors
    assert list(table.index) == [
        "Intercept", "x", "sd(Intercept|site)", "alpha", "zi:Intercept", "zi:w", "sd(zi:Intercept|site)",
    ]  # fmt: skip
    assert table.loc["zi:w", "class"] == "zi:b"
    assert table.loc["zi:Intercept", "prior"] == "Logistic(mu=0, s=1)"
    with_dispersion = bm.Model("cont ~ x", counts, dispersion="~ w")
    assert "sigma" not in with_dispersion.priors.index
    assert ["dispersion:Intercept", "dispersion:w"] == list(with_dispersion.priors.index[-2:])
    override = bm.Model(
        "y ~ x",
        counts,
        family="zero_inflated_poisson",
        priors={"zi:Intercept": bm.Prior("Normal", mu=-1, sigma=1)},
    )
    assert override.priors.loc["zi:Intercept", "source"] == "user"


def test_part_formula_errors(counts):
    with pytest.raises(ValueError, match="family 'poisson' takes no zi= formula; use a zero-inflated family"):
        bm.Model("y ~ x", counts, family="poisson", zi="~ w")
    with pytest.raises(ValueError, match="family 'bernoulli' takes no dispersion= formula"):
        bm.Model("successes ~ x", counts.assign(successes=counts.y > 0), family="bernoulli", dispersion="~ w")
    with pytest.raises(ValueError, match="zi= takes a one-sided formula"):
        bm.Model("y ~ x", counts, family="zero_inflated_poisson", zi="y ~ w")
    with pytest.raises(
        bm.DataError, match="column 'ww' in the fixed effects is not in the data; did you mean 'w'"
    ):
        bm.Model("y ~ x", counts, family="zero_inflated_poisson", zi="~ ww")


def test_each_design_is_built_once_when_no_row_is_dropped(counts, monkeypatch):
    import bayesmm.api

    built = []
    original = bayesmm.api.build_design

    def counting(text, frame, **kwargs):
        built.append((kwargs.get("part", ""), len(frame)))
        return original(text, frame, **kwargs)

    monkeypatch.setattr(bayesmm.api, "build_design", counting)
    # An integer column with three values warns once, however often the design is built.
    data = counts.assign(code=np.arange(len(counts)) % 3)
    with pytest.warns(UserWarning, match="'code' enters the fixed part as a number") as caught:
        bm.Model("y ~ x + code + (1 | site)", data, family="zero_inflated_poisson", zi="~ w")
    assert built == [("", 80), ("zi", 80)]
    assert sum("'code' enters the fixed part" in str(w.message) for w in caught) == 1
    # With a row missing in one part, both are built again on the rows complete in both.
    built.clear()
    with pytest.warns(UserWarning, match="dropped 1 of 80 rows"):
        bm.Model("y ~ x + (1 | site)", counts.assign(w=counts.w.where(counts.index != 5)),
                 family="zero_inflated_poisson", zi="~ w")  # fmt: skip
    assert built == [("", 80), ("zi", 80), ("", 79), ("zi", 79)]


def test_rows_missing_in_a_part_are_dropped_everywhere(counts):
    counts = counts.copy()
    counts.loc[[3, 7], "w"] = np.nan
    with pytest.warns(UserWarning, match="dropped 2 of 80 rows .* zi= formulas"):
        model = bm.Model("y ~ x", counts, family="zero_inflated_poisson", zi="~ w")
    assert model.design.n_obs == model.parts["zi"].n_obs == 78
    assert list(model.design.rows) == list(model.parts["zi"].rows)


# --- recovery ------------------------------------------------------------------

SETTINGS = dict(draws=1000, tune=1000, chains=4, random_seed=21)


def _sites(rng, n_sites=30, per_site=20):
    g = np.repeat(np.arange(n_sites), per_site)
    return g, pd.Categorical([f"site{i:02d}" for i in g])


def _zero_truncated(sample, mu):
    """Draws of ``sample(mu)`` conditioned on being positive: zeros are drawn again."""
    values = sample(mu)
    for _ in range(200):
        zero = values == 0
        values[zero] = sample(mu[zero])
    return values


@pytest.mark.slow
def test_zero_inflated_poisson_with_its_own_random_effects():
    rng = np.random.default_rng(1)
    g, site = _sites(rng)
    x, w = rng.normal(size=g.size), rng.normal(size=g.size)
    u, v = rng.normal(0, 0.5, 30), rng.normal(0, 0.7, 30)
    zi = special.expit(-0.5 + 1.0 * w + v[g])
    y = np.where(rng.random(g.size) < zi, 0, rng.poisson(np.exp(1.0 + 0.5 * x + u[g])))
    data = pd.DataFrame({"y": y, "x": x, "w": w, "site": site})
    model = bm.Model("y ~ x + (1 | site)", data, family="zero_inflated_poisson", zi="~ w + (1 | site)")
    fit = quiet_fit(model, **SETTINGS)
    assert_recovered(
        fit,
        {
            "Intercept": 1.0,
            "x": 0.5,
            "sd(Intercept|site)": 0.5,
            "zi:Intercept": -0.5,
            "zi:w": 1.0,
            "sd(zi:Intercept|site)": 0.7,
        },
    )
    assert_replicates_match(fit, y)

    # The zi part's grouping factor has its own ranef and coef, named as in the summary.
    assert list(fit.ranef()) == ["site", "zi:site"]
    zi_effects = fit.ranef("zi:site")["mean"]
    assert list(zi_effects.columns) == ["zi:Intercept"]
    levels = [int(level[len("site") :]) for level in zi_effects.index]  # "site07" -> 7
    assert np.corrcoef(zi_effects["zi:Intercept"], v[levels])[0, 1] > 0.5
    zi_coef = fit.coef("zi:site")["mean"]
    assert list(zi_coef.columns) == ["zi:Intercept", "zi:w"]
    intercept = fit.fixef().loc["zi:Intercept", "mean"]
    np.testing.assert_allclose(zi_coef["zi:Intercept"], intercept + zi_effects["zi:Intercept"], atol=1e-9)
    assert list(fit.coef("site")["mean"].columns) == ["Intercept", "x"]
    with pytest.raises(ValueError, match=r"plot_ranef\('zi:site'\)"):
        fit.plot_shrinkage("zi:site")


@pytest.mark.slow
def test_zero_inflated_negative_binomial_with_an_offset():
    rng = np.random.default_rng(2)
    g, site = _sites(rng)
    x = rng.normal(size=g.size)
    exposure = rng.uniform(0.5, 3, size=g.size)
    mu = exposure * np.exp(0.8 + 0.4 * x + rng.normal(0, 0.4, 30)[g])
    counts = rng.negative_binomial(3.0, 3.0 / (3.0 + mu))
    y = np.where(rng.random(g.size) < 0.25, 0, counts)
    data = pd.DataFrame({"y": y, "x": x, "exposure": exposure, "site": site})
    model = bm.Model("y ~ x + offset(log(exposure)) + (1 | site)", data, family="zero_inflated_negbinomial")
    fit = quiet_fit(model, **SETTINGS)
    assert_recovered(
        fit,
        {
            "Intercept": 0.8,
            "x": 0.4,
            "sd(Intercept|site)": 0.4,
            "alpha": 3.0,
            "zi:Intercept": special.logit(0.25),
        },
    )
    assert_replicates_match(fit, y)


@pytest.mark.slow
def test_hurdle_negative_binomial():
    rng = np.random.default_rng(3)
    g, site = _sites(rng)
    x, w = rng.normal(size=g.size), rng.normal(size=g.size)
    mu = np.exp(1.2 + 0.3 * x + rng.normal(0, 0.3, 30)[g])
    positive = _zero_truncated(lambda m: rng.negative_binomial(2.0, 2.0 / (2.0 + m)), mu)
    hu = special.expit(-0.3 + 0.8 * w)
    y = np.where(rng.random(g.size) < hu, 0, positive)
    data = pd.DataFrame({"y": y, "x": x, "w": w, "site": site})
    fit = quiet_fit(bm.Model("y ~ x + (1 | site)", data, family="hurdle_negbinomial", hu="~ w"), **SETTINGS)
    assert_recovered(
        fit,
        {
            "Intercept": 1.2,
            "x": 0.3,
            "sd(Intercept|site)": 0.3,
            "alpha": 2.0,
            "hu:Intercept": -0.3,
            "hu:w": 0.8,
        },
    )
    assert_replicates_match(fit, y)


@pytest.mark.slow
def test_zero_inflated_binomial():
    rng = np.random.default_rng(4)
    g, site = _sites(rng)
    x, w = rng.normal(size=g.size), rng.normal(size=g.size)
    trials = rng.integers(5, 15, size=g.size)
    p = special.expit(-0.4 + 0.7 * x + rng.normal(0, 0.5, 30)[g])
    zi = special.expit(-1.0 + 0.6 * w)
    y = np.where(rng.random(g.size) < zi, 0, rng.binomial(trials, p))
    data = pd.DataFrame({"y": y, "n": trials, "x": x, "w": w, "site": site})
    model = bm.Model("y ~ x + (1 | site)", data, family="zero_inflated_binomial", trials="n", zi="~ w")
    fit = quiet_fit(model, **SETTINGS)
    assert_recovered(
        fit,
        {"Intercept": -0.4, "x": 0.7, "sd(Intercept|site)": 0.5, "zi:Intercept": -1.0, "zi:w": 0.6},
    )
    assert_replicates_match(fit, y)


@pytest.mark.slow
def test_hurdle_poisson_with_random_effects_in_the_hurdle():
    rng = np.random.default_rng(5)
    g, site = _sites(rng)
    x, w = rng.normal(size=g.size), rng.normal(size=g.size)
    mu = np.exp(1.0 + 0.4 * x + rng.normal(0, 0.4, 30)[g])
    positive = _zero_truncated(rng.poisson, mu)
    hu = special.expit(-0.2 + 0.7 * w + rng.normal(0, 0.6, 30)[g])
    y = np.where(rng.random(g.size) < hu, 0, positive)
    data = pd.DataFrame({"y": y, "x": x, "w": w, "site": site})
    model = bm.Model("y ~ x + (1 | site)", data, family="hurdle_poisson", hu="~ w + (1 | site)")
    fit = quiet_fit(model, **SETTINGS)
    assert_recovered(
        fit,
        {
            "Intercept": 1.0,
            "x": 0.4,
            "sd(Intercept|site)": 0.4,
            "hu:Intercept": -0.2,
            "hu:w": 0.7,
            "sd(hu:Intercept|site)": 0.6,
        },
    )
    assert_replicates_match(fit, y)


@pytest.mark.slow
def test_gaussian_dispersion_formula_with_random_effects():
    rng = np.random.default_rng(4)
    g, site = _sites(rng)
    x, w = rng.normal(size=g.size), rng.normal(size=g.size)
    log_sigma = -0.7 + 0.4 * w + rng.normal(0, 0.3, 30)[g]
    y = 1.0 + 0.5 * x + rng.normal(0, 0.5, 30)[g] + rng.normal(size=g.size) * np.exp(log_sigma)
    data = pd.DataFrame({"y": y, "x": x, "w": w, "site": site})
    # sd(Intercept|site) mixes slowly here (R-hat 1.0206 at 4 x 1000 on PyMC 6, the funnel of
    # informative levels): twice the draws, the same R-hat and recovery thresholds.
    fit = quiet_fit(bm.Model("y ~ x + (1 | site)", data, dispersion="~ w + (1 | site)"),
                    **{**SETTINGS, "draws": 2000, "tune": 2000})  # fmt: skip
    assert_recovered(
        fit,
        {
            "Intercept": 1.0,
            "x": 0.5,
            "sd(Intercept|site)": 0.5,
            "dispersion:Intercept": -0.7,
            "dispersion:w": 0.4,
            "sd(dispersion:Intercept|site)": 0.3,
        },
    )
    assert "sigma" not in fit.summary().index
    # Replicates reproduce the heteroscedasticity: the variance where w is high and where it is low.
    replicated = fit.predict(kind="response", summary=False, random_seed=1).values.reshape(-1, len(y))
    for rows in (w > 0.5, w < -0.5):
        variances = replicated[:, rows].var(axis=1)
        assert np.quantile(variances, 0.025) < y[rows].var() < np.quantile(variances, 0.975)
    assert y[w > 0.5].var() > 1.5 * y[w < -0.5].var()


def test_dpars_names_parameters_by_their_family(counts):
    # dpars spells the dispersion by its parameter's name: the same model as dispersion=.
    by_name = bm.Model("cont ~ x", counts, family="student", dpars={"sigma": "~ w", "nu": "~ 1"})
    spelled = bm.Model("cont ~ x", counts, family="student", dispersion="~ w", dpars={"nu": "~ 1"})
    assert list(by_name.priors.index) == list(spelled.priors.index)
    assert {"dispersion:w", "nu:Intercept"} <= set(by_name.priors.index)
    assert "nu" not in by_name.priors.index and "sigma" not in by_name.priors.index
    assert by_name.priors.loc["nu:Intercept", "prior"] == "StudentT(nu=3, mu=2.8, sigma=0.7)"
    with pytest.raises(
        ValueError, match="family 'gaussian' takes no nu= formula; its formulas are for sigma"
    ):
        bm.Model("cont ~ x", counts, dpars={"nu": "~ x"})
    with pytest.raises(ValueError, match="the formula for sigma is given twice"):
        bm.Model("cont ~ x", counts, dispersion="~ w", dpars={"sigma": "~ x"})
    with pytest.raises(ValueError, match="dpars takes a dict"):
        bm.Model("cont ~ x", counts, dpars=["nu"])
    with pytest.raises(ValueError, match="must be a string"):
        bm.Model("cont ~ x", counts, family="student", dpars={"nu": 3})


def _recover_dpar(family, formula, dpars, make_y, truth, seed):
    rng = np.random.default_rng(seed)
    g, site = _sites(rng, n_sites=40, per_site=30)
    x, w = rng.normal(size=g.size), rng.integers(0, 2, size=g.size).astype(float)
    y = make_y(rng, g, x, w)
    data = pd.DataFrame({"y": y, "x": x, "w": w, "site": site})
    fit = quiet_fit(bm.Model(formula, data, family=family, dpars=dpars), draws=1000, tune=1000, chains=4,
                    random_seed=seed)  # fmt: skip
    assert_recovered(fit, truth)
    return fit


@pytest.mark.slow
def test_dpars_nu_of_the_student_t(tmp_path):
    # nu = 3 where w = 0 and 12 where w = 1: heavy tails in one half of the data only.
    def make_y(rng, g, x, w):
        nu = np.exp(np.log(3.0) + np.log(4.0) * w)
        return 1.0 + 0.5 * x + rng.normal(0, 0.5, size=40)[g] + 0.7 * rng.standard_t(nu)

    truth = {"Intercept": 1.0, "x": 0.5, "sigma": 0.7, "nu:Intercept": np.log(3.0), "nu:w": np.log(4.0)}
    fit = _recover_dpar("student", "y ~ x + (1 | site)", {"nu": "~ w"}, make_y, truth, seed=31)
    # A saved fit rebuilds the nu formula (and kfold's refits use the same route).
    loaded = bm.load(fit.save(tmp_path / "student.nc"))
    assert loaded.model.part_texts == {"nu": "~ w"}
    np.testing.assert_allclose(loaded.predict()["mean"], fit.predict()["mean"])


@pytest.mark.slow
def test_dpars_phi_of_the_beta():
    def make_y(rng, g, x, w):
        mu = special.expit(-0.5 + 0.8 * x + rng.normal(0, 0.4, size=40)[g])
        phi = np.exp(1.5 + 1.0 * w)
        return np.clip(rng.beta(mu * phi, (1 - mu) * phi), 1e-6, 1 - 1e-6)

    truth = {"Intercept": -0.5, "x": 0.8, "dispersion:Intercept": 1.5, "dispersion:w": 1.0}
    _recover_dpar("beta", "y ~ x + (1 | site)", {"phi": "~ w"}, make_y, truth, seed=32)


@pytest.mark.slow
def test_dpars_alpha_of_the_negative_binomial():
    def make_y(rng, g, x, w):
        mu = np.exp(1.0 + 0.4 * x + rng.normal(0, 0.3, size=40)[g])
        alpha = np.exp(0.0 + 1.5 * w)  # shape 1 where w = 0 (overdispersed), 4.5 where w = 1
        return rng.negative_binomial(alpha, alpha / (alpha + mu))

    truth = {"Intercept": 1.0, "x": 0.4, "dispersion:Intercept": 0.0, "dispersion:w": 1.5}
    _recover_dpar("negbinomial", "y ~ x + (1 | site)", {"alpha": "~ w"}, make_y, truth, seed=33)
