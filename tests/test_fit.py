"""Sampling against an analytic posterior, for every NUTS implementation installed."""

import numpy as np
import pandas as pd
import pytest

import bayesmm as bm

from .conftest import quiet_fit


@pytest.fixture(scope="module")
def conjugate():
    """y_i ~ Normal(mu, 1) with mu ~ Normal(m0, s0): the posterior of mu is Normal, in closed form.

    sigma gets a Gamma prior with mean 1 and SD 0.001, which fixes it at 1 for all
    practical purposes (its effect on mu's posterior is far below Monte Carlo error).
    """
    rng = np.random.default_rng(8)
    y = rng.normal(3.0, 1.0, size=25)
    m0, s0 = 1.0, 0.5
    precision = 1 / s0**2 + len(y)
    mean = (m0 / s0**2 + y.sum()) / precision
    priors = {
        "Intercept": bm.Prior("Normal", mu=m0, sigma=s0),
        "sigma": bm.Prior("Gamma", alpha=1e6, beta=1e6),
    }
    model = bm.Model("y ~ 1", pd.DataFrame({"y": y}), priors=priors)
    return model, mean, precision**-0.5


@pytest.mark.slow
@pytest.mark.parametrize("sampler", bm.available_samplers())
def test_conjugate_normal_posterior(conjugate, sampler):
    model, mean, sd = conjugate
    # 2 x 4000 draws: the Monte Carlo error of a 2.5% or 97.5% quantile is about
    # sqrt(0.025 * 0.975 / ESS) / 0.058 sd, 0.05 sd here, so 0.15 sd is 3 of them (with 2 x 1000
    # it was 0.1 sd, and PyMC's sampler missed by 0.2 sd at seed 3).
    fit = quiet_fit(model, draws=4000, tune=500, chains=2, random_seed=3, sampler=sampler)
    row = fit.summary().loc["Intercept"]
    assert fit.settings.sampler == sampler
    # Monte Carlo error of the mean is about sd / sqrt(ESS) ~ 0.015 sd here.
    assert abs(row["mean"] - mean) < 0.1 * sd
    assert row["sd"] == pytest.approx(sd, rel=0.08)
    q_lo, q_hi = mean + sd * np.array([-1.959964, 1.959964])
    assert row["q2.5"] == pytest.approx(q_lo, abs=0.15 * sd)
    assert row["q97.5"] == pytest.approx(q_hi, abs=0.15 * sd)


def test_default_sampler_is_the_fastest_installed():
    # bayesmm's own NUTS where its extension module is built (the test environment builds it)
    assert bm.available_samplers()[:2] == ["bayesmm", "nutpie"]
    assert bm.available_samplers()[-1] == "pymc"


def test_bad_sampler_arguments(conjugate):
    model, _, _ = conjugate
    with pytest.raises(ValueError, match="unknown sampler 'stan'; available here: bayesmm, nutpie"):
        model.fit(sampler="stan")
    with pytest.raises(ValueError, match="chains must be a whole number, 1 or more; got 0"):
        model.fit(chains=0)


def test_chain_method_is_for_the_jax_samplers(conjugate):
    model, _, _ = conjugate
    with pytest.raises(ValueError, match="chain_method is for the JAX samplers.*'nutpie' runs its chains"):
        model.fit(sampler="nutpie", chain_method="vectorized")


@pytest.mark.parametrize(
    ("devices", "asked", "passed"),
    [(1, None, "vectorized"), (8, None, "parallel"), (8, "vectorized", "vectorized")],
)
def test_jax_samplers_run_chains_in_parallel_where_there_is_a_device_each(
    conjugate, monkeypatch, devices, asked, passed
):
    # JAX is not installed here: a stand-in says how many devices it has, and pm.sample
    # records what it was asked instead of sampling.
    import sys
    import types

    import pymc as pm

    import bayesmm.inference.nuts

    model, _, _ = conjugate
    monkeypatch.setattr(bayesmm.inference.nuts, "available_samplers", lambda: ["numpyro", "pymc"])
    monkeypatch.setitem(sys.modules, "jax", types.SimpleNamespace(local_device_count=lambda: devices))
    monkeypatch.setitem(sys.modules, "pymc.sampling.jax", types.ModuleType("pymc.sampling.jax"))
    asked_for = {}

    def recording_sample(**kwargs):
        asked_for.update(kwargs)
        raise RuntimeError("recorded")

    monkeypatch.setattr(pm, "sample", recording_sample)
    with pytest.raises(RuntimeError, match="recorded"):
        model.fit(sampler="numpyro", chains=4, chain_method=asked)
    assert asked_for["nuts_sampler"] == "numpyro"
    assert asked_for["nuts"] == {"chain_method": passed}
    with pytest.raises(ValueError, match="chain_method must be 'parallel' or 'vectorized'.*'pmap'"):
        model.fit(sampler="numpyro", chain_method="pmap")


@pytest.mark.slow
@pytest.mark.parametrize("sampler", bm.available_samplers())
def test_same_seed_gives_identical_draws(conjugate, sampler):
    model, _, _ = conjugate
    draws = [
        quiet_fit(model, draws=100, tune=100, chains=2, random_seed=seed, sampler=sampler)
        .idata.posterior["fixef"]
        .values
        for seed in (17, 17, 18)
    ]
    np.testing.assert_array_equal(draws[0], draws[1])
    assert not np.array_equal(draws[0], draws[2])


def test_few_levels_raise_the_default_target_acceptance(conjugate, sleepstudy):
    from bayesmm.cli import build_parser
    from bayesmm.inference.nuts import FEW_LEVELS, default_target_accept

    rng = np.random.default_rng(3)

    def levels(n):
        data = pd.DataFrame({"y": rng.normal(size=5 * n), "g": np.repeat(np.arange(n), 5).astype(str)})
        return default_target_accept(bm.Model("y ~ 1 + (1 | g)", data).design)

    assert levels(6) == levels(FEW_LEVELS - 1) == 0.95  # Dyestuff's 6 batches, sampled
    # Integrated out, the 6 levels' effects are not sampled: no tails of theirs to step into.
    dyestuff = bm.Model("Yield ~ 1 + (1 | Batch)", bm.datasets.load("Dyestuff"))
    assert dyestuff.collapsed_group == "Batch"
    assert default_target_accept(dyestuff.design, dyestuff.collapsed_group) == 0.8
    assert levels(FEW_LEVELS) == 0.8
    assert default_target_accept(bm.Model("Reaction ~ Days + (Days | Subject)", sleepstudy).design) == 0.8
    assert default_target_accept(conjugate[0].design) == 0.8  # no grouping factor
    # The smallest factor decides (Penicillin: 24 plates, 6 samples).
    penicillin = bm.Model("diameter ~ 1 + (1 | plate) + (1 | sample)", bm.datasets.load("Penicillin"))
    assert default_target_accept(penicillin.design) == 0.95
    assert default_target_accept(penicillin.design, "plate") == 0.95  # the samples still sampled
    assert default_target_accept(penicillin.design, "sample") == 0.8
    # A Gaussian process's SD and length scale: 0.95 without any grouping factor.
    curve = pd.DataFrame({"y": rng.normal(size=60), "x": np.linspace(0, 1, 60)})
    assert default_target_accept(bm.Model("y ~ gp(x)", curve).design) == 0.95
    args = build_parser().parse_args(["fit", "data.csv", "y ~ 1 + (1 | g)"])
    assert args.target_accept is None  # the CLI leaves the choice to the model too
    assert args.collapsed == "auto"  # and whether to integrate the effects out
    assert build_parser().parse_args(["fit", "d.csv", "y ~ (1 | g)", "--sampled"]).collapsed is False
    assert build_parser().parse_args(["fit", "d.csv", "y ~ (1 | g)", "--collapsed"]).collapsed is True
