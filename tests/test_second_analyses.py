"""What a second new user met (issue 33): seven analyses outside the tests and the gallery
(MASS bacteria, nlme Orthodont and ergoStool, lme4 cake, carData Blackmore, ...) and a
catalogue of common mistakes. Each test failed on the code before the fix."""

import logging
import warnings
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import bayesmm as bm
from bayesmm.design.build import build_design, encode_new_data
from bayesmm.results import diagnostics
from bayesmm.results.persist import write_atomically
from bayesmm.results.plots import default_ppc_kind

from .conftest import quiet_fit

CAKE = "angle ~ recipe + temperature + (1 | recipe:replicate)"
BACTERIA = "y ~ trt + I(week > 2) + (1 | ID)"
BLACKMORE = ("I(((0.5 * (exercise + sqrt(exercise^2 + 0.1^2)))^0.25 - 1) / 0.25) ~ I(age - 8) * group"
             " + (I(age - 8) | subject)")  # fmt: skip


@pytest.fixture(scope="module")
def cake():
    return bm.datasets.load("cake", package="lme4")


@pytest.fixture(scope="module")
def bacteria():
    return bm.datasets.load("bacteria", package="MASS")


# 1. The default posterior predictive check follows the family, not the values.


def _ppc_kind(model):
    return default_ppc_kind(SimpleNamespace(model=model, design=model.design))


def test_a_gaussian_model_of_whole_numbers_gets_a_density(cake):
    # cake's angle is whole degrees; a rootogram of a Gaussian model was empty.
    assert _ppc_kind(bm.Model(CAKE, cake)) == "density"
    counts = cake.assign(angle=cake.angle - cake.angle.min())
    assert _ppc_kind(bm.Model(CAKE, counts, family="poisson")) == "rootogram"
    assert _ppc_kind(bm.Model(CAKE, counts, family="negativebinomial")) == "rootogram"
    binary = cake.assign(angle=(cake.angle > 33).astype(int))
    assert _ppc_kind(bm.Model(CAKE, binary, family="bernoulli")) == "hist"
    positive = cake.assign(angle=cake.angle.astype(float))
    assert _ppc_kind(bm.Model(CAKE, positive, family="gamma")) == "density"


# 4. A binary model with few rows per level is sampled non-centred.


def test_binary_data_with_few_rows_per_level_are_not_centred(bacteria):
    # MASS bacteria: 4-5 Bernoulli rows per child. The linearized response made it look
    # centred (kappa 3.45), and it mixed badly so (R-hat 1.015-1.022, ESS 162-282).
    model = bm.Model(BACTERIA, bacteria, family="bernoulli")
    assert model.centred == (False,)
    assert model.parameterization["kappa"].iloc[0] < 1


def test_binomial_rows_with_many_trials_are_still_centred():
    # 200 trials per row, 10 rows per level, level effects of SD 1 on the logit scale: each
    # level's rows pin its effect to about +-0.05, far inside the spread of the levels.
    rng = np.random.default_rng(4)
    g = np.repeat(np.arange(15), 10)
    p = 1 / (1 + np.exp(-(rng.normal(0, 1, 15)[g] - 0.5)))
    data = pd.DataFrame({"s": rng.binomial(200, p), "n": 200, "g": g})
    model = bm.Model("s ~ 1 + (1 | g)", data, family="binomial", trials="n")
    assert model.centred == (True,)
    assert model.parameterization["kappa"].iloc[0] > 10


# 6. Warnings point at the user's line; evenly spaced measurements are not codes.


def test_integer_code_warning_points_at_the_callers_line_and_spares_measurements():
    raw = pd.DataFrame({"y": np.arange(12.0), "code": np.tile([1, 2, 3], 4), "g": np.repeat([1, 2, 3, 4], 3)})
    with pytest.warns(UserWarning, match="'code' enters the fixed part as a number") as caught:
        bm.Model("y ~ code + (1 | g)", raw)
    assert caught[0].filename == __file__
    orthodont = bm.datasets.load("Orthodont", package="nlme")  # age 8, 10, 12, 14 years
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_design("distance ~ age * Sex + (age | Subject)", orthodont)


# 7. No internal names in what users see.


def test_prior_draws_log_no_internal_variable_names(caplog):
    model = bm.Model("Reaction ~ Days + (Days | Subject)", bm.datasets.load("sleepstudy"))
    with caplog.at_level(logging.INFO):
        prior = model.prior_draws(draws=50, random_seed=1)
    assert not [r for r in caplog.records if "Sampling" in r.getMessage()]
    assert prior.sizes["draw"] == 50 and set(prior.data_vars) == set(model.reported_variables)


def test_a_response_with_a_slash_is_a_valid_variable_and_keeps_its_text():
    data = bm.datasets.load("Blackmore", package="carData")
    model = bm.Model(BLACKMORE, data)
    assert model.design.response_name.endswith("/ 0.25)")  # the user's text, for display
    observed = model.pymc_model.observed_RVs[0].name
    assert "/" not in observed and observed == model.design.response_var


# 8. Messages that name the culprit.


def test_a_prior_parameter_given_as_text_names_the_parameter():
    with pytest.raises(bm.PriorError, match=r"Prior\('Normal', mu='zero'\): mu must be a number"):
        bm.Prior("Normal", mu="zero")


def test_text_in_a_numeric_predictor_of_new_data_names_the_column():
    sleep = bm.datasets.load("sleepstudy")
    model = bm.Model("Reaction ~ Days + (Days | Subject)", sleep)
    new = pd.DataFrame({"Days": [1, "a"], "Subject": [308, 309]})
    with pytest.raises(bm.DataError, match=r"'Days' in the new data .* the data hold 'a' \(row 1"):
        encode_new_data(model.design, new)


def test_saving_into_a_missing_folder_names_the_folder(tmp_path):
    target = tmp_path / "no such folder" / "fit.bmm"
    with pytest.raises(FileNotFoundError, match="the folder '.*no such folder' does not exist"):
        write_atomically(target, lambda temporary: temporary.write_text("x"))
    assert not target.parent.exists()


# Analyses that sample.


@pytest.fixture(scope="module")
def cake_fit(cake):
    return quiet_fit(bm.Model(CAKE, cake), draws=500, chains=2, random_seed=3)


@pytest.mark.slow
def test_contrasts_of_a_treatment_that_also_names_groups(cake_fit):
    # Replicates nested in recipes: recipe is a fixed effect and part of a grouping factor.
    table = cake_fit.contrasts("recipe")
    assert list(table["contrast"]) == ["B - A", "C - A", "C - B"]
    # lme4: recipeB -1.478, recipeC -1.522, SE 2.46 each (R 4.2, lme4 on the same formula).
    lme4 = {"B - A": -1.478, "C - A": -1.522, "C - B": -0.044}
    for row in table.itertuples():
        assert abs(row.estimate - lme4[row.contrast]) < 0.5 * row.sd
    effects = cake_fit.conditional_effects("temperature")
    assert list(effects["temperature"]) == [175, 185, 195, 205, 215, 225]  # R's ordered factor
    assert effects["estimate"].iloc[-1] > effects["estimate"].iloc[0]  # lme4: temperature.L +6.6
    ax = cake_fit.plot_conditional_effects("recipe")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["A", "B", "C"]


@pytest.mark.slow
def test_kfold_says_it_takes_capital_k(cake_fit):
    with pytest.raises(TypeError, match=r"kfold takes K, the number of folds"):
        bm.kfold(cake_fit, k=3)
    with pytest.raises(TypeError, match=r"kfold\(\) got 'chain'.*Model.fit, which takes"):
        bm.kfold(cake_fit, K=3, chain=2)


@pytest.mark.slow
def test_hypothesis_on_a_name_that_holds_an_equals_sign(cake):
    fit = quiet_fit(bm.Model('angle ~ relevel(recipe, ref = "B") + (1 | recipe:replicate)', cake),
                    draws=300, chains=2, random_seed=1)  # fmt: skip
    name = 'relevel(recipe, ref = "B")[T.A]'
    assert name in fit.summary().index
    table = fit.hypothesis([f"{name} > 0", f"{name} = 1"])
    draws = fit.idata.posterior["fixef"].sel(fixef_term=name).values.ravel()
    assert table["estimate"].iloc[0] == pytest.approx(draws.mean())
    assert table["estimate"].iloc[1] == pytest.approx(draws.mean() - 1)
    assert table["post_prob"].iloc[0] == pytest.approx(np.mean(draws > 0))


@pytest.mark.slow
def test_bacteria_mixes_at_the_defaults(bacteria):
    # Seeds 1-5 in benchmarks/mixing.py; here one, in the suite's time.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = bm.Model(BACTERIA, bacteria, family="bernoulli").fit(random_seed=2, progressbar=False)
    table = fit.summary()
    assert int(fit.idata["sample_stats"]["diverging"].sum()) == 0
    assert table["r_hat"].max() <= 1.01 and table["ess_bulk"].min() >= 400
    # glmer (R 4.2): trtdrug -1.37 (SE 0.68), I(week > 2) -1.60 (0.48), sd(ID) 1.24.
    assert abs(table.loc["trt[T.drug]", "mean"] + 1.37) < table.loc["trt[T.drug]", "sd"]
    assert abs(table.loc["I(week > 2)", "mean"] + 1.60) < table.loc["I(week > 2)", "sd"]
    # Any warning the fit gave points at this file, not into bayesmm.
    assert all(w.filename == __file__ for w in caught if issubclass(w.category, UserWarning))


@pytest.mark.slow
def test_a_badly_mixing_sd_is_first_advised_the_other_parameterization(sleepstudy_sampled_fit):
    fit = sleepstudy_sampled_fit  # its subjects' effects are centred (many rows per subject)
    assert fit.model.centred == (True,)
    table = fit.summary().copy()
    table.loc["sd(Days|Subject)", ["r_hat", "ess_bulk"]] = [1.05, 50.0]
    rhat, bulk, _ = diagnostics._rhat_and_ess(fit, table)
    for check in (rhat, bulk):
        assert "First sample the group effects of (Days | Subject) non-centred" in check.message
        assert 'Model(..., centered={"Subject": False})' in check.message
        assert check.message.index("centered=") < check.message.index("Sample longer")


@pytest.mark.slow
def test_diagnostic_warnings_point_at_the_callers_line(cake):
    with pytest.warns(bm.DiagnosticWarning) as caught:
        bm.Model(CAKE, cake).fit(draws=30, tune=30, chains=2, random_seed=1, progressbar=False)
    assert caught[0].filename == __file__


@pytest.mark.slow
def test_density_check_says_which_curve_is_the_data(sleepstudy_fit):
    import matplotlib.pyplot as plt

    ax = sleepstudy_fit.plot_ppc()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["replicated data sets (100)", "observed"]
    plt.close("all")


@pytest.mark.slow
def test_blackmore_fits_and_checks_with_its_response_text():
    data = bm.datasets.load("Blackmore", package="carData")
    fit = quiet_fit(bm.Model(BLACKMORE, data), draws=300, chains=2, random_seed=1)
    # lme4 (R 4.2) on the same formula: I(age - 8):grouppatient 0.201 (SE 0.029)
    assert abs(fit.summary().loc["I(age - 8):group[T.patient]", "mean"] - 0.201) < 0.029
    assert np.isfinite(fit.loo().elpd)
    ax = fit.plot_ppc()
    assert ax.get_legend() is not None
