"""Row blocks: the engine's instructions over the rows of a large model, run a chunk of rows
at a time.

An instruction of the engine's program runs over all of its elements before the next one
starts, so with a million rows each one streams its operands through main memory: the
log-density of ``y ~ x + (1 | g)`` makes some forty passes of 8 MB. Most of those
instructions go row by row (the element k of the output from the element k of each input:
elementwise operations, gathers of level effects, scatter-adds into the gradient, a row of
``X b``), so a run of them gives the same values when it is run a chunk of rows at a time:
the chunk's values are still in the cache when the next instruction reads them.

:func:`blocked` finds such runs in a program's instruction list and wraps each in a BLOCK
instruction (engine.c runs its instructions chunk by chunk). An instruction joins the run
only where that cannot change what any instruction reads: every two accesses to the same
workspace memory, one of them a write, must be the same rows (the same address and stride,
element k in chunk order); any other overlap (a reduction's total read back, a buffer
reused by an instruction that reads it whole) ends the run. Constants are never written.
Sums accumulate chunk by chunk, which changes their rounding only.

A value that a block writes row by row and that nothing reads after the block (an
intermediate of the log-density) never needs its full length: it lives in a slot of one
chunk's length (its operands are addressed from LOCAL_BASE, engine.c's chunk-local
addresses), so the block reads its data once and writes only what is read later.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Runs over fewer rows gain nothing (they are in the cache already).
MIN_ROWS = 4096
CHUNK = 2048
# Operand addresses from here to the constants (engine.py's CONST_BASE) are chunk-local: the
# workspace address (address - LOCAL_BASE) holds rows [lo, lo + CHUNK) of the current chunk.
LOCAL_BASE = 1 << 39


@dataclass(frozen=True)
class Access:
    """One operand's memory: its first and last element's addresses, whether it is written,
    and (address, stride) where it is read or written row by row (element k at
    address + k stride), else None."""

    first: int
    last: int
    write: bool
    rows: tuple[int, int] | None
    field: int | None = None  # where the instruction's words hold the address (row accesses)


@dataclass
class _Instruction:
    words: list[int]
    rows: int | None  # the rows it goes over, or None (it cannot join a block)
    accesses: list[Access] | None  # None: not known (it can be moved past nothing)


def _extent(address: int, stride: int, count: int) -> tuple[int, int]:
    end = address + stride * (count - 1)
    return min(address, end), max(address, end)


def _strided(address: int, shape, strides, write: bool) -> Access:
    """The access to every element of a strided view (not row by row)."""
    first = address + sum(min(0, (n - 1) * s) for n, s in zip(shape, strides, strict=True))
    last = address + sum(max(0, (n - 1) * s) for n, s in zip(shape, strides, strict=True))
    return Access(first, last, write, None)


def _row_access(address: int, stride: int, count: int, write: bool, field: int | None = None) -> Access:
    return Access(*_extent(address, stride, count), write, (address, stride) if stride else None, field)


def _whole(address: int, offsets: np.ndarray, write: bool) -> Access:
    if offsets.size == 0:
        return Access(-1, -2, write, None)  # nothing: overlaps nothing
    return Access(address + int(offsets.min()), address + int(offsets.max()), write, None)


class _Reader:
    """Decodes instructions (engine.py's word layouts) into their rows and accesses."""

    def __init__(self, op: dict, floats: np.ndarray, const_base: int, ew: dict | None = None):
        self.op = op
        self.ew = ew or {}
        self.floats = floats
        self.const_base = const_base

    def const(self, address: int, count: int) -> np.ndarray:
        start = address - self.const_base
        return self.floats[start : start + count]

    def index(self, address: int, count: int) -> np.ndarray:
        """Element offsets stored as 32-bit integers (engine.py's _Translator.index)."""
        return self.const(address, (count + 1) // 2).view(np.int32)[:count].astype(np.int64)

    def read(self, words: list[int]) -> _Instruction:
        kind = words[0]
        if kind == self.op["OP_EW"]:
            return self._elementwise(words)
        if kind == self.op["OP_FILL"]:
            return _Instruction(words, None, [Access(*_extent(words[1], 1, words[2]), True, None)])
        if kind == self.op["OP_GATHER"]:
            n, out, source, offsets = words[1:5]
            offsets = self.index(offsets, n)
            return _Instruction(words, n, [_row_access(out, 1, n, True, 2), _whole(source, offsets, False)])
        if kind == self.op["OP_SCATTER"]:
            n, out, out_offsets, y, y_offsets = words[2:7]
            out_offsets = self.index(out_offsets, n)
            if y_offsets < 0:  # y read in order
                y_access = _row_access(y, 1, n, False, 5)
            else:
                y_access = _whole(y, self.index(y_offsets, n), False)
            return _Instruction(words, n, [_whole(out, out_offsets, True), y_access])
        if kind == self.op["OP_MATMUL"]:
            return self._matmul(words)
        if kind == self.op["OP_PICK"]:
            _, _, nin, n, positions, out, out_stride = words[:7]
            at = self.const(positions, n).astype(np.int64)
            accesses = [_whole(out, at * out_stride, True)]
            accesses += [_whole(words[7 + 2 * k], at * words[8 + 2 * k], False) for k in range(nin)]
            return _Instruction(words, None, accesses)
        if kind == self.op["OP_CHOLESKY"]:
            n, out, source, rs, cs = words[1:6]
            return _Instruction(words, None, [Access(out, out + n * n - 1, True, None),
                                              _strided(source, (n, n), (rs, cs), False)])  # fmt: skip
        if kind == self.op["OP_SOLVE"]:
            n, nrhs, out, a, a_rs, a_cs, b, b_rs, b_cs = words[1:10]
            accesses = [Access(out, out + n * nrhs - 1, True, None), _strided(a, (n, n), (a_rs, a_cs), False),
                        _strided(b, (n, nrhs), (b_rs, b_cs), False)]  # fmt: skip
            return _Instruction(words, None, accesses)
        if kind == self.op["OP_LOOP"]:
            nin, nout, _, nd = words[1:5]
            shape, at = words[5 : 5 + nd], 5 + nd
            accesses = []
            for k in range(nout + nin):
                accesses.append(_strided(words[at], shape, words[at + 1 : at + 1 + nd], k < nout))
                at += 1 + nd
            return _Instruction(words, None, accesses)
        return _Instruction(words, None, None)

    def _elementwise(self, words: list[int]) -> _Instruction:
        _, _, nin, nd = words[:4]
        shape = words[4 : 4 + nd]
        operands = [(words[4 + nd + k * (nd + 1)], words[5 + nd + k * (nd + 1) : 5 + nd + k * (nd + 1) + nd])
                    for k in range(nin + 1)]  # fmt: skip
        if nd != 1:
            accesses = [_strided(a, shape, s, k == 0) for k, (a, s) in enumerate(operands)]
            return _Instruction(words, None, accesses)
        n = shape[0]
        (out, (out_stride,)), inputs = operands[0], [(a, s[0]) for a, s in operands[1:]]
        if out_stride == 0:
            # A reduction into one element (engine.c's accumulating loop): out = out op b.
            if nin not in (2, 3) or inputs[0] != (out, 0):
                return _Instruction(words, None, None)
            accesses = [Access(out, out, True, None)]
            inputs = inputs[1:]
        else:
            accesses = [_row_access(out, out_stride, n, True, 5)]
        accesses += [
            _row_access(a, s, n, False, 7 + 2 * k + (out_stride == 0) * 2) for k, (a, s) in enumerate(inputs)
        ]
        return _Instruction(words, n, accesses)

    def _matmul(self, words: list[int]) -> _Instruction:
        m, n, k, out, out_rs, out_cs, a, a_rs, a_cs, b, b_rs, b_cs, alpha, c, c_rs, c_cs, beta = words[1:18]
        accesses = [
            _strided(a, (m, k), (a_rs, a_cs), False),
            _strided(b, (k, n), (b_rs, b_cs), False),
            Access(alpha, alpha, False, None),
        ]
        if c >= 0:
            accesses.append(Access(beta, beta, False, None))
        if n != 1:  # not row by row
            accesses.append(_strided(out, (m, n), (out_rs, out_cs), True))
            if c >= 0:
                accesses.append(_strided(c, (m, n), (c_rs, c_cs), False))
            return _Instruction(words, None, accesses)
        accesses.append(_row_access(out, out_rs, m, True, 4))
        if c >= 0:
            accesses.append(_row_access(c, c_rs, m, False, 14))
        return _Instruction(words, m, accesses)


def _conflict(new: Access, old: Access, const_base: int, rows_apart: bool = False) -> bool:
    """Whether the order of two accesses matters: they overlap in the workspace and one of
    them writes; not where both go over the same rows in one run (``rows_apart`` False),
    whose chunks keep their order row by row."""
    if new.first >= const_base or old.first >= const_base:
        return False
    if not (new.write or old.write) or not _overlaps(new, old):
        return False
    return rows_apart or not (new.rows is not None and new.rows == old.rows)


def blocked(
    code: list[list[int]], op: dict, floats: np.ndarray, const_base: int, top: int, outputs: list[Access],
    ew: dict,
) -> tuple[list[list[int]], int]:
    """``code`` with its runs of row-by-row instructions over at least MIN_ROWS rows each
    wrapped in one BLOCK instruction: [OP_BLOCK, rows, chunk, count, (length, words..) x count],
    and the workspace's new size (``top``: its size before; the chunk-local slots go there).
    ``outputs``: the program's outputs (never chunk-local).

    While a run is open, an instruction that cannot join it moves before it where it touches
    nothing the run touches (a scalar computed from the parameters, a reduction's starting
    value), else after it (a scalar computed from the run's sum), as long as the instructions
    of the run that follow touch nothing it touches; an instruction that can do neither, or
    whose accesses are not known, ends the run. ``ew``: the elementwise codes (a product of
    rows that only a sum reads is made in that sum: _sums_of_products, _products_added)."""
    reader = _Reader(op, floats, const_base, ew)
    return _localized(_runs(code, reader), reader, top, outputs)


def _runs(code: list[list[int]], reader: _Reader) -> list[list[int]]:
    """``code`` with its runs wrapped in BLOCK instructions (blocked's first step); the
    instructions moved before or after a run form runs of their own."""
    op, const_base = reader.op, reader.const_base
    result: list[list[int]] = []
    run: list[_Instruction] = []
    before: list[_Instruction] = []
    after: list[_Instruction] = []

    def flush():
        if not run:
            return
        result.extend(_runs([instruction.words for instruction in before], reader))
        if len(run) > 1:
            words = [op["OP_BLOCK"], run[0].rows, CHUNK, len(run)]
            for instruction in run:
                words += [len(instruction.words) + 1, *instruction.words]
            result.append(words)
        else:
            result.extend(instruction.words for instruction in run)
        result.extend(_runs([instruction.words for instruction in after], reader))
        for group in (before, run, after):
            group.clear()

    def independent(instruction: _Instruction, of: list[_Instruction], rows_apart: bool) -> bool:
        return not any(
            _conflict(a, b, const_base, rows_apart)
            for other in of
            for b in other.accesses
            for a in instruction.accesses
        )

    for words in code:
        instruction = reader.read(words)
        large = instruction.rows is not None and instruction.rows >= MIN_ROWS
        # An instruction over more rows than the open run's starts a run of its own; one over
        # fewer (a level's values in a run over the data's rows) moves like a scalar.
        if run and instruction.accesses is not None and not (large and instruction.rows > run[0].rows):
            if independent(instruction, after, rows_apart=True):
                if instruction.rows == run[0].rows and independent(instruction, run, rows_apart=False):
                    run.append(instruction)
                    continue
                if independent(instruction, run, rows_apart=True):
                    before.append(instruction)
                    continue
            if len(after) < 64:
                after.append(instruction)
                continue
        flush()
        if large and instruction.accesses is not None:
            run.append(instruction)
        else:
            result.append(words)
    flush()
    return result


def _inner(words: list[int]) -> list[list[int]]:
    """A BLOCK's instructions."""
    inner, position = [], 5
    for _ in range(words[3]):
        length = words[position - 1]
        inner.append(words[position : position + length - 1])
        position += length
    return inner


def _local(address: int, rows: int, inner: list[_Instruction], later: list[_Instruction],
           outputs: list[Access]) -> tuple[int, int] | None:  # fmt: skip
    """The first and last of the block's instructions that touch the rows at ``address``, or
    None where the value must keep its full length: something other than these rows one by
    one touches it in the block, its first touch reads it, or something after the block (or
    the program's result) reads it before all of it is written again."""
    span = Access(address, address + rows - 1, True, (address, 1))
    touching = [j for j, ins in enumerate(inner) if any(_overlaps(a, span) for a in ins.accesses)]
    for j in touching:
        if any(_overlaps(a, span) and a.rows != span.rows for a in inner[j].accesses):
            return None
    if any(_overlaps(a, span) and not a.write for a in inner[touching[0]].accesses):
        return None
    if any(_overlaps(a, span) for a in outputs):
        return None
    for instruction in later:
        if instruction.accesses is None:
            return None
        overlapping = [a for a in instruction.accesses if _overlaps(a, span)]
        if any(not a.write for a in overlapping):
            return None
        if any(a.first <= span.first and a.last >= span.last and a.rows == (a.first, 1) for a in overlapping):
            break
    return touching[0], touching[-1]


def _sums_of_products(inner: list[_Instruction], reader: _Reader, rows: int, later: list[_Instruction],
                      outputs: list[Access]) -> list[_Instruction]:  # fmt: skip
    """A block's instructions with each product of rows (a mul, a sqr) that only the
    reduction right after it reads fused with it into one sum of products (engine.c's
    sum_of_products: the same running sums, so the same bits): one pass over the chunk
    instead of two, and no slot for the products."""
    result, j = [], 0
    while j < len(inner):
        fused = _fused_product(inner, j, reader, rows, later, outputs)
        result.append(fused or inner[j])
        j += 2 if fused else 1
    return result


def _fused_product(inner, j, reader, rows, later, outputs) -> _Instruction | None:
    """inner[j] and inner[j + 1] as one sum of products, or None where they are not a
    product of rows (unit-stride output) and the reduction of it into one element."""
    if j + 1 >= len(inner):
        return None
    ew, ew_op = reader.ew, reader.op["OP_EW"]
    product, total = inner[j].words, inner[j + 1].words
    if product[0] != ew_op or total[0] != ew_op or product[3] != 1 or total[3] != 1:
        return None
    if product[1] not in (ew["mul"], ew["sqr"]) or total[1] != ew["add"] or total[2] != 2:
        return None
    n, out, out_stride = product[4:7]
    if out_stride != 1 or total[4] != n or total[5:] != [total[5], 0, total[5], 0, out, 1]:
        return None
    factors = product[7:11] if product[1] == ew["mul"] else product[7:9] * 2
    accumulator = total[5]
    if any(factors[k] == accumulator for k in (0, 2)):
        return None  # a product of the running total (read before it accumulates)
    if _local(out, rows, inner, later, outputs) != (j, j + 1):
        return None  # the products are read elsewhere
    return reader.read([ew_op, ew["addmul"], 3, 1, n, accumulator, 0, accumulator, 0, *factors])


def _products_added(inner: list[_Instruction], reader: _Reader, rows: int, later: list[_Instruction],
                    outputs: list[Access]) -> list[_Instruction]:  # fmt: skip
    """A block's instructions with each product of rows that only one later sum of rows
    reads (a linear predictor's x b + the rest) computed in that sum, a + b c: one pass over
    the chunk fewer (the same bits: the product is rounded, then added)."""
    ew, ew_op = reader.ew, reader.op["OP_EW"]
    result = list(inner)
    for j in range(len(result) - 1, -1, -1):
        product = result[j].words
        if product[0] != ew_op or product[1] != ew["mul"] or product[3] != 1 or product[6] != 1:
            continue
        n, out = product[4], product[5]
        span = _local(out, rows, result, later, outputs)
        if span is None or span[0] != j:
            continue
        k = span[1]
        total = result[k].words
        if total[:5] != [ew_op, ew["add"], 2, 1, n] or total[6] != 1 or (out, 1) not in (
            (total[7], total[8]), (total[9], total[10])
        ):  # fmt: skip
            continue
        products, factors = Access(out, out + n - 1, True, None), result[j].accesses[1:]
        between = [a for ins in result[j + 1 : k] for a in ins.accesses]
        if any(_overlaps(a, products) for a in between):
            continue  # the products changed in between (the next step of a product of three)
        if any(_overlaps(a, f) and a.write for a in between for f in factors):
            continue  # a factor written in between
        other = total[9:11] if (total[7], total[8]) == (out, 1) else total[7:9]
        if other[0] == out:
            continue  # the product added to itself
        fused = reader.read([ew_op, ew["addmul"], 3, 1, n, total[5], 1, *other, *product[7:11]])
        result[k] = fused
        del result[j]
    return result


def _overlaps(a: Access, b: Access) -> bool:
    return not (a.last < b.first or b.last < a.first)


def _localized(code: list[list[int]], reader: _Reader, top: int, outputs: list[Access]):
    """``code`` with each block's values that live only within it moved to chunk-local slots
    (slots reused once a value is dead), and the workspace's new size."""
    op = reader.op
    # Every instruction decoded once, blocks' inner ones in place; ``ends[i]``: where the
    # instructions after top-level instruction i start.
    flat, ends = [], []
    for words in code:
        flat += [reader.read(w) for w in (_inner(words) if words[0] == op["OP_BLOCK"] else [words])]
        ends.append(len(flat))
    workspace = top
    result = []
    for index, words in enumerate(code):
        if words[0] != op["OP_BLOCK"]:
            result.append(words)
            continue
        rows, chunk, count = words[1:4]
        inner, later = flat[ends[index] - count : ends[index]], flat[ends[index] :]
        inner = _sums_of_products(inner, reader, rows, later, outputs)
        inner = _products_added(inner, reader, rows, later, outputs)
        written = sorted(
            {a.rows[0] for ins in inner for a in ins.accesses if a.write and a.rows and a.rows[1] == 1}
        )
        spans = {}
        for address in written:
            if address < reader.const_base and (span := _local(address, rows, inner, later, outputs)):
                spans[address] = span
        slot_of, free, busy = {}, [], []  # busy: (the last instruction that touches it, slot)
        for address, (first, last) in sorted(spans.items(), key=lambda item: item[1]):
            for done in [b for b in busy if b[0] < first]:
                busy.remove(done)
                free.append(done[1])
            slot_of[address] = free.pop() if free else len(busy)
            busy.append((last, slot_of[address]))
        workspace = max(workspace, top + (max(slot_of.values(), default=-1) + 1) * chunk)
        body = [op["OP_BLOCK"], rows, chunk, len(inner)]
        for ins in inner:
            new = list(ins.words)
            for a in ins.accesses:
                if a.rows and a.rows[0] in slot_of and a.field is not None:
                    new[a.field] = LOCAL_BASE + top + slot_of[a.rows[0]] * chunk
            body += [len(new) + 1, *new]
        result.append(body)
    return result, workspace
