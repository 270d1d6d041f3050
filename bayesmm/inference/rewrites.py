"""Sums over the rows that the engine need not pass over: rewrites of a model's graph.

The log-density of n rows sums a per-row term in which some operands are the same for every
row: the normal's ``-0.5 z^2 - log(sigma) - log(2 pi) / 2``, a parameter's check (``switch(
sigma > 0, term, -inf)``). PyTensor's rewrites leave them inside the sum, so the engine
makes one pass over the rows for each of them. Here a sum over axes of an elementwise
operation splits off its operands that are the same along those axes (broadcast: length 1
on every summed axis):

    sum(a + s)        -> sum(a) + n s          sum(a - s) -> sum(a) - n s
    sum(a * s)        -> s sum(a)              sum(-a)    -> -sum(a)
    sum(switch(c, a, b)) -> switch(c, sum(a), sum(b))     (c the same along the axes)

with n the number of elements summed. The results are equal up to rounding (the engine's
tests compare the rewritten graph's log-density and gradient with PyMC's own).
"""

from __future__ import annotations

import numpy as np


def _summed(variable, axes: tuple[int, ...]) -> bool:
    """Whether ``variable`` has length 1 on every summed axis (it is the same along them)."""
    return all(variable.type.broadcastable[a] for a in axes)


def _rewriter():
    import pytensor.scalar as ps
    import pytensor.tensor as pt
    from pytensor.graph.rewriting.basic import node_rewriter
    from pytensor.tensor.elemwise import Elemwise
    from pytensor.tensor.math import Sum

    @node_rewriter([Sum])
    def split_sum(fgraph, node):
        (x,) = node.inputs
        out = node.outputs[0]
        if x.owner is None or not isinstance(x.owner.op, Elemwise) or x.dtype != "float64":
            return None
        if out.dtype != "float64" or len(fgraph.clients.get(x, [])) != 1:
            return None  # x read elsewhere: it is computed anyway
        axes = tuple(range(x.ndim)) if node.op.axis is None else tuple(node.op.axis)
        sizes = [x.type.shape[a] for a in axes]
        if not axes or any(s is None for s in sizes):
            return None
        n = float(np.prod(sizes))
        kept = [i for i in range(x.ndim) if i not in axes]

        def squeezed(v):
            return v.dimshuffle(kept)

        def total(v):
            """The sum of v broadcast to x's shape, over the axes; None where v is broadcast
            on some other axis (its sum would need x's shape)."""
            if _summed(v, axes):
                return pt.mul(n, squeezed(v)) if n != 1 else squeezed(v)
            if v.type.broadcastable != x.type.broadcastable:
                return None
            return pt.sum(v, axis=node.op.axis)

        scalar, operands = x.owner.op.scalar_op, x.owner.inputs
        same = [v for v in operands if _summed(v, axes)]
        rest = [v for v in operands if not _summed(v, axes)]
        new = None
        if isinstance(scalar, ps.Add) and same and rest:
            inner = rest[0] if len(rest) == 1 else pt.add(*rest)
            part = total(inner)
            new = None if part is None else part + total(pt.add(*same))
        elif isinstance(scalar, ps.Mul) and same and rest:
            inner = rest[0] if len(rest) == 1 else pt.mul(*rest)
            part = total(inner)
            new = None if part is None else pt.mul(*[squeezed(v) for v in same], part)
        elif isinstance(scalar, ps.Sub) and len(same) == 1:
            a, b = (total(v) for v in operands)
            new = None if a is None or b is None else a - b
        elif isinstance(scalar, ps.Neg):
            part = total(operands[0])
            new = None if part is None else -part
        elif isinstance(scalar, ps.Switch) and _summed(operands[0], axes):
            a, b = total(operands[1]), total(operands[2])
            new = None if a is None or b is None else pt.switch(squeezed(operands[0]), a, b)
        if new is None or new.type != out.type:
            return None
        return [new]

    return split_sum


def register(mode):
    """``mode`` with the rewrites applied (to a fixed point) after PyTensor's stabilizing
    rewrites, before its specializing ones."""
    from pytensor.graph.rewriting.basic import in2out

    return mode.register((in2out(_rewriter(), ignore_newtrees=False, name="bayesmm_split_sums"), 1.9))
