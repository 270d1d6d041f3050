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

with n the number of elements summed. Two more move a number that is the same for every
row to the levels' side of a gather or a scatter-add, where there are fewer elements:

    s + u[g]               -> (s + u)[g]             (the level effects of every row)
    inc(zeros, y / s, g)   -> inc(zeros, y, g) / s   (their gradient; y * s likewise)

The results are equal up to rounding (the engine's tests compare the rewritten graph's
log-density and gradient with PyMC's own).
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


def _fewer(levels, rows) -> bool:
    """Whether a value of ``levels`` has at most half the elements of one of ``rows``."""
    a, b = levels.type.shape, rows.type.shape
    return None not in a and None not in b and 2 * np.prod(a) <= np.prod(b)


def _only_reader(fgraph, variable) -> bool:
    return len(fgraph.clients.get(variable, [])) == 1


def _level_rewriters():
    import pytensor.scalar as ps
    import pytensor.tensor as pt
    from pytensor.graph.rewriting.basic import node_rewriter
    from pytensor.tensor.basic import Alloc, get_underlying_scalar_constant_value
    from pytensor.tensor.elemwise import DimShuffle, Elemwise
    from pytensor.tensor.exceptions import NotScalarConstantError
    from pytensor.tensor.subtensor import AdvancedIncSubtensor, AdvancedSubtensor

    def gathered(fgraph, v):
        """(the gather's node, the DimShuffle's node or None) where ``v`` is level values
        gathered by rows (``u[g]``, or ``u[g]`` of a one-column ``u`` as a vector) and read
        only where ``v`` is."""
        shuffle = None
        if v.owner is not None and isinstance(v.owner.op, DimShuffle) and v.owner.op.new_order == (0,):
            shuffle, v = v.owner, v.owner.inputs[0]
            if not _only_reader(fgraph, v):
                return None
        if v.owner is None or not isinstance(v.owner.op, AdvancedSubtensor):
            return None
        return v.owner, shuffle

    @node_rewriter([Elemwise])
    def add_before_gather(fgraph, node):
        (out,) = node.outputs
        if not isinstance(node.op.scalar_op, ps.Add) or out.ndim != 1 or out.dtype != "float64":
            return None
        numbers = [v for v in node.inputs if v.type.broadcastable == (True,)]
        found = [(v, gathered(fgraph, v)) for v in node.inputs if not v.type.broadcastable[0]]
        found = [(v, f) for v, f in found if f is not None and _only_reader(fgraph, v)]
        if not numbers or not found:
            return None
        v, (gather, shuffle) = found[0]
        levels = gather.inputs[0]
        if levels.dtype != "float64" or not _fewer(levels, out):
            return None
        shifted = pt.add(levels, *numbers)
        if shifted.type.shape != levels.type.shape:
            return None
        moved = gather.op(shifted, *gather.inputs[1:])
        moved = shuffle.op(moved) if shuffle is not None else moved
        rest = [w for w in node.inputs if w is not v and all(w is not n for n in numbers)]
        new = pt.add(moved, *rest) if rest else moved
        return [new] if new.type == out.type else None

    @node_rewriter([AdvancedIncSubtensor])
    def scale_after_scatter(fgraph, node):
        base, y, *indices = node.inputs
        # The values are added to a broadcast number (zero, or the gradient of the level
        # effects' prior): added after the scaled sums.
        if node.op.set_instead_of_inc or base.owner is None or not isinstance(base.owner.op, Alloc):
            return None
        try:
            zero = get_underlying_scalar_constant_value(base.owner.inputs[0]) == 0
        except NotScalarConstantError:
            zero = False
        if y.owner is None or not isinstance(y.owner.op, Elemwise) or len(y.owner.inputs) != 2:
            return None
        scalar = y.owner.op.scalar_op
        if not isinstance(scalar, ps.Mul | ps.TrueDiv) or not _only_reader(fgraph, y):
            return None
        values, scale = y.owner.inputs
        if isinstance(scalar, ps.Mul) and all(values.type.broadcastable):
            values, scale = scale, values
        if not all(scale.type.broadcastable) or values.type != y.type or scale.ndim > base.ndim:
            return None
        if base.dtype != "float64" or not _fewer(base, y):
            return None
        summed = node.op(pt.zeros_like(base), values, *indices)
        new = summed / scale if isinstance(scalar, ps.TrueDiv) else summed * scale
        new = new if zero else base + new
        return [new] if new.type == node.outputs[0].type else None

    return add_before_gather, scale_after_scatter


def register(mode):
    """``mode`` with the rewrites applied (to a fixed point): the split sums after PyTensor's
    stabilizing rewrites, before its specializing ones; the moves to the levels' side after
    the flattening of nested sums (``add_mul_fusion``), so that all the numbers of a sum move."""
    from pytensor.graph.rewriting.basic import in2out

    split = in2out(_rewriter(), ignore_newtrees=False, name="bayesmm_split_sums")
    levels = in2out(*_level_rewriters(), ignore_newtrees=False, name="bayesmm_to_the_levels")
    return mode.register((split, 1.9), (levels, 48.5))
