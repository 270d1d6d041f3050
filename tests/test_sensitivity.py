"""Power-scaling prior sensitivity: the log prior by hand, and a conflict it must flag."""

import numpy as np
import pytest
from scipy import stats

import bayesmm as bm
from bayesmm.results.sensitivity import log_prior_draws
from bayesmm.results.summaries import summary_draws

from .conftest import quiet_fit

pytestmark = pytest.mark.slow  # every test here uses a fitted model


def _half_t(x, nu, sigma):
    return np.log(2.0) + stats.t.logpdf(x, nu, 0.0, sigma)


def test_the_log_prior_is_brms_lprior_by_hand(sleepstudy_fit):
    priors = {e.parameter: e.prior.params for e in sleepstudy_fit.model.prior_entries}
    draws = summary_draws(sleepstudy_fit)
    p = priors["Intercept"]
    expected = stats.t.logpdf(draws["Intercept"], p["nu"], p["mu"], p["sigma"])
    expected += stats.norm.logpdf(draws["Days"], priors["Days"]["mu"], priors["Days"]["sigma"])
    for name in ("sd(Intercept|Subject)", "sd(Days|Subject)", "sigma"):
        expected += _half_t(draws[name], priors[name]["nu"], priors[name]["sigma"])
    # LKJ(1) is flat in the correlation: it adds nothing. Power-scaling reads differences
    # between draws, so the normalizing constants (PyMC's differ from scipy's by 6e-8) do not count.
    actual = log_prior_draws(sleepstudy_fit)
    np.testing.assert_allclose(actual - actual.mean(), expected - expected.mean(), atol=1e-9)
    assert np.ptp(actual - expected) < 1e-9


def test_default_priors_pass_and_a_conflicting_prior_is_flagged(sleepstudy_fit, sleepstudy):
    table = sleepstudy_fit.psense()
    assert list(table.index) == list(sleepstudy_fit.summary().index)
    assert (table["prior_sensitivity"] < 0.05).all() and (table["diagnosis"] == "✓").all(), table
    # Days ~ Normal(0, 1) against an estimate of 10 (SE 1.7): both prior and likelihood pull.
    strong = bm.Model("Reaction ~ Days + (Days | Subject)", sleepstudy,
                      priors={"Days": bm.Prior("Normal", mu=0, sigma=1)})  # fmt: skip
    conflict = quiet_fit(strong, draws=500, chains=2, random_seed=4).psense()
    assert conflict.loc["Days", "prior_sensitivity"] > 0.1  # 0.26-0.28 in four fits
    # The likelihood's pull on Days is weak (the subjects' slopes absorb it): its sensitivity
    # was 0.041-0.064 in four fits (seeds 4, 5, effects sampled or integrated out), either side
    # of the 0.05 that separates the two diagnoses naming the prior.
    assert conflict.loc["Days", "diagnosis"] in ("potential prior-data conflict",
                                                 "potential strong prior / weak likelihood")  # fmt: skip
    assert conflict.loc["Days", "likelihood_sensitivity"] > 0.025
