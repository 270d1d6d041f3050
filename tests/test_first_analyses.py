"""What a new user's first real analyses showed (lme4's grouseticks, MASS's epil): advice that
names the right parameter, plots that show what the data say, and one clean report.

The fits are shared by the module; the checks on advice break one thing on purpose in a real
posterior, so that each trigger is exact whatever the sampler did.
"""

import dataclasses
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pytest
import xarray as xr

import bayesmm as bm

from .conftest import quiet_fit

pytestmark = pytest.mark.slow

GROUSE = "TICKS ~ YEAR + cHEIGHT + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)"


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def grouseticks():
    return bm.datasets.load("grouseticks")


@pytest.fixture(scope="module")
def grouse_fit(grouseticks):
    """lme4's grouseticks model: Poisson with three crossed intercepts (one per row)."""
    model = bm.Model(GROUSE, grouseticks, family="poisson")
    return quiet_fit(model, draws=500, tune=500, chains=4, random_seed=3)


def replaced(fit, changes):
    """A copy of ``fit`` with some sample_stats or posterior values replaced."""
    idata = fit.idata.copy()
    for (group, name), values in changes.items():
        idata[group][name] = xr.Variable(idata[group][name].dims, values)
    return dataclasses.replace(fit, idata=idata, _diagnosis=None)


def sd_draws(fit, group):
    return fit.idata.posterior[f"sd_{group}"].values[..., 0]


# ---------------------------------------------------------------------------
# sampler advice


def test_no_stuck_chain_on_grouseticks(grouse_fit):
    # A slope of cHEIGHT (SD 20) started at +-1 put exp(30) into the Poisson mean: one chain
    # never left its start (all its transitions diverged, R-hat 1.58). Slopes are now
    # sampled per SD of their predictor.
    diverging = grouse_fit.idata.sample_stats["diverging"].values
    assert diverging.mean(axis=1).max() < 0.05
    chain_means = grouse_fit.idata.posterior["fixef"].sel(fixef_term="cHEIGHT").mean("draw").values
    assert np.ptp(chain_means) < 0.005  # posterior SD about 0.004; lme4: -0.024
    assert np.all(np.abs(chain_means + 0.024) < 0.008)


def test_divergences_at_a_small_intercept_sd_get_advice_for_that_term(grouse_fit):
    sd = sd_draws(grouse_fit, "BROOD")
    diverging = sd < np.quantile(sd, 0.03)
    check = replaced(grouse_fit, {("sample_stats", "diverging"): diverging}).diagnose()["divergences"]
    assert check.parameters == ["sd(Intercept|BROOD)"]
    assert "(1 | BROOD)" in check.message
    assert "||" not in check.message  # an intercept-only term has no correlations to drop
    assert 'Prior("Gamma", alpha=2' in check.message  # a prior that vanishes at zero


def test_divergences_in_one_episode_name_no_parameter(grouse_fit):
    # Fifteen consecutive divergences where sd(BROOD) happens to be low: one episode of a
    # chain is no evidence about which SD is to blame (the old rule named sd(BROOD)).
    sd = sd_draws(grouse_fit, "BROOD")
    window = np.convolve(np.log(sd[0]), np.ones(15) / 15, mode="valid")
    start = int(np.argmin(window))
    diverging = np.zeros_like(sd, dtype=bool)
    diverging[0, start : start + 15] = True
    logs = np.log(sd)
    assert (logs[diverging].mean() - logs.mean()) / logs.std() < -0.3  # what the old rule took as proof
    check = replaced(grouse_fit, {("sample_stats", "diverging"): diverging}).diagnose()["divergences"]
    assert not check.ok and check.parameters == []
    assert "target_accept=0.95" in check.message and "||" not in check.message


def test_nested_factors_that_trade_off_are_named_once(grouse_fit, grouseticks):
    brood = sd_draws(grouse_fit, "BROOD")
    noise = np.random.default_rng(0).normal(0, 0.02, brood.shape)
    location = np.exp(np.log(1.2) - (np.log(brood) - np.log(brood).mean()) + noise)
    posterior = grouse_fit.idata.posterior
    fit = replaced(
        grouse_fit,
        {
            ("posterior", "sd_LOCATION"): location[..., None],
            ("sample_stats", "diverging"): brood < np.quantile(brood, 0.03),
        },
    )
    assert posterior["sd_LOCATION"].shape == location[..., None].shape
    text = str(fit.diagnose())
    per_location = grouseticks.groupby("LOCATION", observed=True)["BROOD"].nunique()
    single = int((per_location == 1).sum())
    sentence = (
        f"every level of BROOD lies within one level of LOCATION, and {single} of {len(per_location)} "
        "LOCATION levels hold a single BROOD"
    )
    assert text.count(sentence) == 1
    assert text.count("trades off against") == 1


def test_a_stuck_chain_is_named(grouse_fit):
    changes = {}
    for name, values in grouse_fit.idata.posterior.data_vars.items():
        stuck = values.values.copy()
        stuck[1] = stuck[1, :1] + 3 * values.values.std(axis=(0, 1))  # chain 1 never moves
        changes[("posterior", name)] = stuck
    diverging = np.zeros(grouse_fit.idata.sample_stats["diverging"].shape, dtype=bool)
    diverging[1] = True
    changes[("sample_stats", "diverging")] = diverging
    check = replaced(grouse_fit, changes).diagnose()["max r_hat"]
    assert not check.ok
    assert check.message.count("Chain 1 is stuck") == 1
    assert "another random_seed" in check.message
