"""Power analysis by simulation: designs grow as asked, and power matches the analytic value of
a simple Gaussian case within Monte Carlo error."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import bayesmm as bm
from bayesmm.workflows.power import grow_design


def test_designs_grow_by_groups_and_rows_keeping_the_template_pattern():
    template = pd.DataFrame({"g": np.repeat(["a", "b"], 3), "trt": np.repeat(["c", "t"], 3),
                             "day": [0, 1, 2] * 2, "item": ["i1", "i2", "i3"] * 2})  # fmt: skip
    grown = grow_design(template, "g", 4, 5)
    assert grown.g.nunique() == 4 and (grown.groupby("g").size() == 5).all()
    # Groups take the template's levels in turn (the between-group treatment stays balanced),
    # rows their level's rows in turn (the within-group days keep their order).
    assert grown.groupby("g", sort=False).trt.first().tolist() == ["c", "t", "c", "t"]
    assert grown[grown.g == "g1"].day.tolist() == [0, 1, 2, 0, 1]
    assert set(grown.item) == {"i1", "i2", "i3"}  # a crossed factor comes along
    pd.testing.assert_frame_equal(
        grow_design(template, "g", None, None).drop(columns="g"), template.drop(columns="g")
    )
    with pytest.raises(bm.DataError, match="'site' is not a column"):
        grow_design(template, "site", 2, 2)


def test_bad_rules_are_refused_before_any_fit():
    template = pd.DataFrame({"g": np.repeat(range(4), 3)})
    with pytest.raises(ValueError, match="test takes a statement such as 'x > 0'"):
        bm.power("y ~ 1 + (1 | g)", template, {}, test="Intercept is big", nsim=2)
    with pytest.raises(bm.DataError, match="the formula has none"):
        bm.power("y ~ 1", template, {}, test="Intercept > 0", nsim=2)


@pytest.mark.slow
def test_power_matches_the_analytic_power_and_grows_with_the_groups():
    # y = mu + u_g + e: the mean over G groups of m rows has variance (tau^2 + sigma^2 / m) / G,
    # and "Intercept > 0 with posterior probability 0.975" is a one-sided t-test at 2.5% (measured:
    # 0.49 and 0.84 against 0.48 and 0.79; with 10 groups the weak prior on tau makes the Bayesian
    # rule more conservative than the t-test, 0.28 against 0.39).
    mu, tau, sigma, m = 0.3, 0.5, 1.0, 5
    template = pd.DataFrame({"g": np.repeat(range(10), m)})
    params = {"Intercept": mu, "sd(Intercept|g)": tau, "sigma": sigma}
    result = bm.power("y ~ 1 + (1 | g)", template, params, test="Intercept > 0", prob=0.975,
                      n_groups=[20, 40], nsim=80, draws=300, tune=300, progressbar=False)  # fmt: skip
    table = result.table.set_index("n_groups")
    for groups in (20, 40):
        ncp = mu / np.sqrt((tau**2 + sigma**2 / m) / groups)
        analytic = stats.nct.sf(stats.t.ppf(0.975, groups - 1), groups - 1, ncp)
        row = table.loc[groups]
        assert abs(row["power"] - analytic) <= 3 * max(row["mc_se"], 0.03), (groups, row["power"], analytic)
    assert table.loc[40, "power"] > table.loc[20, "power"] + 0.1
    ax = result.plot()
    np.testing.assert_allclose(np.asarray(ax.lines[0].get_ydata(), dtype=float), table["power"].to_numpy())
