"""Penalized splines s(x), brms's construction from mgcv: the bases and penalties are mgcv's
thin-plate and cubic regression splines (fitted values at a fixed smoothing parameter equal
mgcv's; references from R 4.2 / mgcv 1.8-41 by tools/mgcv_smooth_reference.R), the smooth's straight line is a
fixed effect and its wiggles a random effect, and a fit finds a known curve and mgcv's REML
estimate."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayesmm as bm
from bayesmm.design.smooth import cr_basis, cr_penalty, smooth_term

from .bad_input.helpers import refused
from .conftest import quiet_fit

REFERENCE = Path(__file__).parent / "reference"


def _data():
    return pd.read_csv(REFERENCE / "smooth_data.csv")


def _mgcv(kind: str, bs: str = "cr") -> np.ndarray:
    table = pd.read_csv(REFERENCE / ("smooth_mgcv.csv" if bs == "cr" else "smooth_mgcv_tp.csv"))
    return table.loc[table["kind"] == kind, "value"].to_numpy()


def test_knots_basis_and_penalty_are_mgcvs():
    data = _data()
    smooth, fixed = smooth_term("x", data["x"].to_numpy(), 10)
    np.testing.assert_allclose(smooth.knots, _mgcv("knot"), atol=1e-6)
    # Penalized least squares with mgcv's sp = 2 on its rescaled penalty (lambda = sp / S.scale):
    # the same fitted values, so the same basis, constraint and penalty.
    design = np.column_stack([np.ones(len(data)), fixed, smooth.Z])
    penalty = np.diag([0.0, 0.0] + [2.0 / _mgcv("S_scale")[0]] * smooth.Z.shape[1])
    beta = np.linalg.solve(design.T @ design + penalty, design.T @ data["y"].to_numpy())
    np.testing.assert_allclose(design @ beta, _mgcv("fitted_sp2"), atol=2e-6)


def test_the_thin_plate_basis_and_penalty_are_mgcvs():
    # mgcv's default s(x): the same fitted values at sp = 2 (to 1e-9; measured 2e-14).
    data = _data()
    smooth, fixed = smooth_term("x", data["x"].to_numpy(), 10, bs="tp")
    np.testing.assert_allclose(smooth.knots, np.unique(data["x"]))
    design = np.column_stack([np.ones(len(data)), fixed, smooth.Z])
    penalty = np.diag([0.0, 0.0] + [2.0 / _mgcv("S_scale", "tp")[0]] * smooth.Z.shape[1])
    beta = np.linalg.solve(design.T @ design + penalty, design.T @ data["y"].to_numpy())
    np.testing.assert_allclose(design @ beta, _mgcv("fitted_sp2", "tp"), atol=1e-9)
    # The fixed column is the straight line (centred), rising with x; new x give the rows' values.
    assert np.corrcoef(fixed[:, 0], data["x"])[0, 1] == pytest.approx(1.0)
    new_fixed, new_Z = smooth.columns(data["x"].to_numpy())
    np.testing.assert_allclose(new_fixed, fixed, atol=1e-10)
    np.testing.assert_allclose(new_Z, smooth.Z, atol=1e-10)


def test_the_basis_interpolates_and_extends_linearly():
    knots = np.array([0.0, 1.0, 2.5, 4.0, 7.0])
    np.testing.assert_allclose(cr_basis(knots, knots), np.eye(5), atol=1e-12)
    outside = cr_basis(np.array([-3.0, -2.0, -1.0, 8.0, 9.0, 10.0]), knots)
    np.testing.assert_allclose(np.diff(outside[:3], 2, axis=0), 0.0, atol=1e-12)  # straight lines
    np.testing.assert_allclose(np.diff(outside[3:], 2, axis=0), 0.0, atol=1e-12)
    # A straight line through the knots has no wiggliness; a bend has some.
    S = cr_penalty(knots)
    assert knots @ S @ knots == pytest.approx(0.0, abs=1e-12)
    assert (knots**2) @ S @ (knots**2) > 0
    # The smooth's fixed column is that straight line, centred over the rows.
    x = np.linspace(0, 7, 40)
    _, fixed = smooth_term("x", x, 5)
    assert np.corrcoef(fixed[:, 0], x)[0, 1] == pytest.approx(1.0, abs=1e-12)


def test_the_model_has_the_line_as_a_fixed_effect_and_an_sds():
    data = _data()
    model = bm.Model("y ~ s(x, k = 8)", data)
    assert model.design.fixef_names == ["Intercept", "s(x)_1"]
    assert model.design.smooths[0].Z.shape == (200, 6)
    assert model.priors.loc["sds(s(x))", "class"] == "sds" and not model.collapsed
    # New data through the same basis: the fitted rows again give the same columns.
    fixed, Z = model.design.smooths[0].columns(data["x"].to_numpy())
    np.testing.assert_allclose(Z, model.design.smooths[0].Z, atol=1e-12)
    np.testing.assert_allclose(fixed[:, 0], model.design.X[:, 1], atol=1e-12)


@pytest.mark.parametrize(
    ("formula", "change", "message"),
    [
        ("y ~ s(f)", lambda d: d.assign(f=np.where(d["x"] > 5, "a", "b")), r"s\(f\) smooths a number"),
        ("y ~ s(few)", lambda d: d.assign(few=np.round(d["x"] / 4)), r"s\(few\) needs at least k = 10"),
        ("y ~ s(x, bs = \"ps\")", lambda d: d, r"basis \"ps\" is not supported"),
        ("y ~ s(x, by = g)", lambda d: d, r"column 'g' in s\(x, by = g\) is not in the data"),
        ("y ~ s(x, by = z)", lambda d: d.assign(z=d["x"] * 1.5), r"'z' is a continuous number; by = takes"),
        ("y ~ s(x, z, w)", lambda d: d.assign(z=1.0, w=2.0), r"a smooth of one column or two different ones"),
        ("y ~ s(x, z)", lambda d: d.assign(z=1.0), r"s\(x, z\): 'z' takes one value only"),
        ('y ~ s(x, z, bs = "cr")', lambda d: d.assign(z=d.x**2), r"the cubic regression spline is of one"),
        ("y ~ s(x):z", lambda d: d.assign(z=1.0), r"a smooth s\(x\) is a term of its own"),
        ("y ~ s(xx)", lambda d: d, r"column 'xx' in s\(xx\) is not in the data; did you mean 'x'"),
    ],
)  # fmt: skip
def test_what_cannot_be_smoothed_is_refused(formula, change, message):
    refused(formula, change(_data()), message)


@pytest.mark.slow
@pytest.mark.parametrize("bs", ["tp", "cr"])
def test_a_smooth_with_group_effects_recovers_the_curve_and_mgcvs_estimate(tmp_path, bs):
    data = _data()
    fit = quiet_fit(bm.Model(f'y ~ s(x, bs = "{bs}")', data), draws=1000, chains=2, random_seed=1)
    assert fit.idata.attrs["compiled_by"] == "engine"
    # Partially centred (see the test below): no divergences (non-centred, brms's form: 7-14 in 4 x 1000).
    assert int(fit.idata.sample_stats["diverging"].sum()) == 0
    curve = fit.conditional_effects("x", resolution=50)
    grid = curve["x"].to_numpy()
    np.testing.assert_allclose(grid, _mgcv("reml_grid_x", bs), atol=1e-6)
    truth = np.sin(grid) + 0.3 * grid
    # Against the truth (noise SD 0.3, 200 rows): RMSE below 0.1, the 95% band covering at least 80%.
    assert np.sqrt(np.mean((curve["estimate"] - truth) ** 2)) < 0.1
    assert np.mean((curve["q2.5"] <= truth) & (truth <= curve["q97.5"])) >= 0.8
    # Against mgcv's REML estimate on the same data: the two curves within 0.05 of each other.
    assert np.sqrt(np.mean((curve["estimate"] - _mgcv("reml_grid_fit", bs)) ** 2)) < 0.05
    assert fit.summary().loc["sigma", "mean"] == pytest.approx(_mgcv("reml_sigma", bs)[0], rel=0.05)
    # Saved and loaded: the basis is built again from the stored rows, the same.
    loaded = bm.load(fit.save(tmp_path / "smooth.nc"))
    np.testing.assert_allclose(loaded.design.smooths[0].Z, fit.design.smooths[0].Z)
    pd.testing.assert_frame_equal(loaded.conditional_effects("x", resolution=50), curve)
    # With groups: the smooth plus a random intercept.
    rng = np.random.default_rng(3)
    grouped = data.assign(g=rng.integers(0, 8, len(data)))
    grouped["y"] = grouped["y"] + rng.normal(0, 0.5, 8)[grouped["g"]]
    both = quiet_fit(bm.Model("y ~ s(x) + (1 | g)", grouped), draws=1000, chains=2, random_seed=2)
    line = both.conditional_effects("x", resolution=50)
    centred = line["estimate"] - line["estimate"].mean() + truth.mean()
    assert np.sqrt(np.mean((centred - truth) ** 2)) < 0.1


def test_simulate_from_a_formula_draws_the_smooths_wiggles():
    data = _data()
    params = {"Intercept": 0.0, "s(x)_1": 0.0, "sds(s(x))": 1e-9, "sigma": 0.1}
    flat = bm.simulate("~ s(x)", data, params=params, seed=1, nsim=20)
    wiggly = bm.simulate("~ s(x)", data, params={**params, "sds(s(x))": 1.0}, seed=1, nsim=20)
    # Without wiggles each data set is noise of SD 0.1; with them the curves vary far more.
    assert flat.std().mean() == pytest.approx(0.1, rel=0.1)
    assert wiggly.std().mean() > 0.3


def _by_data(seed=5, n=300):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 10, n)
    f = rng.choice(["a", "b", "c"], n)
    curves = np.select([f == "a", f == "b", f == "c"], [np.sin(x), 0.3 * x - 1.5, np.cos(x)])
    return pd.DataFrame({"y": curves + rng.normal(0, 0.3, n), "x": x, "f": f})


def test_a_smooth_per_level_of_a_factor():
    """s(x, by = f): one smooth per level, each zero on the other levels' rows and summing to
    zero over its own (the factor's main effect carries the levels' means), as mgcv's."""
    data = _by_data()
    model = bm.Model('y ~ f + s(x, by = f, bs = "cr")', data)
    smooths = model.design.smooths
    assert [s.name for s in smooths] == ["s(x, by = f)[a]", "s(x, by = f)[b]", "s(x, by = f)[c]"]
    assert "sds(s(x, by = f)[b])" in model.priors.index
    for smooth in smooths:
        own = (data["f"] == smooth.level).to_numpy()
        fixed, Z = smooth.columns(data["x"].to_numpy(), data["f"].to_numpy())
        np.testing.assert_allclose(Z[~own], 0.0)
        np.testing.assert_allclose(fixed[~own], 0.0)
        np.testing.assert_allclose(Z[own].sum(axis=0), 0.0, atol=1e-9)
        np.testing.assert_allclose(Z, smooth.Z, atol=1e-12)
        # Knots from every row's x, as mgcv places them for a by-factor smooth.
        np.testing.assert_allclose(smooth.knots, np.quantile(np.unique(data["x"]), np.linspace(0, 1, 10)))
    from bayesmm.design.build import encode_new_data

    # Without f's main effect, which would refuse 'd' first:
    alone = bm.Model('y ~ s(x, by = f, bs = "cr")', data)
    with pytest.raises(bm.DataError, match=r"level\(s\) 'd' of 'f' in the new data have no smooth of x"):
        encode_new_data(alone.design, data.head(2).assign(f="d"))


@pytest.mark.slow
def test_smooths_by_a_factor_recover_each_levels_curve():
    data = _by_data()
    fit = quiet_fit(bm.Model("y ~ f + s(x, by = f)", data), draws=1000, chains=2, random_seed=1)
    effects = fit.conditional_effects("x:f", resolution=30)
    truths = {"a": np.sin, "b": lambda g: 0.3 * g - 1.5, "c": np.cos}
    for level, truth in truths.items():
        rows = effects[effects["f"] == level]
        assert np.sqrt(np.mean((rows["estimate"] - truth(rows["x"])) ** 2)) < 0.15, level
    # The straight line's smooth has nothing to bend: its SD sits near zero.
    table = fit.summary()
    assert table.loc["sds(s(x, by = f)[b])", "mean"] < 0.3 * table.loc["sds(s(x, by = f)[a])", "mean"]


def test_maximal_and_simplify_keep_the_special_terms():
    """bm.maximal and fit.simplify's candidates rebuild the formula around its random part:
    the smooths, GPs, monotonic effects, offsets and gr()'s matrices stay (they were dropped)."""
    from types import SimpleNamespace

    from bayesmm.results.simplify import candidates

    rng = np.random.default_rng(1)
    data = _data().assign(g=rng.integers(0, 10, 200), t=rng.integers(0, 4, 200), e=rng.uniform(1, 2, 200))
    result = bm.maximal("y ~ s(x) + t + mo(t) + offset(log(e)) + (1 | g)", data)
    assert result.formula == 'y ~ t + offset(log(e)) + mo(t) + s(x, k = 10, bs = "tp") + (t | g)'
    levels = [str(i) for i in range(10)]
    A = pd.DataFrame(np.eye(10) * 0.5 + 0.5, index=levels, columns=levels)
    model = bm.Model("y ~ gp(x, k = 8) + t + (1 + t | gr(g, cov = A))", data, data2={"A": A})
    found = candidates(SimpleNamespace(design=model.design))
    assert found["(1 + t | gr(g, cov = A)): drop t"] == (
        'y ~ t + gp(x, k = 8, c = 1.25, cov = "exp_quad") + (1 | gr(g, cov = A))'
    )
    for formula in found.values():  # each candidate is a model of the same data
        bm.Model(formula, data, data2={"A": A})


# -- s(x, z): a thin-plate smooth of two columns --------------------------------------------


def _data2():
    return pd.read_csv(REFERENCE / "smooth2_data.csv")


def test_a_thin_plate_smooth_of_two_columns_is_mgcvs():
    # mgcv's s(x, z, k = 30) on the same 250 rows: the same fitted values at sp = 2 (to 1e-9;
    # measured 7e-12), so the same radial basis r^2 log(r) / (8 pi), null space and penalty.
    data = _data2()
    reference = pd.read_csv(REFERENCE / "smooth2_mgcv.csv")
    smooth, fixed = smooth_term(("x", "z"), data[["x", "z"]].to_numpy(), 30, bs="tp")
    assert fixed.shape == (250, 2) and smooth.Z.shape == (250, 27)
    scale = reference.loc[reference["kind"] == "S_scale", "value"].iloc[0]
    design = np.column_stack([np.ones(len(data)), fixed, smooth.Z])
    penalty = np.diag([0.0] * 3 + [2.0 / scale] * smooth.Z.shape[1])
    beta = np.linalg.solve(design.T @ design + penalty, design.T @ data["y"].to_numpy())
    expected = reference.loc[reference["kind"] == "fitted_sp2", "value"].to_numpy()
    np.testing.assert_allclose(design @ beta, expected, atol=1e-9)


def test_a_smooth_of_two_columns_has_two_fixed_columns_and_one_sds():
    model = bm.Model("y ~ s(x, z)", _data2())
    (smooth,) = model.design.smooths
    assert smooth.name == "s(x, z)" and smooth.predictors == ("x", "z") and smooth.k == 30
    assert model.design.fixef_names[-2:] == ["s(x, z)_1", "s(x, z)_2"]
    assert "sds(s(x, z))" in model.priors.index
    assert model.design.formula.special_terms == ['s(x, z, k = 30, bs = "tp")']
    fixed, Z = smooth.columns(_data2()[["x", "z"]].to_numpy())
    np.testing.assert_allclose(Z, smooth.Z, atol=1e-10)


def surface_draws(formula: str, tmp_path) -> tuple[pd.DataFrame, np.ndarray]:
    """Fit ``formula`` (a smooth of x and z) to tests/reference/smooth2_data.csv, check the
    surface sin(x/2) cos(z/2) is recovered on a 9 x 9 grid, and that a saved and loaded fit
    predicts the same draws; the fit and the grid's posterior mean."""
    fit = quiet_fit(bm.Model(formula, _data2()), draws=1000, chains=2, random_seed=1)
    assert fit.idata.attrs["compiled_by"] == "engine"
    grid = pd.DataFrame({"x": np.repeat(np.linspace(1, 9, 9), 9), "z": np.tile(np.linspace(0.5, 5.5, 9), 9)})
    draws = fit.predict(grid, kind="mean", summary=False).values.reshape(-1, len(grid))
    truth = np.sin(grid["x"] / 2) * np.cos(grid["z"] / 2)
    low, high = np.quantile(draws, [0.025, 0.975], axis=0)
    # Against the truth (noise SD 0.2, 250 rows): RMSE below 0.1, the 95% band covering >= 80%.
    assert np.sqrt(np.mean((draws.mean(axis=0) - truth) ** 2)) < 0.1
    assert np.mean((low <= truth) & (truth <= high)) >= 0.8
    fit.save(tmp_path / "surface.nc")
    loaded = bm.load(tmp_path / "surface.nc").predict(grid, kind="mean", summary=False)
    assert np.allclose(loaded.values.reshape(-1, len(grid)), draws)
    return fit, draws.mean(axis=0)


@pytest.mark.slow
def test_a_smooth_of_two_columns_recovers_a_surface(tmp_path):
    surface_draws("y ~ s(x, z)", tmp_path)
