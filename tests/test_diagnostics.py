"""Each diagnostic on a fit that triggers it and on one that does not.

Singular-fit checks use real over-parameterized models. Sampler checks
(divergences, R-hat, ESS, E-BFMI, tree depth) use the healthy sleepstudy
posterior with one thing broken on purpose, so that each trigger is exact.
"""

import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import bayesmm as bm

from .conftest import quiet_fit

pytestmark = pytest.mark.slow  # every test here samples, or uses a fit that does


@pytest.fixture(scope="module")
def noise_slope_fit(sleepstudy):
    """A random slope for pure noise: its SD has no support in the data."""
    data = sleepstudy.assign(noise=np.random.default_rng(1).normal(size=len(sleepstudy)))
    model = bm.Model("Reaction ~ Days + (1 + Days + noise | Subject)", data)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = model.fit(random_seed=1, progressbar=False)
    return fit, [w for w in caught if issubclass(w.category, bm.DiagnosticWarning)]


@pytest.fixture(scope="module")
def perfect_correlation_fit():
    """Slopes that are an exact multiple of the intercepts: the correlation is 1."""
    rng = np.random.default_rng(3)
    g = np.repeat(np.arange(30), 20)
    x = rng.normal(size=g.size)
    u = rng.normal(size=30)
    y = 1 + 0.5 * x + u[g] + 0.8 * u[g] * x + rng.normal(0, 0.3, size=g.size)
    return quiet_fit(bm.Model("y ~ x + (1 + x | g)", pd.DataFrame({"y": y, "x": x, "g": g})), random_seed=1)


def broken(fit, changes):
    """A copy of ``fit`` whose sample_stats or posterior were changed (nothing else is touched)."""
    idata = fit.idata.copy()
    for (group, name), values in changes.items():
        idata[group][name] = xr.Variable(idata[group][name].dims, values)
    return dataclasses.replace(fit, idata=idata, _diagnosis=None)


def test_healthy_fit_passes_every_check(sleepstudy_fit):
    diagnosis = sleepstudy_fit.diagnose()
    assert diagnosis.ok
    assert [c.name for c in diagnosis.checks] == [
        "divergences", "max r_hat", "min ess_bulk", "min ess_tail", "min E-BFMI", "max tree depth",
        "SDs near zero", "correlations near ±1",
    ]  # fmt: skip
    assert sleepstudy_fit.summary().header.startswith("Diagnostics: no problems (divergences 0, max r_hat")
    assert "Diagnostics: no problems" in str(sleepstudy_fit)
    assert diagnosis.to_frame()["ok"].all()


def test_sd_near_zero_names_the_term(noise_slope_fit):
    fit, caught = noise_slope_fit
    check = fit.diagnose()["SDs near zero"]
    assert not check.ok
    assert check.parameters == ["sd(noise|Subject)"]
    assert "(1 + Days + noise | Subject)" in check.message
    assert "singular fit" in check.message
    assert len(caught) == 1  # one warning, listing every failed check
    assert "sd(noise|Subject)" in str(caught[0].message)
    assert "SDs near zero" in fit.summary().header


def test_correlation_at_the_boundary(perfect_correlation_fit, sleepstudy_fit):
    check = perfect_correlation_fit.diagnose()["correlations near ±1"]
    assert not check.ok
    assert check.parameters == ["cor(Intercept,x|g)"]
    assert "with || in (1 + x | g)" in check.message
    assert sleepstudy_fit.diagnose()["correlations near ±1"].ok


def test_re_pca_shows_the_degenerate_direction(perfect_correlation_fit, sleepstudy_fit):
    degenerate = perfect_correlation_fit.re_pca()["g"]
    assert list(degenerate.index) == ["PC1", "PC2"]
    assert degenerate.loc["PC2", "proportion"] < 0.01
    assert degenerate["cumulative"].iloc[-1] == pytest.approx(1.0)
    healthy = sleepstudy_fit.re_pca()["Subject"]
    assert healthy.loc["PC2", "q97.5"] > 0.05


def test_re_pca_matches_a_hand_computation(sleepstudy_fit):
    post = sleepstudy_fit.idata.posterior
    sd = post["sd_Subject"].values.reshape(-1, 2)
    cor = post["cor_Subject"].values.reshape(-1)
    cov = np.array([[[a * a, r * a * b], [r * a * b, b * b]] for (a, b), r in zip(sd, cor, strict=True)])
    proportions = np.linalg.eigvalsh(cov)[:, ::-1]
    proportions /= proportions.sum(axis=1, keepdims=True)
    table = sleepstudy_fit.re_pca()["Subject"]
    np.testing.assert_allclose(table["proportion"], proportions.mean(axis=0))


@pytest.mark.parametrize("which", ["sleepstudy_sampled_fit", "sleepstudy_fit"])
def test_divergences_name_the_funnel(which, request):
    sampled = request.getfixturevalue(which)
    sd_days = sampled.idata.posterior["sd_Subject"].sel(Subject__term="Days").values
    diverging = sd_days < np.quantile(sd_days, 0.02)  # divergences where sd(Days) is smallest
    fit = broken(sampled, {("sample_stats", "diverging"): diverging})
    check = fit.diagnose()["divergences"]
    assert not check.ok and check.value == diverging.sum()
    assert check.parameters == ["sd(Days|Subject)"]
    assert "target_accept=0.95" in check.message
    # A Gaussian model with one grouping factor: the funnel can be integrated away; the
    # default model already has (its effects are not sampled, so there is no funnel to name).
    advice = "integrate the effects of (Days | Subject) out (Model(..., collapsed=True)"
    assert (advice in check.message) == (which == "sleepstudy_sampled_fit")
    assert ("a funnel between that SD" in check.message) == (which == "sleepstudy_sampled_fit")
    assert ("are integrated out, so this is no funnel" in check.message) == (which == "sleepstudy_fit")
    assert 'Prior("Gamma", alpha=2' in check.message


def test_rhat_names_the_parameter(sleepstudy_fit):
    fixef = sleepstudy_fit.idata.posterior["fixef"].values.copy()
    fixef[0, :, 1] += 5.0  # one chain's Days sits 3 posterior SDs off
    check = broken(sleepstudy_fit, {("posterior", "fixef"): fixef}).diagnose()["max r_hat"]
    assert not check.ok and check.parameters == ["Days"]
    assert "draws=2000" in check.message


def test_low_ess_names_the_parameter(sleepstudy_fit):
    fixef = sleepstudy_fit.idata.posterior["fixef"].values.copy()
    rng = np.random.default_rng(0)
    walk = np.cumsum(rng.normal(size=fixef.shape[:2]), axis=1)  # a random walk: almost no information
    fixef[..., 0] = 250 + walk
    diagnosis = broken(sleepstudy_fit, {("posterior", "fixef"): fixef}).diagnose()
    assert diagnosis["min ess_bulk"].parameters == ["Intercept"]
    assert diagnosis["min ess_tail"].parameters == ["Intercept"]


def test_low_ebfmi(sleepstudy_fit):
    energy = np.cumsum(np.random.default_rng(1).normal(size=(4, 1000)), axis=1)
    check = broken(sleepstudy_fit, {("sample_stats", "energy"): energy}).diagnose()["min E-BFMI"]
    assert not check.ok and check.value < 0.3
    assert "funnels" in check.message


def test_tree_depth_names_a_badly_scaled_predictor(sleepstudy_fit, sleepstudy):
    saturated = np.zeros((4, 1000), dtype=bool)
    saturated[:, ::20] = True  # 5% of draws
    fit = broken(sleepstudy_fit, {("sample_stats", "reached_max_treedepth"): saturated})  # ArviZ's name
    check = fit.diagnose()["max tree depth"]
    assert not check.ok and check.value == pytest.approx(0.05)
    assert check.parameters == []  # Days is well scaled: generic advice
    rescaled = bm.Model("Reaction ~ Days + (Days | Subject)", sleepstudy.assign(Days=sleepstudy.Days * 1000))
    check = dataclasses.replace(fit, model=rescaled, _diagnosis=None).diagnose()["max tree depth"]
    assert check.parameters == ["Days (SD 2.87e+03)"]
    assert "rescale Days" in check.message


def test_compare_samplers_agree_on_a_simple_model():
    rng = np.random.default_rng(4)
    g = np.repeat(np.arange(12), 8)
    data = pd.DataFrame({"y": rng.normal(size=12)[g] + rng.normal(size=g.size), "g": g})
    with warnings.catch_warnings():
        warnings.simplefilter("error", bm.DiagnosticWarning)  # both fits are healthy
        # target_accept 0.9, as the divergence advice says: at 0.8 one of 4000 transitions
        # diverged with freshly compiled code on PyMC 6 (none with cached code).
        table = bm.compare_samplers(
            bm.Model("y ~ 1 + (1 | g)", data),
            draws=1000,
            tune=1000,
            chains=4,
            random_seed=1,
            target_accept=0.9,
        )
    assert set(table.attrs["seconds"]) == set(bm.available_samplers())
    assert table.attrs["divergences"] == {s: 0 for s in bm.available_samplers()}
    assert list(table.index) == ["Intercept", "sd(Intercept|g)", "sigma"]
    stats = [f"{s} {stat}" for s in bm.available_samplers() for stat in ("mean", "r_hat")]
    assert list(table.columns) == [*stats, "max_diff_sd"]
    # Two independent samplers with ESS near 1000 differ by well under 0.3 posterior SDs.
    assert table["max_diff_sd"].max() < 0.3
