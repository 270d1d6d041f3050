"""Predictions against hand computations from posterior draws; new levels; bad new data."""

import numpy as np
import pandas as pd
import pytest
from scipy import special

import bayesmm as bm
import bayesmm.results.predict as predict_module
from bayesmm.design.build import DataError

from .conftest import quiet_fit

pytestmark = pytest.mark.slow  # every test here samples, or uses a fit that does


def _draws(fit, name):
    values = fit.idata.posterior[name].values
    return values.reshape((-1,) + values.shape[2:])


def test_linear_predictor_matches_hand_computation(sleepstudy_fit, sleepstudy):
    fixef = _draws(sleepstudy_fit, "fixef")  # (S, 2)
    r = _draws(sleepstudy_fit, "r_Subject")  # (S, 18, 2)
    codes = sleepstudy.Subject.cat.codes.to_numpy()
    days = sleepstudy.Days.to_numpy()
    by_hand = fixef[:, [0]] + r[:, codes, 0] + (fixef[:, [1]] + r[:, codes, 1]) * days
    draws = sleepstudy_fit.predict(kind="linear", summary=False)
    assert draws.dims == ("chain", "draw", "obs")
    np.testing.assert_allclose(draws.values.reshape(by_hand.shape), by_hand, rtol=1e-12)
    table = sleepstudy_fit.predict()
    np.testing.assert_allclose(table["mean"], by_hand.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(table["q97.5"], np.quantile(by_hand, 0.975, axis=0), rtol=1e-12)


def test_new_data_reuses_the_fitted_encoding(sleepstudy_fit, sleepstudy):
    new = pd.DataFrame({"Days": [3, 9], "Subject": ["337", "308"]}, index=["a", "b"])
    predicted = sleepstudy_fit.predict(new)
    same_rows = sleepstudy[((sleepstudy.Subject == 337) & (sleepstudy.Days == 3))
                           | ((sleepstudy.Subject == 308) & (sleepstudy.Days == 9))]  # fmt: skip
    fitted = sleepstudy_fit.predict().loc[same_rows.index]
    assert list(predicted.index) == ["a", "b"]
    expected = fitted.sort_values("mean", ascending=False)["mean"].to_numpy()
    np.testing.assert_allclose(np.sort(predicted["mean"].to_numpy())[::-1], expected)


def test_re_form_drops_group_effects(sleepstudy_fit):
    new = pd.DataFrame({"Days": [0.0, 10.0], "Subject": ["337", "337"]})
    fixef = _draws(sleepstudy_fit, "fixef")
    population = sleepstudy_fit.predict(new, re_form="~0")
    np.testing.assert_allclose(
        population["mean"], [fixef[:, 0].mean(), (fixef[:, 0] + 10 * fixef[:, 1]).mean()]
    )
    same = sleepstudy_fit.predict(new, re_form="~ (Days | Subject)")
    np.testing.assert_allclose(same["mean"], sleepstudy_fit.predict(new)["mean"])
    with pytest.raises(DataError, match="re_form names grouping factor.*Item"):
        sleepstudy_fit.predict(new, re_form="~ (1 | Item)")


def test_new_levels(sleepstudy_fit):
    new = pd.DataFrame({"Days": [0.0, 0.0], "Subject": ["new1", "new2"]})
    with pytest.raises(DataError, match="level\\(s\\) 'new1', 'new2' of 'Subject' .* new_levels='sample'"):
        sleepstudy_fit.predict(new)
    population = sleepstudy_fit.predict(new, new_levels="population")
    np.testing.assert_allclose(population["mean"], sleepstudy_fit.predict(new, re_form="~0")["mean"])
    draws = sleepstudy_fit.predict(new, kind="linear", new_levels="sample", summary=False, random_seed=2)
    deviation = draws.values.reshape(-1, 2) - _draws(sleepstudy_fit, "fixef")[:, [0]]
    # At Days = 0 a new subject's deviation is its intercept effect: N(0, sd(Intercept)^2) over the posterior.
    expected_sd = np.sqrt(np.mean(_draws(sleepstudy_fit, "sd_Subject")[:, 0] ** 2))
    assert deviation.std(axis=0) == pytest.approx([expected_sd, expected_sd], rel=0.06)
    assert abs(np.corrcoef(deviation.T)[0, 1]) < 0.06  # two new subjects are independent draws


def test_bad_new_data(sleepstudy_fit):
    with pytest.raises(
        DataError, match="column 'Days' in the new data .* is not in the data; did you mean 'Dayz'"
    ):
        sleepstudy_fit.predict(pd.DataFrame({"Dayz": [1.0], "Subject": ["308"]}))
    with pytest.raises(DataError, match="column 'Subject' in the new data"):
        sleepstudy_fit.predict(pd.DataFrame({"Days": [1.0]}))
    with pytest.raises(DataError, match="missing values in .Days."):
        sleepstudy_fit.predict(pd.DataFrame({"Days": [np.nan], "Subject": ["308"]}))
    with pytest.raises(ValueError, match="kind must be one of mean, linear, response"):
        sleepstudy_fit.predict(kind="probability")


@pytest.fixture(scope="module")
def cbpp_fit():
    cbpp = bm.datasets.load("cbpp")
    model = bm.Model("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, family="binomial")
    return quiet_fit(model, draws=500, tune=500, chains=2, random_seed=3), cbpp


def test_binomial_predictions(cbpp_fit):
    fit, cbpp = cbpp_fit
    eta = fit.predict(kind="linear", summary=False).values.reshape(-1, len(cbpp))
    mean = fit.predict(kind="mean")
    np.testing.assert_allclose(mean["mean"], (special.expit(eta) * cbpp["size"].to_numpy()).mean(axis=0))
    response = fit.predict(kind="response", summary=False, random_seed=1).values.reshape(-1, len(cbpp))
    assert np.all(response == np.round(response)) and np.all(response <= cbpp["size"].to_numpy())
    new = pd.DataFrame({"period": [1, 4], "herd": [1, 1], "incidence": [0, 0], "size": [10, 20]})
    assert fit.predict(new)["mean"].iloc[1] < 2 * fit.predict(new)["mean"].iloc[0]  # period 4 has lower risk


def test_plain_numbers_for_a_factor_are_encoded_as_in_training(cbpp_fit):
    # formulaic would treat int period as numeric (and rewrite the stored spec): bayesmm must not.
    fit, cbpp = cbpp_fit
    new = pd.DataFrame({"period": [1, 4], "herd": [1, 1], "incidence": [0, 0], "size": [10, 20]})
    for _ in range(2):  # twice: the first call must leave the stored encoding intact
        predicted = fit.predict(new, kind="linear")["mean"].to_numpy()
        rows = cbpp.index[(cbpp.herd == 1) & cbpp.period.isin([1, 4])]
        fitted = fit.predict(kind="linear")["mean"].loc[rows].to_numpy()
        np.testing.assert_allclose(predicted, fitted)


def test_unseen_category_in_a_fixed_factor(cbpp_fit):
    fit, _ = cbpp_fit
    new = pd.DataFrame({"period": [7], "herd": [1], "incidence": [0], "size": [10]})
    with pytest.raises(
        DataError,
        match="level\\(s\\) '7' of 'period' in the new data \\(the fixed effects\\) were not in the data",
    ):
        fit.predict(new)
    with pytest.raises(DataError, match=r"need the number of trials: .*cbind\(incidence, size - incidence\)"):
        fit.predict(new.drop(columns=["incidence", "size"]).assign(period=[2]))


def test_posterior_predictive_and_simulate(sleepstudy_fit, sleepstudy):
    idata = sleepstudy_fit.posterior_predictive(random_seed=4)
    replicated = idata.posterior_predictive["Reaction"]
    assert replicated.shape == (4, 1000, 180)
    # Replicated data scatter around the fitted means with the residual SD.
    mean = sleepstudy_fit.predict()["mean"].to_numpy()
    sigma = float(idata.posterior["sigma"].mean())
    assert (replicated.values - mean).std() == pytest.approx(np.sqrt(sigma**2 + 10**2), rel=0.2)
    assert "observed_data" in idata.children
    sims = sleepstudy_fit.simulate(nsim=3, random_seed=1)
    assert list(sims.columns) == ["sim_1", "sim_2", "sim_3"] and len(sims) == 180


def test_loo_and_compare(sleepstudy_fit, sleepstudy):
    intercepts = quiet_fit(bm.Model("Reaction ~ Days + (1 | Subject)", sleepstudy), random_seed=1)
    loo = sleepstudy_fit.loo()
    assert np.isfinite(loo.elpd) and loo.n_data_points == 180
    assert loo.kind == "loo" and loo.pareto_k.shape == (180,)
    table = bm.compare({"slopes": sleepstudy_fit, "intercepts": intercepts})
    assert table.index[0] == "slopes"  # random slopes predict better, as lme4's LRT says
    # Here the difference is about 23 (SE 12): clearly positive, if less emphatic than the LRT.
    # (ArviZ 1 counts elpd_diff negative for the worse fit.)
    assert -table.loc["intercepts", "elpd_diff"] > 1.5 * table.loc["intercepts", "dse"]
    assert table.loc["intercepts", "elpd"] != round(table.loc["intercepts", "elpd"])  # not rounded


def test_r2_matches_hand_computation(sleepstudy_fit, sleepstudy):
    mu = sleepstudy_fit.predict(summary=False).values.reshape(-1, 180)
    y = sleepstudy.Reaction.to_numpy()
    by_hand = mu.var(axis=1, ddof=1) / (mu.var(axis=1, ddof=1) + (y - mu).var(axis=1, ddof=1))
    table = sleepstudy_fit.r2()
    assert table.loc["conditional", "mean"] == pytest.approx(by_hand.mean())
    assert table.loc["marginal", "mean"] < table.loc["conditional", "mean"]


def test_hypothesis(sleepstudy_fit):
    days = _draws(sleepstudy_fit, "fixef")[:, 1]
    table = sleepstudy_fit.hypothesis(["Days > 5", "2 * Days - Intercept / 25 = 0"])
    assert table.loc["Days > 5", "post_prob"] == pytest.approx(np.mean(days > 5))
    assert table.loc["Days > 5", "estimate"] == pytest.approx(days.mean() - 5)
    assert np.isnan(table.loc["2 * Days - Intercept / 25 = 0", "post_prob"])
    with pytest.raises(ValueError, match="unknown parameter\\(s\\) 'Dayz'"):
        sleepstudy_fit.hypothesis("Dayz > 1")


def test_save_and_load_round_trip(sleepstudy_fit, tmp_path):
    path = sleepstudy_fit.save(tmp_path / "sleep.bmm")
    loaded = bm.load(path)
    pd.testing.assert_frame_equal(loaded.summary(), sleepstudy_fit.summary())
    new = pd.DataFrame({"Days": [2.0, 7.0], "Subject": ["309", "372"]})
    pd.testing.assert_frame_equal(loaded.predict(new), sleepstudy_fit.predict(new))
    assert loaded.model.family.link.name == "identity"
    assert set(loaded.idata.children) == set(sleepstudy_fit.idata.children)
    with pytest.raises(ValueError, match="is a netCDF file but not a bayesmm fit"):
        sleepstudy_fit.idata.to_netcdf(tmp_path / "idata.nc")
        bm.load(tmp_path / "idata.nc")


def test_summaries_in_row_chunks_equal_the_whole(sleepstudy_fit, monkeypatch):
    # New subjects' effects are drawn once, before the rows are cut into chunks: every chunk
    # sees the same draws, so chunked summaries equal the unchunked ones exactly.
    new = pd.DataFrame({"Days": np.tile(np.arange(10), 3), "Subject": np.repeat(["n1", "n2", "308"], 10)})
    options = dict(new_levels="sample", random_seed=3)
    whole = {kind: sleepstudy_fit.predict(new, kind=kind, **options) for kind in ("linear", "mean")}
    draws = sleepstudy_fit.predict(new, kind="mean", summary=False, **options).values.reshape(-1, 30)
    monkeypatch.setattr(predict_module, "CHUNK_NUMBERS", 7 * draws.shape[0])  # chunks of 7 rows
    for kind, table in whole.items():
        chunked = sleepstudy_fit.predict(new, kind=kind, **options)
        pd.testing.assert_frame_equal(chunked, table, rtol=1e-12)
    np.testing.assert_allclose(whole["mean"]["mean"], draws.mean(axis=0), rtol=1e-12)
    # Responses drawn chunk by chunk are new draws of the same distribution.
    chunked = sleepstudy_fit.predict(new, kind="response", **options)
    assert np.abs(chunked["mean"] - whole["mean"]["mean"]).max() < 5 * chunked["sd"].max() / np.sqrt(
        len(draws)
    )
