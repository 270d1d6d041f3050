"""bayesmm's engine: the log-density, gradient and expansion of a model evaluated by one
compiled interpreter (engine.c, built into an extension module when bayesmm is installed),
from a *program* that describes the model as data. No model is ever compiled.

PyMC's model stays the model's definition. Its log-density and gradient (and the expansion
of a draw into every reported variable) are built as PyTensor graphs over one flat vector
with PyMC's public API, rewritten by PyTensor's standard rewrites (numba's path rewrites
the same graphs, less fusion and in-place operations), and then translated node by node:

* every node whose value does not depend on the sampled point (the data, the priors'
  parameters, everything computed from them alone, every shape) is evaluated here, once,
  by the node's own Python implementation, and becomes a constant of the program;
* every other node becomes one or a few instructions of the interpreter: elementwise
  operations over strided views, reductions, gathers of rows by level code and their
  scatter-adds, matrix products, a Cholesky factor and triangular solves. Transposes,
  slices, reshapes of contiguous values and splits are views, not copies; a workspace
  buffer is reused once no later node reads it.

So a model's structure (its terms, families, links, priors, parameterization) arrives as
the program, as glmmTMB's template reads it from data; the same interpreter serves every
model. A node the interpreter does not know makes :func:`program` raise
:class:`Unsupported`, and that model takes PyTensor's numba graph (bayesmm.inference.native).
The tests compare the engine with PyTensor's functions at random points for every family,
link, term structure and parameterization bayesmm builds.
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass, field

import numpy as np

from . import blocks, rewrites

__all__ = ["Unsupported", "Graphs", "graphs", "program", "Program", "cfuncs", "enabled", "CONST_BASE"]

# The program's header; engine.c reads the field numbers from engine_fields.h, written from
# these tuples (tests/test_engine.py checks that they agree).
HEADER = ("H_NDIM", "H_WORK", "H_CODE", "H_END", "H_OUT_A", "H_OUT_A_STRIDE", "H_OUT_A_LEN",
          "H_OUT_B", "H_OUT_B_STRIDE", "H_OUT_B_LEN")  # fmt: skip
OPCODES = ("OP_FILL", "OP_EW", "OP_GATHER", "OP_SCATTER", "OP_MATMUL", "OP_CHOLESKY", "OP_SOLVE", "OP_PICK",
           "OP_BLOCK", "OP_LOOP")  # fmt: skip
# A ScalarLoop's inner graph runs on at most LOOP_REGS registers, with at most LOOP_IO inputs
# and outputs (engine_fields.h carries both to engine.c).
LOOP_REGS = 256
LOOP_IO = 32
# Workspace elements (8 bytes each) below which no buffer is reused (_Translator.alloc).
REUSE_ABOVE = 1 << 24
ELEMENTWISE = (
    "EW_IDENTITY EW_NEG EW_EXP EW_LOG EW_LOG1P EW_EXPM1 EW_SQR EW_SQRT EW_SIGMOID EW_SOFTPLUS "
    "EW_LOG1MEXP EW_RECIPROCAL EW_SIGN EW_ABS EW_GAMMALN EW_DIGAMMA EW_ERF EW_ERFC EW_TANH EW_ISNAN "
    "EW_ISINF EW_NOT EW_TRUNC EW_BOOL EW_FLOOR EW_CEIL EW_LOG2 EW_LOG10 EW_ADD EW_SUB EW_MUL EW_DIV "
    "EW_POW EW_MAX EW_MIN EW_GT EW_GE EW_LT EW_LE EW_EQ EW_NEQ EW_AND EW_OR EW_SECOND EW_INTDIV "
    "EW_MOD EW_XLOGY0 EW_SWITCH EW_CLIP EW_F32 EW_ERFCX EW_GAMMAINC EW_GAMMAINCC EW_BETAINC EW_ADDMUL "
    "EW_GAMMAINC_DA EW_LOG_GAMMAINC EW_LOG_GAMMAINCC EW_BETAINC_DA EW_BETAINC_DB EW_LOG_BETAINC "
    "EW_LOG_BETAINCC"
).split()
H = {name: i for i, name in enumerate(HEADER)}
OP = {name: i + 1 for i, name in enumerate(OPCODES)}
EW = {name[3:].lower(): i for i, name in enumerate(ELEMENTWISE)}
# Addresses from here on are the program's constants (engine.c's CONST_BASE).
CONST_BASE = 1 << 40
MAXD = 8

# PyTensor's scalar operations by class name -> the interpreter's code.
_SCALAR = {
    "Identity": "identity", "Neg": "neg", "Exp": "exp", "Log": "log", "Log1p": "log1p", "Expm1": "expm1",
    "Sqr": "sqr", "Sqrt": "sqrt", "Sigmoid": "sigmoid", "Softplus": "softplus", "Log1mexp": "log1mexp",
    "Reciprocal": "reciprocal", "Sign": "sign", "Abs": "abs", "GammaLn": "gammaln", "Psi": "digamma",
    "Erf": "erf", "Erfc": "erfc", "Erfcx": "erfcx", "GammaInc": "gammainc", "GammaIncC": "gammaincc",
    "BetaInc": "betainc",
    "Tanh": "tanh", "IsNan": "isnan", "IsInf": "isinf", "Floor": "floor",
    "Ceil": "ceil", "Log2": "log2", "Log10": "log10", "Add": "add", "Sub": "sub", "Mul": "mul",
    "TrueDiv": "div", "Pow": "pow", "Maximum": "max", "Minimum": "min", "GT": "gt", "GE": "ge",
    "LT": "lt", "LE": "le", "EQ": "eq", "NEQ": "neq", "Second": "second", "IntDiv": "intdiv",
    "Mod": "mod", "XlogX": None, "Switch": "switch", "Clip": "clip",
}  # fmt: skip
_BOOLEAN = {"AND": "and", "OR": "or", "Invert": "not"}  # logical only on booleans
_REDUCTIONS = {"Add": ("add", 0.0), "Mul": ("mul", 1.0), "Maximum": ("max", -np.inf),
               "Minimum": ("min", np.inf), "AND": ("and", 1.0), "OR": ("or", 0.0)}  # fmt: skip


class Unsupported(Exception):
    """A node the interpreter does not evaluate (the message names it)."""


def enabled() -> bool:
    """Whether models use the engine: ``BAYESMM_ENGINE=0`` sends them to PyTensor's numba
    graph (e.g. to measure it)."""
    return os.environ.get("BAYESMM_ENGINE", "1") != "0"


def _field_lines() -> list[str]:
    lines = [f"#define {name} {i}" for i, name in enumerate(HEADER)]
    lines += [f"#define {name} {i + 1}" for i, name in enumerate(OPCODES)]
    lines += [f"#define {name} {i}" for i, name in enumerate(ELEMENTWISE)]
    lines += [f"#define CONST_BASE {CONST_BASE}LL", f"#define LOOP_REGS {LOOP_REGS}"]
    return [*lines, f"#define LOOP_IO {LOOP_IO}"]


def fields_key() -> str:
    """A digest of the numbers engine_fields.h holds: the extension module reports the one it
    was built with (``_engine.FIELDS``), so a build from another engine is never run."""
    return hashlib.sha1("\n".join(_field_lines()).encode()).hexdigest()[:16]


def fields_header() -> str:
    """engine_fields.h's text, from the tuples above."""
    lines = [
        "/* The engine's program header, opcodes and elementwise codes: bayesmm/inference/",
        " * engine.py's tuples. Written from them; tests/test_engine.py checks that they agree. */",
        "",
    ]
    return "\n".join([*lines, *_field_lines(), f'#define ENGINE_FIELDS "{fields_key()}"', ""])


# -- the graphs -----------------------------------------------------------------------------


@dataclass
class Graphs:
    """A model's rewritten graph of its log-density, gradient and expansion, over one flat
    vector (rewritten together: they share most of their nodes), and the layout of the draws
    (nutpie's names, slices and shapes)."""

    fgraph: object  # FunctionGraph: (x, shared...) -> (logp, grad, expanded)
    shared: list  # the shared variables behind the graph's inputs after x
    layout: dict = field(default_factory=dict)


def _value_shapes(pymc_model) -> list[tuple[int, ...]]:
    """Each free variable's value shape (the value variables may have no static shape), from
    the graph of its shape through its transform, run by PyTensor's Python linker."""
    import pytensor
    from pytensor.compile.mode import Mode

    static = [pymc_model.rvs_to_values[rv].type.shape for rv in pymc_model.free_RVs]
    if all(s is not None for shape in static for s in shape):
        return [tuple(int(s) for s in shape) for shape in static]
    shapes = []
    for rv in pymc_model.free_RVs:
        # A transform may change the shape (a simplex of K shares has K - 1 free values).
        transform = pymc_model.rvs_to_transforms.get(rv)
        shapes.append(rv.shape if transform is None else transform.forward(rv, *rv.owner.inputs).shape)
    function = pytensor.function([], shapes, mode=Mode(linker="py", optimizer="fast_compile"))
    return [tuple(int(s) for s in shape) for shape in function()]


def _rows(pymc_model) -> int:
    """The most values of an observed variable (0 where no shape is static)."""
    sizes = [np.prod(rv.type.shape) for rv in pymc_model.observed_RVs if None not in rv.type.shape]
    return int(max(sizes, default=0))


def _rewritten(inputs, outputs, pymc_model):
    """The rewritten FunctionGraph of ``outputs`` and the shared variables of its inputs
    after ``inputs``: PyMC's compile with PyTensor's standard rewrites, less fusion and
    in-place operations (the interpreter fuses nothing and writes no input), plus the
    splitting of sums over many rows (bayesmm.inference.rewrites), and the Python linker
    (nothing is compiled)."""
    from pymc.pytensorf import compile as compile_pymc
    from pytensor.compile.mode import Mode

    mode = Mode(linker="py", optimizer="fast_run").excluding(
        "composite_elemwise_fusion", "local_careduce_fusion", "inplace"
    )
    if _rows(pymc_model) >= blocks.MIN_ROWS:  # where a pass over the rows costs (blocks.py)
        mode = rewrites.register(mode)
    with pymc_model:
        function = compile_pymc(inputs, outputs, mode=mode, on_unused_input="ignore")
    fgraph = function.maker.fgraph
    shared = [spec.variable for spec in function.maker.inputs[len(inputs) :]]
    return fgraph, shared


def graphs(pymc_model) -> Graphs:
    """The model's two graphs over the flat vector of its free variables' values (PyMC's
    order: nutpie's layout), rewritten."""
    import pytensor.tensor as pt
    from pytensor.graph import clone_replace
    from pytensor.graph.fg import FunctionGraph

    free = list(pymc_model.free_RVs)
    values = [pymc_model.rvs_to_values[rv] for rv in free]
    shapes = _value_shapes(pymc_model)
    sizes = [int(np.prod(shape, dtype=int)) for shape in shapes]
    n_dim = int(sum(sizes))
    x = pt.TensorType("float64", shape=(n_dim,))("bayesmm_point")
    starts = np.cumsum([0, *sizes])
    bounds = zip(values, starts[:-1], starts[1:], shapes, strict=True)
    replacements = {v: x[a:b].reshape(shape).astype(v.dtype) for v, a, b, shape in bounds}
    logp = pymc_model.logp()
    grad = pt.concatenate([pt.as_tensor(g).ravel() for g in pt.grad(logp, values)])
    logp, grad = clone_replace([logp, grad], replacements)
    names = [v.name for v in values]
    remaining = [v for v in pymc_model.unobserved_value_vars if v.name not in names]
    expanded = pt.concatenate([*[x[a:b] for a, b in zip(starts[:-1], starts[1:], strict=True)],
                               *[pt.as_tensor(v).ravel() for v in remaining]])  # fmt: skip
    (expanded,) = clone_replace([expanded], replacements)
    fgraph, shared = _rewritten([x], [logp, grad, expanded], pymc_model)
    # The rewritten graph alone, without the rewriting's features: after a process's first
    # fit (Penicillin) they held 25,000 objects more, which every later pass of the garbage
    # collector and the interpreter's exit went through.
    fgraph = FunctionGraph(fgraph.inputs, fgraph.outputs, clone=True)
    remaining_shapes = _remaining_shapes(pymc_model, remaining, x, replacements, n_dim)
    all_names = names + [v.name for v in remaining]
    all_shapes = list(shapes) + remaining_shapes
    all_sizes = [int(np.prod(s, dtype=int)) for s in all_shapes]
    bounds = np.cumsum([0, *all_sizes])
    layout = {
        "n_dim": n_dim, "n_expanded": int(bounds[-1]), "n_free": len(free), "names": all_names,
        "slices": [[int(a), int(b)] for a, b in zip(bounds[:-1], bounds[1:], strict=True)],
        "shapes": [[int(n) for n in s] for s in all_shapes],
        "reparameterized": [pymc_model.rvs_to_values[rv].name for rv in free
                            if pymc_model.rvs_to_transforms.get(rv) is not None],
    }  # fmt: skip
    return Graphs(fgraph, shared, layout)


def _named_shape(pymc_model, variable) -> tuple:
    """A model variable's static shape, its unknown lengths read from its dims' coordinates
    (PyMC's dims have lengths that may change, so the variable's type leaves them out)."""
    shape = list(variable.type.shape)
    dims = pymc_model.named_vars_to_dims.get(variable.name) or ()
    for i, dim in enumerate(dims):
        labels = pymc_model.coords.get(dim)
        if i < len(shape) and shape[i] is None and dim is not None and labels is not None:
            shape[i] = len(labels)
    return tuple(shape)


def _remaining_shapes(pymc_model, remaining, x, replacements, n_dim) -> list[tuple[int, ...]]:
    """The shapes of the deterministic variables of the trace."""
    import pytensor
    from pytensor.compile.mode import Mode
    from pytensor.graph import clone_replace

    if not remaining:
        return []
    static = [_named_shape(pymc_model, v) for v in remaining]
    if all(s is not None for shape in static for s in shape):
        return [tuple(int(s) for s in shape) for shape in static]
    shapes = clone_replace([v.shape for v in remaining], replacements)
    function = pytensor.function([x], shapes, mode=Mode(linker="py", optimizer="fast_compile"),
                                 on_unused_input="ignore")  # fmt: skip
    return [tuple(int(s) for s in shape) for shape in function(np.zeros(n_dim))]


# -- views and the translation ---------------------------------------------------------------


@dataclass(frozen=True)
class View:
    """A value of the program: its address, shape and strides (in elements)."""

    address: int
    shape: tuple
    strides: tuple

    @property
    def contiguous(self) -> bool:
        expected = 1
        for size, stride in zip(reversed(self.shape), reversed(self.strides), strict=True):
            if size != 1 and stride != expected:
                return False
            expected *= size
        return True


def _contiguous_strides(shape) -> tuple:
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= int(size)
    return tuple(reversed(strides))


def _broadcast(view: View, shape: tuple) -> View:
    """``view`` broadcast to ``shape`` (right-aligned; stride 0 where it has size 1)."""
    lead = len(shape) - len(view.shape)
    if lead < 0:
        raise Unsupported("a value broadcast to fewer dimensions")
    strides = [0] * lead
    for size, stride, target in zip(view.shape, view.strides, shape[lead:], strict=True):
        if size == target:
            strides.append(stride)
        elif size == 1:
            strides.append(0)
        else:
            raise Unsupported(f"shapes {view.shape} and {shape} do not broadcast")
    return View(view.address, tuple(int(s) for s in shape), tuple(strides))


def _coalesce(shape, strides_list):
    """Drop dimensions of size 1 and merge neighbours that every operand steps through
    contiguously; (shape, strides per operand)."""
    keep = [d for d, size in enumerate(shape) if size != 1]
    shape = [int(shape[d]) for d in keep]
    strides_list = [[s[d] for d in keep] for s in strides_list]
    d = len(shape) - 2
    while d >= 0:
        if all(s[d] == s[d + 1] * shape[d + 1] for s in strides_list):
            shape[d] *= shape[d + 1]
            del shape[d + 1]
            for s in strides_list:
                s[d] = s[d + 1]
                del s[d + 1]
        d -= 1
    return shape, strides_list


def _basic_index(view: View, indices) -> View:
    """The view of ``view`` under basic indices (slices and integers)."""
    address, shape, strides = view.address, [], []
    for d, index in enumerate(indices):
        size, stride = view.shape[d], view.strides[d]
        if isinstance(index, slice):
            start, stop, step = index.indices(size)
            length = len(range(start, stop, step))
            address += start * stride if length else 0
            shape.append(length)
            strides.append(stride * step)
        else:
            i = int(index)
            i = i + size if i < 0 else i
            if not 0 <= i < size:
                raise Unsupported("an index out of range")
            address += i * stride
    shape += list(view.shape[len(indices) :])
    strides += list(view.strides[len(indices) :])
    return View(int(address), tuple(shape), tuple(strides))


@dataclass
class Program:
    """A program for engine.c: the integer array (header and instructions) and the float
    array (constants), with the layout of the draws."""

    ints: np.ndarray
    floats: np.ndarray
    layout: dict = field(default_factory=dict)


class _Translator:
    """Translates one rewritten FunctionGraph, evaluated at the point ``x0`` (for the shapes
    and the constants), into a program."""

    def __init__(self, fgraph, shared, x0: np.ndarray, outputs: list[int]):
        self.fgraph = fgraph
        self.outputs = [fgraph.outputs[i] for i in outputs]
        self.start(int(x0.size))
        self.views: dict = {}
        self.values: dict = {}
        self.dynamic: set = set()
        x = fgraph.inputs[0]
        self.values[x] = np.asarray(x0, dtype=np.float64)
        self.dynamic.add(x)
        self.views[x] = View(0, (self.n_dim,), (1,))
        for variable, source in zip(fgraph.inputs[1:], shared, strict=True):
            self.values[variable] = np.asarray(source.get_value(borrow=True))

    def start(self, n_dim: int) -> None:
        """An empty program over a point of ``n_dim`` values: no instructions, no constants,
        and a workspace that holds the point alone (bayesmm.inference.template starts its
        programs here too)."""
        self.n_dim = n_dim
        self.code: list[list[int]] = []
        self.consts: list[np.ndarray] = []
        self.stored: dict[int, np.ndarray] = {}  # each constant's values by its address
        self.same: dict[tuple, int] = {}  # a large constant's (size, digest) -> its address
        self.n_consts = 0
        self.const_of: dict = {}
        self.scalars: dict = {}
        self.top = n_dim  # the workspace's high-water mark; x at [0, n_dim)
        self.free: dict[int, list[int]] = {}
        self.buffers: dict[int, list] = {}  # address -> [size, last use]
        self.last_use: dict = {}

    # -- memory

    def const(self, variable) -> View:
        """The constant view of a variable whose value does not depend on the point."""
        if variable not in self.const_of:
            value = np.asarray(self._value(variable))
            if value.dtype.kind not in "biuf":
                raise Unsupported(f"a constant of dtype {value.dtype}")
            self.const_of[variable] = self._store(value)
        return self.const_of[variable]

    def scalar(self, number: float) -> View:
        key = float(number)
        if key not in self.scalars:
            self.scalars[key] = self._store(np.array(number, dtype=float))
        return self.scalars[key]

    def _store(self, value: np.ndarray, tag: str = "f8") -> View:
        """A constant's view; a large one equal to one stored before (a gather's and a
        scatter's level codes) is stored once, so that a row block reads it once."""
        flat = np.ascontiguousarray(value, dtype=np.float64).ravel()
        shape, key = tuple(int(n) for n in value.shape), None
        if flat.size >= blocks.MIN_ROWS // 2:  # MIN_ROWS level codes, two to a constant
            key = (tag, flat.size, hashlib.sha1(flat.tobytes()).digest())
            if key in self.same:
                return View(self.same[key], shape, _contiguous_strides(shape))
        view = View(CONST_BASE + self.n_consts, shape, _contiguous_strides(shape))
        self.consts.append(flat)
        self.stored[view.address] = flat
        self.n_consts += flat.size
        if key is not None:
            self.same[key] = view.address
        return view

    def index(self, offsets: np.ndarray) -> int:
        """The address of element offsets, stored as 32-bit integers two to a constant
        (engine.c's gathers and scatters read them so: half the memory, no conversion)."""
        offsets = np.asarray(offsets, dtype=np.int64).ravel()
        if offsets.size and np.abs(offsets).max() >= 2**31:
            raise Unsupported("an index beyond 32 bits")
        packed = np.zeros(offsets.size + offsets.size % 2, dtype=np.int32)
        packed[: offsets.size] = offsets
        return self._store(packed.view(np.float64), tag="i4").address

    def alloc(self, shape, last: int) -> View:
        size = max(int(np.prod(shape, dtype=int)), 1)
        # A freed buffer is reused only once the workspace is large: reuse ties instructions
        # that are otherwise independent (a level effects' buffer reused for their gradient
        # keeps the scatter into it out of the row block that gathers them), and a value a
        # row block keeps to itself never touches its full-length buffer anyway.
        spare = self.free.get(size) if self.top + size > REUSE_ABOVE else None
        address = spare.pop() if spare else None
        if address is None:
            address, self.top = self.top, self.top + size
        self.buffers[address] = [size, last]
        return View(address, tuple(int(n) for n in shape), _contiguous_strides(shape))

    def release(self, step: int) -> None:
        for address, (size, last) in list(self.buffers.items()):
            if last <= step:
                del self.buffers[address]
                # Small buffers are not reused: their reuse would tie instructions that are
                # otherwise independent, so that fewer of them could run as row blocks.
                if size >= blocks.MIN_ROWS:
                    self.free.setdefault(size, []).append(address)

    def alias(self, variable, view: View) -> None:
        """``variable`` is ``view`` of a buffer (or a constant): the buffer lives as long."""
        self.views[variable] = view
        base = self._buffer_of(view)
        if base is not None:
            self.buffers[base][1] = max(self.buffers[base][1], self.last_use.get(variable, 0))

    def _buffer_of(self, view: View):
        if view.address >= CONST_BASE or view.address < self.n_dim:
            return None
        for address, (size, _) in self.buffers.items():
            if address <= view.address < address + size:
                return address
        return None

    def view(self, variable) -> View:
        if variable in self.dynamic:
            return self.views[variable]
        return self.const(variable)

    def _value(self, variable):
        if variable in self.values:
            return self.values[variable]
        from pytensor.graph.basic import Constant

        if isinstance(variable, Constant):
            return variable.data
        raise Unsupported(f"no value for {variable}")

    # -- instructions

    def emit(self, *words) -> None:
        self.code.append([int(w) for w in words])

    def elementwise(self, code: str, out: View, inputs: list[View]) -> None:
        """out = f(inputs), every input broadcast to out's shape."""
        inputs = [_broadcast(v, out.shape) for v in inputs]
        shape, strides = _coalesce(out.shape, [out.strides, *[v.strides for v in inputs]])
        if len(shape) > MAXD:
            raise Unsupported(f"an elementwise operation over {len(shape)} dimensions")
        words = [OP["OP_EW"], EW[code], len(inputs), len(shape), *shape, out.address, *strides[0]]
        for view, s in zip(inputs, strides[1:], strict=True):
            words += [view.address, *s]
        self.emit(*words)

    def pick(self, code: str, out: View, inputs: list[View], positions: np.ndarray) -> None:
        """out = f(inputs) at ``positions`` only (one dimension)."""
        inputs = [_broadcast(v, out.shape) for v in inputs]
        words = [OP["OP_PICK"], EW[code], len(inputs), positions.size, self._store(positions).address]
        words += [out.address, out.strides[0]]
        for view in inputs:
            words += [view.address, view.strides[0]]
        self.emit(*words)

    def apply(self, code: str, out: View, inputs: list[View], positions: np.ndarray | None = None) -> None:
        """out = f(inputs) for PyTensor's scalar operation ``code`` (at ``positions`` only, where
        given), in the steps of _steps()."""
        emit = self.elementwise if positions is None else functools.partial(self.pick, positions=positions)
        for step_code, operands in _steps(code, inputs):
            emit(step_code, out, [out if v is None else v for v in operands])

    def fill(self, out: View, number: float) -> None:
        if not out.contiguous:
            raise Unsupported("a fill of a strided view")
        self.emit(
            OP["OP_FILL"],
            out.address,
            max(int(np.prod(out.shape, dtype=int)), 1),
            self.scalar(number).address,
        )

    def copy(self, view: View, step: int) -> View:
        out = self.alloc(view.shape, step)
        self.elementwise("identity", out, [view])
        return out

    # -- the graph

    def translate(self) -> list[View]:
        """The outputs' views, the instructions emitted: every node evaluated here first (the
        constants, every value's shape), then the elements each value must have (_picks),
        then the instructions of the nodes that depend on the point."""
        from pytensor.graph.traversal import ancestors

        self.wanted = {v.owner for v in ancestors(self.outputs) if v.owner is not None}
        order = [node for node in self.fgraph.toposort() if node in self.wanted]
        self.last_use = {}
        for step, node in enumerate(order):
            for variable in node.inputs:
                self.last_use[variable] = step
        for variable in self.outputs:
            self.last_use[variable] = len(order) + 1
        dynamic_nodes = [node for node in order if self._evaluate(node)]
        self.picks = self._picks(dynamic_nodes)
        emitted = set(map(id, dynamic_nodes))
        for step, node in enumerate(order):
            if id(node) in emitted:
                self._node(node, step)
                for variable in node.outputs:
                    # float32 arithmetic: computed in double, rounded to float32 (exact for the
                    # arithmetic operations; PyMC's float32 constants are all that reach it).
                    if np.asarray(self.values[variable]).dtype == np.float32:
                        view = self.views[variable]
                        if view.address < CONST_BASE:
                            self.elementwise("f32", view, [view])
            self.release(step)
        return [self.view(v) for v in self.outputs]

    def _evaluate(self, node) -> bool:
        """Evaluate ``node`` at the point by its own Python implementation; whether its value
        depends on the point (a shape does not)."""
        from pytensor.graph.basic import Constant

        inputs = [v.data if isinstance(v, Constant) else self._value(v) for v in node.inputs]
        shape_only = type(node.op).__name__ in ("Shape", "Shape_i")
        dynamic = any(v in self.dynamic for v in node.inputs) and not shape_only
        storage = [[None] for _ in node.outputs]
        try:
            with np.errstate(all="ignore"):
                node.op.perform(node, inputs, storage)
        except Exception as error:  # noqa: BLE001
            raise Unsupported(f"{node.op} could not be evaluated at the point: {error}") from error
        for variable, (value,) in zip(node.outputs, storage, strict=True):
            # An empty array's values are whatever its memory held; a program holds zeros
            # there (as the engine's own AllocEmpty), so that it is the same every time.
            empty = type(node.op).__name__ == "AllocEmpty"
            self.values[variable] = np.zeros_like(value) if empty else value
        if dynamic:
            for variable in node.outputs:
                dtype = np.asarray(self.values[variable]).dtype
                if dtype.kind not in "biuf" or dtype == np.float16:
                    raise Unsupported(f"{node.op} computes in {dtype}")
            self.dynamic.update(node.outputs)
        return dynamic

    def _picks(self, nodes) -> dict:
        """The elements each one-dimensional elementwise value must have, where not all: a
        Switch whose condition is a constant (the observed response) reads each branch only
        where it selects it (a Bernoulli row's log-density is one of two softplus terms, and
        PyTensor computes both over every row). Found backwards from the outputs: a value's
        elements are those its readers need; anything but an elementwise reader of the same
        shape, or an output, needs them all. Maps variable -> sorted positions."""
        needed: dict = {}  # variable -> boolean mask, or None (all)
        outputs = set(self.outputs)
        clients = self.fgraph.clients
        for node in reversed(nodes):
            if type(node.op).__name__ != "Elemwise" or len(node.outputs) != 1:
                continue
            (out,) = node.outputs
            shape = np.shape(self.values[out])
            if len(shape) != 1 or out in outputs:
                continue
            mask = np.zeros(shape, dtype=bool)
            for client, position in clients.get(out, ()):
                if hasattr(client, "op") and client not in self.wanted:
                    continue  # a node of the other program
                if client == "output" or not hasattr(client, "op") or type(client.op).__name__ != "Elemwise":
                    mask = None
                    break
                if np.shape(self.values[client.outputs[0]]) != shape:
                    mask = None
                    break
                reader = needed.get(client.outputs[0])
                reader = np.ones(shape, dtype=bool) if reader is None else reader
                condition = client.inputs[0]
                if (type(client.op.scalar_op).__name__ == "Switch" and position in (1, 2)
                        and condition not in self.dynamic):  # fmt: skip
                    chosen = np.broadcast_to(np.asarray(self._value(condition)) != 0, shape)
                    reader = reader & (chosen if position == 1 else ~chosen)
                mask |= reader
            if mask is not None and not mask.all():
                needed[out] = mask
        return {variable: np.flatnonzero(mask) for variable, mask in needed.items()}

    def _node(self, node, step: int) -> None:
        op = node.op
        name = type(op).__name__
        out = node.outputs[0]
        shape = tuple(int(n) for n in np.shape(self.values[out]))
        last = self.last_use.get(out, step)
        handler = getattr(self, f"_op_{name}", None)
        if handler is None:
            raise Unsupported(f"the operation {name}")
        handler(node, step, shape, last)

    def _op_Elemwise(self, node, step, shape, last):
        scalar = type(node.op.scalar_op).__name__
        dtype = np.asarray(self.values[node.outputs[0]]).dtype
        inputs = [self.view(v) for v in node.inputs]
        if scalar == "Composite":
            return self._composite(node, step, shape, last, inputs)
        if scalar == "ScalarLoop":
            return self._scalar_loop(node, step, shape, last, inputs)
        code = _scalar_code(scalar, dtype, [np.asarray(self._value(v)).dtype for v in node.inputs])
        one = [all(n == 1 for n in v.shape) for v in inputs]
        if code in ("add", "mul") and 1 < sum(one) < len(inputs):
            # A sum (product) of rows and several numbers (a linear predictor's intercept and
            # offsets): the numbers first, once, then one pass over the rows for all of them
            # (the order of the additions changes: a rounding's difference).
            total = self.alloc((), step)
            self.apply(code, total, [View(v.address, (), ()) for v, o in zip(inputs, one, strict=True) if o])
            inputs = [total, *[v for v, o in zip(inputs, one, strict=True) if not o]]
        out = self.alloc(shape, last)
        self.apply(code, out, inputs, self.picks.get(node.outputs[0]))
        self.views[node.outputs[0]] = out

    def _composite(self, node, step, shape, last, inputs):
        """A Composite (a scalar graph that rewrites made): its scalar nodes one by one, each an
        elementwise operation over the output's shape, on temporaries freed afterwards."""
        from pytensor.graph.basic import Constant

        inner = node.op.scalar_op.fgraph
        last = max(self.last_use.get(v, step) for v in node.outputs)
        views = dict(zip(inner.inputs, [_broadcast(v, shape) for v in inputs], strict=True))
        temporaries = []
        for scalar_node in inner.toposort():
            dtype = np.dtype(scalar_node.outputs[0].type.dtype)
            if dtype == np.float16:
                raise Unsupported("float16 inside a Composite")
            inputs_dtypes = [np.dtype(v.type.dtype) for v in scalar_node.inputs]
            code = _scalar_code(type(scalar_node.op).__name__, dtype, inputs_dtypes)
            operands = [self.scalar(float(v.data)) if isinstance(v, Constant) else views[v]
                        for v in scalar_node.inputs]  # fmt: skip
            out = self.alloc(shape, last)
            temporaries.append(out)
            self.apply(code, out, operands)
            if dtype == np.float32:
                self.elementwise("f32", out, [out])
            views[scalar_node.outputs[0]] = out
        results = [views[v] if not isinstance(v, Constant) else None for v in inner.outputs]
        keep = set()
        for variable, view in zip(node.outputs, results, strict=True):
            if view is None:
                view = self.alloc(shape, last)
                self.elementwise(
                    "identity", view, [self.scalar(float(inner.outputs[node.outputs.index(variable)].data))]
                )
            self.views[variable] = view
            keep.add(view.address)
        for view in temporaries:  # the inner values no output keeps
            if view.address not in keep:
                self.buffers[view.address][1] = step

    def _scalar_loop(self, node, step, shape, last, inputs):
        """A ScalarLoop (PyTensor's series and continued fractions: the gradients of the
        incomplete gamma and beta functions) as one LOOP instruction: per element, its inner
        scalar graph run on registers (the carried values, the constants, the inner graph's
        constants and node values) n_steps times, or until its condition holds (engine.c).

        [LOOP, nin, nout, is_while, nd, shape.., (out, strides..) x nout, (in, strides..) x nin,
        n_regs, n_consts, const_regs.., const_values, n_ops, (code, dst, a, b, c) x n_ops,
        update_regs.. (nout - is_while), until_reg (is_while)]"""
        from pytensor.graph.basic import Constant

        loop = node.op.scalar_op
        inner = loop.fgraph
        registers = {variable: k for k, variable in enumerate(inner.inputs)}
        const_regs, const_values, ops = [], [], []

        def register(variable) -> int:
            if variable not in registers:
                if not isinstance(variable, Constant):
                    raise Unsupported("a ScalarLoop's inner value without a register")
                registers[variable] = len(registers)
                const_regs.append(registers[variable])
                const_values.append(float(variable.data))
            return registers[variable]

        for scalar_node in inner.toposort():
            if scalar_node.outputs[0] in registers:
                continue  # a FrozenFunctionGraph's toposort may list a node twice
            dtype = np.dtype(scalar_node.outputs[0].type.dtype)
            if dtype.kind not in "biuf" or dtype == np.float32:  # integers: exact in doubles (counters)
                raise Unsupported(f"a ScalarLoop computing in {dtype}")
            kind = type(scalar_node.op).__name__
            code = _scalar_code(kind, dtype, [np.dtype(v.type.dtype) for v in scalar_node.inputs])
            operands = [register(v) for v in scalar_node.inputs]
            target = registers[scalar_node.outputs[0]] = len(registers)
            for step_code, regs in _steps(code, operands):
                regs = [target if r is None else r for r in regs]
                ops.append((EW[step_code], target, *regs, *[regs[0]] * (3 - len(regs))))
        results = [register(v) for v in inner.outputs]
        if len(registers) > LOOP_REGS or max(len(node.inputs), len(node.outputs)) > LOOP_IO:
            raise Unsupported(f"a ScalarLoop of {len(registers)} values, {len(node.inputs)} inputs")
        last = max(self.last_use.get(v, step) for v in node.outputs)
        outs = [self.alloc(shape, last) for _ in node.outputs]
        ins = [_broadcast(v, shape) for v in inputs]
        nd = len(shape)
        words = [OP["OP_LOOP"], len(ins), len(outs), int(loop.is_while), nd, *shape]
        for view in [*outs, *ins]:
            words += [view.address, *view.strides]
        values = self._store(np.array(const_values or [0.0]))
        words += [len(registers), len(const_regs), *const_regs, values.address, len(ops)]
        for op in ops:
            words += list(op)
        words += results
        self.emit(*words)
        for variable, view in zip(node.outputs, outs, strict=True):
            self.views[variable] = view

    def _reduce(self, node, step, shape, last, code, init):
        view = self.view(node.inputs[0])
        axes = node.op.axis
        axes = (
            tuple(range(len(view.shape)))
            if axes is None
            else tuple(a % max(len(view.shape), 1) for a in axes)
        )
        out = self.alloc(shape, last)
        self.fill(out, init)
        strides, kept = [], iter(out.strides)
        for d in range(len(view.shape)):
            strides.append(0 if d in axes else next(kept))
        target = View(out.address, view.shape, tuple(strides))
        self.elementwise(code, target, [target, view])
        self.views[node.outputs[0]] = out

    def _op_CAReduce(self, node, step, shape, last):
        scalar = type(node.op.scalar_op).__name__
        if scalar not in _REDUCTIONS:
            raise Unsupported(f"a reduction by {scalar}")
        self._reduce(node, step, shape, last, *_REDUCTIONS[scalar])

    _op_Sum = _op_CAReduce
    _op_Prod = _op_CAReduce
    _op_Max = _op_CAReduce
    _op_Min = _op_CAReduce
    _op_All = _op_CAReduce
    _op_Any = _op_CAReduce

    def _op_DimShuffle(self, node, step, shape, last):
        view = self.view(node.inputs[0])
        sizes, strides = [], []
        for d in node.op.new_order:
            if d == "x":
                sizes.append(1)
                strides.append(0)
            else:
                sizes.append(view.shape[d])
                strides.append(view.strides[d])
        self.alias(node.outputs[0], View(view.address, tuple(sizes), tuple(strides)))

    def _op_SpecifyShape(self, node, step, shape, last):
        self.alias(node.outputs[0], self.view(node.inputs[0]))

    def _op_Reshape(self, node, step, shape, last):
        view = self.view(node.inputs[0])
        if not view.contiguous:
            view = self.copy(view, last)
        self.alias(node.outputs[0], View(view.address, shape, _contiguous_strides(shape)))

    def _indices(self, node, first: int):
        from pytensor.tensor.subtensor import indices_from_subtensor

        if any(v in self.dynamic for v in node.inputs[first:]):
            raise Unsupported("an index that depends on the point")
        values = [self._value(v) for v in node.inputs[first:]]
        return indices_from_subtensor([int(np.asarray(v)) for v in values], node.op.idx_list)

    def _op_Subtensor(self, node, step, shape, last):
        self.alias(node.outputs[0], _basic_index(self.view(node.inputs[0]), self._indices(node, 1)))

    def _op_IncSubtensor(self, node, step, shape, last):
        out = self.copy(self.view(node.inputs[0]), last)
        target = _basic_index(out, self._indices(node, 2))
        y = self.view(node.inputs[1])
        if node.op.set_instead_of_inc:
            self.elementwise("identity", target, [y])
        else:
            self.elementwise("add", target, [target, y])
        self.views[node.outputs[0]] = out

    def _advanced_offsets(self, view: View, node, first: int) -> np.ndarray:
        """The offsets, from ``view``'s address, of the elements that the node's advanced
        index (its constant inputs from ``first`` on: integer arrays, slices) selects, in
        the result's order: the index applied to the grid of every element's offset."""
        if any(v in self.dynamic for v in node.inputs[first:]):
            raise Unsupported("an advanced index that depends on the point")
        indices = []
        for variable in node.inputs[first:]:
            value = self._value(variable)
            if isinstance(value, slice) or value is None:
                indices.append(value)
                continue
            value = np.asarray(value)
            if value.dtype.kind not in "iub":
                raise Unsupported(f"an advanced index of dtype {value.dtype}")
            indices.append(value)
        grid = np.zeros(view.shape, dtype=np.int64)
        for d, (size, stride) in enumerate(zip(view.shape, view.strides, strict=True)):
            shape = [1] * len(view.shape)
            shape[d] = size
            grid = grid + (np.arange(size, dtype=np.int64) * stride).reshape(shape)
        try:
            return np.asarray(grid[tuple(indices)])
        except (IndexError, TypeError) as error:
            raise Unsupported(f"an advanced index NumPy refuses: {error}") from error

    def _op_AdvancedSubtensor1(self, node, step, shape, last):
        view = self.view(node.inputs[0])
        offsets = self._advanced_offsets(view, node, 1)
        out = self.alloc(shape, last)
        self.emit(OP["OP_GATHER"], offsets.size, out.address, view.address, self.index(offsets))
        self.views[node.outputs[0]] = out

    _op_AdvancedSubtensor = _op_AdvancedSubtensor1

    def _op_AdvancedIncSubtensor1(self, node, step, shape, last):
        x = self.view(node.inputs[0])
        if not node.op.set_instead_of_inc and x.contiguous and self._scatters_rows(node):
            # Over many rows: the rows' values are added into zeros, then to x, so that the
            # scatter does not wait on x (blocks.py can run it with the rows that make them).
            sums = self.alloc(x.shape, step)
            self.fill(sums, 0.0)
            self._scatter(node, sums, False)
            out = self.alloc(shape, last)
            self.elementwise("add", out, [x, sums])
            self.views[node.outputs[0]] = out
            return
        out = self.copy(x, last)
        self._scatter(node, out, bool(node.op.set_instead_of_inc))
        self.views[node.outputs[0]] = out

    def _scatters_rows(self, node) -> bool:
        return int(np.prod(self.view(node.inputs[1]).shape, dtype=int)) >= blocks.MIN_ROWS

    def _scatter(self, node, out: View, set_instead_of_inc: bool) -> None:
        offsets = self._advanced_offsets(out, node, 2)
        y = _broadcast(self.view(node.inputs[1]), offsets.shape)
        grid = np.zeros(y.shape, dtype=np.int64)
        for d, (size, stride) in enumerate(zip(y.shape, y.strides, strict=True)):
            reshaped = [1] * len(y.shape)
            reshaped[d] = size
            grid = grid + (np.arange(size, dtype=np.int64) * stride).reshape(reshaped)
        # y read in order (the common case) is said by -1, so that the offsets are not read.
        y_offsets = -1 if np.array_equal(grid.ravel(), np.arange(grid.size)) else self.index(grid)
        self.emit(OP["OP_SCATTER"], int(set_instead_of_inc), offsets.size, out.address,
                  self.index(offsets), y.address, y_offsets)  # fmt: skip

    _op_AdvancedIncSubtensor = _op_AdvancedIncSubtensor1

    def _op_Join(self, node, step, shape, last):
        axis = int(node.op.axis) % len(shape)
        out = self.alloc(shape, last)
        offset = 0
        for variable in node.inputs:
            view = self.view(variable)
            width = view.shape[axis]
            index = [slice(None)] * axis + [slice(offset, offset + width)]
            self.elementwise("identity", _basic_index(out, index), [view])
            offset += width
        self.views[node.outputs[0]] = out

    def _op_Split(self, node, step, shape, last):
        view = self.view(node.inputs[0])
        axis = int(node.op.axis) % len(view.shape)
        offset = 0
        for variable in node.outputs:
            width = np.shape(self.values[variable])[axis]
            index = [slice(None)] * axis + [slice(offset, offset + width)]
            self.alias(variable, _basic_index(view, index))
            offset += width

    def _op_MakeVector(self, node, step, shape, last):
        out = self.alloc(shape, last)
        for i, variable in enumerate(node.inputs):
            self.elementwise("identity", _basic_index(out, [slice(i, i + 1)]), [self.view(variable)])
        self.views[node.outputs[0]] = out

    def _op_Alloc(self, node, step, shape, last):
        out = self.alloc(shape, last)
        self.elementwise("identity", out, [self.view(node.inputs[0])])
        self.views[node.outputs[0]] = out

    def _op_AllocEmpty(self, node, step, shape, last):
        out = self.alloc(shape, last)
        self.fill(out, 0.0)
        self.views[node.outputs[0]] = out

    def _matmul(
        self, out: View, a: View, b: View, alpha: View, c: View | None = None, beta: View | None = None
    ):
        if len(a.shape) == 1:
            a = View(a.address, (1, a.shape[0]), (0, a.strides[0]))
        if len(b.shape) == 1:
            b = View(b.address, (b.shape[0], 1), (b.strides[0], 0))
        m, k = a.shape
        n = b.shape[1]
        stored = self.stored.get(a.address)
        if n == 1 and m >= 64 and a.strides == (k, 1) and stored is not None and stored.size == m * k:
            # A constant design times a vector: A stored by columns, which engine.c runs down
            # a column at a time (the same sums, vectorised over the rows).
            columns = self._store(stored.reshape(m, k).T)
            a = View(columns.address, (m, k), (1, m))
        o = View(out.address, (m, n), _strides_2d(out, m, n))
        words = [OP["OP_MATMUL"], m, n, k, o.address, *o.strides, a.address, *a.strides]
        words += [b.address, *b.strides, alpha.address]
        if c is None:
            words += [-1, 0, 0, self.scalar(0.0).address]
        else:
            c = _broadcast(c, out.shape)
            cs = _strides_2d(c, m, n)
            words += [c.address, *cs, beta.address]
        self.emit(*words)

    def _op_Dot(self, node, step, shape, last):
        out = self.alloc(shape, last)
        self._matmul(out, self.view(node.inputs[0]), self.view(node.inputs[1]), self.scalar(1.0))
        self.views[node.outputs[0]] = out

    _op_Dot22 = _op_Dot

    def _op_Dot22Scalar(self, node, step, shape, last):
        out = self.alloc(shape, last)
        self._matmul(out, self.view(node.inputs[0]), self.view(node.inputs[1]), self.view(node.inputs[2]))
        self.views[node.outputs[0]] = out

    def _op_Gemv(self, node, step, shape, last):  # y beta + alpha A x
        y, alpha, a, x, beta = (self.view(v) for v in node.inputs)
        out = self.alloc(shape, last)
        self._matmul(out, a, x, alpha, y, beta)
        self.views[node.outputs[0]] = out

    _op_CGemv = _op_Gemv

    def _op_Gemm(self, node, step, shape, last):  # z b + a x y
        z, a, x, y, b = (self.view(v) for v in node.inputs)
        out = self.alloc(shape, last)
        self._matmul(out, x, y, a, z, b)
        self.views[node.outputs[0]] = out

    def _op_Ger(self, node, step, shape, last):  # A + alpha x y^T
        a, alpha, x, y = (self.view(v) for v in node.inputs)
        out = self.alloc(shape, last)
        xs = View(x.address, (x.shape[0], 1), (x.strides[0], 0))
        ys = View(y.address, (1, y.shape[0]), (0, y.strides[0]))
        self._matmul(out, xs, ys, alpha, a, self.scalar(1.0))
        self.views[node.outputs[0]] = out

    _op_CGer = _op_Ger
    _op_ScipyGer = _op_Ger

    def _op_Cholesky(self, node, step, shape, last):
        a = self.view(node.inputs[0])
        if len(shape) != 2:
            raise Unsupported("a batched Cholesky factor")
        out = self.alloc(shape, last)
        self.emit(OP["OP_CHOLESKY"], shape[0], out.address, a.address, *a.strides, int(bool(node.op.lower)))
        self.views[node.outputs[0]] = out

    def _op_SolveTriangular(self, node, step, shape, last):
        a, b = self.view(node.inputs[0]), self.view(node.inputs[1])
        if len(a.shape) != 2 or len(b.shape) not in (1, 2):
            raise Unsupported("a batched triangular solve")
        lower = bool(node.op.lower)
        if getattr(node.op, "trans", 0) in (1, 2, "T", "C"):
            a = View(a.address, a.shape[::-1], a.strides[::-1])
            lower = not lower
        n = a.shape[0]
        nrhs = 1 if len(b.shape) == 1 else b.shape[1]
        bs = (b.strides[0], 0) if len(b.shape) == 1 else b.strides
        out = self.alloc(shape, last)
        self.emit(OP["OP_SOLVE"], n, nrhs, out.address, a.address, *a.strides, b.address, *bs, int(lower),
                  int(bool(node.op.unit_diagonal)))  # fmt: skip
        self.views[node.outputs[0]] = out

    def _op_ExtractDiag(self, node, step, shape, last):
        view = self.view(node.inputs[0])
        op = node.op
        if len(view.shape) != 2 or {op.axis1, op.axis2} != {0, 1}:
            raise Unsupported("a diagonal of more than a matrix")
        offset = int(op.offset)
        start = view.address + (offset * view.strides[1] if offset >= 0 else -offset * view.strides[0])
        self.alias(node.outputs[0], View(int(start), shape, (view.strides[0] + view.strides[1],)))

    def _op_AllocDiag(self, node, step, shape, last):
        op = node.op
        if len(shape) != 2 or int(getattr(op, "offset", 0)) != 0:
            raise Unsupported("a diagonal matrix other than a square one")
        out = self.alloc(shape, last)
        self.fill(out, 0.0)
        diagonal = View(out.address, (shape[0],), (shape[1] + 1,))
        self.elementwise("identity", diagonal, [self.view(node.inputs[0])])
        self.views[node.outputs[0]] = out

    def _op_CumOp(self, node, step, shape, last):
        """Cumulative sums or products: a copy, then each slice along the axis combined with
        the one before (the axes cumulated here are short: a model's categories)."""
        view = self.view(node.inputs[0])
        if node.op.axis is None:
            if not view.contiguous:
                view = self.copy(view, step)
            view = View(view.address, shape, (1,))
            axis = 0
        else:
            axis = int(node.op.axis) % len(shape)
        if node.op.mode not in ("add", "mul"):
            raise Unsupported(f"a cumulative {node.op.mode}")
        out = self.copy(view, last)
        for i in range(1, shape[axis]):
            before = _basic_index(out, [slice(None)] * axis + [slice(i - 1, i)])
            here = _basic_index(out, [slice(None)] * axis + [slice(i, i + 1)])
            self.elementwise(node.op.mode, here, [here, before])
        self.views[node.outputs[0]] = out

    def _op_DeepCopyOp(self, node, step, shape, last):
        self.alias(node.outputs[0], self.view(node.inputs[0]))

    _op_ViewOp = _op_DeepCopyOp
    _op_OutputGuard = _op_DeepCopyOp


def _steps(code: str, operands: list) -> list[tuple[str, list]]:
    """One operation of PyTensor's as the interpreter's operations of at most three operands:
    an addition or product (logical or, and) of one operand is a copy, of more than two, one
    operand at a time onto the result so far (None in the operands)."""
    if code in ("add", "mul", "or", "and") and len(operands) == 1:
        return [("identity", operands)]
    if code in ("add", "mul", "or", "and") and len(operands) > 2:
        return [(code, operands[:2])] + [(code, [None, v]) for v in operands[2:]]
    return [(code, operands)]


def _scalar_code(kind: str, dtype: np.dtype, inputs: list[np.dtype]) -> str:
    """The interpreter's code for PyTensor's scalar operation ``kind`` with output ``dtype``
    and operands of ``inputs`` dtypes; Unsupported where it has none."""
    if kind == "Cast":
        return {"b": "bool", "i": "trunc", "u": "trunc", "f": "identity"}[dtype.kind]
    if kind in _BOOLEAN:
        if any(d.kind != "b" for d in inputs):
            raise Unsupported(f"the bitwise {kind} of integers")
        return _BOOLEAN[kind]
    code = _SCALAR.get(kind)
    if code is None:
        raise Unsupported(f"the scalar operation {kind}")
    if dtype.kind == "b" and kind in ("Add", "Mul"):  # NumPy's: or, and
        return {"Add": "or", "Mul": "and"}[kind]
    comparisons = ("gt", "ge", "lt", "le", "eq", "neq", "isnan", "isinf")
    if dtype.kind == "b" and kind not in ("Identity", "Second", "Switch") and code not in comparisons:
        raise Unsupported(f"{kind} of booleans")
    return code


def _strides_2d(view: View, m: int, n: int) -> tuple[int, int]:
    """A view's strides as an (m, n) matrix (a vector is a row or a column)."""
    if len(view.shape) == 2:
        return view.strides
    if len(view.shape) == 1:
        return (view.strides[0], 0) if n == 1 else (0, view.strides[0])
    return (0, 0)


def _assemble(translator: _Translator, outputs: list[View], lengths: list[int]) -> np.ndarray:
    """The integer program: the header, then each instruction prefixed by its length."""
    header = np.zeros(len(HEADER), dtype=np.int64)
    code = []
    for words in translator.code:
        code += [len(words) + 1, *words]
    header[H["H_NDIM"]] = translator.n_dim
    header[H["H_WORK"]] = translator.top
    header[H["H_CODE"]] = len(HEADER)
    header[H["H_END"]] = len(HEADER) + len(code)
    for view, length, name in zip(outputs, lengths, ("H_OUT_A", "H_OUT_B"), strict=False):
        stride = view.strides[0] if view.shape else 0
        header[H[name]], header[H[name] + 1], header[H[name] + 2] = view.address, stride, length
    return np.concatenate([header, np.asarray(code, dtype=np.int64)])


def translate(fgraph, shared, x0: np.ndarray, outputs: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """The program (ints, floats) of the rewritten graph's ``outputs`` (their positions) at
    the point ``x0``."""
    translator = _Translator(fgraph, shared, x0, outputs)
    return finish(translator, translator.translate())


def finish(translator: _Translator, outputs: list[View]) -> tuple[np.ndarray, np.ndarray]:
    """The program (ints, floats) of ``translator``'s instructions, whose results are
    ``outputs`` (at most two vectors or numbers): its row-by-row runs blocked (blocks.py)."""
    lengths = [max(int(np.prod(v.shape, dtype=int)), 1) for v in outputs]
    for view in outputs:
        if len(view.shape) > 1:
            raise Unsupported("an output with more than one dimension")
    floats = np.concatenate(translator.consts) if translator.consts else np.zeros(1)
    results = []
    for view, length in zip(outputs, lengths, strict=True):
        last = view.address + max(length - 1, 0) * (view.strides[0] if view.shape else 0)
        results.append(blocks.Access(view.address, last, False, None))
    translator.code, translator.top = blocks.blocked(
        translator.code, OP, floats, CONST_BASE, translator.top, results, EW
    )
    ints = _assemble(translator, outputs, lengths)
    return ints, floats


def program(graphs: Graphs, x0: np.ndarray) -> tuple[Program, Program]:
    """The log-density and expansion programs of ``graphs`` at the point ``x0`` (for the
    shapes and constants); raises Unsupported."""
    logp = Program(*translate(graphs.fgraph, graphs.shared, x0, [0, 1]), graphs.layout)
    expand = Program(*translate(graphs.fgraph, graphs.shared, x0, [2]), graphs.layout)
    return logp, expand


# -- the compiled interpreter ---------------------------------------------------------------


@dataclass(frozen=True)
class CFunction:
    """A C function of the extension module: its address, and the module that holds it."""

    address: int
    module: object


@functools.cache
def _say_stale_extension() -> None:
    from ..warn import warn_user

    warn_user(
        "bayesmm's compiled engine (bayesmm.inference._engine) was built from another version of the "
        "engine's program format, so models compile through PyTensor's graph instead; reinstall bayesmm "
        "to rebuild it.",
        RuntimeWarning,
    )


@functools.cache
def cfuncs() -> tuple[CFunction, CFunction] | None:
    """The engine's two C functions (log-density with gradient, expansion), from the extension
    module bayesmm.inference._engine built when bayesmm was installed; None where it is not
    (no C compiler at installation)."""
    try:
        from . import _engine
    except ImportError:
        return None
    if getattr(_engine, "FIELDS", None) != fields_key():  # built from another engine's numbers
        _say_stale_extension()
        return None
    logp, expand = _engine.addresses()
    return CFunction(logp, _engine), CFunction(expand, _engine)
