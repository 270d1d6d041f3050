"""From a model to a sampler-ready model: :func:`written_model` (a bayesmm Model the
template covers -> bayesmm's :class:`EngineModel`, laid out from the design) and
:func:`compile_model` (a PyMC model -> an :class:`EngineModel`, which bayesmm's NUTS samples
and :func:`for_nutpie` hands to nutpie, or nutpie's own compile), with nutpie's and PyMC's
public API; bayesmm.inference.sampling.sample_model picks one.

A model is sampled through two C functions, the log-density with its gradient and the
expansion of a draw into every variable. bayesmm's are compiled once, when bayesmm is
installed (the extension module bayesmm.inference._engine), and read the model as data:
bayesmm.inference.engine, the interpreter of a program that bayesmm.inference.template
writes from the design for the standard models, and that the engine translates from the
model's rewritten PyTensor graph for the others.

For bayesmm's NUTS, :func:`written_model` makes the sampler-ready model of a model the
template covers from its design alone: no PyMC model is built and PyMC is not imported.

So no model is compiled when it is fitted, and every process runs the same code (a seed gives
the same draws in every process). A model with a node the engine does not evaluate, or every
model where the extension module was not built (no C compiler at installation: said once),
takes nutpie's own compile of PyMC's graph with numba (``nutpie.compile_pymc_model``), which
costs seconds per structure in every process.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import threading

import numpy as np

from ..warn import warn_user
from . import engine, layout, template

__all__ = ["compile_model", "written_model", "rebound", "for_nutpie", "EngineModel", "EngineRun"]


def compile_model(pymc_model, shared: dict, source=None):
    """The sampler-ready model of ``pymc_model`` (the shared-data copy that
    bayesmm.inference.sampling.data_model makes; ``shared`` names its shared variables): an
    :class:`EngineModel`, or nutpie's compile of the graph; with nutpie's default starting
    points (support points jittered in (-1, 1)). ``source``: the bayesmm Model it was made
    from, which bayesmm.inference.template reads."""
    starting = StartingPoints(pymc_model, shared)
    run = _engine_run(pymc_model, starting, source)
    if run is not None:
        laid = run.logp.layout
        names, shapes = laid["names"], [tuple(shape) for shape in laid["shapes"]]
        dims, coords = _dims_and_coords(pymc_model, names, shapes, laid["reparameterized"])
        return _c_model(run, dims, coords, starting.flat_function)
    import nutpie

    return nutpie.compile_pymc_model(pymc_model, backend="numba")


def compiled_by(compiled) -> str:
    """Which C functions a compiled model samples through: ``"engine"`` or ``"graph"``
    (nutpie's numba compile of PyMC's graph)."""
    return getattr(compiled, "compiled_by", "graph")


def written_model(source) -> EngineModel | None:
    """The :class:`EngineModel` of bayesmm's ``source`` with its programs, trace layout and
    starting points written from the design (bayesmm.inference.template.written), without
    building its PyMC model or importing PyMC; None where the engine is off or not installed
    or the template does not cover the model (the PyMC model's route then takes it)."""
    if not (engine.enabled() and template.enabled()) or engine.cfuncs() is None:
        return None
    written = template.written(source)
    if written is None:
        return None
    run = EngineRun(None, None, written.logp, written.expand)
    coords = {name: np.asarray(values) for name, values in written.coords.items()}
    return _c_model(run, written.dims, coords, lambda names, shapes: jittered(written.support, names, shapes))


def jittered(support: dict, names: list[str], shapes: list[tuple]):
    """nutpie's default starting points from the support points ``support`` (value name ->
    values on the unconstrained scale): seed -> one flat vector (``names`` in order), each
    variable jittered by uniform(-1, 1) from its own generator, spawned from the seed."""

    def flat(seed=None):
        children = np.random.SeedSequence(seed).spawn(len(names))
        parts = []
        for name, shape, child in zip(names, shapes, children, strict=True):
            point = np.asarray(support[name], dtype=np.float64)
            jitter = np.random.default_rng(child).uniform(-1.0, 1.0, np.shape(point))
            parts.append(np.reshape(point + jitter, shape).ravel())
        return np.concatenate(parts) if parts else np.zeros(0)

    return flat


# -- the engine's programs ---------------------------------------------------------------------


@dataclasses.dataclass
class EngineRun:
    """A model on bayesmm's engine: its rewritten graphs (kept for other data sets of the
    same structure; None where bayesmm.inference.template wrote the programs from the design),
    its starting points and the two programs at the current data."""

    graphs: engine.Graphs | None
    starting: StartingPoints
    logp: engine.Program
    expand: engine.Program

    def data(self) -> dict[str, np.ndarray]:
        """What the engine's C functions read, in the order of their user data."""
        arrays = (self.logp.ints, self.logp.floats, self.expand.ints, self.expand.floats)
        names = ("engine_logp_ints", "engine_logp_floats", "engine_expand_ints", "engine_expand_floats")
        return {name: _frozen(array) for name, array in zip(names, arrays, strict=True)}


def _translated(graphs, starting: StartingPoints) -> EngineRun | None:
    """The engine's programs of ``graphs`` at the support point of the shared variables'
    current values, or None (a node the engine does not evaluate)."""
    names = graphs.layout["names"][: graphs.layout["n_free"]]
    support = starting.support_points()
    x0 = np.concatenate([np.ravel(support[name]) for name in names]) if names else np.zeros(0)
    try:
        logp, expand = engine.program(graphs, np.asarray(x0, dtype=float))
    except engine.Unsupported:
        return None
    return EngineRun(graphs, starting, logp, expand)


def _engine_run(pymc_model, starting: StartingPoints, source=None) -> EngineRun | None:
    """The model on bayesmm's engine, or None: the engine is turned off or not installed
    (said once), or the model has a node it does not evaluate. Its programs are written from
    the design where bayesmm.inference.template covers the model, else translated from its
    rewritten graph."""
    if not engine.enabled():
        return None
    if engine.cfuncs() is None:
        _say_extension_missing()
        return None
    run = _written(pymc_model, starting, source)
    return run if run is not None else _translated(engine.graphs(pymc_model), starting)


def _written(pymc_model, starting: StartingPoints, source) -> EngineRun | None:
    """The programs bayesmm.inference.template writes from ``source``'s design; None where it
    does not cover the model."""
    programs = template.program(pymc_model, source) if template.enabled() else None
    return None if programs is None else EngineRun(None, starting, *programs)


@functools.cache
def _say_extension_missing() -> None:
    warn_user(
        "bayesmm's compiled engine (the extension module bayesmm.inference._engine) is not installed, "
        "so every model compiles through PyTensor's graph (seconds per model and process). Reinstall "
        "bayesmm where a C compiler works to build it.",
        RuntimeWarning,
    )


def rebound(compiled, pymc_model, source):
    """An engine model (``compiled.program`` set) for another data set of the same structure,
    already in the shared variables: the engine's programs written again from ``source``'s
    design (bayesmm.inference.template), or its kept graphs translated again (no rewriting);
    None when the result has another layout."""
    kept = compiled.program
    if kept.graphs is None:
        run = _written(pymc_model, kept.starting, source)
        if run is not None and run.logp.layout != kept.logp.layout:
            run = None
    else:
        run = _translated(kept.graphs, kept.starting)
    if run is None:
        return None
    data = run.data()
    return dataclasses.replace(compiled, shared_data=data, user_data=_pairs(list(data.values())), program=run)


# -- the engine's model of two C functions ----------------------------------------------------


def _pairs(arrays: list[np.ndarray]) -> np.ndarray:
    """The user-data vector: (address, length) of each array."""
    pairs = np.zeros(2 * max(len(arrays), 1), dtype=np.uint64)
    for k, array in enumerate(arrays):
        pairs[2 * k] = array.ctypes.data
        pairs[2 * k + 1] = array.size
    return pairs


def _frozen(value) -> np.ndarray:
    array = np.array(value, order="C", copy=True)
    array.flags.writeable = False
    return array


@dataclasses.dataclass(frozen=True)
class EngineModel:
    """A model on bayesmm's engine, ready for a sampler: the engine's C functions (log-density
    with gradient, expansion) and their user data (``user_data``: (address, length) pairs of
    the arrays in ``shared_data``), the layout of the expanded draws (``shape_info``: names,
    slices, shapes; ``dims`` and ``coords`` label them), the starting points, and ``program``,
    what the functions read (for :func:`rebound`). bayesmm's NUTS samples it as it is
    (bayesmm.inference.hmc); :func:`for_nutpie` makes nutpie's compiled model of it."""

    n_dim: int
    n_expanded: int
    shape_info: tuple
    dims: dict
    coords: dict
    cfuncs: tuple
    initial_point_func: object
    shared_data: dict
    user_data: np.ndarray
    reparameterized_names: list
    program: object
    compiled_by: str = "engine"

    @property
    def shapes(self) -> dict[str, tuple]:
        names, _, shapes = self.shape_info
        return dict(zip(names, shapes, strict=True))


def _c_model(run: EngineRun, dims: dict, coords: dict, starts) -> EngineModel:
    """The engine model of ``run``'s programs, which the engine's C functions read (their
    arrays passed as (address, length) pairs), with their layout's variables labelled by
    ``dims`` and ``coords``; ``starts``: (names, shapes) of the free variables -> the
    starting-point function."""
    laid = run.logp.layout
    names, slices = laid["names"], [slice(*s) for s in laid["slices"]]
    shapes = [tuple(shape) for shape in laid["shapes"]]
    free = laid["n_free"]
    data = run.data()
    return EngineModel(
        n_dim=laid["n_dim"], n_expanded=laid["n_expanded"], shape_info=(names, slices, shapes), dims=dims,
        coords=coords, cfuncs=engine.cfuncs(), initial_point_func=starts(names[:free], shapes[:free]),
        shared_data=data, user_data=_pairs(list(data.values())),
        reparameterized_names=laid["reparameterized"], program=run,
    )  # fmt: skip


def for_nutpie(model):
    """nutpie's compiled model of an :class:`EngineModel` (bayesmm's C functions and user
    data); any other model (nutpie's own compile) as it is."""
    if not isinstance(model, EngineModel):
        return model
    from nutpie.compile_pymc import CompiledPyMCModel

    return CompiledPyMCModel(
        _n_dim=model.n_dim, dims=model.dims, _coords=model.coords, _shapes=model.shapes,
        compiled_logp_func=model.cfuncs[0], compiled_expand_func=model.cfuncs[1],
        initial_point_func=model.initial_point_func, shared_data=model.shared_data, shared_var_keys={},
        user_data=model.user_data, n_expanded=model.n_expanded, shape_info=model.shape_info, logp_func=None,
        expand_func=None, reparameterized_names=model.reparameterized_names,
    )  # fmt: skip


def _dims_and_coords(pymc_model, names, shapes, reparameterized):
    """The dimensions and coordinates nutpie labels the draws with: the model's, and each
    transformed variable's its variable's (where the shapes agree); the unconstrained
    parameters' names for nutpie's ``unconstrained_parameter`` dimension."""
    import pandas as pd

    coords = {}
    for name, values in pymc_model.coords.items():
        if values is None:
            values = pd.RangeIndex(int(pymc_model.dim_lengths[name].eval()))
        coords[name] = pd.Index(values)
    value_names = {v.name for v in pymc_model.value_vars}
    flat = []
    for name, shape in zip(names, shapes, strict=True):
        if name not in value_names:
            continue
        flat += (
            [name]
            if not shape
            else [f"{name}_{'.'.join(map(str, i))}" for i in itertools.product(*map(range, shape))]
        )
    coords["unconstrained_parameter"] = pd.Index(flat)
    rv_of = {v.name: rv.name for v, rv in pymc_model.values_to_rvs.items()}
    pairs = [(rv_of.get(value), value) for value in reparameterized]
    shape_of = dict(zip(names, shapes, strict=True))
    return layout.with_value_dims(dict(pymc_model.named_vars_to_dims), pairs, shape_of), coords


# -- starting points --------------------------------------------------------------------------


class StartingPoints:
    """nutpie's starting points with its defaults, as PyMC's initial-point function gives
    them: each free variable's support point on the transformed scale plus uniform(-1, 1)
    jitter, drawn in NumPy (one generator per variable, spawned from the chain's seed). The
    support points depend only on the structure and the shared variables' values; they are
    evaluated by PyTensor's Python linker (nothing compiled) and kept for the values met last.
    One difference from PyMC's: a variable whose support point is another's value (a centred
    effect's mean) starts from that variable's support point without its jitter."""

    def __init__(self, pymc_model, shared: dict):
        from pymc.util import get_transformed_name

        self.pymc_model, self.shared = pymc_model, shared
        transforms = pymc_model.rvs_to_transforms
        self.names = [get_transformed_name(v.name, transforms[v]) if transforms[v] else v.name
                      for v in pymc_model.free_RVs]  # fmt: skip
        self._function = None
        self._held, self._support = (), None
        self._lock = threading.Lock()

    def flat_function(self, names: list[str], shapes: list[tuple]):
        """The starting points as nutpie takes them: seed -> one flat vector (``names`` in
        order, PyMC's free variables' order), one call at a time (nutpie's chains ask from
        their threads)."""

        def flat(seed=None):
            with self._lock:
                support = self.support_points()
            return jittered(support, names, shapes)(seed)

        return flat

    def support_points(self) -> dict[str, np.ndarray]:
        """For the shared variables' current values (a refit in this process sets new ones)."""
        held = tuple(self.shared[name].get_value(borrow=True) for name in sorted(self.shared))
        if len(held) != len(self._held) or any(a is not b for a, b in zip(held, self._held, strict=False)):
            self._support, self._held = self._evaluate(), held
        return self._support

    def _evaluate(self) -> dict[str, np.ndarray]:
        """PyTensor's function for the support points, run by the Python linker (PyMC's
        FAST_COMPILE mode compiles C code for it: 7.8 s of a first fit with empty caches),
        unrewritten: it is evaluated once per data set, and its rewriting took 0.03 s of the
        0.045 (the values agree bit for bit on 50 of the engine tests' 51 models, to one ulp
        on the other, a simplex)."""
        if self._function is None:
            import pytensor
            from pymc.initial_point import make_initial_point_expression
            from pymc.pytensorf import compile as compile_pymc
            from pytensor.compile.mode import Mode

            model = self.pymc_model
            expression = make_initial_point_expression(
                free_rvs=model.free_RVs, rvs_to_transforms=model.rvs_to_transforms,
                initval_strategies=dict(model.rvs_to_initial_values), jitter_rvs=set(),
                default_strategy="support_point", return_transformed=True,
            )  # fmt: skip
            # With no C compiler configured, inner functions (a Scan, an OpFromGraph) are linked
            # in Python too.
            with pytensor.config.change_flags(cxx=""):
                self._function = compile_pymc(inputs=[], outputs=expression,
                                              mode=Mode(linker="py", optimizer=None))  # fmt: skip
        values = [np.array(value, dtype=np.float64) for value in self._function()]
        return dict(zip(self.names, values, strict=True))
