"""The cumulative (ordinal) family: its likelihood against a hand computation, its response
coding and refusals, and (slow) the wine data against ordinal::clmm."""

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

import bayesmm as bm
from bayesmm.design.build import DataError

from .conftest import at_random_point, quiet_fit

CDF = {"logit": stats.logistic.cdf, "probit": stats.norm.cdf}


@pytest.fixture(scope="module")
def ratings():
    rng = np.random.default_rng(3)
    n = 90
    frame = pd.DataFrame(
        {"x": rng.normal(size=n), "g": rng.choice(list("abcdef"), n), "f": rng.choice(["u", "v"], n)}
    )
    latent = 0.8 * frame.x + rng.logistic(size=n)
    frame["y"] = 1 + np.searchsorted([-1.0, 0.0, 1.2], latent)
    frame["level"] = pd.Categorical.from_codes(frame.y - 1, ["low", "mid", "high", "top"], ordered=True)
    return frame


def _by_hand(y, eta, thresholds, link):
    """log P(y = k) = log(F(t_k - eta) - F(t_{k-1} - eta)), t_0 = -inf, t_K = inf."""
    padded = np.concatenate([[-np.inf], thresholds, [np.inf]])
    k = np.asarray(y, dtype=int)
    return np.log(CDF[link](padded[k] - eta) - CDF[link](padded[k - 1] - eta))


@pytest.mark.parametrize("link", ["logit", "probit"])
def test_the_likelihood_is_the_cumulative_model_by_hand(ratings, link):
    model = bm.Model("level ~ x + f + (1 + x | g)", ratings, family="cumulative", link=link)
    assert model.design.fixef_names == ["x", "f[T.v]"]  # the thresholds replace the intercept
    loglik, values = at_random_point(model, seed=4)
    design = model.design
    term = design.random[0]
    eta = design.X @ values["fixef"] + np.einsum("nj,nj->n", values["r_g"][term.codes], term.matrix)
    thresholds = np.array([values[f"Intercept[{k}]"] for k in (1, 2, 3)])
    assert np.all(np.diff(thresholds) > 0)
    expected = _by_hand(design.y, eta, thresholds, link)
    # PyTensor's normal log-CDF (through erfcx) agrees with scipy's to about 1e-8 per row.
    assert loglik == pytest.approx(expected.sum(), rel=1e-9 if link == "logit" else 1e-7)
    params = {f"Intercept[{k}]": np.array([[t]]) for k, t in enumerate(thresholds, start=1)}
    pointwise = model.family.log_likelihood(design.y, eta[None, :], params)
    np.testing.assert_allclose(
        pointwise[0], expected, rtol=1e-9, atol=1e-14
    )  # the hand form loses digits near log 1


@pytest.mark.parametrize("link", ["logit", "probit"])
def test_far_tails_stay_finite_and_exact(link):
    family = bm.get_family("cumulative", link=link)
    family.categories, family.params = ("1", "2", "3"), ("Intercept[1]", "Intercept[2]")
    params = {"Intercept[1]": np.array([[-1.0]]), "Intercept[2]": np.array([[2.0]])}
    eta = np.array([[40.0, -40.0, 40.0, -40.0]])
    y = np.array([1, 3, 3, 1])
    logp = family.log_likelihood(y, eta, params)
    log_cdf = special.log_expit if link == "logit" else special.log_ndtr
    # The improbable categories: P(y = 1) = F(-41), P(y = 3) = 1 - F(42) = F(-42)
    np.testing.assert_allclose(logp[0, :2], [log_cdf(-41.0), log_cdf(-42.0)], rtol=1e-10)
    # The sure ones: log P is about 0 and exactly log(1 - F(...)).
    sure = [np.log1p(-np.exp(log_cdf(-38.0))), np.log1p(-np.exp(log_cdf(-39.0)))]
    np.testing.assert_allclose(logp[0, 2:], sure, rtol=1e-10, atol=1e-300)


def test_probabilities_mean_and_draws_agree(ratings):
    family = bm.Model("y ~ x", ratings, family="cumulative").family
    params = {
        "Intercept[1]": np.array([[-1.0]]),
        "Intercept[2]": np.array([[0.5]]),
        "Intercept[3]": np.array([[1.0]]),
    }
    eta = np.array([[-2.0, 0.0, 0.7, 3.0]])
    p = family.probabilities(eta, params)
    np.testing.assert_allclose(p.sum(axis=-1), 1.0)
    np.testing.assert_allclose(
        p[0, 1], np.diff(np.concatenate([[0], special.expit(np.array([-1, 0.5, 1.0])), [1]]))
    )
    np.testing.assert_allclose(family.mean(eta, params), (p * np.arange(1, 5)).sum(axis=-1))
    draws = family.draw(np.repeat(eta, 20000, axis=0), params, None, np.random.default_rng(1))
    frequencies = np.stack([(draws == k).mean(axis=0) for k in range(1, 5)], axis=-1)
    np.testing.assert_allclose(frequencies, p[0], atol=0.012)  # 4 SEs of a frequency at n = 20000


def test_response_coding(ratings):
    ordered = bm.Model("level ~ x", ratings, family="cumulative")
    numbers = bm.Model("y ~ x", ratings, family="ordinal")
    np.testing.assert_array_equal(ordered.design.y, numbers.design.y)
    assert ordered.family.categories == ("low", "mid", "high", "top")
    assert numbers.family.categories == ("1", "2", "3", "4")
    assert list(ordered.priors.index[-3:]) == ["Intercept[1]", "Intercept[2]", "Intercept[3]"]
    assert set(ordered.priors["class"].iloc[-3:]) == {"Intercept"}
    wide = bm.Model(
        "level ~ x", ratings, family="cumulative", priors={"Intercept": bm.Prior("Normal", mu=0, sigma=10)}
    )
    assert set(wide.priors["prior"].iloc[-3:]) == {"Normal(mu=0, sigma=10)"}
    # The family given is not changed: configuring it for the data makes a copy.
    family = bm.get_family("cumulative")
    bm.Model("level ~ x", ratings, family=family)
    assert family.categories is None


def test_declared_but_unseen_categories_count_and_warn(ratings):
    level = pd.Categorical(ratings.level, categories=["low", "mid", "high", "top", "best"], ordered=True)
    with pytest.warns(UserWarning, match=r"category 'best' of the response 'level' never occur"):
        model = bm.Model("level ~ x", ratings.assign(level=level), family="cumulative")
    assert model.family.params[-1] == "Intercept[4]"


@pytest.mark.parametrize(
    "formula, column, message",
    [
        ("answer ~ x", ["no", "yes", "maybe"], r"'answer' holds text \('maybe', 'no', 'yes'\), whose order"),
        (
            "answer ~ x",
            [0, 1, 2],
            r"'answer' has 30 value\(s\) that are not integers 1, 2, ..., K, the first 0 in row",
        ),
        ("answer ~ x", [1.5, 2, 3], r"not integers 1, 2, ..., K, the first 1.5"),
        ("answer ~ x", [1, 2, 1], r"'answer' has 2 categories; an ordinal model needs three or more"),
        ("answer ~ 0 + x", [1, 2, 3], r"thresholds, Intercept\[1\], .* keep it in 'answer ~ 0 \+ x'"),
    ],
)
def test_responses_an_ordinal_model_refuses(ratings, formula, column, message):
    data = ratings.assign(answer=np.resize(column, len(ratings)))
    with pytest.raises(DataError, match=message):
        bm.Model(formula, data, family="cumulative")


def test_kind_probs_is_for_ordinal_models_only():
    from bayesmm.results.predict import predict

    class Stub:
        class model:
            family = bm.get_family("poisson")

    with pytest.raises(
        ValueError, match="kind=.probs. gives category probabilities of an ordinal or categorical model"
    ):
        predict(Stub(), kind="probs")


def test_simulated_ordinal_data_follow_the_thresholds():
    data = pd.DataFrame({"x": np.tile([0.0, 1.5], 20000)})
    params = {"x": 1.0, "Intercept[1]": -1.0, "Intercept[2]": 1.0}
    y = bm.simulate("~ x", data, family="cumulative", params=params, seed=2)["sim_1"]
    for x in (0.0, 1.5):  # P(y <= k) = logistic(Intercept[k] - x)
        expected = np.diff(np.concatenate([[0], special.expit(np.array([-1.0, 1.0]) - x), [1]]))
        np.testing.assert_allclose([(y[data.x == x] == k).mean() for k in (1, 2, 3)], expected, atol=0.012)
    with pytest.raises(ValueError, match="must increase"):
        bm.simulate("~ x", data, family="cumulative", params={**params, "Intercept[2]": -2.0})


# -- the wine data against ordinal::clmm (Christensen's example), Laplace ML, logit link:
# clmm(rating ~ temp + contact + (1 | judge), data = wine), ordinal 2022.11, R 4.2.
CLMM = {  # estimate, standard error
    "temp[T.warm]": (3.0630, 0.5954),
    "contact[T.yes]": (1.8349, 0.5125),
    "Intercept[1]": (-1.6237, 0.6824),
    "Intercept[2]": (1.5134, 0.6038),
    "Intercept[3]": (4.2285, 0.8090),
    "Intercept[4]": (6.0888, 0.9725),
}
CLMM_SD_JUDGE = 1.1311


@pytest.fixture(scope="module")
def wine_fit():
    wine = bm.datasets.load("wine", "ordinal")
    return quiet_fit(bm.Model("rating ~ temp + contact + (1 | judge)", wine, family="cumulative"),
                     draws=1000, chains=4, random_seed=5)  # fmt: skip


@pytest.mark.slow
def test_wine_agrees_with_clmm(wine_fit):
    table = wine_fit.summary()
    assert table["r_hat"].max() <= 1.01 and table["ess_bulk"].min() >= 400
    assert wine_fit.diagnose()["divergences"].value == 0
    for name, (estimate, se) in CLMM.items():
        row = table.loc[name]
        # brms's default priors pull the thresholds in by up to 0.62 SE (Intercept[2]'s mean
        # 1.14-1.20 over seeds 5-7, against clmm's 1.51, SE 0.60); the posterior SDs are the
        # standard errors, up to the posterior's skew with 72 ratings.
        assert abs(row["mean"] - estimate) <= 0.7 * se, (name, row["mean"], estimate)
        assert 0.8 * se <= row["sd"] <= 1.3 * se, (name, row["sd"], se)
    sd = table.loc["sd(Intercept|judge)"]
    assert sd["q2.5"] < CLMM_SD_JUDGE < sd["mean"] < sd["q97.5"]


@pytest.mark.slow
def test_wine_predictions_are_category_probabilities(wine_fit):
    probs = wine_fit.predict(kind="probs", summary=False)
    assert probs.dims == ("chain", "draw", "obs", "category")
    assert list(probs.category.values) == ["1", "2", "3", "4", "5"]
    np.testing.assert_allclose(probs.sum("category"), 1.0)
    expected = (probs * np.arange(1, 6)).sum("category").mean(("chain", "draw")).values
    np.testing.assert_allclose(wine_fit.predict()["mean"].to_numpy(), expected, rtol=1e-10)
    table = wine_fit.predict(kind="probs")
    np.testing.assert_allclose(table["mean"].to_numpy(), probs.mean(("chain", "draw")).values)
    # Warm wine after skin contact is rated higher than cold wine without.
    new = pd.DataFrame({"temp": ["cold", "warm"], "contact": ["no", "yes"], "judge": ["1", "1"]})
    means = wine_fit.predict(new, re_form="~0")["mean"]
    assert means.iloc[1] > means.iloc[0] + 1


@pytest.mark.slow
def test_wine_ppc_shows_counts_per_category(wine_fit):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ax = wine_fit.plot_ppc()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "3", "4", "5"]
    observed = np.bincount(wine_fit.design.y.astype(int), minlength=6)[1:]
    heights = [bar.get_height() for bar in ax.patches]
    np.testing.assert_array_equal(heights, observed)
    loo = wine_fit.loo()
    assert np.isfinite(loo.elpd)
