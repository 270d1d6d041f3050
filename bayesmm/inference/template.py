"""The engine's programs written from the design, without PyTensor: glmmTMB's template.

bayesmm.inference.engine translates PyMC's rewritten graph of a model into a program of
engine.c's instructions. Building and rewriting that graph costs a process 0.5-1 s per
model structure (Penicillin 1.0 s of a 3.9 s fit, benchmarks/graph_phase.py), most of it
PyTensor's rewriting of several hundred nodes and the garbage collections their objects
cause. For the standard models this module writes the same program from the design: the
log-density as a short list of operations over the sampled point (the linear predictor
from the fixed and group effects, the family's log-likelihood, every prior and transform),
differentiated in reverse mode here, and the expansion of a draw into every reported
variable. Each operation is one or a few of engine.c's instructions, emitted through the
translator's own memory and instruction helpers, so the interpreter is the same.

PyMC's model stays the definition. What the template writes follows bayesmm.model.builder's
parameterization (the centred intercept sheared by the mean group effects, slopes per SD of
their predictor, group effects in the level basis z = H w, non-centred or centred), and the
PyMC model's free variables must be the ones expected (names, sizes, prior families,
transforms). tests/test_template.py compares the log-density, gradient and every reported
variable with PyMC's at random points for every case the template covers, so a change to
the builder's parameterization must keep them equal there. A model the template does not
cover takes the translated graph (bayesmm.inference.engine) as before.

What it covers (the rest takes the graph): gaussian (identity), poisson (log), bernoulli
and binomial (logit) responses, any number of rows (over blocks.MIN_ROWS, the interpreter
runs the row-by-row instructions a chunk of rows at a time), an intercept and slopes (no
QR), any number of grouping factors each with one intercept term (1 | g), non-centred or
centred, centred terms drawn around the effects of the terms they are nested in and the
fixed effects of predictors constant within their levels, a nested pair with the parent's
effects integrated out of the child's prior (bayesmm.model.builder.marginal_nesting); no
parts, offsets, additions, smooths, monotonic or GP terms, and priors of the families
bayesmm.inference.kernel evaluates.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from . import engine
from .engine import View

__all__ = ["program", "why_not", "enabled", "Unsupported"]

_LOG_2PI = float(np.log(2.0 * np.pi))


class Unsupported(Exception):
    """The model is not one the template covers (the message says why)."""


# -- reverse-mode differentiation over the engine's instructions --------------------------------


# The families and links the template writes: (family, link) -> its log-likelihood's kind.
_FAMILIES = {("gaussian", "identity"): "gaussian", ("poisson", "log"): "poisson",
             ("negativebinomial", "log"): "negativebinomial",
             ("bernoulli", "logit"): "bernoulli", ("binomial", "logit"): "binomial",
             ("bernoulli", "probit"): "bernoulli", ("binomial", "probit"): "binomial",
             ("bernoulli", "cloglog"): "bernoulli", ("binomial", "cloglog"): "binomial",
             ("zero_inflated_poisson", "log"): "zi_poisson",
             ("zero_inflated_negbinomial", "log"): "zi_negativebinomial",
             ("hurdle_poisson", "log"): "hu_poisson",
             ("hurdle_negbinomial", "log"): "hu_negativebinomial",
             ("student", "identity"): "student", ("lognormal", "identity"): "lognormal",
             ("gamma", "log"): "gamma", ("beta", "logit"): "beta"}  # fmt: skip
_COUNTS = (
    "poisson",
    "negativebinomial",
    "zi_poisson",
    "zi_negativebinomial",
    "hu_poisson",
    "hu_negativebinomial",
)
# The family parameters of each likelihood: parameter -> the link of its part formula (None: a
# constant only).
_PART_PARAMETERS = {"gaussian": {"sigma": "log"}, "negativebinomial": {"alpha": None},
                    "student": {"sigma": "log", "nu": "log"}, "lognormal": {"sigma": "log"},
                    "gamma": {"shape": "log"}, "beta": {"phi": "log"},
                    "zi_poisson": {"zi": "logit"}, "zi_negativebinomial": {"zi": "logit", "alpha": None},
                    "hu_poisson": {"hu": "logit"},
                    "hu_negativebinomial": {"hu": "logit", "alpha": None}}  # fmt: skip
# PyMC's negative binomial takes the Poisson limit above this alpha (its gammaln difference
# falls below their ulp).
_NB_POISSON_ALPHA = 1e10
# The prior families the template writes beyond bayesmm.inference.kernel's (whose codes are
# 0-6): the code it gives them, and the transform of their variables (1: log).
_GAMMA, _UNIFORM, _LOGISTIC = 7, 8, 9
# The transforms by PyMC's class name: 0 none, 1 log, 2 log-odds, 3 an interval's.
_TRANSFORMS = {None: 0, "LogTransform": 1, "LogOddsTransform": 2, "Interval": 3, "IntervalTransform": 3}


class _Var:
    """A value of the program: its view, whether the log-density's gradient flows into it, how
    many operations read it, and its adjoint (None until a contribution arrives)."""

    __slots__ = ("view", "grad", "uses", "adjoint")

    def __init__(self, view: View, grad: bool):
        self.view = view
        self.grad = grad
        self.uses = 0
        self.adjoint: View | None = None

    @property
    def shape(self) -> tuple:
        return self.view.shape


def _plain(view: View) -> _Var:
    """A value no gradient flows into (a temporary of a backward step)."""
    return _Var(view, False)


class _Tape(engine._Translator):
    """Emits each operation's instructions as it is called, and records how its inputs'
    adjoints follow from its output's; :meth:`backward` emits those in reverse order. Memory
    and instructions are the translator's (engine._Translator). No buffer is reused: over
    many rows, what the log-density's row blocks write and nothing reads later lives in a
    chunk's slot (bayesmm.inference.blocks), and the rest is read by the backward pass."""

    def __init__(self, n_dim: int):
        self.start(n_dim)
        self.steps: list = []

    # values

    def x(self, start: int, shape: tuple) -> _Var:
        return _Var(View(start, tuple(shape), engine._contiguous_strides(shape)), True)

    def constant(self, value) -> _Var:
        value = np.asarray(value, dtype=float)
        if value.ndim == 0:
            return _Var(self.scalar(float(value)), False)
        return _Var(self._store(value), False)

    def _new(self, shape) -> View:
        return self.alloc(tuple(int(n) for n in shape), 1 << 62)

    def _out(self, shape, inputs, backward) -> _Var:
        for v in inputs:
            v.uses += 1
        out = _Var(self._new(shape), any(v.grad for v in inputs))
        if out.grad:
            self.steps.append((out, backward))
        return out

    def _ew(self, code: str, inputs: list[_Var], backward) -> _Var:
        shape = np.broadcast_shapes(*[v.shape for v in inputs])
        out = self._out(shape, inputs, backward)
        self.elementwise(code, out.view, [v.view for v in inputs])
        return out

    # elementwise operations (inputs broadcast against each other)

    def add(self, a, b):
        return self._ew("add", [a, b], lambda g, o: (self._acc(a, g), self._acc(b, g)))

    def sub(self, a, b):
        return self._ew("sub", [a, b], lambda g, o: (self._acc(a, g), self._acc(b, g, negate=True)))

    def mul(self, a, b):
        return self._ew("mul", [a, b], lambda g, o: (self._acc(a, g, b), self._acc(b, g, a)))

    def div(self, a, b):
        def backward(g, o):
            if a.grad:
                self._acc(a, self._tmp("div", [g, b.view], np.broadcast_shapes(g.shape, b.shape)))
            if b.grad:  # d(a/b)/db = -o / b
                self._acc(b, g, _plain(self._tmp("div", [o.view, b.view], o.shape)), negate=True)

        return self._ew("div", [a, b], backward)

    def neg(self, a):
        return self._ew("neg", [a], lambda g, o: self._acc(a, g, negate=True))

    def exp(self, a):
        return self._ew("exp", [a], lambda g, o: self._acc(a, g, o))

    def log(self, a):
        return self._ew("log", [a], lambda g, o: self._acc(a, self._tmp("div", [g, a.view], a.shape)))

    def log1p(self, a):
        def backward(g, o):
            t = self._tmp("add", [a.view, self.scalar(1.0)], a.shape)
            self._acc(a, self._tmp("div", [g, t], a.shape))

        return self._ew("log1p", [a], backward)

    def sqr(self, a):
        def backward(g, o):
            self._acc(a, self._tmp("mul", [g, self.scalar(2.0)], g.shape), a)

        return self._ew("sqr", [a], backward)

    def sqrt(self, a):
        def backward(g, o):  # d sqrt(a) / da = 1 / (2 sqrt(a))
            self._acc(a, self._tmp("div", [g, o.view], o.shape), self.constant(0.5))

        return self._ew("sqrt", [a], backward)

    def gammaln(self, a):
        def backward(g, o):
            self._acc(a, g, _plain(self._tmp("digamma", [a.view], a.shape)))

        return self._ew("gammaln", [a], backward)

    def switch(self, condition: _Var, a, b):
        """a where ``condition`` (no gradient flows into it) is nonzero, else b."""

        def backward(g, o):
            self._acc(a, g, condition)
            self._acc(b, g, _plain(self._tmp("not", [condition.view], condition.shape)))

        return self._ew("switch", [condition, a, b], backward)

    def greater(self, a, value: float) -> _Var:
        """1 where a > value, else 0 (no gradient)."""
        return _plain(self._tmp("gt", [a.view, self.scalar(value)], a.shape))

    def erfc(self, a):
        def backward(g, o):  # d erfc(a) / da = -2 / sqrt(pi) exp(-a^2)
            square = self._tmp("sqr", [a.view], a.shape)
            density = self._tmp("exp", [self._tmp("neg", [square], a.shape)], a.shape)
            self._acc(a, g, _plain(self._tmp("mul", [density, self.scalar(-2.0 / np.sqrt(np.pi))], a.shape)))

        return self._ew("erfc", [a], backward)

    def expm1(self, a):
        def backward(g, o):
            self._acc(a, g, _plain(self._tmp("exp", [a.view], a.shape)))

        return self._ew("expm1", [a], backward)

    def sigmoid(self, a):
        def backward(g, o):  # o (1 - o)
            rest = self._tmp("sub", [self.scalar(1.0), o.view], o.shape)
            self._acc(a, g, _plain(self._tmp("mul", [o.view, rest], o.shape)))

        return self._ew("sigmoid", [a], backward)

    def logaddexp(self, a, b):
        """log(exp(a) + exp(b)), as max(a, b) + log1p(exp(-|a - b|))."""

        def backward(g, o):  # d/da = sigmoid(a - b), d/db = sigmoid(b - a)
            self._acc(a, g, _plain(self._tmp("sigmoid", [difference], shape)))
            self._acc(b, g, _plain(self._tmp("sigmoid", [self._tmp("neg", [difference], shape)], shape)))

        shape = np.broadcast_shapes(a.shape, b.shape)
        difference = self._tmp("sub", [a.view, b.view], shape)
        spread = self._tmp("neg", [self._tmp("abs", [difference], shape)], shape)
        out = self._out(shape, [a, b], backward)
        self.elementwise("max", out.view, [a.view, b.view])
        self.elementwise(
            "add", out.view, [out.view, self._tmp("log1p", [self._tmp("exp", [spread], shape)], shape)]
        )
        return out

    def softplus(self, a):
        def backward(g, o):
            self._acc(a, g, _plain(self._tmp("sigmoid", [a.view], a.shape)))

        return self._ew("softplus", [a], backward)

    # reductions, gathers, products

    def _total(self, inputs: list[_Var], backward) -> _Var:
        """sum(a) (one input) or sum(a b) (two), over every element, in one pass."""
        out = self._out((), inputs, backward)
        self.fill(out.view, 0.0)
        shape = np.broadcast_shapes(*[v.shape for v in inputs])
        target = View(out.view.address, shape, (0,) * len(shape))
        code = "add" if len(inputs) == 1 else "addmul"
        self.elementwise(code, target, [target, *[v.view for v in inputs]])
        return out

    def sum(self, a) -> _Var:
        return self._total([a], lambda g, o: self._acc(a, g))

    def dot(self, a, b) -> _Var:
        """sum(a b)."""
        return self._total([a, b], lambda g, o: (self._acc(a, g, b), self._acc(b, g, a)))

    def sumsq(self, a) -> _Var:
        """sum(a^2)."""

        def backward(g, o):
            self._acc(a, self._tmp("mul", [g, self.scalar(2.0)], ()), a)

        out = self._total([a, a], backward)
        a.uses -= 1
        return out

    def gather(self, a, codes: np.ndarray) -> _Var:
        """a[codes] for a vector a."""

        def backward(g, o):
            adjoint = self._adjoint(a)
            self.emit(engine.OP["OP_SCATTER"], 0, codes.size, adjoint.address,
                      self.index(codes * adjoint.strides[0]), g.address, -1)  # fmt: skip

        out = self._out((codes.size,), [a], backward)
        offsets = np.asarray(codes, dtype=np.int64) * a.view.strides[0]
        self.emit(engine.OP["OP_GATHER"], codes.size, out.view.address, a.view.address, self.index(offsets))
        return out

    def scatter_add(self, a, codes: np.ndarray, size: int) -> _Var:
        """The sums of a vector a's elements by their codes: out[k] = sum of a[i] with codes[i] = k."""
        if a.view.strides != (1,):
            a = self.add(a, self.constant(np.zeros(a.shape)))

        def backward(g, o):
            rows = self._new(a.shape)
            offsets = np.asarray(codes, dtype=np.int64) * g.strides[0]
            self.emit(engine.OP["OP_GATHER"], codes.size, rows.address, g.address, self.index(offsets))
            self._acc(a, rows)

        out = self._out((size,), [a], backward)
        self.fill(out.view, 0.0)
        self.emit(engine.OP["OP_SCATTER"], 0, codes.size, out.view.address, self.index(codes), a.view.address,
                  -1)  # fmt: skip
        return out

    def matvec(self, matrix: np.ndarray, b: _Var) -> _Var:
        """matrix @ b for a constant matrix and a vector b."""
        stored = self._store(np.asarray(matrix, dtype=float))

        def backward(g, o):
            transposed = View(stored.address, stored.shape[::-1], stored.strides[::-1])
            t = self._new(b.shape)
            self._matmul(t, transposed, g, self.scalar(1.0))
            self._acc(b, t)

        out = self._out((matrix.shape[0],), [b], backward)
        self._matmul(out.view, stored, b.view, self.scalar(1.0))
        return out

    def join(self, parts: list[_Var]) -> _Var:
        """The vectors (or numbers) ``parts`` one after another."""
        sizes = [int(np.prod(p.shape, dtype=int)) for p in parts]
        starts = [int(a) for a in np.cumsum([0, *sizes])]

        def backward(g, o):
            for p, a in zip(parts, starts, strict=False):
                self._acc(p, View(g.address + a * g.strides[0], p.shape, (g.strides[0],) * len(p.shape)))

        out = self._out((starts[-1],), parts, backward)
        for p, a, z in zip(parts, starts[:-1], starts[1:], strict=True):
            self.elementwise("identity", View(out.view.address + a, (z - a,), (1,)), [p.view])
        return out

    def piece(self, vector: _Var, start: int, length: int, step: int = 1) -> _Var:
        """vector[start:start + length * step:step] (a view: no instruction)."""
        stride = vector.view.strides[0]

        def backward(g, o):
            adjoint = self._adjoint(vector)
            part = View(adjoint.address + start * adjoint.strides[0], (length,), (step * adjoint.strides[0],))
            self.elementwise("add", part, [part, g])

        vector.uses += 1
        out = _Var(View(vector.view.address + start * stride, (length,), (step * stride,)), vector.grad)
        if out.grad:
            self.steps.append((out, backward))
        return out

    def column(self, matrix: _Var, c: int, p: int) -> _Var:
        """Column c of a row-major matrix of p columns held as a vector (a view)."""
        return self.piece(matrix, c, int(np.prod(matrix.shape, dtype=int)) // p, p)

    def interleave(self, columns: list[_Var]) -> _Var:
        """The row-major matrix whose columns are ``columns`` (vectors of one length)."""
        p, n = len(columns), columns[0].shape[0]

        def backward(g, o):
            for c, column in enumerate(columns):
                self._acc(column, View(g.address + c * g.strides[0], (n,), (p * g.strides[0],)))

        out = self._out((n * p,), columns, backward)
        for c, column in enumerate(columns):
            self.elementwise("identity", View(out.view.address + c, (n,), (p,)), [column.view])
        return out

    def element(self, vector: _Var, j: int) -> _Var:
        """vector[j] as a (1,) value (a view: no instruction)."""
        return self.piece(vector, j, 1)

    # adjoints

    def _tmp(self, code: str, inputs: list[View], shape) -> View:
        out = self._new(shape)
        self.elementwise(code, out, inputs)
        return out

    def _adjoint(self, a: _Var) -> View:
        """a's adjoint buffer, zeros when first asked for (an element of x: the gradient's)."""
        if a.adjoint is None:
            a.adjoint = self._new(a.shape)
            self.fill(a.adjoint, 0.0)
        return a.adjoint

    def _acc(self, a: _Var, g, other: _Var | None = None, negate: bool = False):
        """a's adjoint += (-) g (times ``other``), summed over what a was broadcast along; ``g``
        a view or a _Var. The first contribution is written where a's adjoint will be (or is
        g itself, where nothing else reads a), later ones added in one pass."""
        if not a.grad:
            return
        g = g.view if isinstance(g, _Var) else g
        shape = g.shape if other is None else np.broadcast_shapes(g.shape, other.shape)
        reduced = np.broadcast_shapes(shape, a.shape) != a.shape
        if a.adjoint is None and not reduced:
            if other is None and not negate and a.uses == 1 and g.shape == a.shape:
                a.adjoint = g  # its only reader's adjoint: nothing else is added to it
                return
            a.adjoint = self._new(a.shape)
            if other is None:
                self.elementwise("neg" if negate else "identity", a.adjoint, [g])
            else:
                self.elementwise("mul", a.adjoint, [g, other.view])
                if negate:
                    self.elementwise("neg", a.adjoint, [a.adjoint])
            return
        adjoint = self._adjoint(a)
        if reduced:  # sum over the dimensions a was broadcast along
            lead = len(shape) - len(a.shape)
            strides = [0] * lead + [0 if n == 1 else s for n, s in zip(a.shape, adjoint.strides, strict=True)]
            adjoint = View(adjoint.address, tuple(shape), tuple(strides))
        # Sums over broadcast dimensions are the interpreter's reductions: add and addmul only.
        if negate:
            if other is not None:
                g, other = self._tmp("mul", [g, other.view], shape), None
            g = self._tmp("neg", [g], g.shape)
        if other is None:
            self.elementwise("add", adjoint, [adjoint, g])
        else:
            self.elementwise("addmul", adjoint, [adjoint, g, other.view])

    def backward(self, out: _Var, x_vars: list[_Var], n_dim: int) -> View:
        """The gradient of the scalar ``out`` with respect to the point, one vector."""
        gradient = self._new((n_dim,))
        self.fill(gradient, 0.0)
        for v in x_vars:
            v.adjoint = View(gradient.address + v.view.address, v.shape, v.view.strides)
        out.adjoint = self._new(())
        self.fill(out.adjoint, 1.0)
        for var, step in reversed(self.steps):
            if var.adjoint is not None:
                step(var.adjoint, var)
        return gradient


# -- the model --------------------------------------------------------------------------------


@dataclasses.dataclass
class _Term:
    """One random-effect term of p columns: its sampled variables' names (SDs, standard normals,
    centred rows or None, the correlations' vine or None), its structure ("diag" or "us"), its
    rows' level codes, its columns (None where a column is all ones), their means (the
    intercept's shear) and the slope each one shears ((column, slope position)), and, when
    centred (one intercept column), what it is drawn around: [(term position, its levels'
    parent levels)] and (slope positions, their values per level) or None."""

    sd_raw: str
    z: str
    v: str | None
    cpc: str | None
    structure: str
    codes: np.ndarray
    levels: int
    columns: list
    column_means: np.ndarray
    shears: list
    around: list
    within: tuple | None

    @property
    def p(self) -> int:
        return len(self.columns)


@dataclasses.dataclass
class _Nesting:
    """A centred (1 | child) term nested in a (1 | parent) term, the parent's effects integrated
    out of the child's prior (bayesmm.model.builder._nested_marginal_part): the trace names
    (each level's whole linear predictor u, the parent's standard normals, the sampled SDs, the
    reported effects and SDs of child and parent), each child level's parent, the parents'
    numbers of children, the rows' child levels, and the slopes constant within the child's
    levels (positions and values per level) and the others (positions, their columns)."""

    u: str
    xi: str
    sd_raw: tuple[str, str]
    r: tuple[str, str]
    sd: tuple[str, str]
    up: np.ndarray
    count: np.ndarray
    codes: np.ndarray
    found: list
    values: np.ndarray
    within: list


def _nesting(design, centred: tuple, by_name: dict, variables: dict, qr: bool) -> _Nesting | None:
    """The model's nested pair (bayesmm.model.builder.marginal_nesting), its free variables
    added to ``variables``; None where there is none."""
    from ..model.builder import level_covariates, marginal_nesting
    from ..model.fixed import centred_slopes
    from ..model.parameterization import level_parents
    from ..model.variables import TermNames, group_var
    from ..spec.priors import stack_priors

    pair = marginal_nesting(design, centred, qr)
    if pair is None:
        return None
    inner, outer = (design.random[i] for i in pair)
    if inner.n_levels < 2 or outer.n_levels < 2:
        raise Unsupported("a nested pair of terms with one level")
    names = [TermNames(design, term, 0) for term in (inner, outer)]
    for term, name in zip((inner, outer), names, strict=True):
        prior = stack_priors([by_name[n].prior for n in term.sd_names])
        variables[name("sd_raw")] = (prior.dist, dict(prior.params), 1)
    variables[names[0]("u")] = ("Normal", None, inner.n_levels)  # written out by _nested
    variables[names[1]("z")] = ("Normal", {}, outer.n_levels)
    up = level_parents(inner, outer)
    found, values = level_covariates(design, inner)
    slope_idx, _ = centred_slopes(design)
    return _Nesting(
        names[0]("u"), names[1]("z"), (names[0]("sd_raw"), names[1]("sd_raw")),
        tuple(group_var(design, "r", t.group) for t in (inner, outer)),
        tuple(group_var(design, "sd", t.group) for t in (inner, outer)),
        up, np.bincount(up, minlength=outer.n_levels).astype(float), np.asarray(inner.codes, dtype=np.int64),
        found, values, [j for j in range(len(slope_idx)) if j not in found],
    )  # fmt: skip


class _Predictor:
    """One linear predictor (the mean's, or a part formula's: zi=, hu=, dispersion=): how it
    follows from its free variables, which it adds to ``variables`` (name -> prior family,
    its parameters, size) (bayesmm.model.builder._linear_predictor)."""

    def __init__(self, design, centred: tuple, by_name: dict, variables: dict, qr: bool = False):
        from ..model.builder import LOCATION_SCALE, _sheared_slopes, coefficient_form, slope_scales
        from ..model.fixed import centred_slopes, fixed_center
        from ..model.parameterization import centring_parents
        from ..model.variables import fixef_var, group_var
        from ..spec.priors import stack_priors
        from .kernel import _scaled

        self.design, self.variables = design, variables
        if design.monotonic or design.smooths or design.gps:
            raise Unsupported("mo(), s() or gp() terms")
        centred = tuple(bool(c) for c in centred) or (False,) * len(design.random)
        parents = centring_parents(design) if any(centred) else [None] * len(design.random)
        self.terms: dict[int, _Term] = {}  # by position in design.random, in the groups' order
        self.nesting = _nesting(design, centred, by_name, variables, qr)
        # Which slopes the group effects shear, and whether a centred term is drawn around
        # the fixed effects constant within its levels (builder._linear_predictor).
        slope_idx, self.Xc = centred_slopes(design)
        sheared_slopes = _sheared_slopes(design)
        self.groups: dict[str, tuple] = {}  # group -> (r name, sd name, cor name, its terms' positions)
        for group, terms in design.groups.items() if self.nesting is None else ():
            positions = [[t is term for t in design.random].index(True) for term in terms]
            self.groups[group] = (group_var(design, "r", group), group_var(design, "sd", group),
                                  group_var(design, "cor", group), positions)  # fmt: skip
            for k, (term, i) in enumerate(zip(terms, positions, strict=True)):
                self.terms[i] = self._term(design, term, k, centred[i], by_name, slope_idx,
                                           sheared_slopes or qr, parents[i])  # fmt: skip
        # The fixed effects (bayesmm.model.builder._fixed_coefficients).
        self.intercept = None  # (name, sheared)
        if design.has_intercept:
            prior = by_name[design.qualified("Intercept")].prior
            sheared = bool(design.random) and self.nesting is None
            form = coefficient_form(design.var("Intercept_c"), prior, 0.0 if sheared else None, 1.0)
            name, params = (design.var("Intercept_c"), dict(prior.params)) if form is None else form
            variables[name] = (prior.dist, params, 1)
            self.intercept = (name, form is not None and sheared)
        self.slopes = None  # (name, multiplier to b, scale where sheared else None)
        self.qr = None  # decomp="QR": (R*^-1, log |det R*|, the slopes' prior (code, table))
        if slope_idx:
            names = [design.qualified(design.fixef_names[j]) for j in slope_idx]
            stacked = stack_priors([by_name[name].prior for name in names])
            if stacked is None:
                raise Unsupported("slopes whose priors are of different families")
        if slope_idx and qr:  # theta = R* (b + shift), b's priors exact (builder._qr_slopes)
            from ..model.builder import qr_factors

            R, R_inverse = qr_factors(self.Xc, [design.fixef_names[j] for j in slope_idx])
            self.qr = (R_inverse, float(np.sum(np.log(np.abs(np.diag(R))))),
                       _prior_table(stacked.dist, dict(stacked.params), len(slope_idx)))  # fmt: skip
            variables[design.var("b_qr")] = ("Normal", None, len(slope_idx))  # written by _linear
            self.slopes = (design.var("b_qr"), np.ones(len(slope_idx)), None)
        elif slope_idx:
            scales = slope_scales(design, slope_idx)
            sheared = any(design.fixef_names[j] in sheared_slopes for j in slope_idx) and (
                stacked.dist in LOCATION_SCALE
            )
            form = coefficient_form(design.var("b"), stacked, 0.0, scales) if sheared else None
            if form is None:
                name, params, mult = _scaled(stacked, scales, design.var("b"))
                shear = None
            else:
                (name, params), mult, shear = form, 1.0 / scales, np.asarray(scales, dtype=float)
            variables[name] = (stacked.dist, params, len(slope_idx))
            mult = np.broadcast_to(np.asarray(mult, dtype=float), (len(slope_idx),)).copy()
            self.slopes = (name, mult, shear)
        self.center = fixed_center(design)[slope_idx]
        self.fixef_order = [("Intercept", 0) if n == "Intercept" else ("b", slope_idx.index(j))
                            for j, n in enumerate(design.fixef_names)]  # fmt: skip
        self.fixef_name, self.b_name = fixef_var(design), design.var("b")
        self.offset = None if design.offset is None else np.asarray(design.offset, dtype=float)

    def _term(self, design, term, k: int, centred: bool, by_name: dict, slope_idx, sheared_slopes, parents):
        """The template's record of one term, its free variables added to ``self.variables``
        (bayesmm.model.builder._term_effects)."""
        from ..model.builder import _varies, level_covariates
        from ..model.parameterization import level_parents
        from ..model.variables import TermNames
        from ..spec.covariance import AR1, UNROLLED_SOLVE, CompoundSymmetry, Diagonal, Unstructured
        from ..spec.priors import stack_priors

        group, p, levels = term.group, term.n_terms, term.n_levels
        structure = {Diagonal: "diag", Unstructured: "us", CompoundSymmetry: "cs", AR1: "ar1"}.get(
            type(term.covariance)
        )
        if structure is None:
            raise Unsupported(f"the {term.covariance.name} covariance of {group}'s effects")
        if term.level_factor is not None:
            raise Unsupported(f"the effects of {group} are drawn with a known covariance (gr(cov=))")
        if levels < 2:
            raise Unsupported(f"{group} has one level")
        if centred and structure != "diag" and p > UNROLLED_SOLVE:
            raise Unsupported(f"{group}'s centred effects of {p} correlated columns")
        names = TermNames(design, term, k)
        prior = stack_priors([by_name[n].prior for n in term.sd_names])
        if prior is None:
            raise Unsupported(f"the SDs of {group}'s effects have priors of different families")
        self.variables[names("sd_raw")] = (prior.dist, dict(prior.params), p)
        cpc = None
        if structure == "us":
            eta = by_name[term.covariance.cor_parameter].prior.params["eta"]
            beta = term.covariance.vine_beta(float(eta))
            cpc = names("cpc")
            self.variables[cpc] = ("Beta", {"alpha": beta, "beta": beta}, len(beta))
        elif structure in ("cs", "ar1"):  # one correlation, rho
            cpc = names("rho")
            prior = by_name[term.covariance.cor_parameter].prior
            self.variables[cpc] = (prior.dist, dict(prior.params), 1)
        v, around, within = None, [], None
        if centred:
            self.variables[names("z")] = ("Normal", {}, p)
            v = names("v")
            self.variables[v] = ("Normal", None, (levels - 1) * p)  # written by _effects
            # Drawn around its parents' effects (each at its levels' parents) and the fixed
            # effects of the predictors constant within its levels (builder._random_part).
            around = [(j, level_parents(term, design.random[j])) for j in parents or ()]
            found, values = level_covariates(design, term)
            if found and slope_idx and not sheared_slopes:
                within = (found, values)
            if p > 1 and (around or within):
                raise Unsupported(f"{group}'s centred effects of {p} columns drawn around others'")
        else:
            self.variables[names("z")] = ("Normal", {}, levels * p)
        ones = np.all(term.matrix == 1.0, axis=0)
        columns = [None if ones[c] else np.asarray(term.matrix[:, c], dtype=float) for c in range(p)]
        shears = []
        for c, column in enumerate(term.columns):
            if _varies(design, term, c):
                shears.append((c, slope_idx.index(design.fixef_names.index(column))))
        return _Term(names("sd_raw"), names("z"), v, cpc, structure, np.asarray(term.codes, dtype=np.int64),
                     levels, columns, term.matrix.mean(axis=0), shears, around, within)  # fmt: skip


class _Model:
    """What the template reads from a bayesmm Model: the free variables it expects (name ->
    prior family, its parameters, size), its linear predictors (the mean's and each part
    formula's, with the family parameter it gives) and its family's log-likelihood."""

    def __init__(self, source):
        design, family = source.design, source.family
        self.design = design
        if source.collapsed:
            raise Unsupported("integrated out")
        if any(d.additions.any for d in (design, *source.parts.values())):
            raise Unsupported("addition terms")
        link = family.link.name
        kind = _FAMILIES.get((family.name, link))
        if kind is None:
            raise Unsupported(f"the {family.name} family with its {link} link")
        self.kind, self.link = kind, link
        by_name = {e.parameter: e for e in source.prior_entries}
        self.variables: dict[str, tuple] = {}  # name -> (prior dist, params, size)
        self.mean = _Predictor(design, source.centred, by_name, self.variables, source.decomp == "QR")
        # Part formulas: parameter -> (its predictor, the inverse link's kind).
        self.parts: dict[str, tuple] = {}
        for name, part in source.parts.items():
            parameter = family.part_parameter(name)
            inverse = family.part(name).link
            if (
                parameter not in _PART_PARAMETERS.get(kind, ())
                or inverse != _PART_PARAMETERS[kind][parameter]
            ):
                raise Unsupported(f"the {family.name} family's {name}= formula")
            self.parts[parameter] = (_Predictor(part, (), by_name, self.variables), inverse)
        # Constant family parameters: gaussian's sigma, the negative binomial's alpha, zi, hu.
        self.constants = {}
        for parameter in family.constant_params(source.parts):
            prior = by_name[parameter].prior
            self.variables[parameter] = (prior.dist, dict(prior.params), 1)
            self.constants[parameter] = parameter
        missing = set(_PART_PARAMETERS.get(kind, {})) - set(self.parts) - set(self.constants)
        if missing:
            raise Unsupported(f"the {family.name} family's parameters {sorted(missing)}")
        self.y = np.asarray(design.y, dtype=float)
        self.trials = None if kind != "binomial" else np.asarray(design.trials, dtype=float)


def _densities(model: _Model, pymc_model, shapes: list[tuple]) -> list[tuple]:
    """The free variables in PyMC's order: (name, value name, start, size, prior code, table,
    transform), checked against the PyMC model's (names, sizes (``shapes``: their values'),
    transforms)."""
    from .kernel import _TRANSFORM_OF

    free = list(pymc_model.free_RVs)
    if sorted(rv.name for rv in free) != sorted(model.variables):
        raise Unsupported("the sampled model's free variables are not the expected ones")
    out, start = [], 0
    for rv, shape in zip(free, shapes, strict=True):
        dist, params, size = model.variables[rv.name]
        if int(np.prod(shape, dtype=int)) != size:
            raise Unsupported(f"{rv.name} has {int(np.prod(shape, dtype=int))} values, not {size}")
        code, table = _prior_table(dist, params or {}, size)
        wanted = {_GAMMA: 1, _UNIFORM: 3, _LOGISTIC: 0}.get(code, _TRANSFORM_OF.get(code))
        transform = pymc_model.rvs_to_transforms.get(rv)
        kind = None if transform is None else type(transform).__name__
        if _TRANSFORMS.get(kind) != wanted:
            raise Unsupported(f"{rv.name} has the transform {transform}")
        value = pymc_model.rvs_to_values[rv].name
        out.append((rv.name, value, start, size, code, table, wanted))
        start += size
    return out


def _gamma(params: dict, size: int) -> tuple[int, np.ndarray]:
    """A Gamma prior's code and (4, size) table: alpha, beta, unused, the constant term
    (PyMC's two parameterizations: alpha and beta, or mu and sigma)."""
    from scipy.special import gammaln

    from .kernel import _Unsupported

    if set(params) == {"mu", "sigma"}:
        mu, sigma = (np.asarray(params[k], dtype=float) for k in ("mu", "sigma"))
        params = {"alpha": mu**2 / sigma**2, "beta": mu / sigma**2}
    if set(params) != {"alpha", "beta"}:
        raise _Unsupported(f"Gamma with parameters {sorted(params)}")
    table = np.zeros((4, size))
    for row, key in enumerate(("alpha", "beta")):
        table[row] = np.broadcast_to(np.asarray(params[key], dtype=float), (size,))
    table[3] = table[0] * np.log(table[1]) - gammaln(table[0])
    return _GAMMA, table


def _uniform(params: dict, size: int) -> tuple[int, np.ndarray]:
    """A Uniform prior's code and (4, size) table: lower, upper, unused, -log(upper - lower)."""
    from .kernel import _Unsupported

    if set(params) != {"lower", "upper"}:
        raise _Unsupported(f"Uniform with parameters {sorted(params)}")
    table = np.zeros((4, size))
    for row, key in enumerate(("lower", "upper")):
        table[row] = np.broadcast_to(np.asarray(params[key], dtype=float), (size,))
    if not np.all(np.isfinite(table[:2])):
        raise _Unsupported("a Uniform prior without two finite bounds")
    table[3] = -np.log(table[1] - table[0])
    return _UNIFORM, table


def _logistic(params: dict, size: int) -> tuple[int, np.ndarray]:
    """A Logistic prior's code and (4, size) table: mu, s, unused, -log s."""
    from .kernel import _Unsupported

    if set(params) - {"mu", "s"}:
        raise _Unsupported(f"Logistic with parameters {sorted(params)}")
    table = np.zeros((4, size))
    for row, (key, default) in enumerate((("mu", 0.0), ("s", 1.0))):
        table[row] = np.broadcast_to(np.asarray(params.get(key, default), dtype=float), (size,))
    table[3] = -np.log(table[1])
    return _LOGISTIC, table


_OWN_DENSITIES = {"Gamma": _gamma, "Uniform": _uniform, "Logistic": _logistic}


def _prior_table(dist: str, params: dict, size: int) -> tuple[int, np.ndarray]:
    """A prior's code and (4, size) table: bayesmm.inference.kernel's families and the
    template's own (Gamma, Uniform, Logistic)."""
    from .kernel import _density, _Unsupported

    try:
        return _OWN_DENSITIES[dist](params, size) if dist in _OWN_DENSITIES else _density(dist, params, size)
    except _Unsupported as reason:
        raise Unsupported(str(reason)) from None


def _prior(t: _Tape, value: _Var, code: int, table: np.ndarray, mu=None, logit=None) -> _Var:
    """The sum of the prior's log-density over ``value``'s elements (bayesmm.inference.kernel's
    families and tables); ``mu``: a location moved by other parameters (added to p1);
    ``logit``: the sampled log-odds of a Beta variable."""
    constant = float(np.sum(table[3]))
    if code in (0, 1, _LOGISTIC):  # Normal, StudentT, Logistic
        location = t.constant(table[0])
        if mu is not None:
            location = t.add(location, mu)
        s = t.div(t.sub(value, location), t.constant(table[1]))
    elif code in (2, 3, 4):  # HalfNormal, HalfStudentT, HalfCauchy
        s = t.div(value, t.constant(table[1]))
    if code in (0, 2):
        total = t.mul(t.sumsq(s), t.constant(-0.5))
    elif code in (1, 3):
        nu = table[2]
        total = t.dot(t.log1p(t.div(t.sqr(s), t.constant(nu))), t.constant(-(nu + 1.0) / 2.0))
    elif code == 4:
        total = t.neg(t.sum(t.log1p(t.sqr(s))))
    elif code == 5:  # Exponential
        total = t.dot(value, t.constant(-table[1]))
    elif code == 6:  # Beta: (alpha - 1) log x + (beta - 1) log(1 - x), from the log-odds
        log_x, log_rest = t.neg(t.softplus(t.neg(logit))), t.neg(t.softplus(logit))
        total = t.add(t.dot(log_x, t.constant(table[0] - 1.0)), t.dot(log_rest, t.constant(table[1] - 1.0)))
    elif code == _LOGISTIC:  # -z - 2 log(1 + exp(-z))
        total = t.neg(t.add(t.sum(s), t.mul(t.sum(t.softplus(t.neg(s))), t.constant(2.0))))
    elif code == _UNIFORM:  # constant within its bounds (the transform keeps it there)
        total = t.constant(0.0)
    else:  # Gamma: (alpha - 1) log x - beta x
        total = t.add(t.dot(t.log(value), t.constant(table[0] - 1.0)), t.dot(value, t.constant(-table[1])))
    return t.add(total, t.constant(constant))


def _level_basis(t: _Tape, w: _Var, levels: int) -> _Var:
    """H w for bayesmm.model.builder._level_basis's Householder reflection H (2 v v^T subtracted)."""
    v = -np.full(levels, 1.0 / np.sqrt(levels))
    v[0] += 1.0
    v /= np.linalg.norm(v)
    return t.sub(w, t.mul(t.constant(2.0 * v), t.dot(t.constant(v), w)))


def _write(t: _Tape, model: _Model, variables: list[tuple], x: dict, density: bool):
    """The model's values on the tape from the point's pieces ``x`` (value name -> _Var): the
    log-density (None unless ``density``) and the reported variables by name."""
    terms = []
    reported = {}
    constrained = {}
    unconstrained = {}
    tables = {name: (code, table) for name, _, _, _, code, table, _ in variables}
    for name, value_name, *_, transform in variables:
        piece = unconstrained[name] = x[value_name]
        if transform == 1:
            constrained[name] = t.exp(piece)
            reported[name] = constrained[name]
            terms.append(t.sum(piece))  # the log transform's Jacobian
        elif transform == 2:  # log-odds: log x + log(1 - x) = -softplus(-v) - softplus(v)
            constrained[name] = t.sigmoid(piece)
            reported[name] = constrained[name]
            terms.append(t.neg(t.add(t.sum(t.softplus(t.neg(piece))), t.sum(t.softplus(piece)))))
        elif transform == 3:  # an interval (a, b): x = s b + (1 - s) a, s = sigmoid(v)
            a, b = (t.constant(row) for row in tables[name][1][:2])
            share = t.sigmoid(piece)
            constrained[name] = t.add(t.mul(share, b), t.mul(t.sub(t.constant(1.0), share), a))
            reported[name] = constrained[name]
            width = float(np.sum(np.log(tables[name][1][1] - tables[name][1][0])))
            spread = t.add(t.mul(t.sum(t.softplus(t.neg(piece))), t.constant(-2.0)), t.neg(t.sum(piece)))
            terms.append(t.add(spread, t.constant(width)))  # log(b - a) - 2 softplus(-v) - v
        else:
            constrained[name] = piece

    mus: dict = {}  # a sheared coefficient's name -> what moves its prior's location
    eta = _linear(t, model.mean, constrained, reported, terms if density else None, mus)
    if eta.shape != (model.design.n_obs,):
        eta = t.add(eta, t.constant(np.zeros(model.design.n_obs)))
    # The family's parameters: constants, and part formulas through their inverse links (zi
    # and hu stay on the log-odds scale); logs: the log of those with a log link.
    params = {parameter: constrained[name] for parameter, name in model.constants.items()}
    logs = {}
    for parameter, (predictor, inverse) in model.parts.items():
        linear = _linear(t, predictor, constrained, reported, terms if density else None, mus)
        params[parameter] = linear
        if inverse == "log":
            logs[parameter], params[parameter] = linear, t.exp(linear)
    if not density:
        return None, reported
    for name, *_ in variables:
        if name in model.variables and model.variables[name][1] is None:
            continue  # a centred term's rows: written with its effects
        terms.append(_prior(t, constrained[name], *tables[name], mu=mus.get(name), logit=unconstrained[name]))
    terms.append(_likelihood(t, model, eta, params, logs))
    total = terms[0]
    for term in terms[1:]:
        total = t.add(total, term)
    return total, reported


def _linear(t: _Tape, pred: _Predictor, constrained: dict, reported: dict, terms: list | None, mus: dict):
    """One linear predictor (a vector of rows, or one number where it has no row-varying
    part) from the constrained values: fixed and group effects and offsets; the log-densities
    of centred effects are added to ``terms`` (None: the expansion), what shears a sampled
    coefficient to ``mus``, and its group effects and fixed effects are reported."""
    # The slopes first where nothing shears them: a centred term may be drawn around them.
    b = None
    if pred.slopes is not None and pred.slopes[2] is None and pred.qr is None:
        b = _slopes(t, pred, constrained, reported, None)
    intercept = None if pred.intercept is None else constrained[pred.intercept[0]]
    if pred.nesting is not None:
        eta = _nested(t, pred, b, constrained, reported, terms)
    else:
        eta, shifts = _group_effects(t, pred, constrained, reported, terms, b)
        if pred.slopes is not None:
            n_slopes = len(pred.slopes[1])
            if b is None:
                shift = t.join([shifts.get(j, t.constant(np.zeros(1))) for j in range(n_slopes)])
            if pred.qr is not None:  # b = R*^-1 theta - shift, b ~ its priors, / |det R*|
                R_inverse, log_det, (code, table) = pred.qr
                b = t.sub(t.matvec(R_inverse, constrained[pred.slopes[0]]), shift)
                reported[pred.b_name] = b
                if terms is not None:
                    terms.append(t.sub(_prior(t, b, code, table), t.constant(log_det)))
            elif b is None:  # sheared: b = u / scale - shift, u ~ prior(location + shift) scaled
                mus[pred.slopes[0]] = t.mul(shift, t.constant(pred.slopes[2]))
                b = _slopes(t, pred, constrained, reported, shift)
            xb = t.matvec(pred.Xc, b)
            eta = xb if eta is None else t.add(eta, xb)
        if pred.intercept is not None:
            if pred.intercept[1]:  # sheared
                mus[pred.intercept[0]] = shifts["Intercept"]
                intercept = t.sub(intercept, shifts["Intercept"])
            eta = intercept if eta is None else t.add(eta, intercept)
    if pred.offset is not None:
        offset = t.constant(pred.offset)
        eta = offset if eta is None else t.add(eta, offset)
    if eta is None:
        eta = t.constant(np.zeros(1))
    pieces = []
    for kind, j in pred.fixef_order:
        if kind == "b":
            pieces.append(t.element(b, j))
        elif b is not None:
            pieces.append(t.sub(intercept, t.dot(b, t.constant(pred.center))))
        else:
            pieces.append(intercept)
    if pieces:
        reported[pred.fixef_name] = t.join(pieces)
    return eta


def _slopes(t: _Tape, pred: _Predictor, constrained: dict, reported: dict, shift: _Var | None) -> _Var:
    """b from the sampled slopes (per SD of their predictors), less the shear ``shift``."""
    name, mult, _ = pred.slopes
    b = constrained[name]
    if not np.all(mult == 1.0):
        b = t.mul(b, t.constant(mult))
    if shift is not None:
        b = t.sub(b, shift)
    reported[pred.b_name] = b
    return b


def _vine(t: _Tape, term: _Term, sds: list, cpc: _Var):
    """The covariance factor F (F[j][k], k <= j) of an unstructured term and its reported
    correlations (builder's Unstructured.factor: the Cholesky factor of the correlations
    from the C-vine's partial correlations 2 cpc - 1, the rows scaled by the SDs)."""
    from itertools import combinations

    p = term.p
    partial = t.sub(t.mul(cpc, t.constant(2.0)), t.constant(1.0))
    L = [[None] * p for _ in range(p)]  # None on the diagonal of row 0: 1
    left = [None] * p  # 1 - the sum of squares so far, per row (None: 1)
    for k, (i, j) in enumerate(combinations(range(p), 2)):
        z = t.element(partial, k)
        L[j][i] = z if left[j] is None else t.mul(z, t.sqrt(left[j]))
        square = t.sqr(L[j][i])
        left[j] = t.sub(t.constant(1.0), square) if left[j] is None else t.sub(left[j], square)
        if i == j - 1:
            L[j][j] = t.sqrt(left[j])

    def entry(i, k):
        return sds[i] if i == 0 and k == 0 else t.mul(sds[i], L[i][k])

    F = [[entry(j, k) for k in range(j + 1)] for j in range(p)]
    cors = []
    for row, col in [(a, c) for a in range(p) for c in range(a)]:  # cor_pairs: row > col
        total = None
        for k in range(col + 1):
            product = L[row][0] if k == 0 and col == 0 else t.mul(L[row][k], L[col][k])
            total = product if total is None else t.add(total, product)
        cors.append(total)
    return F, cors


def _one_correlation(t: _Tape, term: _Term, sds: list, rho: _Var):
    """The covariance factor F (F[j][k], k <= j) and reported correlations of a cs() or ar1()
    term (spec.covariance's CompoundSymmetry, AR1): cs, the Cholesky factor of (1 - rho) I +
    rho 1 1^T by the usual recursion; ar1, L[i][0] = rho^i and L[i][k] = rho^(i-k)
    sqrt(1 - rho^2). Its rows are scaled by the SDs."""
    p = term.p
    one = t.constant(1.0)
    if term.structure == "cs":
        L = [[None] * p for _ in range(p)]
        for j in range(p):
            for k in range(j + 1):
                total = one if j == k else rho
                for m in range(k):
                    total = t.sub(total, t.mul(L[j][m], L[k][m]))
                L[j][k] = t.sqrt(total) if j == k else t.div(total, L[k][k])
        cors = [rho for i in range(p) for _ in range(i)]
    else:
        powers = [one, rho]
        for _ in range(2, p):
            powers.append(t.mul(powers[-1], rho))
        rest = t.sqrt(t.sub(one, t.sqr(rho)))
        L = [
            [powers[j - k] if k == 0 else t.mul(powers[j - k], rest) for k in range(j + 1)] for j in range(p)
        ]
        cors = [powers[i - j] for i in range(p) for j in range(i)]
    return [[t.mul(sds[j], L[j][k]) for k in range(j + 1)] for j in range(p)], cors


def _applied(t: _Tape, columns: list, F, sds: list) -> list:
    """The columns of u F^T (diagonal F: u sd) for the columns of u."""
    if F is None:
        return [t.mul(u, sd) for u, sd in zip(columns, sds, strict=True)]
    out = []
    for j in range(len(columns)):
        total = None
        for k in range(j + 1):
            product = t.mul(columns[k], F[j][k])
            total = product if total is None else t.add(total, product)
        out.append(total)
    return out


def _group_effects(t: _Tape, pred: _Predictor, constrained: dict, reported: dict, terms: list | None, b):
    """The group effects' part of the linear predictor and the shear shifts (name -> _Var)
    (bayesmm.model.builder._random_part); their log-densities where centred are added to
    ``terms`` (None: the expansion), and r_, sd_ and cor_ reported for each grouping factor.

    Each term's effects are columns of length levels: non-centred, r = H w F^T; centred,
    r = H [z F^T; v - m], the rows of v Normal(m, F F^T) with m = (H around)[1:]
    (around: what a one-column term is drawn around)."""
    effects: dict[int, list] = {}  # term position -> its columns of effects
    cors: dict[int, list] = {}

    def effects_of(i: int) -> list:
        if i in effects:
            return effects[i]
        term = pred.terms[i]
        p, levels = term.p, term.levels
        sd = constrained[term.sd_raw]
        sds = [sd] if p == 1 else [t.element(sd, j) for j in range(p)]
        F, cors[i] = None, []
        if term.structure == "us":
            F, cors[i] = _vine(t, term, sds, constrained[term.cpc])
        elif term.structure in ("cs", "ar1"):
            F, cors[i] = _one_correlation(t, term, sds, constrained[term.cpc])
        if term.v is None:  # non-centred
            w = [t.column(constrained[term.z], c, p) for c in range(p)]
            effects[i] = _applied(t, [_level_basis(t, u, levels) for u in w], F, sds)
            return effects[i]
        z = [t.column(constrained[term.z], c, p) for c in range(p)]
        mean_row = _applied(t, z, F, sds)
        rows = [t.column(constrained[term.v], c, p) for c in range(p)]
        m = None
        around = [t.gather(effects_of(j)[0], parents) for j, parents in term.around]
        if term.within is not None:
            found, values = term.within
            around.append(t.matvec(values, t.join([t.element(b, j) for j in found])))
        if around:
            total = around[0]
            for other in around[1:]:
                total = t.add(total, other)
            m = t.piece(_level_basis(t, total, levels), 1, levels - 1)
            rows = [t.sub(rows[0], m)]
        if terms is not None:  # the rows' density, Normal(0, F F^T) each
            n = levels - 1
            if F is None:
                solved = [t.div(r, s) for r, s in zip(rows, sds, strict=True)]
                diagonal = sds
            else:  # F^-1 r by forward substitution
                solved = []
                for j in range(p):
                    acc = rows[j]
                    for k in range(j):
                        acc = t.sub(acc, t.mul(F[j][k], solved[k]))
                    solved.append(t.div(acc, F[j][j]))
                diagonal = [F[j][j] for j in range(p)]
            for j in range(p):
                squares = t.mul(t.sumsq(solved[j]), t.constant(-0.5))
                terms.append(t.add(squares, t.mul(t.log(diagonal[j]), t.constant(-float(n)))))
            terms.append(t.constant(-0.5 * n * p * _LOG_2PI))
        effects[i] = [_level_basis(t, t.join([mean_row[c], rows[c]]), levels) for c in range(p)]
        return effects[i]

    eta = None
    shifts: dict = {}
    has_intercept = pred.intercept is not None
    for r_name, sd_name, cor_name, positions in pred.groups.values():
        columns, sds, correlations = [], [], []
        for i in positions:
            term = pred.terms[i]
            r = effects_of(i)
            columns += r
            sds.append(constrained[term.sd_raw])
            correlations += cors[i]
            means = [t.mul(t.sum(r_c), t.constant(1.0 / term.levels)) for r_c in r]
            if has_intercept:  # the intercept's shift: sum_c mean(r[:, c]) mean(Z[:, c])
                for c, mean in enumerate(means):
                    weight = float(term.column_means[c])
                    part = mean if weight == 1.0 else t.mul(mean, t.constant(weight))
                    before = shifts.get("Intercept")
                    shifts["Intercept"] = part if before is None else t.add(before, part)
            for c, j in term.shears:
                shifts[j] = means[c] if j not in shifts else t.add(shifts[j], means[c])
            for c, r_c in enumerate(r):
                rows_r = t.gather(r_c, term.codes)
                if term.columns[c] is not None:
                    rows_r = t.mul(rows_r, t.constant(term.columns[c]))
                eta = rows_r if eta is None else t.add(eta, rows_r)
        reported[r_name] = columns[0] if len(columns) == 1 else t.interleave(columns)
        reported[sd_name] = sds[0] if len(sds) == 1 else t.join(sds)
        if correlations:
            reported[cor_name] = t.join(correlations)
    return eta, shifts


def _nested(
    t: _Tape, pred: _Predictor, b: _Var | None, constrained: dict, reported: dict, terms: list | None
):
    """The linear predictor of a nested pair (bayesmm.model.builder._nested_marginal_part),
    with the log-density of each child level's whole linear predictor u added to ``terms``
    (None: the expansion, which reports both terms' effects instead)."""
    nest = pred.nesting
    u = constrained[nest.u]
    mean = None if pred.intercept is None else constrained[pred.intercept[0]]
    if nest.found:
        level_part = t.matvec(nest.values, t.join([t.element(b, j) for j in nest.found]))
        mean = level_part if mean is None else t.add(mean, level_part)
    e = u if mean is None else t.sub(u, mean)
    var_c, var_p = (t.sqr(constrained[name]) for name in nest.sd_raw)
    sums = t.scatter_add(e, nest.up, nest.count.size)
    spread = t.add(var_c, t.mul(t.constant(nest.count), var_p))
    if terms is not None:
        n_inner, n_outer = nest.up.size, nest.count.size
        quadratic = t.div(t.sub(t.sumsq(e), t.mul(var_p, t.sum(t.div(t.sqr(sums), spread)))), var_c)
        log_det = t.add(t.mul(t.log(var_c), t.constant(float(n_inner - n_outer))), t.sum(t.log(spread)))
        terms.append(t.mul(t.add(quadratic, log_det), t.constant(-0.5)))
        terms.append(t.constant(-0.5 * n_inner * _LOG_2PI))
    else:
        scale = t.sqrt(t.div(t.mul(var_c, var_p), spread))
        r_outer = t.add(t.div(t.mul(var_p, sums), spread), t.mul(constrained[nest.xi], scale))
        r_inner = t.sub(e, t.gather(r_outer, nest.up))
        for r_name, sd_name, sd_raw, r in zip(nest.r, nest.sd, nest.sd_raw, (r_inner, r_outer), strict=True):
            reported[r_name], reported[sd_name] = r, constrained[sd_raw]
    eta = t.gather(u, nest.codes)
    if nest.within:
        slopes = t.join([t.element(b, j) for j in nest.within])
        eta = t.add(eta, t.matvec(pred.Xc[:, nest.within], slopes))
    return eta


def _likelihood(t: _Tape, model: _Model, eta: _Var, params: dict, logs: dict) -> _Var:
    """The response's log-likelihood, summed over rows; ``params``: the family's parameters,
    each a number or one per row (zi and hu on the log-odds scale), ``logs`` the logarithms
    of those a part formula gives through a log link."""
    from scipy.special import gammaln

    y = model.y
    n = y.size

    def log_of(name: str) -> _Var:
        return logs[name] if name in logs else t.log(params[name])

    if model.kind in ("gaussian", "lognormal"):
        response = y if model.kind == "gaussian" else np.log(y)
        sigma = params["sigma"]
        if sigma.shape == (n,) and n > 1:  # sigma per row
            scaled = t.div(t.sub(t.constant(response), eta), sigma)
            total = t.mul(t.sumsq(scaled), t.constant(-0.5))
        else:
            squares = t.sumsq(t.sub(t.constant(response), eta))
            total = t.div(squares, t.mul(t.sqr(sigma), t.constant(-2.0)))
        total = t.sub(total, _row_sum(t, log_of("sigma"), n))
        constant = -0.5 * n * _LOG_2PI - (0.0 if model.kind == "gaussian" else float(np.sum(response)))
        return t.add(total, t.constant(constant))
    if model.kind == "student":  # PyMC's StudentT(nu, eta, sigma)
        nu, sigma = params["nu"], params["sigma"]
        half = t.mul(t.add(nu, t.constant(1.0)), t.constant(0.5))
        spread = t.div(t.sqr(t.div(t.sub(t.constant(y), eta), sigma)), nu)
        total = t.neg(t.dot(half, t.log1p(spread)))
        normaliser = t.sub(t.gammaln(half), t.gammaln(t.mul(nu, t.constant(0.5))))
        normaliser = t.sub(normaliser, t.mul(t.log(t.mul(nu, t.constant(np.pi))), t.constant(0.5)))
        total = t.add(total, _row_sum(t, normaliser, n))
        return t.sub(total, _row_sum(t, log_of("sigma"), n))
    if model.kind == "gamma":  # Gamma(shape, shape / exp(eta))
        shape = params["shape"]
        own = t.sub(t.mul(shape, log_of("shape")), t.gammaln(shape))
        total = t.sub(_row_sum(t, own, n), t.dot(shape, eta))
        total = t.add(total, t.dot(t.sub(shape, t.constant(1.0)), t.constant(np.log(y))))
        return t.sub(total, t.dot(shape, t.mul(t.constant(y), t.exp(t.neg(eta)))))
    if model.kind == "beta":  # Beta(mu phi, (1 - mu) phi), mu = sigmoid(eta)
        phi = params["phi"]
        mu = t.sigmoid(eta)
        a, b = t.mul(mu, phi), t.mul(t.sub(t.constant(1.0), mu), phi)
        total = t.add(t.dot(t.sub(a, t.constant(1.0)), t.constant(np.log(y))),
                      t.dot(t.sub(b, t.constant(1.0)), t.constant(np.log1p(-y))))  # fmt: skip
        total = t.sub(total, t.add(t.sum(t.gammaln(a)), t.sum(t.gammaln(b))))
        return t.add(total, _row_sum(t, t.gammaln(phi), n))
    if model.kind in _COUNTS:
        return _counts(t, model, eta, params)
    linear = t.dot(t.constant(y), eta)
    trials = np.ones(n) if model.kind == "bernoulli" else model.trials
    binomln = 0.0
    if model.kind == "binomial":
        binomln = float(np.sum(gammaln(trials + 1.0) - gammaln(y + 1.0) - gammaln(trials - y + 1.0)))
    if model.link == "logit":  # log p = eta - softplus(eta), log(1 - p) = -softplus(eta)
        total = t.sub(linear, t.dot(t.constant(trials), t.softplus(eta)))
    else:
        if model.link == "probit":  # p = erfc(-eta / sqrt 2) / 2, 1 - p = erfc(eta / sqrt 2) / 2
            half = t.mul(eta, t.constant(1.0 / np.sqrt(2.0)))
            log_p = t.log(t.mul(t.erfc(t.neg(half)), t.constant(0.5)))
            log_q = t.log(t.mul(t.erfc(half), t.constant(0.5)))
        else:  # cloglog: p = -expm1(-exp(eta)), log(1 - p) = -exp(eta)
            mu = t.exp(eta)
            log_p = t.log(t.neg(t.expm1(t.neg(mu))))
            log_q = t.neg(mu)
        total = t.add(t.dot(t.constant(y), log_p), t.dot(t.constant(trials - y), log_q))
    return total if model.kind == "bernoulli" else t.add(total, t.constant(binomln))


def _row_sum(t: _Tape, value: _Var, n: int) -> _Var:
    """The sum over n rows of a per-row value, or n times a value the rows share."""
    return t.sum(value) if value.shape == (n,) else t.mul(t.sum(value), t.constant(float(n)))


def _rows(t: _Tape, value: _Var, index: np.ndarray, n: int) -> _Var:
    """A per-row value (n rows) at the rows ``index``, or a value the rows share as it is."""
    return t.gather(value, index) if value.shape == (n,) and n > 1 else value


def _counts(t: _Tape, model: _Model, eta: _Var, params: dict) -> _Var:
    """The Poisson and negative binomial log-likelihoods, plain, zero-inflated (PyMC's mixture
    of a point mass at 0, weight zi, and the count distribution) or hurdle (log hu at 0; else
    log(1 - hu) + the count's log-probability less log(1 - its probability of 0))."""
    y = model.y
    count, form = model.kind.split("_")[-1], model.kind.split("_")[0]
    alpha = params.get("alpha")
    f = _poisson if count == "poisson" else _negative_binomial
    if form not in ("zi", "hu"):
        return f(t, y, eta, alpha)
    zero, positive = np.flatnonzero(y == 0), np.flatnonzero(y > 0)
    logit = params[form]  # of zi or hu
    log_q = t.neg(t.softplus(logit))  # log(1 - zi), log(1 - hu)
    log_w = t.neg(t.softplus(t.neg(logit)))  # log zi, log hu
    total = None
    if positive.size:
        eta_p = t.gather(eta, positive)
        y_p = y[positive]
        counts = f(t, y_p, eta_p, alpha)
        total = t.add(counts, _row_sum(t, _rows(t, log_q, positive, y.size), positive.size))
        if form == "hu":  # less log(1 - f(0)) = log(-expm1(log f(0)))
            log_f0 = _log_f0(t, count, eta_p, alpha)
            total = t.sub(total, t.sum(t.log(t.neg(t.expm1(log_f0)))))
    if zero.size:
        if form == "hu":
            zeros = _row_sum(t, _rows(t, log_w, zero, y.size), zero.size)
        else:  # log(zi + (1 - zi) f(0))
            log_f0 = _log_f0(t, count, t.gather(eta, zero), alpha)
            zeros = t.sum(
                t.logaddexp(_rows(t, log_w, zero, y.size), t.add(_rows(t, log_q, zero, y.size), log_f0))
            )
        total = zeros if total is None else t.add(total, zeros)
    return total


def _poisson(t: _Tape, y: np.ndarray, eta: _Var, alpha=None) -> _Var:
    """The Poisson log-likelihood with mean exp(eta), summed over rows."""
    from scipy.special import gammaln

    linear = t.sub(t.dot(t.constant(y), eta), t.sum(t.exp(eta)))
    return t.add(linear, t.constant(-float(np.sum(gammaln(y + 1.0)))))


def _log_f0(t: _Tape, count: str, eta: _Var, alpha) -> _Var:
    """The count distribution's log-probability of 0 at each row: -mu, or alpha log(alpha /
    (mu + alpha))."""
    if count == "poisson":
        return t.neg(t.exp(eta))
    return t.mul(alpha, t.sub(t.log(alpha), t.log(t.add(t.exp(eta), alpha))))


def _negative_binomial(t: _Tape, y: np.ndarray, eta: _Var, alpha: _Var) -> _Var:
    """NB2's log-likelihood with mean exp(eta) and shape alpha, summed over rows: PyMC's
    gammaln(y + alpha) - gammaln(alpha) - gammaln(y + 1) + y log(mu / (mu + alpha))
    + alpha log(alpha / (mu + alpha)), or its Poisson limit where alpha > 1e10."""
    from scipy.special import gammaln

    n = float(y.size)
    mu = t.exp(eta)
    log_total = t.log(t.add(mu, alpha))  # log(mu + alpha)
    linear = t.dot(t.constant(y), eta)
    constant = t.constant(-float(np.sum(gammaln(y + 1.0))))
    spread = t.dot(t.add(t.constant(y), alpha), log_total)
    shape = t.sub(t.sum(t.gammaln(t.add(t.constant(y), alpha))), t.mul(t.gammaln(alpha), t.constant(n)))
    own = t.mul(t.mul(alpha, t.log(alpha)), t.constant(n))
    negbin = t.add(t.add(t.sub(linear, spread), t.add(shape, own)), constant)
    poisson = t.add(t.sub(linear, t.sum(mu)), constant)
    return t.switch(t.greater(alpha, _NB_POISSON_ALPHA), poisson, negbin)


# -- the programs -----------------------------------------------------------------------------


def why_not(pymc_model, source) -> str | None:
    """Why the template does not write the model's programs (None: it does)."""
    try:
        _programs(pymc_model, source)
    except Unsupported as reason:
        return str(reason)
    return None


def program(pymc_model, source) -> tuple[engine.Program, engine.Program] | None:
    """The engine's log-density and expansion programs of ``pymc_model`` (the sampled model of
    bayesmm's ``source``) written from the design, or None where the template does not cover
    the model (it then takes the translated graph)."""
    if source is None:
        return None
    try:
        return _programs(pymc_model, source)
    except Unsupported:
        return None


def _programs(pymc_model, source) -> tuple[engine.Program, engine.Program]:
    model = _Model(source)
    shapes = [list(s) for s in engine._value_shapes(pymc_model)]
    variables = _densities(model, pymc_model, shapes)
    n_dim = int(sum(v[3] for v in variables))
    value_names = [v[1] for v in variables]
    remaining = [v for v in pymc_model.unobserved_value_vars if v.name not in value_names]

    # The log-density and its gradient.
    t = _Tape(n_dim)
    x = {value: t.x(start, (size,)) for _, value, start, size, *_ in variables}
    logp, _ = _write(t, model, variables, x, density=True)
    gradient = t.backward(logp, list(x.values()), n_dim)
    logp_program = engine.finish(t, [logp.view, gradient])

    # The expansion: the point, then every other variable of the trace in PyMC's order.
    e = _Tape(n_dim)
    x = {value: _Var(View(start, (size,), (1,)), False) for _, value, start, size, *_ in variables}
    _, reported = _write(e, model, variables, x, density=False)
    pieces = [_Var(View(0, (n_dim,), (1,)), False)] if n_dim else []
    for variable in remaining:
        if variable.name not in reported:
            raise Unsupported(f"the trace's {variable.name}")
        value = reported[variable.name]
        shape = engine._named_shape(pymc_model, variable)
        size = int(np.prod(value.shape, dtype=int))
        if any(s is None for s in shape) or int(np.prod(shape, dtype=int)) != size:
            raise Unsupported(f"the trace's {variable.name} has shape {shape}")
        shapes.append([int(s) for s in shape])
        pieces.append(value)
    expanded = e.join(pieces)
    expand_program = engine.finish(e, [expanded.view])

    names = value_names + [v.name for v in remaining]
    sizes = [int(np.prod(s, dtype=int)) for s in shapes]
    bounds = np.cumsum([0, *sizes])
    layout = {
        "n_dim": n_dim, "n_expanded": int(bounds[-1]), "n_free": len(variables), "names": names,
        "slices": [[int(a), int(b)] for a, b in zip(bounds[:-1], bounds[1:], strict=True)],
        "shapes": shapes,
        "reparameterized": [value for name, value, *_ in variables if value != name],
    }  # fmt: skip
    return engine.Program(*logp_program, layout), engine.Program(*expand_program, layout)


# -- the switch ------------------------------------------------------------------------------------


def enabled() -> bool:
    """Whether the template writes the programs of the models it covers: ``BAYESMM_TEMPLATE=0``
    sends them to the translated graph (e.g. to measure it)."""
    return os.environ.get("BAYESMM_TEMPLATE", "1") != "0"
