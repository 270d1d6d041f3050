"""Known answers from lme4 on its classic datasets: crossed, nested and binomial models.

lme4's estimates are maximum likelihood (REML for Gaussian models, Laplace for
cbpp), so the comparison is honest about what differs:

* fixed effects and the residual SD: the posterior mean lies within 0.3
  posterior SDs of lme4's estimate (weak priors, near-symmetric posteriors);
* group-level SDs estimated from few levels (6 samples, 10 batches, 15 herds)
  have right-skewed posteriors whose mean exceeds the ML estimate, so lme4's
  estimate must lie inside the 95% interval and within 0.6 posterior SDs of the
  posterior median.
"""

import numpy as np
import pytest

import bayesmm as bm

from .conftest import quiet_fit

SETTINGS = dict(draws=1000, tune=1000, chains=4, random_seed=5)

REFERENCES = {
    # lme4: lmer(diameter ~ 1 + (1 | plate) + (1 | sample), Penicillin)
    "Penicillin": (
        "diameter ~ 1 + (1 | plate) + (1 | sample)",
        "gaussian",
        {"Intercept": 22.9722, "sigma": 0.5499},
        {"sd(Intercept|plate)": 0.8467, "sd(Intercept|sample)": 1.9316},
    ),
    # lme4: lmer(strength ~ 1 + (1 | batch/cask), Pastes)
    "Pastes": (
        "strength ~ 1 + (1 | batch/cask)",
        "gaussian",
        {"Intercept": 60.0533, "sigma": 0.8234},
        {"sd(Intercept|batch)": 1.2907, "sd(Intercept|batch:cask)": 2.9041},
    ),
    # lme4: glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, binomial)
    "cbpp": (
        "cbind(incidence, size - incidence) ~ period + (1 | herd)",
        "binomial",
        {"Intercept": -1.3983, "period[T.2]": -0.9919, "period[T.3]": -1.1282, "period[T.4]": -1.5797},
        {"sd(Intercept|herd)": 0.6421},
    ),
}


@pytest.fixture(scope="module", params=list(REFERENCES))
def reference(request):
    name = request.param
    formula, family, point, scales = REFERENCES[name]
    fit = quiet_fit(bm.Model(formula, bm.datasets.load(name), family=family), **SETTINGS)
    return name, fit, point, scales


def test_point_estimates_agree_with_lme4(reference):
    name, fit, point, _ = reference
    table = fit.summary()
    for parameter, value in point.items():
        row = table.loc[parameter]
        assert abs(row["mean"] - value) <= 0.3 * row["sd"], (name, parameter, row["mean"], value)


def test_group_sds_agree_with_lme4(reference):
    name, fit, _, scales = reference
    table = fit.summary()
    post = fit.idata.posterior
    for parameter, value in scales.items():
        row = table.loc[parameter]
        group, column = parameter[3:-1].split("|")[1], parameter[3:-1].split("|")[0]
        draws = post[f"sd_{group}"].sel({f"{group}__term": column}).values
        assert row["q2.5"] < value < row["q97.5"], (name, parameter)
        assert abs(np.median(draws) - value) <= 0.6 * row["sd"], (name, parameter, np.median(draws), value)


def test_nested_and_crossed_structure(reference):
    name, fit, _, _ = reference
    groups = {g: len(fit.design.group_levels(g)) for g in fit.design.groups}
    expected = {
        "Penicillin": {"plate": 24, "sample": 6},
        "Pastes": {"batch": 10, "batch:cask": 30},
        "cbpp": {"herd": 15},
    }[name]
    assert groups == expected
