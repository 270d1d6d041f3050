"""Centred or non-centred group effects: the informativeness kappa against the values the
normal hierarchical model implies (n tau^2 / sigma^2), the choice it makes, and the centred
construction's density against the multivariate normal written out."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import bayesmm as bm
from bayesmm.model.builder import level_covariates, marginal_nesting
from bayesmm.model.parameterization import centred_terms, centring_parents, informativeness

from .conftest import at_random_point
from .test_model import _dense_eta


def _gaussian(rng, levels, rows, tau, sigma, slope_sd=None):
    g = np.repeat(np.arange(levels), rows)
    x = rng.normal(size=g.size)
    y = 1.0 + 0.5 * x + rng.normal(0, tau, levels)[g] + rng.normal(0, sigma, g.size)
    if slope_sd is not None:
        y = y + rng.normal(0, slope_sd, levels)[g] * x
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{i}" for i in g]})


@pytest.mark.parametrize(("rows", "tau", "sigma"), [(100, 1.0, 1.0), (10, 1.0, 2.0), (4, 0.3, 1.0)])
def test_kappa_is_n_tau2_over_sigma2_for_a_random_intercept(rows, tau, sigma):
    rng = np.random.default_rng(rows)
    model = bm.Model("y ~ x + (1 | g)", _gaussian(rng, 200, rows, tau, sigma))
    (kappa,) = informativeness(model.design, model.family)
    expected = rows * tau**2 / sigma**2  # 100, 2.5, 0.36
    # 200 levels: the between-level variance is estimated to about sqrt(2/200) = 10% (more
    # where sampling noise dominates it).
    assert kappa[0] == pytest.approx(expected, rel=0.35)
    assert model.centred == (expected > 1,)


def test_kappa_of_a_random_slope():
    rng = np.random.default_rng(5)
    model = bm.Model("y ~ x + (1 + x | g)", _gaussian(rng, 200, 30, 1.0, 1.0, slope_sd=0.5))
    (kappa,) = informativeness(model.design, model.family)
    # x ~ N(0, 1): sum of x^2 in a level is about 30, so a slope's sampling variance is 1/30.
    np.testing.assert_allclose(kappa, [30 * 1.0, 30 * 0.25], rtol=0.35)
    assert model.centred == (True,)


def test_one_row_per_level_is_never_centred():
    rng = np.random.default_rng(6)
    model = bm.Model("y ~ x + (1 | g)", _gaussian(rng, 300, 1, 3.0, 0.1))
    assert informativeness(model.design, model.family)[0][0] == 0.0
    assert model.centred == (False,)


def test_crossed_factors_are_fitted_jointly():
    # lme4's REML fit of Penicillin: sd(plate) 0.847, sd(sample) 1.932, sigma 0.550; a plate
    # has 6 rows (one per sample), a sample 24: n tau^2 / sigma^2 = 14.2 and 296.
    model = bm.Model("diameter ~ 1 + (1 | plate) + (1 | sample)", bm.datasets.load("Penicillin"))
    plate, sample = informativeness(model.design, model.family)
    assert plate[0] == pytest.approx(6 * 0.847**2 / 0.550**2, rel=0.2)
    assert sample[0] == pytest.approx(24 * 1.932**2 / 0.550**2, rel=0.2)


def test_a_nested_factor_counts_as_noise_of_the_coarser_one():
    # lme4's Pastes: sd(batch) 1.29, sd(cask within batch) 2.90, sigma 0.82; a batch mean of
    # 3 casks x 2 samples has sampling variance 2.90^2 / 3 + 0.82^2 / 6: kappa 0.57, not
    # centred; a cask mean of 2 samples: kappa 25.
    model = bm.Model("strength ~ 1 + (1 | batch/cask)", bm.datasets.load("Pastes"))
    batch, cask = informativeness(model.design, model.family)
    assert batch[0] == pytest.approx(1.29**2 / (2.90**2 / 3 + 0.82**2 / 6), rel=0.35)
    assert cask[0] == pytest.approx(2 * 2.90**2 / 0.82**2, rel=0.35)
    assert model.centred == (False, True)  # casks centred around their batches


def test_a_nested_term_is_centred_around_its_parent_or_with_it():
    # 30 batches of 5 casks of 20 rows, both SDs large against sigma: both informative.
    rng = np.random.default_rng(12)
    cask = np.repeat(np.arange(150), 20)
    batch = cask // 5
    y = rng.normal(0, 2.0, 30)[batch] + rng.normal(0, 1.0, 150)[cask] + rng.normal(0, 0.5, cask.size)
    data = pd.DataFrame({"y": y, "batch": batch.astype(str), "cask": (cask % 5).astype(str)})
    model = bm.Model("y ~ 1 + (1 | batch/cask)", data)
    batch_kappa, cask_kappa = informativeness(model.design, model.family)
    assert batch_kappa[0] > 1 and cask_kappa[0] > 1
    assert model.centred == (True, True)
    # Under a non-centred parent with its columns, a term is centred around the parent.
    assert bm.Model("y ~ 1 + (1 | batch/cask)", data, centered={"batch": False}).centred == (False, True)
    # One with other columns cannot centre it around it: the term follows it then.
    data = data.assign(x=rng.normal(size=cask.size))
    formula = "y ~ x + (1 + x | batch) + (1 | batch:cask)"
    assert centring_parents(bm.Model(formula, data).design) == [(), None]
    assert bm.Model(formula, data, centered={"batch": False}).centred == (False, False)
    assert bm.Model(formula, data, centered={"batch": False, "batch:cask": True}).centred == (False, True)


def test_counts_are_measured_on_the_link_scale():
    # Poisson with a log link: a level's mean mu has information n * mu on the log scale.
    rng = np.random.default_rng(8)
    g = np.repeat(np.arange(150), 8)
    log_mu = np.log(20.0) + rng.normal(0, 0.5, 150)[g]
    data = pd.DataFrame({"y": rng.poisson(np.exp(log_mu)), "g": g.astype(str)})
    model = bm.Model("y ~ 1 + (1 | g)", data, family="poisson")
    (kappa,) = informativeness(model.design, model.family)
    assert kappa[0] == pytest.approx(8 * 20.0 * 0.25, rel=0.35)


def test_the_setting_overrides_the_choice():
    rng = np.random.default_rng(9)
    data = _gaussian(rng, 40, 50, 1.0, 1.0).assign(h=lambda d: rng.integers(0, 5, len(d)), z=lambda d: d.x**2)
    formula = "y ~ x + (1 | g) + (1 | h) + rr(0 + x + z | g, 1)"
    # h (crossed with g) has no effect of its own: nothing to centre; rr: never.
    assert bm.Model(formula, data).centred == (True, False, False)
    assert bm.Model(formula, data, centered=False).centred == (False, False, False)
    assert bm.Model(formula, data, centered={"h": True}).centred == (True, True, False)
    with pytest.raises(ValueError, match="'k', not a grouping factor.*'g', 'h'"):
        bm.Model(formula, data, centered={"k": True})
    with pytest.raises(ValueError, match="centered takes None, True, False or a dict"):
        bm.Model(formula, data, centered="yes")
    table = bm.Model(formula, data).parameterization
    assert list(table["centred"]) == [True, False, False]
    assert table.loc[0, "kappa"] > 10


def _assert_centred_density(pymc_model, group: str) -> None:
    """The density of one centred term's sampled rows (the mean row's standard normals and
    the other rows' MvNormal) is that of its reported effects r: every level's effects
    Normal(0, Sigma), except that the mean row is drawn as standard normals."""
    rng = np.random.default_rng(1)
    point = {k: rng.normal(scale=0.5, size=np.shape(v)) for k, v in pymc_model.initial_point().items()}
    z0, v = pymc_model[f"z_{group}"], pymc_model[f"v_{group}"]
    wanted = [pymc_model[f"r_{group}"], pymc_model[f"sd_{group}"]]
    wanted += [pymc_model[f"cor_{group}"]] if f"cor_{group}" in pymc_model else []
    outputs = pymc_model.replace_rvs_by_values(wanted)
    values = pymc_model.compile_fn(outputs, inputs=pymc_model.value_vars, on_unused_input="ignore")(point)
    r_value, sd_value = values[0], values[1]
    p = len(sd_value)
    cor = values[2][0] if len(values) > 2 else 0.0
    sigma = np.outer(sd_value, sd_value) * (np.eye(p) + cor * (1 - np.eye(p)))
    logp = float(pymc_model.compile_logp(vars=[z0, v], jacobian=False)(point))
    mean_row = point[f"z_{group}"] @ np.linalg.cholesky(sigma).T
    expected = (
        stats.multivariate_normal(np.zeros(p), sigma).logpdf(r_value).sum()  # every level's effects
        - stats.multivariate_normal(np.zeros(p), sigma).logpdf(mean_row)  # the mean row is not
        + stats.norm.logpdf(point[f"z_{group}"]).sum()  # drawn centred but as standard normals
    )
    assert logp == pytest.approx(expected, rel=1e-9)


def _assert_dense_likelihood(model, data) -> None:
    """The effects enter the likelihood as lme4's dense Z says."""
    loglik, named = at_random_point(model, seed=3)
    eta = _dense_eta(model, named)
    assert loglik == pytest.approx(stats.norm(eta, named["sigma"]).logpdf(data.y).sum(), rel=1e-9)


@pytest.mark.parametrize("formula", ["y ~ x + (1 + x | g)", "y ~ x + (1 + x || g)", "y ~ x + cs(1 + x | g)"])
def test_centred_effects_have_the_multivariate_normal_density(formula):
    data = _gaussian(np.random.default_rng(10), 12, 6, 1.0, 1.0, slope_sd=0.5)
    model = bm.Model(formula, data, centered=True)
    _assert_centred_density(model.pymc_model, "g")
    _assert_dense_likelihood(model, data)


@pytest.mark.parametrize(
    ("formula", "child"),
    [("y ~ x + (1 + x | g/h)", "g:h"), ("y ~ x + (1 + x | gh) + (1 + x | g)", "gh")],
)
def test_a_term_centred_around_its_parents_keeps_its_density(formula, child):
    # 12 levels of g with 3 of h in each: the rows sampled for h are h's effects plus g's,
    # drawn around g's; the effects r reported for h must still be Normal(0, Sigma) apart.
    data = _gaussian(np.random.default_rng(13), 36, 5, 1.0, 1.0, slope_sd=0.5)
    level = data.g.str[1:].astype(int)
    data = data.assign(g=(level // 3).astype(str), h=(level % 3).astype(str), gh=data.g)
    model = bm.Model(formula, data, centered=True)
    assert model.centred == (True, True)
    _assert_centred_density(model.pymc_model, child)
    _assert_dense_likelihood(model, data)
    # The rows are drawn around g's effects: their density moves with g's rows (centred on
    # their own, it would not).
    pymc_model = model.pymc_model
    logp = pymc_model.compile_logp(vars=[pymc_model[f"v_{child}"]], jacobian=False)
    point = {k: np.full(np.shape(v), 0.3) for k, v in pymc_model.initial_point().items()}
    moved = {**point, "v_g": point["v_g"] + 1.0}
    assert float(logp(moved)) != pytest.approx(float(logp(point)), rel=1e-6)


def test_centred_terms_is_what_the_model_uses():
    data = _gaussian(np.random.default_rng(11), 30, 40, 1.0, 1.0)
    model = bm.Model("y ~ x + (1 | g)", data)
    assert model.centred == centred_terms(model.design, model.family) == (True,)
    assert "v_g" in model.pymc_model.named_vars
    assert "v_g" not in bm.Model("y ~ x + (1 | g)", data, centered=False).pymc_model.named_vars


@pytest.mark.parametrize(
    ("formula", "group", "within"),
    [("y ~ x + w + (1 | g)", "g", "w"), ("y ~ x + w + v + (1 | g/h) + (1 | k)", "g:h", "v")],
)
def test_a_centred_term_is_drawn_around_the_fixed_effects_constant_within_its_levels(formula, group, within):
    # w takes one value per level of g (a location's height), v one per level of g:h (a
    # brood's year), x varies within levels. The rows sampled for a centred term are then a
    # level's whole deviation, r + (fixed part constant within the level): moving the slope
    # of w (of v for g:h) moves their density, the slope of x does not, and r keeps its
    # Normal(0, Sigma). (For g:h, g's own rows, centred around w, absorb w's slope; k, crossed
    # with both, keeps g out of being integrated out: test_a_parent_integrated_out_...)
    rng = np.random.default_rng(21)
    data = _gaussian(rng, 36, 5, 1.0, 1.0)
    level = data.g.str[1:].astype(int)
    data = data.assign(
        g=(level // 3).astype(str), h=(level % 3).astype(str),
        w=rng.normal(0, 20, 12)[level // 3], v=rng.normal(size=36)[level],
        k=(np.arange(len(level)) % 4).astype(str),
    )  # fmt: skip
    model = bm.Model(formula, data, centered=True)
    pymc_model = model.pymc_model
    _assert_centred_density(pymc_model, group)
    _assert_dense_likelihood(model, data)
    names = list(model.design.fixef_names)
    (term,) = model.design.groups[group]
    found, _ = level_covariates(model.design, term)
    expected = ["w"] if group == "g" else ["w", "v"]
    assert [names[1:][j] for j in found] == expected
    logp = pymc_model.compile_logp(vars=[pymc_model[f"v_{group}"]], jacobian=False)
    point = {k: np.full(np.shape(v), 0.3) for k, v in pymc_model.initial_point().items()}

    def moved(slope):
        b = point["b_std"].copy()
        b[names[1:].index(slope)] += 1.0
        return float(logp({**point, "b_std": b}))

    assert moved(within) != pytest.approx(float(logp(point)), rel=1e-6)
    assert moved("x") == pytest.approx(float(logp(point)), rel=1e-12)


def _nested_gaussian(seed=13, **extra):
    # 12 levels of g holding 1 to 5 levels of h each (33 in all), 5 rows per level of h; w
    # takes one value per level of g, x varies within levels.
    rng = np.random.default_rng(seed)
    children = np.tile([1, 2, 3, 4, 5, 1], 2)
    g = np.repeat(np.arange(12), children)
    data = _gaussian(rng, len(g), 5, 1.0, 1.0)
    level = data.g.str[1:].astype(int).to_numpy()
    return data.assign(g=g[level].astype(str), h=level.astype(str), w=rng.normal(0, 3, 12)[g[level]], **extra)


@pytest.mark.parametrize("formula", ["y ~ x + w + (1 | g/h)", "y ~ 0 + x + (1 | g) + (1 | h)"])
def test_a_parent_integrated_out_of_its_centred_child(formula):
    # Two nested intercept terms, the inner centred: NUTS moves each inner level's whole
    # linear predictor u; the outer effects are integrated out of its prior, and drawn from
    # their conditional through standard normals z.
    data = _nested_gaussian()
    model = bm.Model(formula, data, centered=True)
    inner = "g:h" if "g/h" in formula else "h"
    assert marginal_nesting(model.design, model.centred) is not None
    pymc_model = model.pymc_model
    assert {f"u_{inner}", "z_g"} <= set(pymc_model.named_vars) and f"v_{inner}" not in pymc_model.named_vars
    forms = dict(zip(model.parameterization.group, model.parameterization.form, strict=True))
    assert forms["g"] == f"integrated out of {inner}'s prior"
    assert forms[inner].startswith("centred, whole linear predictor")
    _assert_dense_likelihood(model, data)  # r_g + r_h + fixef give the likelihood's eta
    rng = np.random.default_rng(4)
    point = {k: rng.normal(scale=0.5, size=np.shape(v)) for k, v in pymc_model.initial_point().items()}
    wanted = [pymc_model[n] for n in ("sd_g", f"sd_{inner}", "r_g", f"r_{inner}", "fixef")]
    evaluate = pymc_model.compile_fn(pymc_model.replace_rvs_by_values(wanted), inputs=pymc_model.value_vars,
                                     on_unused_input="ignore")  # fmt: skip
    sd_g, sd_h, r_g, r_h, fixef = evaluate(point)
    (outer_term,) = model.design.groups["g"]
    (inner_term,) = model.design.groups[inner]
    parents = np.zeros(inner_term.n_levels, dtype=int)
    parents[inner_term.codes] = outer_term.codes
    incidence = np.eye(outer_term.n_levels)[parents]
    # The fixed part constant within the inner levels (the intercept and w), that of x
    # centred at its mean taken out.
    X, x = model.design.X, model.design.fixef_names.index("x")
    level_fixed = np.zeros(inner_term.n_levels)
    center = X[:, x].mean() if model.design.has_intercept else 0.0  # no intercept: not centred
    level_fixed[inner_term.codes] = X @ fixef - (X[:, x] - center) * fixef[x]
    u = point[f"u_{inner}"]
    e = u - level_fixed
    np.testing.assert_allclose(r_h[:, 0] + r_g[parents, 0], e, atol=1e-10)
    # u's density: Normal(fixed part, s_h^2 I + s_g^2 P P^T), written out against scipy.
    cov = sd_h[0] ** 2 * np.eye(len(u)) + sd_g[0] ** 2 * incidence @ incidence.T
    logp = float(pymc_model.compile_logp(vars=[pymc_model[f"u_{inner}"]], jacobian=False)(point))
    assert logp == pytest.approx(stats.multivariate_normal(level_fixed, cov).logpdf(u), rel=1e-9)
    # The outer effects: the conditional mean and SD of r_g given e, by Gaussian conditioning.
    outer_var = sd_g[0] ** 2
    joint = np.block([[outer_var * np.eye(12), outer_var * incidence.T], [outer_var * incidence, cov]])
    gain = joint[:12, 12:] @ np.linalg.inv(cov)
    mean = gain @ e
    sd = np.sqrt(np.diag(joint[:12, :12] - gain @ joint[12:, :12]))
    np.testing.assert_allclose(r_g[:, 0], mean + sd * point["z_g"], rtol=1e-9, atol=1e-12)


def test_the_integrated_out_form_draws_the_prior_it_says():
    # Prior draws of u: within a level of g its children covary by s_g^2, across levels not.
    model = bm.Model("y ~ 1 + (1 | g/h)", _nested_gaussian(), centered=True)
    u = model.pymc_model["u_g:h"]
    fixed = {model.pymc_model["sd_g_raw"]: np.array([0.8]), model.pymc_model["sd_g:h_raw"]: np.array([0.5]),
             model.pymc_model["Intercept_c"]: 2.0}  # fmt: skip
    import pymc as pm
    from pytensor.graph.replace import graph_replace

    draws = pm.draw(graph_replace(u, fixed), draws=20000, random_seed=5)
    cov = np.cov(draws.T)
    (outer,) = model.design.groups["g"]
    (inner,) = model.design.groups["g:h"]
    parents = np.zeros(inner.n_levels, dtype=int)
    parents[inner.codes] = outer.codes
    same = parents[:, None] == parents[None, :]
    expected = 0.64 * same + 0.25 * np.eye(len(parents))
    np.testing.assert_allclose(draws.mean(axis=0), 2.0, atol=0.04)
    np.testing.assert_allclose(cov, expected, atol=0.04)


def test_only_two_nested_intercept_terms_are_integrated_out():
    data = _nested_gaussian(k=lambda d: np.arange(len(d)) % 4)
    for formula in ["y ~ x + (1 + x | g/h)", "y ~ x + (1 | g/h) + (1 | k)"]:
        model = bm.Model(formula, data, centered=True)
        assert marginal_nesting(model.design, model.centred) is None
    model = bm.Model("y ~ x + (1 | g/h)", data, centered=True)
    assert marginal_nesting(model.design, model.centred, qr=True) is None
    assert marginal_nesting(model.design, (False, False)) is None
