"""bayesmm's own NUTS (bayesmm/inference/hmc.c, bayesmm.inference.hmc): on targets with known
moments given as C callbacks (ctypes), its draws have those moments to Monte Carlo error; a
seed gives the same draws with any number of threads; a point outside the support is a
divergence, not a crash; Ctrl-C stops the C threads; and a bayesmm fit through it agrees with
nutpie's fit of the same model."""

import ctypes
import os
import signal
import threading
import time
import warnings

import numpy as np
import pandas as pd
import pytest

import bayesmm as bm
from bayesmm.inference import hmc

_engine = pytest.importorskip("bayesmm.inference._engine")

_DOUBLES = ctypes.POINTER(ctypes.c_double)
_LOGP = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_uint64, _DOUBLES, _DOUBLES, _DOUBLES, ctypes.c_void_p)
_EXPAND = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_uint64, ctypes.c_uint64, _DOUBLES, _DOUBLES,
                           ctypes.c_void_p)  # fmt: skip


class Target:
    """A log-density (value, gradient) in Python behind nutpie's C signatures; the expansion
    is the point itself."""

    def __init__(self, log_density, dim):
        self.dim = dim

        def logp(n, x, g, lp, _):
            value, gradient = log_density(np.ctypeslib.as_array(x, (n,)).copy())
            if not np.isfinite(value):
                return 4  # as the engine says "not finite"
            np.ctypeslib.as_array(g, (n,))[:] = gradient
            lp[0] = value
            return 0

        def expand(n, m, x, out, _):
            np.ctypeslib.as_array(out, (m,))[:] = np.ctypeslib.as_array(x, (n,))
            return 0

        self._functions = (_LOGP(logp), _EXPAND(expand))  # kept alive while sampling
        self.progress = None
        self.addresses = [ctypes.cast(f, ctypes.c_void_p).value for f in self._functions]

    def sample(self, *, chains=2, draws=1000, tune=500, seed=1, threads=2, target_accept=0.8, inits=None):
        inits = np.zeros((chains, self.dim)) if inits is None else inits
        draws_out = np.empty((chains, draws, self.dim))
        stats = np.empty((chains, draws, len(hmc.STATS)))
        seeds = np.full(chains, seed, np.uint64)
        status = _engine.sample(*self.addresses, np.zeros(2, np.uint64), inits, seeds, chains, self.dim,
                                self.dim, draws, tune, target_accept, 10, threads, draws_out, stats,
                                self.progress)  # fmt: skip
        assert status == [0] * chains
        return draws_out, {name: stats[:, :, k] for k, (name, _) in enumerate(hmc.STATS)}


def _ess(draws):
    import xarray as xr
    from arviz_stats import ess

    return ess(xr.DataArray(draws, dims=("chain", "draw", "d"))).values


def _gaussian(mean, cov):
    precision = np.linalg.inv(cov)

    def log_density(x):
        z = x - mean
        return -0.5 * z @ precision @ z, -precision @ z

    return Target(log_density, len(mean))


@pytest.mark.slow
def test_scales_over_four_orders_of_magnitude():
    """Independent normals with SDs 0.01 .. 100: the adapted diagonal metric takes the scales
    out, so the means are within 4 Monte Carlo SEs and the SDs within 10%, with no divergence
    and the step size near 1 (in the metric's units)."""
    scales = np.geomspace(0.01, 100, 6)
    mean = np.arange(6.0)
    draws, stats = _gaussian(mean, np.diag(scales**2)).sample()
    flat = draws.reshape(-1, 6)
    mcse = scales / np.sqrt(_ess(draws))
    assert np.all(np.abs(flat.mean(0) - mean) < 4 * mcse)
    np.testing.assert_allclose(flat.std(0) / scales, 1, atol=0.1)
    assert not stats["diverging"].any()
    assert np.all((stats["step_size"] > 0.4) & (stats["step_size"] < 1.6))
    # the tuned step's mean acceptance is near the target (Stan's dual averaging overshoots a little)
    assert 0.75 < stats["acceptance_rate"].mean() < 0.95


@pytest.mark.slow
def test_a_correlated_pair():
    """Correlation 0.95, SDs 1 and 3: the covariance within 15% (a diagonal metric, so the
    trajectories are longer: tree depth up to 4)."""
    cov = np.array([[1.0, 0.95 * 3], [0.95 * 3, 9.0]])
    draws, stats = _gaussian(np.array([1.0, -2.0]), cov).sample(draws=1500)
    flat = draws.reshape(-1, 2)
    np.testing.assert_allclose(np.cov(flat.T), cov, rtol=0.15)
    assert np.abs(flat.mean(0) - [1.0, -2.0]).max() < 4 * 3 / np.sqrt(_ess(draws).min())
    assert not stats["diverging"].any() and stats["tree_depth"].max() >= 3


@pytest.mark.slow
def test_a_seed_gives_the_same_draws_with_any_number_of_threads():
    target = _gaussian(np.zeros(3), np.eye(3))
    one, _ = target.sample(chains=3, draws=50, tune=50, seed=5, threads=1)
    three, _ = target.sample(chains=3, draws=50, tune=50, seed=5, threads=3)
    other, _ = target.sample(chains=3, draws=50, tune=50, seed=6, threads=3)
    np.testing.assert_array_equal(one, three)
    assert not np.array_equal(one[0], one[1])  # each chain its own stream
    assert not np.array_equal(one, other)


@pytest.mark.slow
def test_outside_the_support_is_a_divergence_and_the_rest_is_exact():
    """A half-normal written on the real line (-inf below 0, as a log-density the engine
    cannot evaluate): trajectories that cross 0 end as divergences, and the draws still have
    the half-normal's mean sqrt(2 / pi) and variance 1 - 2 / pi."""

    def log_density(x):
        return (-0.5 * x @ x, -x) if x[0] > 0 else (-np.inf, x)

    draws, stats = Target(log_density, 1).sample(chains=2, draws=2000, inits=np.full((2, 1), 0.5))
    flat = draws.ravel()
    assert flat.min() > 0
    assert stats["diverging"].any()
    mcse = np.sqrt(1 - 2 / np.pi) / np.sqrt(_ess(draws).min())
    assert abs(flat.mean() - np.sqrt(2 / np.pi)) < 4 * mcse
    assert abs(flat.var() - (1 - 2 / np.pi)) < 0.05


@pytest.mark.slow
def test_ctrl_c_stops_the_chains():
    """The C threads run without the GIL; the calling thread looks for a signal every 50 ms,
    stops every chain and raises the KeyboardInterrupt (bayesmm returns no fit). Python's own
    SIGINT handler is put in place for the test (a test run earlier in the same worker may
    have left another one), and the run is long but finite (under a minute if never stopped)."""
    target = _gaussian(np.zeros(2), np.eye(2))
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT))
    try:
        timer.start()
        start = time.perf_counter()
        with pytest.raises(KeyboardInterrupt):
            target.sample(chains=2, draws=300_000, tune=10)
        assert time.perf_counter() - start < 5
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)


@pytest.mark.slow
def test_progress_is_reported_and_an_error_in_it_stops_the_chains():
    target = _gaussian(np.zeros(2), np.eye(2))
    seen = []

    def progress(counts):
        seen.append(counts)
        if len(seen) == 3:
            raise ValueError("stop here")

    target.progress = progress
    with pytest.raises(ValueError, match="stop here"):
        target.sample(chains=2, draws=300_000, tune=10)
    assert all(len(c) == 2 for c in seen) and sum(seen[-1]) > sum(seen[0]) > 0


@pytest.fixture(scope="module")
def sleep_fits():
    data = bm.datasets.load("sleepstudy")
    model = bm.Model("Reaction ~ Days + (Days | Subject)", data, collapsed=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {s: model.fit(draws=1000, chains=4, random_seed=3, sampler=s, progressbar=False)
                for s in ("bayesmm", "nutpie")}  # fmt: skip


@pytest.mark.slow
def test_a_fit_through_bayesmms_nuts_agrees_with_nutpie(sleep_fits):
    """sleepstudy with its subjects' effects sampled: every summary mean within 4 Monte Carlo
    SEs of the two fits combined, the same variables and coordinates, and the statistics
    diagnostics read."""
    ours, theirs = sleep_fits["bayesmm"], sleep_fits["nutpie"]
    assert ours.settings.sampler == "bayesmm" and theirs.settings.sampler == "nutpie"
    assert ours.idata.attrs["sampler"] == "bayesmm"
    a, b = ours.summary(), theirs.summary()
    assert list(a.index) == list(b.index)
    mcse = np.hypot(a["sd"] / np.sqrt(a["ess_bulk"]), b["sd"] / np.sqrt(b["ess_bulk"]))
    assert np.all(np.abs(a["mean"] - b["mean"]) < 4 * mcse)
    for name in ("r_Subject", "sd_Subject", "cor_Subject"):
        assert ours.idata.posterior[name].dims == theirs.idata.posterior[name].dims
        assert ours.idata.posterior[name].coords.equals(theirs.idata.posterior[name].coords)
    stats = ours.idata.sample_stats
    assert stats["diverging"].dtype == bool and int(stats["diverging"].sum()) == 0
    wanted = {"lp", "energy", "tree_depth", "n_steps", "step_size", "reached_max_treedepth"}
    assert wanted <= set(stats.data_vars)
    assert float(ours.summary()["ess_bulk"].min()) > 800
    observed = ours.idata.observed_data["Reaction"].values, theirs.idata.observed_data["Reaction"].values
    np.testing.assert_array_equal(*observed)


@pytest.mark.slow
def test_a_model_off_the_engine_is_sampled_by_nutpie(monkeypatch):
    """sampler='bayesmm' (the default) on a model the engine does not evaluate: nutpie samples
    the graph, and the settings say so."""
    from bayesmm.inference import engine

    monkeypatch.setattr(engine, "enabled", lambda: False)
    rng = np.random.default_rng(2)
    data = pd.DataFrame({"y": rng.normal(size=40), "x": rng.normal(size=40)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = bm.Model("y ~ x", data).fit(draws=100, tune=100, chains=1, random_seed=1, progressbar=False)
    assert fit.settings.sampler == "nutpie" and fit.idata.attrs["compiled_by"] == "graph"


@pytest.mark.slow
def test_with_one_tuning_step_the_step_size_is_the_heuristics():
    """Nothing is learnt by dual averaging after the last restart of a one-step tuning: the
    draws take the step Stan's heuristic found (a normal of SD 0.01 started at its mean,
    where the gradient is 0 and the first metric is 1), not exp(0) = 1."""
    draws, stats = _gaussian(np.zeros(1), np.eye(1) * 1e-4).sample(chains=2, draws=200, tune=1)
    assert np.all(stats["step_size"] < 0.1)
    assert stats["diverging"].mean() < 0.05
    assert 0.005 < draws.std() < 0.02
