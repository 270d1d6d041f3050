"""Fitted models shared between test modules: compiling a PyMC model costs seconds."""

import warnings

import matplotlib
import numpy as np
import nutpie
import pymc as pm
import pytest

import bayesmm as bm
import bayesmm.inference.approximate
import bayesmm.inference.hmc
import bayesmm.inference.sampling

matplotlib.use("Agg")

# The fast tier (-m "not slow") holds exact tests only: a test that samples with MCMC or
# fits an approximation, itself or through a fixture, must be marked slow. Every route to a
# sampler is guarded where the sampling starts, after bayesmm has checked the settings (so
# tests of those checks stay fast): bayesmm's NUTS on programs written from the design, bayesmm's
# NUTS and nutpie through bayesmm's compiled-model cache, bayesmm's NUTS itself, PyMC's
# NUTS and the JAX samplers through pm.sample, the Laplace and ADVI approximations, and the
# samplers' own entry points that tests call directly. Sampling from an unmarked test
# fails, naming the route.
_SAMPLING = {"allowed": True}
_APPROXIMATE = bayesmm.inference.approximate
_SAMPLING_MODULE = bayesmm.inference.sampling
SAMPLING_ROUTES = [(_SAMPLING_MODULE, "sample_compiled"), (_SAMPLING_MODULE, "sample_written"),
                   (bayesmm.inference.hmc, "sample"), (_APPROXIMATE, "laplace_draws"),
                   (_APPROXIMATE, "advi_draws"), (pm, "sample"), (pm, "fit"),
                   (nutpie, "sample")]  # fmt: skip


def _guarded(module, name):
    real = getattr(module, name)

    def guard(*args, **kwargs):
        if not _SAMPLING["allowed"]:
            raise RuntimeError(
                f"this test samples ({module.__name__}.{name}), directly or through a fixture: mark it "
                "@pytest.mark.slow (the fast tier, pytest -m 'not slow', has exact tests only)"
            )
        return real(*args, **kwargs)

    return guard


for _module, _name in SAMPLING_ROUTES:
    setattr(_module, _name, _guarded(_module, _name))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    # Before the test's fixtures are set up, so session fixtures that sample are caught too.
    _SAMPLING["allowed"] = item.get_closest_marker("slow") is not None


def quiet_fit(model, **kwargs):
    kwargs.setdefault("progressbar", False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(**kwargs)


@pytest.fixture(scope="session")
def sleepstudy():
    return bm.datasets.load("sleepstudy")


@pytest.fixture(scope="session")
def sleepstudy_fit(sleepstudy):
    """Reaction ~ Days + (Days | Subject) with brms's setting: 4 chains x 1000 draws (the
    default: the subjects' effects integrated out, drawn afterwards)."""
    model = bm.Model("Reaction ~ Days + (Days | Subject)", sleepstudy)
    return quiet_fit(model, draws=1000, tune=1000, chains=4, random_seed=20261124)


@pytest.fixture(scope="session")
def sleepstudy_sampled_fit(sleepstudy):
    """The same with the subjects' effects sampled by NUTS (collapsed=False)."""
    model = bm.Model("Reaction ~ Days + (Days | Subject)", sleepstudy, collapsed=False)
    return quiet_fit(model, draws=1000, tune=1000, chains=4, random_seed=20261124)


def assert_recovered(fit, truth: dict[str, float]) -> None:
    """Each true value lies within 3 posterior SDs of the posterior mean, and the chains mixed.

    A calibrated posterior misses 3 SDs 0.27% of the time per parameter; with about 60
    parameters checked across the suite, a 2.5-SD rule (1.2% each) would fail somewhere
    in about half of all simulated data sets, however correct the sampler.
    """
    table = fit.summary()
    assert table["r_hat"].max() < 1.02, table
    for name, value in truth.items():
        row = table.loc[name]
        assert abs(row["mean"] - value) <= 3 * row["sd"], (name, value, row["mean"], row["sd"])


def assert_replicates_match(fit, y) -> None:
    """The observed zero fraction and variance lie inside the posterior-predictive 95% bands."""
    replicated = fit.predict(kind="response", summary=False, random_seed=1).values.reshape(-1, len(y))
    zeros = (replicated == 0).mean(axis=1)
    assert np.quantile(zeros, 0.025) < np.mean(y == 0) < np.quantile(zeros, 0.975)
    variances = replicated.var(axis=1)
    assert np.quantile(variances, 0.025) < y.var() < np.quantile(variances, 0.975)


def at_random_point(model, seed=0):
    """The observed data's log-likelihood and the named quantities (each linear predictor's
    ``fixef`` and ``r_<group>``, the constant family parameters) at a random point of the
    sampler's coordinates."""
    pymc_model = model.pymc_model
    rng = np.random.default_rng(seed)
    point = {k: rng.normal(scale=0.5, size=np.shape(v)) for k, v in pymc_model.initial_point().items()}
    designs = [model.design, *model.parts.values()]
    names = [d.var(n) for d in designs for n in ["fixef", *(f"r_{g}" for g in d.groups)]]
    names += model.family.constant_params(model.parts)
    outputs = pymc_model.replace_rvs_by_values([pymc_model[n] for n in names])
    evaluate = pymc_model.compile_fn(outputs, inputs=pymc_model.value_vars, on_unused_input="ignore")
    values = dict(zip(names, evaluate(point), strict=True))
    loglik = float(pymc_model.compile_logp(vars=pymc_model.observed_RVs)(point))
    return loglik, values
