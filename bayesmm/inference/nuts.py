"""Sampling: NUTS through nutpie, PyMC, numpyro or blackjax, and the Laplace and ADVI
approximations, each returning the draws and the settings they came from."""

from __future__ import annotations

import importlib.util
import time
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from .idata import REPARAMETERIZATION, get_group, observed_data, set_group

if TYPE_CHECKING:  # pragma: no cover
    from ..api import Model

__all__ = ["sample", "approximate", "SamplerSettings", "available_samplers", "default_sampler"]

# bayesmm's own NUTS (C, on the engine: bayesmm.inference.hmc) where its extension module is
# built; nutpie (Rust NUTS; bayesmm's engine or a numba-compiled graph); PyMC's own NUTS,
# which always works; numpyro and blackjax run through JAX.
_EXTERNAL = {"nutpie": "nutpie", "numpyro": "numpyro", "blackjax": "blackjax"}


def available_samplers() -> list[str]:
    """The NUTS implementations installed here, fastest first; ``sampler="auto"`` takes the first.

    Returns
    -------
    list of str
        Names for ``Model.fit(sampler=...)``: ``"bayesmm"`` (bayesmm's own NUTS in C, on
        models its engine evaluates; nutpie runs the others) where bayesmm's extension module
        is built, ``"nutpie"``, ``"numpyro"``, ``"blackjax"`` where installed, and ``"pymc"``
        always.

    Examples
    --------
    >>> bm.available_samplers()[-1]
    'pymc'
    """
    from .engine import cfuncs

    own = ["bayesmm"] if cfuncs() is not None else []
    found = [name for name, module in _EXTERNAL.items() if importlib.util.find_spec(module)]
    return own + found + ["pymc"]


def default_sampler() -> str:
    return available_samplers()[0]


@dataclass
class SamplerSettings:
    sampler: str
    draws: int
    tune: int
    chains: int
    target_accept: float
    random_seed: int | None
    seconds: float = 0.0
    approximation: dict | None = None  # what a Laplace or ADVI fit's optimizer reported


# A grouping factor with fewer levels than this has a weakly identified SD, whose posterior
# reaches from zero into a long right tail; NUTS then takes a smaller step (see below).
FEW_LEVELS = 10


def default_target_accept(design, collapsed: str | None = None) -> float:
    """NUTS's target acceptance when the user gives none: 0.95 (rstanarm's default for every
    model) with a gp() term, or when a grouping factor whose effects are sampled (not
    ``collapsed``, integrated out) has fewer than FEW_LEVELS levels; else 0.8 (PyMC's,
    Stan's and brms's). With 6 levels, on lme4's Dyestuff and Dyestuff2 (4 x 1000 draws,
    seeds 1-6), sampled effects at 0.8 gave divergences in 6 of the 12 fits (1-4 each), 0.95
    in none, for 12 leapfrog steps per draw instead of 7; integrated out, 0.8 gave none in
    the same 12 fits, at 4 steps per draw (benchmarks/README.md, stops 27 and 29)."""
    levels = [term.n_levels for term in design.random if term.group != collapsed]
    # Also with a Gaussian process gp(): its SD and length scale trade off along a curved
    # ridge. y ~ gp(x) on 200 rows (seeds 1-3, 4 x 1000 draws) diverged 10-81 times at 0.8
    # and 4-7 times at 0.95; gp(x, z) on 300 rows 0-5 and 0 times (min bulk ESS 135-537 ->
    # 214-526; about twice the leapfrog steps).
    return 0.95 if (levels and min(levels) < FEW_LEVELS) or design.gps else 0.8


def sample(
    model: Model,
    *,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    cores: int | None = None,
    target_accept: float | None = None,
    random_seed: int | None = None,
    sampler: str = "auto",
    progressbar: bool = True,
    chain_method: str | None = None,
) -> tuple[xr.DataTree, SamplerSettings]:
    """Run NUTS on ``model``: its draws and the settings they came from (Model.fit wraps
    them in a Fit); ``target_accept`` None takes :func:`default_target_accept`."""
    if target_accept is None:
        target_accept = default_target_accept(model.design, model.collapsed_group)
    name = default_sampler() if sampler in (None, "auto") else sampler
    if name not in ("bayesmm", "pymc", *_EXTERNAL):
        raise ValueError(f"unknown sampler {sampler!r}; available here: {', '.join(available_samplers())}")
    if name not in available_samplers():
        raise ValueError(
            f"sampler {name!r} is not installed; available here: {', '.join(available_samplers())}"
        )
    options = {"draws": draws, "tune": tune, "chains": chains, "cores": cores,
               "target_accept": target_accept, "random_seed": random_seed}  # fmt: skip
    _check_settings(**options)
    chain_method = _chain_method(name, chains, chain_method)
    start = time.perf_counter()
    if name in ("bayesmm", "nutpie"):  # on bayesmm's engine where it evaluates the model
        from . import sampling

        idata = sampling.sample_model(model, sampler=name, **options, progressbar=progressbar)
        name = idata.attrs["sampler"]  # nutpie where the model is not on bayesmm's engine
    else:
        import pymc as pm

        with model.sampled_model, warnings.catch_warnings():
            # PyMC says things about BLAS and defaults; keep notebooks quiet.
            warnings.filterwarnings("ignore", message=".*BLAS.*")
            jax_options = {} if chain_method is None else {"nuts": {"chain_method": chain_method}}
            idata = pm.sample(
                **options,
                **jax_options,
                nuts_sampler=name,
                progressbar=progressbar,
                compute_convergence_checks=False,
                quiet=True,  # bayesmm runs its own checks and says what to do
            )
    _refuse_interrupted(idata, draws, chains)
    idata = _separate_reparameterization(idata, model.reported_variables)
    if model.collapsed:
        _add_collapsed_group_effects(idata, model, random_seed)
    else:  # the response as bayesmm codes it (PyMC's ordinal and categorical ones count from 0)
        set_group(idata, "observed_data", observed_data(model.design))
    settings = SamplerSettings(name, draws, tune, chains, target_accept, random_seed)
    settings.seconds = time.perf_counter() - start
    return idata, settings
def approximate(
    model: Model, method: str, *, draws: int, chains: int, random_seed=None
) -> tuple[xr.DataTree, SamplerSettings]:
    """A Laplace or ADVI approximation of ``model``'s posterior (bayesmm.inference.approximate):
    its draws and settings, as :func:`sample` gives them.

    Both work in non-centred coordinates (the joint mode of a centred model sits in the
    funnel's neck); a Gaussian model that can be collapsed is approximated collapsed, its
    group effects integrated out exactly and drawn from their conditional afterwards."""
    from ..model.builder import build_collapsed_model, build_pymc_model
    from ..model.collapsed import why_not_collapsible
    from . import approximate as approximations

    if method not in approximations.METHODS:
        raise ValueError(f"method must be one of {', '.join(approximations.METHODS)}, got {method!r}"
                         + (" (pathfinder is in pymc-extras, whose releases need PyMC < 6.4)"
                            if method == "pathfinder" else ""))  # fmt: skip
    _check_settings(draws=draws, tune=0, chains=chains, cores=None, target_accept=0.8,
                    random_seed=random_seed)  # fmt: skip
    centred = (False,) * len(model.design.random)
    collapse = why_not_collapsible(model.design, model.family, model.parts) is None
    qr = model.decomp == "QR"
    design, family, priors = model.design, model.family, model.prior_entries
    if collapse:
        pymc_model = build_collapsed_model(design, family, priors, centred, qr)
    else:
        pymc_model = build_pymc_model(design, family, priors, model.parts, centred, qr)
    start = time.perf_counter()
    draw = approximations.laplace_draws if method == "laplace" else approximations.advi_draws
    idata, info = draw(pymc_model, draws, chains, random_seed)
    idata = _separate_reparameterization(idata, model.reported_variables)
    if collapse:
        _add_collapsed_group_effects(idata, model, random_seed)
    settings = SamplerSettings(method, draws, 0, chains, float("nan"), random_seed)
    settings.seconds = time.perf_counter() - start
    settings.approximation = info
    return idata, settings


JAX_SAMPLERS = ("numpyro", "blackjax")
CHAIN_METHODS = ("parallel", "vectorized")


def _chain_method(sampler: str, chains: int, requested: str | None) -> str | None:
    """How a JAX sampler runs its chains (None for the others): as asked, else in parallel
    when JAX has a device per chain (importing pymc.sampling.jax first gives the CPU one
    device per core) and vectorized on one device otherwise (a single GPU)."""
    if sampler not in JAX_SAMPLERS:
        if requested is not None:
            raise ValueError(
                f"chain_method is for the JAX samplers (sampler='numpyro' or 'blackjax'); {sampler!r} "
                "runs its chains in parallel itself: drop chain_method"
            )
        return None
    if requested is not None:
        if requested not in CHAIN_METHODS:
            raise ValueError(f"chain_method must be 'parallel' or 'vectorized' (or None); got {requested!r}")
        return requested
    importlib.import_module("pymc.sampling.jax")  # sets XLA's host device count before JAX starts
    jax = importlib.import_module("jax")

    return "parallel" if jax.local_device_count() >= chains else "vectorized"


def _is_whole(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _check_settings(*, draws, tune, chains, cores, target_accept, random_seed) -> None:
    """Sampler settings are checked before any compiling, each error naming the argument."""
    for label, value in (("draws", draws), ("tune", tune), ("chains", chains)):
        if not _is_whole(value) or value < (0 if label == "tune" else 1):
            least = "0 or more" if label == "tune" else "1 or more"
            raise ValueError(f"{label} must be a whole number, {least}; got {value!r}")
    if cores is not None and (not _is_whole(cores) or cores < 1):
        raise ValueError(f"cores must be a whole number, 1 or more (or None for all); got {cores!r}")
    if (
        isinstance(target_accept, bool)
        or not isinstance(target_accept, (int, float))
        or not 0 < target_accept < 1
    ):
        raise ValueError(
            f"target_accept must be a number between 0 and 1 (e.g. 0.8 or 0.95); got {target_accept!r}"
        )
    if random_seed is not None and (not _is_whole(random_seed) or random_seed < 0):
        raise ValueError(f"random_seed must be a non-negative whole number or None; got {random_seed!r}")


def _refuse_interrupted(idata: xr.DataTree, draws: int, chains: int) -> None:
    """PyMC and nutpie return what they have when sampling is interrupted (Ctrl-C); a fit
    with fewer draws than asked for would pass for a complete one, so it is refused."""
    posterior = idata["posterior"]
    got_chains, got_draws = posterior.sizes.get("chain", 0), posterior.sizes.get("draw", 0)
    if got_chains < chains or got_draws < draws:
        raise KeyboardInterrupt(
            f"sampling was interrupted: {got_chains} chains x {got_draws} draws of {chains} x {draws}; "
            "no fit is returned (run fit() again to sample in full)"
        )


def _add_collapsed_group_effects(idata: xr.DataTree, model: Model, random_seed) -> None:
    """The group effects of a collapsed model, drawn from their exact conditional for every
    posterior draw (bayesmm.model.collapsed), into ``posterior`` before its other variables; and
    the response into ``observed_data``, which the sampler left empty (the likelihood is a
    Potential)."""
    from ..model.collapsed import group_effect_draws

    post = get_group(idata, "posterior")
    rng = np.random.default_rng(None if random_seed is None else [int(random_seed), 14])
    r = group_effect_draws(model.design, model.collapsed_group, post, rng)
    order = [v for v in model.reported_variables if v == r.name or v in post]
    set_group(idata, "posterior", post.assign({r.name: r})[order])
    set_group(idata, "observed_data", observed_data(model.design))


def _separate_reparameterization(idata: xr.DataTree, reported: list[str]) -> xr.DataTree:
    """Keep in ``posterior`` only the variables the summary reports (fixef, r_, sd_, cor_,
    family parameters); move what the sampler moved instead (standard normals, sheared
    coefficients, Cholesky factors) to the ``reparameterization`` group, and drop
    unconstrained-space copies (``sigma_log__``)."""
    post = get_group(idata, "posterior")
    internal = [v for v in post.data_vars if v not in reported and not str(v).endswith("__")]
    set_group(idata, REPARAMETERIZATION, post[internal])
    set_group(idata, "posterior", post[[v for v in reported if v in post]])
    return idata


