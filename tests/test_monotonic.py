"""brms's monotonic effects mo(x): the levels' effects b D sum(zeta[1..x]) with zeta a simplex.
The log-density is checked against the definition at random points, the design against
ordered factors and integers (and refuses what is neither), and a fit recovers monotone level
means."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import bayesmm as bm

from .bad_input.helpers import refused
from .conftest import assert_recovered, quiet_fit

LEVELS = ["none", "primary", "secondary", "bachelor", "master"]
TRUTH = np.array([0.0, 1.0, 1.5, 1.9, 2.4])  # each level's effect: monotone, with uneven steps


def _education(seed=2, n=400):
    rng = np.random.default_rng(seed)
    edu = rng.integers(0, 5, n)
    x = rng.normal(size=n)
    g = rng.integers(0, 10, n)
    y = 1.0 + TRUTH[edu] + 0.5 * x + rng.normal(0, 0.3, 10)[g] + rng.normal(0, 0.5, n)
    degree = pd.Categorical(np.array(LEVELS)[edu], categories=LEVELS, ordered=True)
    return pd.DataFrame({"y": y, "edu": edu, "degree": degree, "x": x, "g": g})


def test_levels_and_codes_of_integers_and_ordered_factors():
    data = _education()
    by_integer = bm.Model("y ~ mo(edu) + x", data).design.monotonic[0]
    by_factor = bm.Model("y ~ mo(degree) + x", data).design.monotonic[0]
    assert by_integer.levels == ["0", "1", "2", "3", "4"] and by_factor.levels == LEVELS
    np.testing.assert_array_equal(by_integer.codes, data["edu"])
    np.testing.assert_array_equal(by_factor.codes, by_integer.codes)
    # The cumulative indicators: level 3 has crossed the first three steps.
    np.testing.assert_array_equal(by_integer.matrix(np.array([0, 3, 4])),
                                  [[0, 0, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]])  # fmt: skip
    # Integers count every level between the smallest and the largest, seen or not (brms).
    gaps = data.assign(edu=np.where(data["edu"] == 2, 3, data["edu"]))
    assert bm.Model("y ~ mo(edu)", gaps).design.monotonic[0].n_steps == 4


def _at_a_point(model, names: list[str]) -> tuple[dict, float]:
    """The PyMC model's variables ``names`` and its log-likelihood at one random point."""
    pymc_model = model.pymc_model
    rng = np.random.default_rng(0)
    point = {k: rng.normal(scale=0.5, size=np.shape(v)) for k, v in pymc_model.initial_point().items()}
    outputs = pymc_model.replace_rvs_by_values([pymc_model[n] for n in names])
    evaluate = pymc_model.compile_fn(outputs, inputs=pymc_model.value_vars, on_unused_input="ignore")
    loglik = float(pymc_model.compile_logp(vars=pymc_model.observed_RVs)(point))
    return dict(zip(names, evaluate(point), strict=True)), loglik


def test_the_log_density_is_the_definition():
    data = _education()
    model = bm.Model("y ~ mo(degree) + x + (1 | g)", data)
    values, loglik = _at_a_point(model, ["fixef", "bsp_degree", "simo_degree", "r_g", "sigma"])
    zeta = values["simo_degree"]
    assert zeta.shape == (4,) and zeta.sum() == pytest.approx(1.0) and np.all(zeta > 0)
    levels = np.r_[0.0, np.cumsum(values["bsp_degree"] * 4 * zeta)]
    design = model.design
    eta = (
        design.X @ values["fixef"]
        + levels[design.monotonic[0].codes]
        + values["r_g"][design.random[0].codes, 0]
    )
    assert loglik == pytest.approx(stats.norm(eta, values["sigma"]).logpdf(data["y"]).sum(), rel=1e-10)


def test_priors_of_the_step_and_the_shares():
    data = _education()
    model = bm.Model("y ~ mo(edu) + x", data)
    table = model.priors
    assert table.loc["bsp(mo(edu))", "class"] == "b" and table.loc["simo(mo(edu))", "class"] == "simo"
    assert table.loc["simo(mo(edu))", "prior"] == "Dirichlet(a=[1, 1, 1, 1])"
    priors = {"b": bm.Prior("Normal", mu=0, sigma=1), "simo": bm.Prior("Dirichlet", a=[2, 2, 2, 2])}
    tight = bm.Model("y ~ mo(edu) + x", data, priors=priors)  # fmt: skip
    assert tight.priors.loc["bsp(mo(edu))", "prior"] == "Normal(mu=0, sigma=1)"
    with pytest.raises(bm.PriorError, match=r"needs 4 concentrations a, one per step"):
        bm.Model("y ~ mo(edu)", data, priors={"simo(mo(edu))": bm.Prior("Dirichlet", a=[1, 1])})


@pytest.mark.parametrize(
    ("formula", "change", "message"),
    [
        ("y ~ mo(x)", lambda d: d, r"mo\(x\) needs an ordered factor or integers; 'x' holds -?[\d.]+ in row"),
        ("y ~ mo(f)", lambda d: d.assign(f=pd.Categorical(d["degree"].astype(str))),
         r"mo\(f\) needs an ordered predictor; 'f' is an unordered categorical"),
        ("y ~ mo(f)", lambda d: d.assign(f=d["degree"].astype(str)), r"mo\(f\) needs .* holds text"),
        ("y ~ mo(one)", lambda d: d.assign(one=1), r"mo\(one\) has a single level"),
        ("y ~ mo(edu + 1)", lambda d: d, r"mo\(\) takes the name of an ordered factor or integer column"),
        ("y ~ mo(edu):x", lambda d: d, r"a monotonic effect mo\(x\) is a term of its own"),
        ("y ~ mo(edux)", lambda d: d, r"column 'edux' in mo\(edux\) is not in the data; did you mean 'edu'"),
    ],
)  # fmt: skip
def test_what_is_not_an_ordered_predictor_is_refused(formula, change, message):
    refused(formula, change(_education()), message)


def test_rows_without_a_level_are_dropped():
    data = _education().astype({"edu": float})
    data.loc[[3, 7], "edu"] = np.nan
    with pytest.warns(UserWarning, match=r"dropped 2 of 400 rows with missing values \(in mo\(edu\) \(2\)\)"):
        model = bm.Model("y ~ mo(edu)", data)
    assert model.design.monotonic[0].codes.shape == (398,)


@pytest.mark.slow
def test_monotone_level_means_are_recovered():
    # Seed 5: the data's own level means (less 0.5 x) step by 0.97, 0.63, 0.29, 0.50, near the
    # truth's 1.0, 0.5, 0.4, 0.5 (seed 2's third step is 0.23, which the fit rightly follows).
    data = _education(seed=5)
    fit = quiet_fit(bm.Model("y ~ mo(degree) + x + (1 | g)", data), draws=1000, chains=2, random_seed=1)
    assert fit.idata.attrs["compiled_by"] == "engine"
    steps = np.diff(TRUTH)
    truth = {"x": 0.5, "bsp(mo(degree))": TRUTH[-1] / 4, **{f"simo(mo(degree))[{k + 1}]": s / TRUTH[-1]
                                                             for k, s in enumerate(steps)}}  # fmt: skip
    assert_recovered(fit, truth)
    # Each level's mean, per draw, is monotone; its posterior is centred on the truth.
    grid = pd.DataFrame({"degree": pd.Categorical(LEVELS, categories=LEVELS, ordered=True), "x": 0.0, "g": 0})
    means = fit.predict(grid, re_form="~0", summary=False).values.reshape(-1, 5)
    assert np.all(np.diff(means, axis=1) >= 0)
    differences = means - means[:, :1]
    for k in range(1, 5):
        assert abs(differences[:, k].mean() - TRUTH[k]) < 3 * differences[:, k].std(), k
    # Conditional effects and marginal means take its levels.
    effects = fit.conditional_effects("degree")
    assert list(effects["degree"]) == LEVELS
    np.testing.assert_allclose(fit.marginal_means("degree").table["estimate"], effects["estimate"], rtol=0.02)
    with pytest.raises(bm.DataError, match=r"mo\(degree\) in the new data has level\(s\) 'phd'"):
        fit.predict(grid.assign(degree=["phd"] * 5))


def test_simulate_from_a_formula_with_a_monotonic_effect():
    layout = pd.DataFrame({"edu": np.tile(np.arange(5), 200)})
    params = {"Intercept": 1.0, "bsp(mo(edu))": 0.6, "simo(mo(edu))": [0.4, 0.2, 0.2, 0.2], "sigma": 0.1}
    sims = bm.simulate("~ mo(edu)", layout, params=params, seed=1, nsim=3)
    means = sims.groupby(layout["edu"]).mean().mean(axis=1).to_numpy()
    # Levels 1.0, 1.96, 2.44, 2.92, 3.4: the Intercept plus 0.6 x 4 x the cumulative shares.
    np.testing.assert_allclose(means, 1.0 + 2.4 * np.r_[0, np.cumsum([0.4, 0.2, 0.2, 0.2])], atol=0.02)
    with pytest.raises(ValueError, match=r"simo\(mo\(edu\)\) takes 4 non-negative shares summing to 1"):
        bm.simulate("~ mo(edu)", layout, params={**params, "simo(mo(edu))": [0.5, 0.5]}, seed=1)


def test_the_reference_grid_holds_levels_of_factor_and_mo_predictors():
    """conditional_effects' grid holds other predictors at their means, but a number entered
    as factor(x) or mo(x) at its first level: its mean is no level (factor(Diet) at 2.24 was
    refused as an unseen level)."""
    from types import SimpleNamespace

    from bayesmm.results.effects import reference_grid

    data = _education().assign(site=lambda d: d["g"] % 3 + 1)
    model = bm.Model("y ~ x + factor(site) + mo(edu)", data)
    grid = reference_grid(SimpleNamespace(model=model, design=model.design), {"x": [0.0, 1.0]})
    assert list(grid["site"]) == [1, 1] and list(grid["edu"]) == [0, 0]
    from bayesmm.design.build import encode_new_data

    encoded = encode_new_data(model.design, grid)  # the grid encodes as new data
    np.testing.assert_array_equal(encoded.monotonic[0], [0, 0])


# -- (mo(x) | g): a monotonic effect that varies by level ------------------------------------


def _varying(seed=3, n=600, n_groups=12):
    """Each group's own size of the same monotone change: y = 1 + a_g + b_g sum(zeta[1..edu])."""
    rng = np.random.default_rng(seed)
    g, edu = rng.integers(0, n_groups, n), rng.integers(0, 5, n)
    a, b = rng.normal(0, 0.4, n_groups), 2.4 + rng.normal(0, 0.8, n_groups)
    shape = TRUTH / TRUTH[-1]  # the cumulative shares of the whole change
    y = 1.0 + a[g] + b[g] * shape[edu] + rng.normal(0, 0.3, n)
    return pd.DataFrame({"y": y, "edu": edu, "g": np.char.add("g", g.astype(str))}), a, b


def test_a_varying_monotonic_effect_is_the_definition():
    """(mo(edu) | g): level j's effect r_j multiplies the same transform D sum(zeta[1..edu])
    as the population's bsp (brms's varying monotonic effects)."""
    data, _, _ = _varying()
    model = bm.Model("y ~ mo(edu) + (mo(edu) | g)", data)
    (term,) = model.design.random
    assert term.columns == ["Intercept", "mo(edu)"] and "sd(mo(edu)|g)" in model.priors.index
    values, loglik = _at_a_point(model, ["fixef", "bsp_edu", "simo_edu", "r_g", "sigma"])
    shape = np.r_[0.0, np.cumsum(4 * values["simo_edu"])][data["edu"]]
    r = values["r_g"][term.codes]
    eta = values["fixef"][0] + (values["bsp_edu"] + r[:, 1]) * shape + r[:, 0]
    assert loglik == pytest.approx(stats.norm(eta, values["sigma"]).logpdf(data["y"]).sum(), rel=1e-10)
    assert list(data.columns) == ["y", "edu", "g"]  # the placeholder column went into a copy


def test_a_varying_monotonic_effect_needs_the_population_effect():
    data, _, _ = _varying()
    refused("y ~ edu + (mo(edu) | g)", data, r"needs mo\(edu\) in the fixed part too .* y ~ mo\(edu\) \+")


def test_simulate_varies_the_monotonic_change_by_level():
    layout = pd.DataFrame({"edu": np.tile(np.arange(5), 400), "g": np.repeat(np.arange(40), 50)})
    params = {"Intercept": 0.0, "bsp(mo(edu))": 0.5, "simo(mo(edu))": [0.25] * 4, "sd(Intercept|g)": 0.0,
              "sd(mo(edu)|g)": 0.25, "cor(Intercept,mo(edu)|g)": 0.0, "sigma": 0.01}  # fmt: skip
    sims = bm.simulate("~ mo(edu) + (mo(edu) | g)", layout, params=params, seed=2, nsim=1)["sim_1"]
    means = sims.groupby([layout["g"], layout["edu"]]).mean().unstack()
    # At the first level no group differs; at level x the groups' SD is 0.25 * x (the transform is x).
    assert means[0].std() < 0.01
    assert means[4].std() == pytest.approx(1.0, rel=0.3)
    np.testing.assert_allclose(means.mean(), 0.5 * np.arange(5), atol=0.35)


@pytest.mark.slow
def test_a_varying_monotonic_effect_is_recovered_and_predicted_as_the_model_says(tmp_path):
    data, a, b = _varying()
    fit = quiet_fit(bm.Model("y ~ mo(edu) + (mo(edu) | g)", data), draws=1000, chains=2, random_seed=1)
    assert fit.idata.attrs["compiled_by"] == "engine"
    table = fit.summary()
    # bsp is the change per step of the transform, b / 4; its SD over groups sd(b) / 4. Against the
    # sample's values (12 groups): within 3 posterior SDs.
    for name, truth in [("bsp(mo(edu))", b.mean() / 4), ("sd(mo(edu)|g)", b.std(ddof=1) / 4)]:
        assert abs(table.loc[name, "mean"] - truth) < 3 * table.loc[name, "sd"], name
    shares = np.diff(TRUTH) / TRUTH[-1]
    for k, share in enumerate(shares, start=1):
        row = table.loc[f"simo(mo(edu))[{k}]"]
        assert abs(row["mean"] - share) < 3 * row["sd"]
    # Each group's step (coef: bsp plus its own) follows its true b / 4.
    steps = fit.coef()["g"]["mean"]["mo(edu)"]
    order = [int(level[1:]) for level in steps.index]
    assert np.corrcoef(steps.to_numpy(), b[order] / 4)[0, 1] > 0.9
    # The predictions (NumPy, per draw) are the model's: their log-likelihood is PyMC's.
    from bayesmm.families import additions
    from bayesmm.results.comparison import add_log_likelihood
    from bayesmm.results.predict import family_param_draws, linear_predictor_draws

    add_log_likelihood(fit)
    eta, trials, _ = linear_predictor_draws(fit)
    ours = additions.log_likelihood(fit.model.family, fit.design.y, eta, family_param_draws(fit), trials,
                                    fit.design.additions)  # fmt: skip
    graph = fit.idata.log_likelihood["y"].values.reshape(ours.shape)
    np.testing.assert_allclose(ours, graph, rtol=1e-9, atol=1e-9)
    # New rows of a seen group, and a new group at the population's curve.
    grid = pd.DataFrame({"edu": np.arange(5), "g": "g0"})
    truth = 1.0 + a[0] + b[0] * TRUTH / TRUTH[-1]
    np.testing.assert_allclose(fit.predict(grid)["mean"], truth, atol=0.25)
    population = fit.predict(grid.assign(g="new"), new_levels="population")["mean"].to_numpy()
    assert np.all(np.diff(population) > 0)
    loaded = bm.load(fit.save(tmp_path / "varying.nc"))
    pd.testing.assert_frame_equal(loaded.predict(grid), fit.predict(grid))
