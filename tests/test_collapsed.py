"""Group effects integrated out (bayesmm.model.collapsed): the collapsed likelihood is the marginal
density, the effects' draws come from their exact conditional, and a collapsed fit has the
posterior of the uncollapsed one."""

import numpy as np
import pandas as pd
import pytensor.tensor as pt
import pytest
import xarray as xr
from scipy import stats

import bayesmm as bm
from bayesmm.model import collapsed
from bayesmm.model.collapsed import CollapsedStatistics, collapsed_group, collapsed_logp, draw_group_effects
from bayesmm.model.fixed import sampled_fixed_coefficients, sampled_fixed_matrix

from .conftest import quiet_fit


def _data(seed=3, n_levels=6):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, n_levels, 60)  # unbalanced levels
    x, t = rng.normal(size=60), rng.normal(size=60)
    effects = rng.normal(0, 1.5, n_levels)[g] + rng.normal(0, 0.8, n_levels)[g] * t
    y = 5 + 2 * x + effects + rng.normal(0, 1, 60)
    return pd.DataFrame({"y": y, "x": x, "t": t, "g": [f"g{i}" for i in g], "w": rng.uniform(0, 2, 60)})


def _dense(model, fixef, Sigma, sigma):
    """log N(y; X fixef + offset, sigma^2 I + Z Sigma_full Z^T), with Z dense."""
    design = model.design
    ((group, terms),) = design.groups.items()
    Z = np.column_stack([t.matrix for t in terms])
    J, q = terms[0].n_levels, Z.shape[1]
    Zfull = np.zeros((design.n_obs, J * q))
    for i, code in enumerate(terms[0].codes):
        Zfull[i, code * q : (code + 1) * q] = Z[i]
    mean = design.X @ fixef + (0.0 if design.offset is None else design.offset)
    cov = sigma**2 * np.eye(design.n_obs) + Zfull @ np.kron(np.eye(J), Sigma) @ Zfull.T
    return stats.multivariate_normal(mean, cov).logpdf(design.y), Zfull, cov, mean


FORMULAS = [
    "y ~ x + (1 | g)",
    "y ~ x + (1 + t | g)",
    "y ~ x + (1 + t || g)",
    "y ~ 0 + x + (1 + t | g)",
    "y ~ x + offset(w) + (1 + t | g)",
    "y ~ 1 + (1 | g) + (0 + x + t | g)",
]


@pytest.mark.parametrize("formula", FORMULAS)
def test_collapsed_likelihood_is_the_marginal_density(formula):
    model = bm.Model(formula, _data(), collapsed=True)
    design = model.design
    rng = np.random.default_rng(7)
    q = sum(t.n_terms for t in design.random)
    fixef = rng.normal(size=len(design.fixef_names))
    factor = np.tril(rng.normal(size=(q, q))) + 2 * np.eye(q)
    if "||" in formula:
        factor = np.diag(np.diag(factor))
    sigma = 1.3
    expected, *_ = _dense(model, fixef, factor @ factor.T, sigma)
    statistics = CollapsedStatistics.of(design, sampled_fixed_matrix(design))
    theta = sampled_fixed_coefficients(design, fixef)
    logp = collapsed_logp(statistics, pt.as_tensor(theta), pt.as_tensor(factor), q, pt.as_tensor(sigma))
    assert float(logp.eval()) == pytest.approx(expected, rel=1e-10)


def test_collapsed_likelihood_with_a_reduced_rank_factor():
    # rr: Sigma = Lambda Lambda^T with Lambda 3 x 1 (singular), one latent column per level.
    model = bm.Model("y ~ x + rr(1 + t + x | g, 1)", _data(), collapsed=True)
    design = model.design
    loadings = np.array([[1.5], [-0.4], [0.7]])
    fixef = np.array([4.0, 1.0])
    expected, *_ = _dense(model, fixef, loadings @ loadings.T, 0.9)
    statistics = CollapsedStatistics.of(design, sampled_fixed_matrix(design))
    theta = sampled_fixed_coefficients(design, fixef)
    logp = collapsed_logp(statistics, pt.as_tensor(theta), pt.as_tensor(loadings), 1, pt.as_tensor(0.9))
    assert float(logp.eval()) == pytest.approx(expected, rel=1e-10)


def test_collapsed_likelihood_keeps_its_precision_when_the_fixed_part_explains_nearly_everything():
    # y = 1e6 + 1e4 x + noise of SD 0.01: sums of squares of y are 1e12 times the residual's.
    data = _data()
    data["y"] = 1e6 + 1e4 * data["x"] + np.random.default_rng(1).normal(0, 0.01, len(data))
    model = bm.Model("y ~ x + (1 | g)", data, collapsed=True)
    design = model.design
    fixef = np.array([1e6 + 0.003, 1e4 - 0.002])
    expected, *_ = _dense(model, fixef, np.array([[0.02**2]]), 0.01)
    statistics = CollapsedStatistics.of(design, sampled_fixed_matrix(design))
    theta = sampled_fixed_coefficients(design, fixef)
    L = pt.as_tensor(np.array([[0.02]]))
    logp = collapsed_logp(statistics, pt.as_tensor(theta), L, 1, pt.as_tensor(0.01))
    assert float(logp.eval()) == pytest.approx(expected, rel=1e-8)


def test_group_effects_are_drawn_from_their_exact_conditional():
    model = bm.Model("y ~ x + (1 + t | g)", _data(), collapsed=True)
    design = model.design
    fixef, Sigma, sigma = np.array([5.0, 2.0]), np.array([[2.0, 0.3], [0.3, 0.5]]), 1.1
    _, Zfull, cov, mean = _dense(model, fixef, Sigma, sigma)
    J, q = design.random[0].n_levels, 2
    prior = np.kron(np.eye(J), Sigma)
    gain = prior @ Zfull.T @ np.linalg.inv(cov)
    exact_mean = gain @ (design.y - mean)
    exact_cov = prior - gain @ Zfull @ prior
    S = 20000
    statistics = CollapsedStatistics.of(design, sampled_fixed_matrix(design))
    delta = sampled_fixed_coefficients(design, fixef) - statistics.theta_ls
    residual_z = statistics.Zte - statistics.ZtD @ delta
    draws = draw_group_effects(
        statistics.ZtZ,
        lambda s: np.tile(residual_z, (len(range(S)[s]), 1, 1)),
        np.tile(Sigma, (S, 1, 1)),
        np.full(S, sigma),
        np.random.default_rng(2),
    )
    draws = draws.reshape(S, J * q)
    se = np.sqrt(np.diag(exact_cov) / S)
    assert np.all(np.abs(draws.mean(axis=0) - exact_mean) < 4.5 * se)
    assert np.allclose(np.cov(draws.T), exact_cov, atol=0.05 * np.abs(exact_cov).max())


@pytest.mark.parametrize(
    ("formula", "family", "kwargs", "reason"),
    [
        ("y ~ x + (1 | g)", "poisson", {}, "family 'poisson'"),
        ("y ~ x + (1 | g)", "gaussian", {"dispersion": "~ x"}, "formulas for dispersion"),
        ("y ~ x", "gaussian", {}, "no group effects"),
    ],
)
def test_collapsing_a_model_that_cannot_be_collapsed_says_why(formula, family, kwargs, reason):
    data = _data().assign(t2=lambda d: (d.t > 0).astype(str), y=lambda d: np.abs(d.y).round())
    with pytest.raises(ValueError, match=f"cannot be integrated out: .*{reason.split('(')[0]}"):
        bm.Model(formula, data, family=family, collapsed=True, **kwargs)
    model = bm.Model(formula, data, family=family, collapsed=None, **kwargs)
    assert model.collapsed is False and model.sampled_model is model.pymc_model


def test_no_factor_with_too_many_columns_per_level_is_integrated_out(monkeypatch):
    monkeypatch.setattr(collapsed, "MAX_LATENT", 1)
    data = _data().assign(t2=lambda d: (d.t > 0).astype(str))
    with pytest.raises(ValueError, match="every grouping factor has more than 1 varying columns per level"):
        bm.Model("y ~ x + (1 + x | g) + (1 + t | t2)", data, collapsed=True)
    assert collapsed_group(bm.Model("y ~ x + (1 + x | g) + (1 | t2)", data).design) == "t2"


def test_collapsed_takes_true_false_none_or_auto():
    with pytest.raises(ValueError, match="collapsed must be True, False, None or 'auto', got 'yes'"):
        bm.Model("y ~ x + (1 | g)", _data(), collapsed="yes")
    assert bm.Model("y ~ x + (1 | g)", _data(), collapsed=None).collapsed is True
    assert bm.Model("y ~ x + (1 | g)", _data(), collapsed=False).collapsed is False


def test_by_default_one_grouping_factor_is_integrated_out_and_several_are_sampled():
    data = _data().assign(h=lambda d: np.where(d.x > 0, "a", "b"))
    one = bm.Model("y ~ x + (1 + t | g)", data)
    assert one.collapsed and one.collapsed_group == "g"
    assert "z_g" not in {v.name for v in one.sampled_model.free_RVs}
    # Two factors: the default samples both (None would integrate the larger one out).
    two = bm.Model("y ~ x + (1 | g) + (1 | h)", data)
    assert not two.collapsed and two.collapsed_group is None
    assert bm.Model("y ~ x + (1 | g) + (1 | h)", data, collapsed=None).collapsed_group == "g"
    # A parameterization asked for is a request to sample the effects that way.
    for centered in (True, False, {"g": True}):
        assert not bm.Model("y ~ x + (1 | g)", data, centered=centered).collapsed
    assert bm.Model("y ~ x + (1 | g)", data, centered={}).collapsed
    # Not Gaussian, or not a constant sigma: sampled, as before, without an error.
    counts = data.assign(y=np.random.default_rng(1).poisson(3, len(data)))
    assert not bm.Model("y ~ x + (1 | g)", counts, family="poisson").collapsed
    assert not bm.Model("y ~ x + (1 | g)", data, dispersion="~ x").collapsed


def test_the_collapsed_model_samples_no_group_effects():
    model = bm.Model("y ~ x + (1 + t | g)", _data(), collapsed=True)
    sampled = {v.name for v in model.sampled_model.free_RVs}
    assert sampled == {"b_std", "Intercept_c", "sd_g_raw", "cpc_g", "sigma"}
    standard = {v.name for v in model.pymc_model.free_RVs}
    assert {"z_g"} <= standard
    assert list(model.parameterization["collapsed"]) == [True]


@pytest.fixture(scope="module")
def sleepstudy_collapsed(sleepstudy):
    model = bm.Model("Reaction ~ Days + (Days | Subject)", sleepstudy, collapsed=True)
    return quiet_fit(model, draws=1000, tune=1000, chains=4, random_seed=20261202)


@pytest.mark.slow
def test_collapsed_sleepstudy_agrees_with_brms_and_mixes(sleepstudy_collapsed):
    from .test_sleepstudy import BRMS

    table = sleepstudy_collapsed.summary()
    assert list(table.index) == list(BRMS)
    for name, (mean, sd) in BRMS.items():
        assert abs(table.loc[name, "mean"] - mean) <= 0.3 * sd, name
        assert table.loc[name, "sd"] == pytest.approx(sd, rel=0.15), name
    assert table["r_hat"].max() <= 1.01 and table["ess_bulk"].min() >= 1000
    assert int(sleepstudy_collapsed.idata.sample_stats["diverging"].sum()) == 0


@pytest.mark.slow
def test_collapsed_group_effects_agree_with_the_sampled_ones(sleepstudy_collapsed, sleepstudy_fit):
    collapsed = sleepstudy_collapsed.idata.posterior["r_Subject"]
    sampled = sleepstudy_fit.idata.posterior["r_Subject"]
    assert collapsed.dims == sampled.dims
    assert list(collapsed.coords["Subject"].values) == list(sampled.coords["Subject"].values)
    # Per level and column: posterior means within 0.15 posterior SDs, SDs within 10%.
    sd = sampled.std(("chain", "draw"))
    assert float((abs(collapsed.mean(("chain", "draw")) - sampled.mean(("chain", "draw"))) / sd).max()) < 0.15
    assert float(abs(collapsed.std(("chain", "draw")) / sd - 1).max()) < 0.1
    # And so do what is built from them: coef and the pointwise log-likelihood.
    a, b = sleepstudy_collapsed.coef()["Subject"], sleepstudy_fit.coef()["Subject"]
    gap = (a.xs("mean", axis=1, level=0) - b.xs("mean", axis=1, level=0)) / b.xs("sd", axis=1, level=0)
    assert float(gap.abs().max().max()) < 0.15
    assert sleepstudy_collapsed.loo().elpd == pytest.approx(sleepstudy_fit.loo().elpd, abs=3.0)


@pytest.mark.slow
def test_a_collapsed_fit_saves_loads_and_updates_collapsed(sleepstudy_collapsed, sleepstudy, tmp_path):
    path = sleepstudy_collapsed.save(tmp_path / "fit.nc")
    loaded = bm.load(path)
    assert loaded.model.collapsed is True
    refit = sleepstudy_collapsed.update(data=sleepstudy.assign(Reaction=sleepstudy.Reaction + 10), draws=200,
                                        chains=2, tune=300)  # fmt: skip
    assert refit.model.collapsed is True
    shift = refit.fixef().loc["Intercept", "mean"] - sleepstudy_collapsed.fixef().loc["Intercept", "mean"]
    assert shift == pytest.approx(10.0, abs=3.0)
    assert refit.idata.attrs["laid_out_by"] == "design"  # written again from the new data


@pytest.mark.parametrize(
    ("formula", "group"),
    [
        ("y ~ x + (1 + t | g) + (1 | h)", "g"),
        ("y ~ x + (1 | h/g)", "h:g"),
        ("y ~ 1 + (1 | h) + (0 + t | g)", "g"),
    ],
)
def test_with_several_grouping_factors_the_largest_is_integrated_out_given_the_others(formula, group):
    # At a random point of the sampler's coordinates: the collapsed likelihood is the density
    # of y given the fixed effects and the other factors' effects, Normal(X b + Z_o r_o,
    # sigma^2 I + Z_g Sigma Z_g^T).
    data = _data().assign(h=lambda d: np.where(d.w > 1, "h1", "h2"))
    data["g"] = data["g"] + data["h"]  # nested in h, for h/g
    model = bm.Model(formula, data, collapsed=True)
    design = model.design
    assert collapsed_group(design) == group
    pymc_model = model.sampled_model
    others = [g for g in design.groups if g != group]
    assert {f"r_{g}" for g in others} <= {v.name for v in pymc_model.deterministics}
    rng = np.random.default_rng(4)
    point = {k: rng.normal(scale=0.5, size=np.shape(v)) for k, v in pymc_model.initial_point().items()}
    names = ["fixef", "sigma", f"sd_{group}", *(f"r_{g}" for g in others)]
    names += [f"cor_{group}"] if f"cor_{group}" in pymc_model.named_vars else []
    values = pymc_model.compile_fn(
        pymc_model.replace_rvs_by_values([pymc_model[n] for n in names]), inputs=pymc_model.value_vars,
        on_unused_input="ignore",
    )(point)  # fmt: skip
    values = dict(zip(names, values, strict=True))
    potential = pymc_model.compile_fn(
        pymc_model.replace_rvs_by_values([pymc_model["collapsed_loglik"]]), inputs=pymc_model.value_vars,
        on_unused_input="ignore",
    )(point)[0]  # fmt: skip
    terms = design.groups[group]
    cors = values.get(f"cor_{group}")
    Sigma = terms[0].covariance.covariance(values[f"sd_{group}"][None], None if cors is None else cors[None])[
        0
    ]
    offset = sum(
        (values[f"r_{t.group}"][t.codes][:, t.covariance.columns] * t.matrix).sum(axis=1)
        for t in design.random if t.group != group
    )  # fmt: skip
    shifted = bm.Model(formula, data.assign(y=data.y - offset), collapsed=True)
    expected, *_ = _dense(_only(shifted, group), values["fixef"], Sigma, float(values["sigma"]))
    assert float(potential) == pytest.approx(expected, rel=1e-9)


def _only(model, group):
    """``model`` with only ``group``'s terms (for the dense reference density)."""
    model.design.random = list(model.design.groups[group])
    return model


CROSSED = ["y ~ x + (1 + t | g) + (1 + x | h)", "y ~ x + (1 | g) + (1 | h) + (0 + t | h)"]


@pytest.mark.parametrize("formula", CROSSED, ids=["slopes", "two terms of h"])
def test_crossed_residual_sums_are_the_rows_residuals_summed_per_level(formula):
    # What the conditional of g's effects reads, per level and term column: sum over the
    # level's rows of Z_g[i, c] (y_i - X_i b - sum_t Z_t[i] r_t[level of i]), by hand.
    data = _data().assign(h=lambda d: np.where(d.w > 1, "h1", "h2"))
    design = bm.Model(formula, data, collapsed=True).design
    rng = np.random.default_rng(5)
    S, p = 7, design.X.shape[1]
    fixef = rng.normal(size=(S, p))
    h_columns = len(design.group_columns("h"))
    r_h = rng.normal(size=(1, S, design.groups["h"][0].n_levels, h_columns))
    posterior = xr.Dataset({design.var("r_h"): (("chain", "draw", "h", "h_columns"), r_h)})
    codes, J, Z = collapsed._level_columns(design, "g")
    residual_z_of = collapsed._residual_z_crossed(design, "g", posterior, fixef, codes, J, Z)
    expected = np.zeros((S, J, Z.shape[1]))
    for s in range(S):
        residual = design.y - design.X @ fixef[s]
        for term in design.groups["h"]:
            residual -= (r_h[0, s][term.codes][:, term.covariance.columns] * term.matrix).sum(axis=1)
        for i in range(design.n_obs):
            expected[s, codes[i]] += Z[i] * residual[i]
    np.testing.assert_allclose(residual_z_of(slice(2, 6)), expected[2:6], rtol=1e-12, atol=1e-12)
