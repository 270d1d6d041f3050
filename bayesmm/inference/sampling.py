"""Running NUTS (bayesmm's own or nutpie) on a model, and reusing its compiled code across
data sets.

Compiling a model's log-density and gradient costs 20-60 s the first time, while sampling
a small model takes 1-2 s. A refit on new data of the same shape (``fit.update(data=...)``,
simulation-based calibration, power analysis) has the same structure, and only the numbers
in the graph differ: the data, and the default priors scaled to them.

So the model is sampled through a copy of its graph in which every number that data can
change is read from a shared variable: every float64 constant, and every integer vector with
one entry per row (the level codes), packed into one vector per dtype. Two models with the
same structure give the same copy up to those values. Their *structure key* is the graph
printed with the values left out, plus the shapes and dtypes of the swapped values and the
exact bytes of every other constant (sizes, index patterns), so a different number of
levels or columns is a different key. A compiled model whose key matches is reused: its
data are replaced (nutpie's ``with_data``) and sampling starts without compiling.

Nothing is compiled for a model that bayesmm's engine evaluates (bayesmm.inference.native);
for them a reused structure skips PyTensor's rewriting, and the translation of its graph
into the engine's program is all that is done again.

Most models never come here: bayesmm's NUTS samples a model the template covers on
programs laid out from its design (:func:`sample_written`), with no PyMC model, graph or
cache; writing them again for new data takes milliseconds. :func:`sample_model` is the
route a fit takes, to one or the other.
"""

from __future__ import annotations

import hashlib
import re
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

__all__ = ["DataModel", "data_model", "sample_model", "sample_compiled", "sample_written", "clear_compiled"]

# Compiled models kept in this process, most recently used last.
MAX_COMPILED = 8
_COMPILED: OrderedDict[str, object] = OrderedDict()


@dataclass
class DataModel:
    """A PyMC model whose data-bearing constants are shared variables."""

    model: object  # pymc.Model
    values: dict[str, np.ndarray]  # shared variable name -> value
    key: str  # the structure key (module docstring)
    shared: dict[str, object]  # shared variable name -> the variable in ``model``


def fingerprint(value) -> str:
    """A constant's value as the same text in every process: an array's bytes, and the repr
    of anything else (the bytes of ``None`` as an array are its address)."""
    array = np.asarray(value)
    if array.dtype == object:
        return repr(value)
    return hashlib.sha1(np.ascontiguousarray(array).tobytes()).hexdigest()


def _swappable(constant, n_obs: int) -> bool:
    """A number that data can change: float64 (bayesmm's data and priors; PyMC's own
    float32 constants, such as the bounds inside a hurdle density, stay constants, because
    rewrites rely on them: swapped, a hurdle's gradient is NaN at every starting point), or
    an integer vector with one entry per row."""
    data = np.asarray(constant.data)
    return data.dtype == np.float64 or (data.dtype.kind in "iu" and data.ndim == 1 and data.size == n_obs > 1)


def data_model(pymc_model, n_obs: int) -> DataModel:
    """A copy of ``pymc_model`` whose float64 constants and per-row integer vectors are read
    from shared variables: one vector per dtype (``bayesmm_data_float64``, ...), each
    constant a reshaped slice of it. Few shared variables keep nutpie's C-callable wrapper
    small: with one per constant (28 for sleepstudy) it took 1.7 times as long to compile."""
    import pytensor
    import pytensor.tensor as pt
    from pymc.model.fgraph import fgraph_from_model, model_from_fgraph
    from pymc.model.transform.optimization import freeze_dims_and_data
    from pytensor.graph.basic import Constant

    # Dimension lengths as constants (nutpie freezes them only for JAX), so that the value
    # variables have static shapes. Measured on sleepstudy: no change in compile time beyond
    # the run-to-run spread (93 s cold against 84-99 s).
    fgraph, _ = fgraph_from_model(freeze_dims_and_data(pymc_model, data=[]))
    seen, swapped, kept = set(), [], []
    for node in fgraph.toposort():
        for variable in node.inputs:
            if isinstance(variable, Constant) and variable not in seen:
                seen.add(variable)
                (swapped if _swappable(variable, n_obs) else kept).append(variable)
    by_dtype: dict[str, list] = {}
    for constant in swapped:
        by_dtype.setdefault(str(np.asarray(constant.data).dtype), []).append(constant)
    values, shared, replacements = {}, {}, []
    for dtype, constants in sorted(by_dtype.items()):
        name = f"bayesmm_data_{dtype}"
        values[name] = np.concatenate([np.asarray(c.data, dtype=dtype).ravel() for c in constants])
        shared[name] = pytensor.shared(values[name], name=name, shape=values[name].shape)
        start = 0
        for constant in constants:
            size = int(np.asarray(constant.data).size)
            piece = shared[name][start : start + size].reshape(np.shape(constant.data))
            # The data's own shape, static (a reshaped slice of the vector has none).
            replacements.append((constant, pt.specify_shape(piece, np.shape(constant.data))))
            start += size
    fgraph.replace_all(replacements, import_missing=True)
    printed = pytensor.printing.debugprint(fgraph.outputs, file="str", print_type=True)
    parts = [re.sub(r" at 0x[0-9a-f]+", "", printed)]  # object addresses in reprs
    parts += [f"{c.type} {fingerprint(c.data)}" for c in kept]
    parts += [f"{c.type} {np.shape(c.data)}" for c in swapped]
    key = hashlib.sha1("\n".join(parts).encode()).hexdigest()
    # mutate_fgraph: the model is built from the fgraph's own variables, ``shared`` among them.
    return DataModel(model_from_fgraph(fgraph, mutate_fgraph=True), values, key, shared)


def clear_compiled() -> None:
    """Forget the compiled models (the next fit of every structure compiles again)."""
    _COMPILED.clear()


def _compiled(pymc_model, n_obs: int, source=None):
    """nutpie's compiled model for ``pymc_model``: a kept one with this model's data swapped
    in when one of the same structure exists, else compiled now and kept. Also whether it
    was reused. ``source``: the bayesmm Model behind ``pymc_model`` (bayesmm.inference.native)."""
    from . import native

    model = data_model(pymc_model, n_obs)
    kept = _COMPILED.get(model.key)
    if kept is None:
        compiled = native.compile_model(model.model, model.shared, source)
        _COMPILED[model.key] = (compiled, model.shared)
        while len(_COMPILED) > MAX_COMPILED:
            _COMPILED.popitem(last=False)
        return compiled, False
    _COMPILED.move_to_end(model.key)
    compiled, shared = kept
    # nutpie evaluates the log-density on its own copy of the data (with_data); the starting
    # points come from PyMC's initial-point function, which reads the shared variables.
    for name, value in model.values.items():
        shared[name].set_value(value)
    if getattr(compiled, "program", None) is None:  # nutpie's compile of the graph
        return compiled.with_data(**model.values), True
    # bayesmm's engine reads its own programs, made again at the new data.
    rebound = native.rebound(compiled, model.model, source)
    if rebound is None:
        del _COMPILED[model.key]
        return _compiled(pymc_model, n_obs, source)
    return rebound, True


def sample_compiled(
    pymc_model,
    n_obs: int,
    *,
    sampler: str,
    draws: int,
    tune: int,
    chains: int,
    cores: int | None,
    target_accept: float,
    random_seed: int | None,
    progressbar: bool,
    source=None,
):
    """Sample ``pymc_model`` through the compiled-model cache: with bayesmm's own NUTS
    (bayesmm.inference.hmc) where ``sampler`` is ``"bayesmm"`` and the model is on the engine,
    else with nutpie. The DataTree has the groups and coordinates ``pm.sample`` gives, its
    attribute ``sampler`` says which sampler ran. ``source``: the bayesmm Model whose
    ``sampled_model`` is ``pymc_model`` (which bayesmm.inference.template reads)."""
    from . import native

    compiled, reused = _compiled(pymc_model, n_obs, source)
    cores = cores if cores is not None else min(4, _cpu_count())
    options = {"draws": draws, "tune": tune, "chains": chains, "cores": cores, "target_accept": target_accept}
    if sampler == "bayesmm" and native.compiled_by(compiled) == "engine":
        from . import hmc

        idata = hmc.sample(compiled, **options, random_seed=random_seed, progressbar=progressbar)
        _add_data_groups(idata, pymc_model)
    else:
        sampler = "nutpie"
        idata = _sample_nutpie(compiled, pymc_model, **options, seed=random_seed, progressbar=progressbar)
    _relabel(idata, pymc_model.coords)
    idata.attrs["compiled_model_reused"] = int(reused)
    idata.attrs["compiled_by"] = native.compiled_by(compiled)
    idata.attrs["sampler"] = sampler
    return idata


def sample_model(source, *, sampler: str, progressbar: bool, **options):
    """Sample bayesmm's ``source`` with bayesmm's NUTS or nutpie (``sampler``): the one route
    from a fit to a sampler-ready model. bayesmm's NUTS samples a model the template covers on
    programs laid out from the design (:func:`sample_written`: no PyMC model built), and every
    other model through its PyMC model and the compiled-model cache (:func:`sample_compiled`).
    ``options``: draws, tune, chains, cores, target_accept and random_seed."""
    if sampler == "bayesmm":
        idata = sample_written(source, **options, progressbar=progressbar)
        if idata is not None:
            return idata
    return sample_compiled(source.sampled_model, source.design.n_obs, sampler=sampler, **options,
                           progressbar=progressbar, source=source)  # fmt: skip


def sample_written(source, *, draws: int, tune: int, chains: int, cores: int | None, target_accept: float,
                   random_seed: int | None, progressbar: bool):
    """Sample bayesmm's ``source`` with bayesmm's NUTS on programs written from its design
    (bayesmm.inference.native.written_model), with no PyMC model built; None where the template
    does not cover the model. The DataTree has posterior, sample_stats and an empty
    constant_data (bayesmm.inference.nuts.sample adds the response as observed_data)."""
    import xarray as xr

    from . import hmc, native

    compiled = native.written_model(source)
    if compiled is None:
        return None
    cores = cores if cores is not None else min(4, _cpu_count())
    options = {"draws": draws, "tune": tune, "chains": chains, "cores": cores, "target_accept": target_accept}
    idata = hmc.sample(compiled, **options, random_seed=random_seed, progressbar=progressbar)
    idata["constant_data"] = xr.DataTree(xr.Dataset())
    idata.attrs.update(compiled_model_reused=0, compiled_by="engine", sampler="bayesmm", laid_out_by="design")
    return idata


def _sample_nutpie(compiled, pymc_model, *, draws, tune, chains, cores, target_accept, seed, progressbar):
    import nutpie
    from pymc.backends.arviz import patch_nutpie_idata
    from pymc.util import get_random_generator

    from . import native

    seed = int(get_random_generator(seed).spawn(chains)[0].integers(2**30))
    start = time.time()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*BLAS.*")
        idata = nutpie.sample(
            native.for_nutpie(compiled), draws=draws, tune=max(tune, 1), chains=chains, seed=seed,
            target_accept=target_accept, cores=cores, progress_bar=progressbar,
            save_warmup=False,  # pm.sample's groups: no tuning draws (converting them took ~0.2 s)
        )  # fmt: skip
    patch_nutpie_idata(idata, pymc_model, sampling_time=time.time() - start)
    return idata


def _add_data_groups(idata, pymc_model) -> None:
    """The observed_data and constant_data groups pm.sample gives (what PyMC's conversion
    of nutpie's draws adds)."""
    import xarray as xr
    from arviz_base import dict_to_dataset
    from pymc.backends.arviz import coords_and_dims_for_inferencedata, find_constants, find_observations

    coords, dims = coords_and_dims_for_inferencedata(pymc_model)
    for group, found in (("constant_data", find_constants), ("observed_data", find_observations)):
        idata[group] = xr.DataTree(
            dict_to_dataset(found(pymc_model), coords=coords, dims=dims, sample_dims=[])
        )


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _relabel(idata, coords: dict) -> None:
    """The levels of this model's data on every dimension (a reused compiled model carries
    the coordinates of the data it was compiled for)."""
    for node in idata.subtree:
        for dim in node.dims:
            if dim in coords and coords[dim] is not None and dim in node.coords:
                labels = list(coords[dim])
                if len(labels) == node.sizes[dim]:
                    node.coords[dim] = labels
