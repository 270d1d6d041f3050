"""Reverse-mode differentiation over the engine's instructions: the tape on which
bayesmm.inference.template writes a model's log-density.

Each operation (elementwise arithmetic and functions, sums and sums of products, gathers of
level effects and their sums by level, a constant matrix times a vector, joins, views of
pieces and columns) emits one or a few of engine.c's instructions when it is called, through
the translator's own memory and instruction helpers (engine._Translator), and records how
its inputs' adjoints follow from its output's. :meth:`Tape.backward` emits those steps in
reverse order: a value's first adjoint contribution is written in place, an adjoint with
one reader is that reader's (no copy), later contributions are added in one pass (a + b c),
and sums over broadcast dimensions are the interpreter's add and addmul reductions (its
vectorized paths reduce only those).
"""

from __future__ import annotations

import numpy as np

from . import engine
from .engine import View

__all__ = ["Tape", "Var", "plain"]

# A constant matrix of at most this many columns times a vector is taken column by column (a
# product, then a + b c per column) and its gradient as one sum of products per column, all
# row by row (else one matrix product each).
FEW_COLUMNS = 8


class Var:
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


def plain(view: View) -> Var:
    """A value no gradient flows into (a temporary of a backward step)."""
    return Var(view, False)


class Tape(engine._Translator):
    """Emits each operation's instructions as it is called, and records how its inputs'
    adjoints follow from its output's; :meth:`backward` emits those in reverse order. Memory
    and instructions are the translator's (engine._Translator). No buffer is reused: over
    many rows, what the log-density's row blocks write and nothing reads later lives in a
    chunk's slot (bayesmm.inference.blocks), and the rest is read by the backward pass."""

    def __init__(self, n_dim: int):
        self.start(n_dim)
        self.steps: list = []

    # values

    def x(self, start: int, shape: tuple) -> Var:
        return Var(View(start, tuple(shape), engine._contiguous_strides(shape)), True)

    def constant(self, value) -> Var:
        value = np.asarray(value, dtype=float)
        if value.ndim == 0:
            return Var(self.scalar(float(value)), False)
        return Var(self._store(value), False)

    def _new(self, shape) -> View:
        return self.alloc(tuple(int(n) for n in shape), 1 << 62)

    def _out(self, shape, inputs, backward) -> Var:
        for v in inputs:
            v.uses += 1
        out = Var(self._new(shape), any(v.grad for v in inputs))
        if out.grad:
            self.steps.append((out, backward))
        return out

    def _ew(self, code: str, inputs: list[Var], backward) -> Var:
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
                self._acc(b, g, plain(self._tmp("div", [o.view, b.view], o.shape)), negate=True)

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
            self._acc(a, g, plain(self._tmp("digamma", [a.view], a.shape)))

        return self._ew("gammaln", [a], backward)

    def log_gammainc(self, a, x, upper: bool = False):
        """log P(a, x), the log of the regularized incomplete gamma function (log Q(a, x),
        Q = 1 - P, where ``upper``), each accurate where it is near 0 too (engine.c's
        gamma_log_tail); the shapes ``a`` constants (an array) or a value on the tape. Its
        derivatives: in x, +-x^(a-1) e^-x / Gamma(a) / (P or Q); in a, +-dP/da / (P or Q),
        dP/da the engine's gammainc_da."""
        from scipy.special import gammaln

        fixed = not isinstance(a, Var)
        shape = self.constant(np.asarray(a, dtype=float)) if fixed else a
        # (a - 1) and log Gamma(a), computed here once where a is constant
        less_one = self.constant(np.asarray(a, dtype=float) - 1.0) if fixed else None
        log_gamma = self.constant(gammaln(np.asarray(a, dtype=float))) if fixed else None

        def backward(g, o):  # (+-) exp((a - 1) log x - x - gammaln(a) - o)
            f = self._f
            if x.grad:
                below = less_one.view if fixed else f("sub", shape.view, self.scalar(1.0))
                log_norm = log_gamma.view if fixed else f("gammaln", shape.view)
                power = f("sub", f("sub", f("mul", f("log", x.view), below), x.view), log_norm)
                self._acc(x, g, plain(f("exp", f("sub", power, o.view))), negate=upper)
            if shape.grad:
                slope = f("mul", f("gammainc_da", shape.view, x.view), f("exp", f("neg", o.view)))
                self._acc(shape, g, plain(slope), negate=upper)

        return self._ew("log_gammaincc" if upper else "log_gammainc", [shape, x], backward)

    def log_betainc(self, a, b, x, upper: bool = False):
        """log I_x(a, b), the log of the regularized incomplete beta function (log(1 - I) where
        ``upper``), each accurate where it is near 0 too (engine.c's beta_log_tail); each of
        a, b and x constants (arrays) or values on the tape. Its derivatives: in x,
        +-x^(a-1) (1 - x)^(b-1) / B(a, b) / (I or 1 - I); in a and b, +-dI/da / (I or 1 - I),
        dI/da and dI/db the engine's betainc_da and betainc_db (Boik and Robison-Cox's)."""
        a, b, x = (v if isinstance(v, Var) else self.constant(np.asarray(v, dtype=float)) for v in (a, b, x))

        def backward(g, o):
            f, one = self._f, self.scalar(1.0)
            if x.grad:  # exp((a - 1) log x + (b - 1) log(1 - x) - log B(a, b) - o)
                power = f("mul", f("sub", a.view, one), f("log", x.view))
                power = f("add", power, f("mul", f("sub", b.view, one), f("log1p", f("neg", x.view))))
                log_beta = f("add", f("gammaln", a.view), f("gammaln", b.view))
                log_beta = f("sub", log_beta, f("gammaln", f("add", a.view, b.view)))
                self._acc(x, g, plain(f("exp", f("sub", f("sub", power, log_beta), o.view))), negate=upper)
            inverse = f("exp", f("neg", o.view)) if a.grad or b.grad else None  # 1 / (I or 1 - I)
            for v, op in ((a, "betainc_da"), (b, "betainc_db")):
                if v.grad:
                    self._acc(v, g, plain(f("mul", f(op, a.view, b.view, x.view), inverse)), negate=upper)

        return self._ew("log_betaincc" if upper else "log_betainc", [a, b, x], backward)

    def student_log_tail(self, z, nu, upper: bool = False):
        """log F(z) (log(1 - F(z)) where ``upper``) of the Student-t with ``nu`` degrees of
        freedom: on the small tail's side log(I_x(nu/2, 1/2) / 2), x = nu / (nu + z^2), else
        log(1 - I_x / 2). Its derivatives are written out: in z, +-pdf(z) / e^out; in nu,
        +-(dI/da / 2 + x^(a-1) |z| (nu + z^2)^(-3/2) / B(a, 1/2)) / 2 / e^out with a = nu / 2,
        the derivative through x in closed form (through x itself it is infinity times 0 at
        z = 0, where (1 - x)^(-1/2) meets dx/dz = 0)."""
        shape, c, f = np.broadcast_shapes(z.shape, nu.shape), self.scalar, self._f
        square = f("sqr", z.view)
        spread = f("add", nu.view, square)  # nu + z^2
        x, a = f("div", nu.view, spread), f("mul", nu.view, c(0.5))
        half = f("add", f("log_betainc", a, c(0.5), x), c(-np.log(2.0)))  # log(I_x / 2)
        small = f("gt", z.view if upper else f("neg", z.view), c(0.0))  # the rows on the small tail's side

        def backward(g, o):
            log_gamma_a = f("add", f("gammaln", a), c(0.5 * np.log(np.pi)))  # + log Gamma(1/2)
            log_b = f("sub", log_gamma_a, f("gammaln", f("add", a, c(0.5))))  # log B(a, 1/2)
            if z.grad:  # log pdf(z) = -(nu + 1) / 2 log(1 + z^2 / nu) - log B(a, 1/2) - log(nu) / 2
                power = f("mul", f("add", nu.view, c(1.0)), c(-0.5))
                log_pdf = f("mul", f("log1p", f("div", square, nu.view)), power)
                log_pdf = f("sub", log_pdf, f("add", log_b, f("mul", f("log", nu.view), c(0.5))))
                self._acc(z, g, plain(f("exp", f("sub", log_pdf, o.view))), negate=upper)
            if nu.grad:  # dF_small / dnu, over e^out: + on the small side, - on the other
                through = f("sub", f("mul", f("log", x), f("sub", a, c(1.0))), log_b)
                through = f("exp", f("sub", through, f("mul", f("log", spread), c(1.5))))
                through = f("mul", through, f("abs", z.view))  # x^(a-1) |z| (nu + z^2)^(-3/2) / B
                direct = f("mul", f("betainc_da", a, c(0.5), x), c(0.5))
                sign = f("sub", f("mul", small, c(2.0)), c(1.0))
                slope = f("mul", f("mul", f("add", direct, through), f("exp", f("neg", o.view))), sign)
                self._acc(nu, g, plain(f("mul", slope, c(0.5))))

        out = self._out(shape, [z, nu], backward)
        self.elementwise("switch", out.view, [small, half, f("log1mexp", half)])
        return out

    def switch(self, condition: Var, a, b):
        """a where ``condition`` (no gradient flows into it) is nonzero, else b."""

        def backward(g, o):
            self._acc(a, g, condition)
            self._acc(b, g, plain(self._tmp("not", [condition.view], condition.shape)))

        return self._ew("switch", [condition, a, b], backward)

    def greater(self, a, value: float) -> Var:
        """1 where a > value, else 0 (no gradient)."""
        return plain(self._tmp("gt", [a.view, self.scalar(value)], a.shape))

    def erfc(self, a):
        def backward(g, o):  # d erfc(a) / da = -2 / sqrt(pi) exp(-a^2)
            square = self._tmp("sqr", [a.view], a.shape)
            density = self._tmp("exp", [self._tmp("neg", [square], a.shape)], a.shape)
            self._acc(a, g, plain(self._tmp("mul", [density, self.scalar(-2.0 / np.sqrt(np.pi))], a.shape)))

        return self._ew("erfc", [a], backward)

    def log1mexp(self, a):
        """log(1 - exp(a)) for a < 0, accurate at both ends."""

        def backward(g, o):  # -exp(a) / (1 - exp(a)) = -1 / expm1(-a)
            rest = self._tmp("expm1", [self._tmp("neg", [a.view], a.shape)], a.shape)
            self._acc(a, g, plain(self._tmp("div", [self.scalar(-1.0), rest], a.shape)))

        return self._ew("log1mexp", [a], backward)

    def log_ndtr(self, z):
        """log Phi(z), the standard normal's log-CDF: log(erfcx(-z / sqrt 2) / 2) - z^2 / 2 below
        z = -1 (scipy's and PyMC's split), log1p(-erfc(z / sqrt 2) / 2) above; its derivative
        sqrt(2 / pi) / erfcx(-z / sqrt 2) is finite everywhere."""
        shape, root = z.shape, 1.0 / np.sqrt(2.0)
        down = self._tmp("mul", [z.view, self.scalar(-root)], shape)  # -z / sqrt 2
        scaled = self._tmp("erfcx", [down], shape)

        def backward(g, o):
            self._acc(z, g, plain(self._tmp("div", [self.scalar(np.sqrt(2.0 / np.pi)), scaled], shape)))

        half = self._tmp("mul", [scaled, self.scalar(0.5)], shape)
        lower = self._tmp("sub", [self._tmp("log", [half], shape), self._tmp("sqr", [down], shape)], shape)
        up = self._tmp("neg", [down], shape)  # z / sqrt 2
        tail = self._tmp("mul", [self._tmp("erfc", [up], shape), self.scalar(-0.5)], shape)
        upper = self._tmp("log1p", [tail], shape)
        out = self._out(shape, [z], backward)
        self.elementwise(
            "switch", out.view, [self._tmp("lt", [z.view, self.scalar(-1.0)], shape), lower, upper]
        )
        return out

    def abs(self, a):
        """|a|, its derivative sign(a) (0 at 0, as PyTensor's)."""
        return self._ew("abs", [a], lambda g, o: self._acc(a, g, plain(self._tmp("sign", [a.view], a.shape))))

    def expm1(self, a):
        def backward(g, o):
            self._acc(a, g, plain(self._tmp("exp", [a.view], a.shape)))

        return self._ew("expm1", [a], backward)

    def sigmoid(self, a):
        def backward(g, o):  # o (1 - o)
            rest = self._tmp("sub", [self.scalar(1.0), o.view], o.shape)
            self._acc(a, g, plain(self._tmp("mul", [o.view, rest], o.shape)))

        return self._ew("sigmoid", [a], backward)

    def logaddexp(self, a, b):
        """log(exp(a) + exp(b)), as max(a, b) + log1p(exp(-|a - b|))."""

        def backward(g, o):  # d/da = sigmoid(a - b), d/db = sigmoid(b - a)
            self._acc(a, g, plain(self._tmp("sigmoid", [difference], shape)))
            self._acc(b, g, plain(self._tmp("sigmoid", [self._tmp("neg", [difference], shape)], shape)))

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
            self._acc(a, g, plain(self._tmp("sigmoid", [a.view], a.shape)))

        return self._ew("softplus", [a], backward)

    # reductions, gathers, products

    def _total(self, inputs: list[Var], backward) -> Var:
        """sum(a) (one input) or sum(a b) (two), over every element, in one pass."""
        out = self._out((), inputs, backward)
        self.fill(out.view, 0.0)
        shape = np.broadcast_shapes(*[v.shape for v in inputs])
        target = View(out.view.address, shape, (0,) * len(shape))
        code = "add" if len(inputs) == 1 else "addmul"
        self.elementwise(code, target, [target, *[v.view for v in inputs]])
        return out

    def sum(self, a) -> Var:
        return self._total([a], lambda g, o: self._acc(a, g))

    def dot(self, a, b) -> Var:
        """sum(a b)."""
        return self._total([a, b], lambda g, o: (self._acc(a, g, b), self._acc(b, g, a)))

    def sumsq(self, a) -> Var:
        """sum(a^2)."""

        def backward(g, o):
            self._acc(a, self._tmp("mul", [g, self.scalar(2.0)], ()), a)

        out = self._total([a, a], backward)
        a.uses -= 1
        return out

    def _gather(self, out: View, source: View, codes: np.ndarray) -> None:
        """out[i] = source[codes[i]]."""
        offsets = np.asarray(codes, dtype=np.int64) * source.strides[0]
        self.emit(engine.OP["OP_GATHER"], codes.size, out.address, source.address, self.index(offsets))

    def _scatter_add(self, target: View, codes: np.ndarray, source: View) -> None:
        """target[codes[i]] += source[i] (source in order, unit stride)."""
        offsets = np.asarray(codes, dtype=np.int64) * target.strides[0]
        self.emit(
            engine.OP["OP_SCATTER"], 0, codes.size, target.address, self.index(offsets), source.address, -1
        )

    def gather(self, a, codes: np.ndarray) -> Var:
        """a[codes] for a vector a."""
        out = self._out((codes.size,), [a], lambda g, o: self._scatter_add(self._adjoint(a), codes, g))
        self._gather(out.view, a.view, codes)
        return out

    def scatter_add(self, a, codes: np.ndarray, size: int) -> Var:
        """The sums of a vector a's elements by their codes: out[k] = sum of a[i] with codes[i] = k."""
        if a.view.strides != (1,):
            a = self.add(a, self.constant(np.zeros(a.shape)))

        def backward(g, o):
            rows = self._new(a.shape)
            self._gather(rows, g, codes)
            self._acc(a, rows)

        out = self._out((size,), [a], backward)
        self.fill(out.view, 0.0)
        self._scatter_add(out.view, codes, a.view)
        return out

    def matvec(self, matrix: np.ndarray, b: Var) -> Var:
        """matrix @ b for a constant matrix and a vector b."""
        stored = self._store(np.asarray(matrix, dtype=float))
        rows, columns = stored.shape
        # A few columns go one by one, row by row (see FEW_COLUMNS); else one matrix product.
        few = columns <= FEW_COLUMNS and rows >= columns
        step = stored.strides[1]
        views = [
            View(stored.address + j * step, (rows,), (stored.strides[0],)) for j in range(columns) if few
        ]

        def backward(g, o):
            if few:
                # One sum of products per column, over the rows: each joins the rows' block
                # (bayesmm.inference.blocks) instead of reading g back from memory after it.
                adjoint = self._adjoint(b)
                for j, column in enumerate(views):
                    target = View(adjoint.address + j * adjoint.strides[0], (rows,), (0,))
                    self.elementwise("addmul", target, [target, g, column])
                return
            transposed = View(stored.address, stored.shape[::-1], stored.strides[::-1])
            t = self._new(b.shape)
            self._matmul(t, transposed, g, self.scalar(1.0))
            self._acc(b, t)

        out = self._out((rows,), [b], backward)
        if few:  # a + x_j b_j, column by column
            for j, column in enumerate(views):
                coefficient = View(b.view.address + j * b.view.strides[0], (rows,), (0,))
                if j == 0:
                    self.elementwise("mul", out.view, [column, coefficient])
                else:
                    self.elementwise("addmul", out.view, [out.view, column, coefficient])
        else:
            self._matmul(out.view, stored, b.view, self.scalar(1.0))
        return out

    def total(self, values) -> Var | None:
        """values[0] + values[1] + ..., in order, the Nones left out (None: none left)."""
        values = [v for v in values if v is not None]
        if not values:
            return None
        out = values[0]
        for value in values[1:]:
            out = self.add(out, value)
        return out

    def logsumexp(self, values: list) -> Var:
        """log(exp(values[0]) + exp(values[1]) + ...), one logaddexp at a time, in order."""
        out = values[0]
        for value in values[1:]:
            out = self.logaddexp(out, value)
        return out

    def join(self, parts: list[Var]) -> Var:
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

    def piece(self, vector: Var, start: int, length: int, step: int = 1) -> Var:
        """vector[start:start + length * step:step] (a view: no instruction)."""
        stride = vector.view.strides[0]

        def backward(g, o):
            adjoint = self._adjoint(vector)
            part = View(adjoint.address + start * adjoint.strides[0], (length,), (step * adjoint.strides[0],))
            self.elementwise("add", part, [part, g])

        vector.uses += 1
        out = Var(View(vector.view.address + start * stride, (length,), (step * stride,)), vector.grad)
        if out.grad:
            self.steps.append((out, backward))
        return out

    def column(self, matrix: Var, c: int, p: int) -> Var:
        """Column c of a row-major matrix of p columns held as a vector (a view)."""
        return self.piece(matrix, c, int(np.prod(matrix.shape, dtype=int)) // p, p)

    def interleave(self, columns: list[Var]) -> Var:
        """The row-major matrix whose columns are ``columns`` (vectors of one length)."""
        p, n = len(columns), columns[0].shape[0]

        def backward(g, o):
            for c, column in enumerate(columns):
                self._acc(column, View(g.address + c * g.strides[0], (n,), (p * g.strides[0],)))

        out = self._out((n * p,), columns, backward)
        for c, column in enumerate(columns):
            self.elementwise("identity", View(out.view.address + c, (n,), (p,)), [column.view])
        return out

    def element(self, vector: Var, j: int) -> Var:
        """vector[j] as a (1,) value (a view: no instruction)."""
        return self.piece(vector, j, 1)

    # adjoints

    def _f(self, code: str, *views: View) -> View:
        """An elementwise temporary of ``views`` broadcast against each other (the steps of a
        derivative written out as a chain of operations)."""
        return self._tmp(code, list(views), np.broadcast_shapes(*(v.shape for v in views)))

    def _tmp(self, code: str, inputs: list[View], shape) -> View:
        out = self._new(shape)
        self.elementwise(code, out, inputs)
        return out

    def _adjoint(self, a: Var) -> View:
        """a's adjoint buffer, zeros when first asked for (an element of x: the gradient's)."""
        if a.adjoint is None:
            a.adjoint = self._new(a.shape)
            self.fill(a.adjoint, 0.0)
        return a.adjoint

    def _acc(self, a: Var, g, other: Var | None = None, negate: bool = False):
        """a's adjoint += (-) g (times ``other``), summed over what a was broadcast along; ``g``
        a view or a Var. The first contribution is written where a's adjoint will be (or is
        g itself, where nothing else reads a), later ones added in one pass."""
        if not a.grad:
            return
        g = g.view if isinstance(g, Var) else g
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

    def backward(self, out: Var, x_vars: list[Var], n_dim: int) -> View:
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
