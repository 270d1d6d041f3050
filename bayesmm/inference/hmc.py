"""bayesmm's own NUTS (hmc.c, in the extension module with the engine): the chains of a model
on bayesmm's engine run in C threads, with no interpreter, compiler or sampler library in the
loop, and its draws come back as the DataTree nutpie's would have given.

The trajectory is Stan's (multinomial NUTS with the generalised U-turn criterion across merged
subtrees, tree depth 10, a divergence at an energy error over 1000); the diagonal metric is
adapted as nutpie adapts it (variances 1 / |gradient| at the start, then sqrt(var(draws) /
var(gradients)) over the draws since the switch before the last, switching every 10 draws in
the first 30% of tuning, then after 80 draws and 1.5 times as many each time, the last 15%
for the step size alone); the step size by Stan's dual averaging toward the target
acceptance. With Stan's windows instead (75/25/50 draws, variances of the draws alone),
InstEval's model (2 x 150 tuning steps) took 31 leapfrog steps per draw against 15 and 16 s
against 5.6 (benchmarks/README.md, stop 43). A chain's random numbers come from its own
generator seeded from the fit's seed and the chain's number, so a seed gives the same draws in
every process.
"""

from __future__ import annotations

import ctypes
import sys
import time

import numpy as np
import xarray as xr

__all__ = ["sample", "STATS"]

# hmc.c's statistics of each draw, in its order, with their dtypes in sample_stats (ArviZ's
# names: PyMC's and Stan's).
STATS = (("lp", float), ("energy", float), ("energy_error", float), ("acceptance_rate", float),
         ("step_size", float), ("tree_depth", np.int64), ("n_steps", np.int64),
         ("diverging", bool))  # fmt: skip
MAX_DEPTH = 10
INIT_TRIES = 50  # starting points drawn per chain before giving up (nutpie's default is 50 too)

_LOGP = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_uint64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                         ctypes.c_void_p)  # fmt: skip


def sample(compiled, *, draws: int, tune: int, chains: int, cores: int, target_accept: float,
           random_seed, progressbar: bool = False) -> xr.DataTree:  # fmt: skip
    """Draws from ``compiled`` (a bayesmm.inference.native.EngineModel):
    posterior (every variable of its layout, labelled) and sample_stats. ``progressbar``: a
    line on standard error, redrawn every half second once sampling has taken a second."""
    from . import _engine

    names, slices, shapes = compiled.shape_info
    n_dim, n_expanded = int(compiled.n_dim), int(compiled.n_expanded)
    seeds = np.random.SeedSequence(random_seed)
    chain_seeds = seeds.generate_state(chains, np.uint64)
    inits = np.stack([_starting_point(compiled, n_dim, seed) for seed in seeds.spawn(chains)])
    expanded = np.empty((chains, draws, n_expanded))
    stats = np.empty((chains, draws, len(STATS)))
    start = time.time()
    progress = _Progress(chains, draws + tune, start) if progressbar else None
    status = _engine.sample(
        0, 0, compiled.user_data, np.ascontiguousarray(inits), chain_seeds, chains, n_dim, n_expanded, draws,
        tune, float(target_accept), MAX_DEPTH, max(1, min(cores, chains)), expanded, stats, progress,
    )  # fmt: skip
    seconds = time.time() - start
    if progress is not None:
        progress.close()
    if any(status):
        raise RuntimeError(f"bayesmm's sampler stopped: chain statuses {status} (1: no finite starting "
                           "log-density, 2: out of memory)")  # fmt: skip
    dims, coords = compiled.dims, compiled.coords
    posterior = {}
    for name, part, shape in zip(names, slices, shapes, strict=True):
        values = expanded[:, :, part].reshape((chains, draws, *shape))
        labels = list(dims.get(name, [])) or [f"{name}_dim_{k}" for k in range(len(shape))]
        posterior[name] = (["chain", "draw", *labels], values)
    index = {"chain": np.arange(chains), "draw": np.arange(draws)}
    used = {d for _, (labels, _) in posterior.items() for d in labels}
    label_coords = {d: np.asarray(v) for d, v in coords.items() if d in used}
    attrs = {"inference_library": "bayesmm", "sampling_time": seconds, "tuning_steps": tune}
    post = xr.Dataset(posterior, coords={**index, **label_coords}, attrs=attrs)
    sample_stats = xr.Dataset(
        {name: (["chain", "draw"], stats[:, :, k].astype(dtype)) for k, (name, dtype) in enumerate(STATS)},
        coords=index, attrs={"inference_library": "bayesmm", "max_tree_depth": MAX_DEPTH},
    )  # fmt: skip
    sample_stats["reached_max_treedepth"] = sample_stats["tree_depth"] >= MAX_DEPTH
    return xr.DataTree.from_dict({"posterior": post, "sample_stats": sample_stats})


class _Progress:
    """The chains' progress on one line of standard error (only once sampling has taken a
    second: most fits end before)."""

    def __init__(self, chains: int, iterations: int, start: float):
        self.total, self.start, self.shown = chains * iterations, start, False

    def __call__(self, counts: tuple) -> None:
        elapsed = time.time() - self.start
        if elapsed < 1.0:
            return
        done = sum(counts)
        left = elapsed * (self.total - done) / done if done else float("nan")
        sys.stderr.write(f"\rbayesmm NUTS: {done}/{self.total} iterations of {len(counts)} chains, "
                         f"{elapsed:.0f} s, about {left:.0f} s left   ")  # fmt: skip
        sys.stderr.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            sys.stderr.write(f"\rbayesmm NUTS: {self.total} iterations in {time.time() - self.start:.1f} s"
                             + " " * 30 + "\n")  # fmt: skip
            sys.stderr.flush()


def _starting_point(compiled, n_dim: int, seed: np.random.SeedSequence) -> np.ndarray:
    """nutpie's starting point for a chain (support points jittered in (-1, 1)), drawn again
    where the log-density is not finite there."""
    logp = _LOGP(compiled.cfuncs[0].address)
    gradient, value = np.empty(n_dim), np.empty(1)
    tries = seed.spawn(INIT_TRIES)
    for child in tries:
        point = np.asarray(compiled.initial_point_func(int(child.generate_state(1)[0])), dtype=np.float64)
        status = logp(n_dim, point.ctypes.data, gradient.ctypes.data, value.ctypes.data,
                      compiled.user_data.ctypes.data)  # fmt: skip
        if status == 0 and np.isfinite(value[0]):
            return point
    raise ValueError(
        f"no starting point with a finite log-density in {INIT_TRIES} tries (the model's support "
        "points jittered in (-1, 1) on the unconstrained scale): check the priors and the data"
    )
