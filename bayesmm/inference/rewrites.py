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

A switch over the rows whose two branches apply the same operation computes it twice: a
Bernoulli row's log-density is ``switch(y, -softplus(-eta), -softplus(eta))`` and its
derivative ``switch(y, 1 - p, -p)``, so PyTensor evaluates both branches on every row and
the engine evaluates each on its half only (gathering and scattering the rows it picks: 17%
of VerbAgg's gradient). Here the operation moves out of the switch, onto the switch of its
operands, until the branches differ in one leaf:

    switch(c, f(a), f(b))             -> f(switch(c, a, b))       (the other operands shared)
    switch(c, -x, x)                  -> x switch(c, -1, 1)
    switch(c, k - x, -x)              -> switch(c, k, 0) - x

so the Bernoulli rows are ``-softplus(eta s)`` and ``y - p``, one pass each, with ``s`` and
``y`` switches of the data that the engine evaluates once. Each value is the same number
(the operation sees the operand the switch would have chosen; ``x * -1`` is ``-x``; ``0 - x``
differs from ``-x`` only in the sign of a zero).
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


def _switch_rewriter():
    import pytensor.scalar as ps
    import pytensor.tensor as pt
    from pytensor.graph.rewriting.basic import node_rewriter
    from pytensor.tensor.elemwise import Elemwise

    def scalar_op(variable):
        owner = variable.owner
        if owner is None or not isinstance(owner.op, Elemwise) or len(owner.outputs) != 1:
            return None
        return owner.op.scalar_op

    def pulled(fgraph, c, a, b):
        """switch(c, a, b) with the operation both branches apply outside it, or None; the
        branches' own nodes go (each is read by this switch alone) or nothing is done."""
        sole = {v: len(fgraph.clients.get(v, [])) == 1 for v in (a, b)}
        op_a, op_b = scalar_op(a), scalar_op(b)
        if isinstance(op_a, ps.Neg) and a.owner.inputs[0] is b and sole[a]:
            return b * pt.switch(c, -1.0, 1.0)
        if isinstance(op_b, ps.Neg) and b.owner.inputs[0] is a and sole[b]:
            return a * pt.switch(c, 1.0, -1.0)
        if not (sole[a] and sole[b]) or op_a is None or op_b is None:
            return None
        if isinstance(op_a, ps.Sub) and isinstance(op_b, ps.Neg) and a.owner.inputs[1] is b.owner.inputs[0]:
            return pt.switch(c, a.owner.inputs[0], 0.0) - b.owner.inputs[0]
        if isinstance(op_a, ps.Neg) and isinstance(op_b, ps.Sub) and b.owner.inputs[1] is a.owner.inputs[0]:
            return pt.switch(c, 0.0, b.owner.inputs[0]) - a.owner.inputs[0]
        if a.owner.op != b.owner.op:
            return None
        pairs = list(zip(a.owner.inputs, b.owner.inputs, strict=True))
        differ = [k for k, (u, v) in enumerate(pairs) if u is not v]
        if len(differ) != 1 or pairs[differ[0]][0].dtype != pairs[differ[0]][1].dtype:
            return None
        (k,) = differ
        u, v = pairs[k]
        # The new switch of the operands, itself pulled apart now (the walk does not come
        # back to it once the branches' old nodes are gone).
        plain, inner = pt.switch(c, u, v), pulled(fgraph, c, u, v)
        inputs = list(a.owner.inputs)
        inputs[k] = inner if inner is not None and inner.type == plain.type else plain
        return a.owner.op(*inputs)

    @node_rewriter([Elemwise])
    def pull_out_of_switch(fgraph, node):
        if not isinstance(node.op.scalar_op, ps.Switch):
            return None
        c, a, b = node.inputs
        out = node.outputs[0]
        if out.dtype != "float64" or a.dtype != b.dtype:
            return None
        new = pulled(fgraph, c, a, b)
        if new is None or new.type != out.type:
            return None
        return [new]

    return pull_out_of_switch


def register(mode):
    """``mode`` with the rewrites applied (each to a fixed point): the sums after PyTensor's
    stabilizing rewrites, before its specializing ones; the switches after the specializing
    ones, which spell the branches as the engine evaluates them (``1 - p`` and ``-p``)."""
    from pytensor.graph.rewriting.basic import in2out

    sums = in2out(_rewriter(), ignore_newtrees=False, name="bayesmm_split_sums")
    switches = in2out(_switch_rewriter(), ignore_newtrees=False, name="bayesmm_switches")
    return mode.register((sums, 1.9), (switches, 2.5))
