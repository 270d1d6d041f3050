"""Known answer: lme4's sleepstudy against brms 2.18 with default priors (4 x 1000 draws)."""

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.slow  # every test here samples, or uses a fit that does

# brms 2.18, Reaction ~ Days + (Days | Subject): posterior mean and SD.
BRMS = {
    "Intercept": (251.2, 7.3),
    "Days": (10.45, 1.67),
    "sd(Intercept|Subject)": (27.2, 6.9),
    "sd(Days|Subject)": (6.57, 1.46),
    "cor(Intercept,Days|Subject)": (0.08, 0.30),
    "sigma": (25.8, 1.58),
}


def test_summary_rows_and_columns(sleepstudy_fit):
    table = sleepstudy_fit.summary()
    assert list(table.index) == list(BRMS)
    for column in ("mean", "sd", "q2.5", "q97.5", "r_hat", "ess_bulk", "ess_tail"):
        assert column in table.columns


@pytest.mark.parametrize("name", list(BRMS))
def test_posterior_agrees_with_brms(sleepstudy_fit, name):
    mean, sd = BRMS[name]
    row = sleepstudy_fit.summary().loc[name]
    assert abs(row["mean"] - mean) <= 0.3 * sd
    # Posterior SDs agree too (within 15%; Monte Carlo error on an SD at ESS ~1000 is ~2-3%).
    assert row["sd"] == pytest.approx(sd, rel=0.15)


def test_converged(sleepstudy_fit):
    table = sleepstudy_fit.summary()
    assert table["r_hat"].max() <= 1.01
    assert table["ess_bulk"].min() >= 400


def test_idata_has_labelled_coordinates(sleepstudy_fit, sleepstudy):
    post = sleepstudy_fit.idata.posterior
    assert post.sizes["chain"] == 4 and post.sizes["draw"] == 1000
    levels = [str(s) for s in sleepstudy.Subject.cat.categories]
    assert list(post["r_Subject"].coords["Subject"].values) == levels
    assert list(post["r_Subject"].coords["Subject__term"].values) == ["Intercept", "Days"]
    assert list(post["fixef"].coords["fixef_term"].values) == ["Intercept", "Days"]
    assert not [v for v in post.data_vars if str(v).endswith("__")]


def test_fixef_matches_summary(sleepstudy_fit):
    fixef = sleepstudy_fit.fixef()
    summary = sleepstudy_fit.summary().loc[["Intercept", "Days"]]
    pd.testing.assert_frame_equal(fixef, summary, check_frame_type=False)


def test_ranef_is_the_posterior_of_group_effects(sleepstudy_fit):
    ranef = sleepstudy_fit.ranef()["Subject"]
    assert ranef.shape == (18, 4 * 2)
    draws = sleepstudy_fit.idata.posterior["r_Subject"]
    np.testing.assert_allclose(ranef["mean"].to_numpy(), draws.mean(("chain", "draw")).to_numpy())
    np.testing.assert_allclose(
        ranef["q97.5"]["Days"], draws.sel(Subject__term="Days").quantile(0.975, ("chain", "draw"))
    )
    # Group effects are deviations: across subjects they centre near zero.
    assert abs(ranef["mean"]["Intercept"].mean()) < 0.3 * ranef["sd"]["Intercept"].mean()


def test_coef_is_fixef_plus_ranef(sleepstudy_fit):
    coef = sleepstudy_fit.coef("Subject")
    ranef = sleepstudy_fit.ranef("Subject")
    fixef = sleepstudy_fit.fixef()["mean"]
    for term in ("Intercept", "Days"):
        np.testing.assert_allclose(coef["mean"][term], fixef[term] + ranef["mean"][term], rtol=1e-10)


def test_coef_shrinks_towards_the_population(sleepstudy_fit, sleepstudy):
    # Per-subject least-squares slopes spread more than the partially pooled ones.
    ols = sleepstudy.groupby("Subject", observed=True).apply(
        lambda d: np.polyfit(d.Days, d.Reaction, 1)[0], include_groups=False
    )
    pooled = sleepstudy_fit.coef("Subject")["mean"]["Days"]
    assert pooled.std() < ols.std()
    assert np.corrcoef(pooled.to_numpy(), ols.to_numpy())[0, 1] > 0.9


def test_varcorr(sleepstudy_fit):
    table = sleepstudy_fit.varcorr()
    assert list(table.index) == [
        "sd(Intercept|Subject)",
        "sd(Days|Subject)",
        "cor(Intercept,Days|Subject)",
        "sigma",
    ]
    assert list(table["group"]) == ["Subject", "Subject", "Subject", "Residual"]
    assert list(table["term"]) == ["Intercept", "Days", "Intercept,Days", ""]
    summary = sleepstudy_fit.summary()
    np.testing.assert_allclose(table["mean"], summary.loc[table.index, "mean"])


def test_text_and_html_reports(sleepstudy_fit):
    text = str(sleepstudy_fit)
    assert "Formula: Reaction ~ Days + (Days | Subject)" in text
    assert "Subject: 18 levels" in text
    assert "Group-level effects:" in text and "sd(Days|Subject)" in text
    html = sleepstudy_fit._repr_html_()
    assert html.count("<table") == 3


def test_unknown_group_is_named(sleepstudy_fit):
    with pytest.raises(KeyError, match="'Subjekt' is not a grouping factor.*Subject"):
        sleepstudy_fit.ranef("Subjekt")
