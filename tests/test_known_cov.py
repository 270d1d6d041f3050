"""brms's (1 | gr(g, cov = A)): group effects whose levels have a known covariance A
(phylogenetic and animal models). The prior the model builds is MVN(0, sd^2 A) (checked by
drawing from it), A is matched to the levels by name and refused when it cannot be one, and a
fit recovers a simulated phylogenetic SD and the levels' effects."""

import numpy as np
import pandas as pd
import pymc as pm
import pytest

import bayesmm as bm

from .bad_input.helpers import unchanged
from .conftest import assert_recovered, quiet_fit


def _covariance(n: int, scale: float = 0.3) -> np.ndarray:
    """An Ornstein-Uhlenbeck covariance of n levels on a line: neighbours alike, far ones not."""
    t = np.linspace(0, 1, n)
    return np.exp(-np.abs(t[:, None] - t[None, :]) / scale)


def _species(seed=1, n_species=40, per=6, sd=0.8):
    rng = np.random.default_rng(seed)
    names = [f"sp{i:02d}" for i in range(n_species)]
    A = _covariance(n_species)
    effects = sd * np.linalg.cholesky(A) @ rng.normal(size=n_species)
    code = np.repeat(np.arange(n_species), per)
    x = rng.normal(size=code.size)
    data = pd.DataFrame({"y": 1.0 + 0.5 * x + effects[code] + rng.normal(0, 0.5, code.size), "x": x,
                         "species": [names[i] for i in code]})  # fmt: skip
    return data, pd.DataFrame(A, index=names, columns=names), effects


def test_the_prior_of_the_effects_is_sd_squared_times_a():
    data, A, _ = _species()
    model = bm.Model("y ~ x + (1 | gr(species, cov = A))", data, data2={"A": A})
    assert not model.collapsed and model.centred == (False,)
    r, sd = pm.draw(
        [model.pymc_model["r_species"], model.pymc_model["sd_species"]], draws=6000, random_seed=2
    )
    scaled = r[:, :, 0] / sd.reshape(-1, 1)
    # 6000 draws: each covariance entry within about 3 Monte Carlo SEs (sqrt(2 / 6000) = 0.018).
    np.testing.assert_allclose(np.cov(scaled.T), A.to_numpy(), atol=0.07)


def test_slopes_have_the_kronecker_covariance():
    """(1 + x | gr(g, cov = A)): whitened by A's factor, the levels' effects are independent
    rows with the terms' covariance: vec(r) ~ MVN(0, Sigma (x) A)."""
    data, A, _ = _species(n_species=12)
    model = bm.Model("y ~ x + (1 + x | gr(species, cov = A))", data, data2={"A": A})
    r, sd = pm.draw(
        [model.pymc_model["r_species"], model.pymc_model["sd_species"]], draws=4000, random_seed=3
    )
    whitened = np.linalg.solve(np.linalg.cholesky(A.to_numpy()), r)  # (draws, levels, terms)
    # Per unit SD: the half-Student-t's heavy tail would let a few draws decide the correlations.
    intercepts = whitened[:, :, 0] / sd[:, :1]
    # Across levels the whitened intercepts are uncorrelated (A's correlation removed).
    correlation = np.corrcoef(intercepts.T)
    off_diagonal = correlation[~np.eye(len(correlation), dtype=bool)]
    assert np.max(np.abs(off_diagonal)) < 0.1
    # Without whitening neighbouring levels are correlated as A says (about 0.91 for these).
    raw = np.corrcoef((r[:, :, 0] / sd[:, :1]).T)
    assert raw[0, 1] == pytest.approx(A.iloc[0, 1], abs=0.05)


def test_an_array_in_level_order_is_the_labelled_frame():
    data, A, _ = _species()
    shuffled = A.sample(frac=1.0, random_state=1)
    shuffled = shuffled[shuffled.index]  # the same matrix, levels in another order, extra level added below
    extra = pd.DataFrame(np.eye(41), index=[*shuffled.index, "unused"], columns=[*shuffled.index, "unused"])
    extra.iloc[:40, :40] = shuffled.to_numpy()
    by_label = bm.Model("y ~ (1 | gr(species, cov = A))", data, data2={"A": extra}).design.random[0]
    by_order = bm.Model("y ~ (1 | gr(species, cov = A))", data, data2={"A": A.to_numpy()}).design.random[0]
    np.testing.assert_array_equal(by_label.level_cov, by_order.level_cov)
    np.testing.assert_allclose(by_order.level_factor @ by_order.level_factor.T, A.to_numpy(), atol=1e-12)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda A: {"B": A}, r"needs the matrix 'A': pass it as bm.Model\(\.\.\., data2=\{'A': A\}\)"),
        (lambda A: {"A": A.drop(index="sp03", columns="sp03")},
         r"levels of 'species' in the data have no row in data2\['A'\].*'sp03'"),
        (lambda A: {"A": A.rename(index={"sp00": "x"})}, r"same labels, in the same order, on its rows"),
        (lambda A: {"A": A.to_numpy()[:10, :10]}, r"is \(10, 10\); as an array it must be 40 x 40"),
        (lambda A: {"A": A.assign(sp01=A["sp01"] + 0.5)},
         r"is not symmetric: entry \('sp\d+', 'sp\d+'\) is [\d.]+, its mirror [\d.]+"),
        (lambda A: {"A": A - 0.5}, r"is not positive definite \(smallest eigenvalue"),
        (lambda A: {"A": A.where(A > 0.99)}, r"has missing or infinite entries"),
    ],
)  # fmt: skip
def test_a_matrix_that_cannot_be_the_levels_covariance_is_refused(change, message):
    data, A, _ = _species()
    with unchanged(data), pytest.raises(bm.DataError, match=message):
        bm.Model("y ~ x + (1 | gr(species, cov = A))", data, data2=change(A))


def test_gr_without_cov_is_the_plain_term():
    data, _, _ = _species()
    plain = bm.Model("y ~ x + (1 | species)", data)
    gr = bm.Model("y ~ x + (1 | gr(species))", data)
    assert gr.design.random[0].level_factor is None and list(gr.priors.index) == list(plain.priors.index)


@pytest.mark.slow
def test_a_phylogenetic_sd_and_the_species_effects_are_recovered(tmp_path):
    """Two rows per species: the relatives' data inform each species' effect, so the model
    with A finds the effects better than the one with independent species (seeds 4-6: RMSE
    0.23-0.19-0.23 against 0.25-0.31-0.33, correlation with the truth 0.80-0.94)."""
    data, A, effects = _species(seed=5, per=2)
    model = bm.Model("y ~ x + (1 | gr(species, cov = A))", data, data2={"A": A})
    fit = quiet_fit(model, draws=1000, chains=2, random_seed=1)
    assert fit.idata.attrs["compiled_by"] == "engine"
    assert_recovered(fit, {"Intercept": 1.0, "x": 0.5, "sd(Intercept|species)": 0.8, "sigma": 0.5})
    independent = quiet_fit(bm.Model("y ~ x + (1 | species)", data), draws=1000, chains=2, random_seed=1)
    # The intercept absorbs the effects' mean, which A makes far from zero: compare deviations.
    errors = []
    for each in (fit, independent):
        estimated = each.ranef()["species"][("mean", "Intercept")].to_numpy()
        errors.append(np.sqrt(np.mean((estimated - estimated.mean() - effects + effects.mean()) ** 2)))
    assert errors[0] < 0.8 * errors[1]
    estimated = fit.ranef()["species"][("mean", "Intercept")].to_numpy()
    assert np.corrcoef(estimated, effects)[0, 1] > 0.85
    # New species have no row in A: only population predictions.
    new = pd.DataFrame({"x": [0.0], "species": ["new"]})
    with pytest.raises(bm.DataError, match=r"'new' of 'species' are new.*new_levels='population'"):
        fit.predict(new, new_levels="sample")
    # Saved and loaded with its matrix.
    loaded = bm.load(fit.save(tmp_path / "phylo.nc"))
    np.testing.assert_array_equal(loaded.design.random[0].level_cov, fit.design.random[0].level_cov)
    pd.testing.assert_frame_equal(loaded.predict(), fit.predict())


def test_simulate_draws_the_levels_correlated_by_a():
    data, A, _ = _species(n_species=12, per=1)
    params = {"Intercept": 0.0, "sd(Intercept|species)": 1.0, "sigma": 1e-6}
    sims = bm.simulate(
        "~ 1 + (1 | gr(species, cov = A))", data, params=params, seed=2, nsim=3000, data2={"A": A}
    )
    # One row per species, sigma near 0: the rows' covariance over data sets is A.
    np.testing.assert_allclose(np.cov(sims.to_numpy()), A.to_numpy(), atol=0.1)
