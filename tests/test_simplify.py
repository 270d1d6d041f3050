"""fit.simplify(): the lecture's reductions of a random-effects structure, fitted and compared
by PSIS-LOO, with a recommendation under each view."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import bayesmm as bm
from bayesmm.results.simplify import _barr, _bates, candidates

from .conftest import quiet_fit

CBPP = "cbind(incidence, size - incidence) ~ period + (period | herd)"


def test_the_candidates_are_the_lectures_reductions():
    model = bm.Model(CBPP, bm.datasets.load("cbpp"), family="binomial")
    found = candidates(SimpleNamespace(design=model.design))
    assert list(found.values()) == [
        CBPP,
        "cbind(incidence, size - incidence) ~ period + (period || herd)",
        "cbind(incidence, size - incidence) ~ period + cs(period | herd)",
        "cbind(incidence, size - incidence) ~ period + (1 | herd)",
    ]
    crossed = bm.Model("diameter ~ 1 + (1 | plate) + (1 | sample)", bm.datasets.load("Penicillin"))
    found = candidates(SimpleNamespace(design=crossed.design))
    assert found["drop grouping factor plate"] == "diameter ~ 1 + (1 | sample)"
    assert found["drop grouping factor sample"] == "diameter ~ 1 + (1 | plate)"


def test_the_two_views_choose_by_their_rules():
    table = pd.DataFrame(
        {"singular": [True, True, False, False], "elpd_diff": [0.0, -1.0, -3.0, -12.0],
         "se": [0.0, 1.5, 2.0, 4.0], "n_parameters": [14, 8, 5, 2]},
        index=["as fitted", "uncorrelated", "intercepts", "none"],
    )  # fmt: skip
    assert _barr(table) == "intercepts"  # singular as fitted: the least reduced candidate that is not
    assert _bates(table) == "intercepts"  # 'none' is 12 below the best, 3 SEs: credibly worse
    assert _barr(table.assign(singular=False)) == "as fitted"


@pytest.mark.slow
def test_simplify_cbpp_fits_and_compares_the_candidates():
    fit = quiet_fit(bm.Model(CBPP, bm.datasets.load("cbpp"), family="binomial"), draws=400, random_seed=1)
    result = fit.simplify()
    table = result.table
    assert list(table.index) == [
        "as fitted",
        "(period | herd): drop its correlations",
        "(period | herd): one shared correlation",
        "(period | herd): drop period",
    ]
    assert table["elpd_diff"].max() == 0.0 and np.all(np.isfinite(table["se"]))
    assert (table.loc[table["elpd_diff"] < 0, "se"] > 0).all()
    assert table.loc["(period | herd): drop period", "n_parameters"] == 5  # 4 fixed effects and one SD
    # 4 fixed effects, 4 SDs and 6, none or 1 correlation (cs() implies six, from one parameter)
    assert list(table["n_parameters"][:3]) == [14, 8, 9]
    assert (table["singular"] == (table["reason"] != "")).all()
    assert set(result.recommended) == {"barr", "bates"}
    assert set(result.recommended.values()) <= set(table.index)
    assert "Barr et al." in str(result) and "Matuschek" in str(result)
    ax = result.plot()
    assert len(ax.get_yticks()) == 4
    # The candidates fitted in two local processes: the same draws from the same seeds (the
    # engine runs the same code in every process), so the same table.
    elsewhere = fit.simplify(processes=2).table
    pd.testing.assert_frame_equal(elsewhere, table)


def test_simplify_takes_processes_or_a_client_not_both():
    fit = SimpleNamespace(settings=SimpleNamespace(draws=10, tune=10, chains=1, random_seed=1))
    with pytest.raises(ValueError, match="processes= .* or client="):
        bm.Fit.simplify(fit, processes=2, client=object())
    with pytest.raises(ValueError, match="processes must be a whole number"):
        bm.Fit.simplify(fit, processes=0)


def test_simplify_refuses_a_wrong_kfold_before_fitting():
    fit = SimpleNamespace(settings=SimpleNamespace(draws=10, tune=10, chains=1, random_seed=1))
    for wrong in (1, 0, True, "yes"):
        with pytest.raises(ValueError, match="kfold must be"):
            bm.Fit.simplify(fit, kfold=wrong)


@pytest.mark.slow
def test_simplify_compares_by_kfold_on_the_same_folds_when_asked():
    """Penicillin's crossed plates and samples, and each dropped, by 3-fold cross-validation:
    without the samples (lme4's SD 1.93, against a residual SD of 0.55) the model predicts
    credibly worse."""
    model = bm.Model("diameter ~ 1 + (1 | plate) + (1 | sample)", bm.datasets.load("Penicillin"))
    fit = quiet_fit(model, draws=300, tune=300, chains=2, random_seed=2)
    table = fit.simplify(kfold=3).table
    assert set(table["criterion"]) == {"3-fold CV"}
    assert table["elpd_diff"].max() == 0.0
    dropped = table.loc["drop grouping factor sample"]
    assert dropped["elpd_diff"] < -2 * dropped["se"] < 0


@pytest.mark.slow
def test_an_unidentified_maximal_model_counts_as_singular():
    """ergoStool's (Type | Subject): 36 rows for 36 effects. Barr et al.'s view does not keep
    a model the design cannot identify, whatever its SDs look like."""
    ergo = bm.datasets.load("ergoStool", package="nlme")
    with pytest.warns(UserWarning, match="number of observations"):
        model = bm.Model("effort ~ Type + (Type | Subject)", ergo)
    fit = quiet_fit(model, draws=300, tune=300, chains=2, random_seed=1)
    result = fit.simplify(kfold=False)
    assert "not identified" in result.table.loc["as fitted", "reason"]
    assert result.recommended["barr"] != "as fitted"
