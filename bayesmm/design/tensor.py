"""Tensor-product smooths ``t2(x, z)`` as mixed-model terms: mgcv's construction for mixed
models (Wood, Scheipl and Faraway 2013, "Straightforward intermediate rank tensor product
smoothing in mixed models"), which brms takes through ``smoothCon`` and ``smooth2random``.

Each column gets a marginal basis of k functions (mgcv's default for ``t2``: the cubic
regression spline, k = 5), re-parameterized (mgcv's ``nat.param``, type 3) so that its
penalty is the identity on its k - 2 penalized functions Z_i and zero on its two
unpenalized ones N_i (a constant and a line), each part scaled to a mean square of one.
The tensor product's columns are the row-wise products of one part of each margin: for two
columns Z_x Z_z, N_x Z_z, Z_x N_z and N_x N_z. Each product but the last has its own
identity penalty, so each is a random effect with an SD of its own, ``sds(t2(x, z)_1)``,
``_2``, ``_3`` (brms's names); the last, the product of the unpenalized lines (1, x, z, xz),
constrained to sum to zero over the rows, enters the fixed effects as ``t2(x, z)_1`` ...
Each block of a t2() term is a ``TensorSmooth`` in the design's list of smooths, so the
model, priors, summaries, predictions and simulation treat it as they treat an s() term.

mgcv takes the unpenalized functions of each margin from an eigen-decomposition of the
penalty, whose two zero eigenvalues leave the basis of their space to rounding; bayesmm
takes the constant and the line through it, orthonormal, so the construction is the same
on every machine (the fixed columns' span and the first block are mgcv's exactly; the
other blocks span mgcv's spaces).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .errors import DataError
from .smooth import PerLevel, spline_basis, spline_setup

__all__ = ["TensorSmooth", "Margin", "tensor_terms"]


@dataclass
class Margin:
    """One column's marginal basis: its knots (and, thin-plate, shift and UZ), and the map
    from its raw basis to the re-parameterized one (the first ``rank`` columns penalized)."""

    bs: str
    knots: np.ndarray
    transform: np.ndarray  # (k, k)
    rank: int
    shift: float | np.ndarray = 0.0
    UZ: np.ndarray | None = None

    def basis(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The penalized functions Z and the unpenalized N (constant, line) at ``x``."""
        X = spline_basis(x, self.bs, self.knots, self.shift, self.UZ) @ self.transform
        return X[:, : self.rank], X[:, self.rank :]


def _canonical_null(X: np.ndarray, null: np.ndarray) -> np.ndarray:
    """An orthonormal basis (k x 2) of the penalty's null space ``null`` (k x 2): the
    coefficients of the constant first, then those of the line orthogonal to them."""
    functions = X @ null
    centred = functions - functions.mean(axis=0)
    _, vectors = np.linalg.eigh(centred.T @ centred)  # ascending: the constant's direction first
    basis = null @ vectors
    return basis / np.linalg.norm(basis, axis=0)


def _signed(X: np.ndarray, transform: np.ndarray, values: np.ndarray, rank: int) -> None:
    """Fix the unpenalized pair's signs (in place): the constant positive, the line rising."""
    signs = np.sign([X[:, rank].mean(), np.cov(X[:, rank + 1], values)[0, 1]])
    signs[signs == 0] = 1
    X[:, rank:] *= signs
    transform[:, rank:] *= signs


def _margin(values: np.ndarray, k: int, bs: str) -> tuple[Margin, np.ndarray]:
    """One column's margin and its re-parameterized basis at the fitted rows (mgcv's
    ``nat.param(type = 3, unit.fnorm = TRUE)``)."""
    knots, shift, UZ, S = spline_setup(np.unique(values)[:, None], k, bs)
    X = spline_basis(values, bs, knots, shift, UZ)
    eigenvalues, vectors = np.linalg.eigh((S + S.T) / 2)
    order = np.argsort(eigenvalues)[::-1]
    eigenvalues, vectors = eigenvalues[order], vectors[:, order]
    rank = k - 2
    vectors[:, rank:] = _canonical_null(X, vectors[:, rank:])
    scale = np.ones(k)
    scale[:rank] = np.sqrt(eigenvalues[:rank])
    rotated = X @ vectors
    norms = (rotated**2).sum(axis=0) / scale**2
    scale[rank:] = np.sqrt(norms[rank:] / norms[:rank].mean())
    transform = vectors / scale
    X = rotated / scale
    # mgcv's type 3 then turns the unpenalized pair to the constant and a line: with the
    # canonical pair above it already is, up to the signs fixed here.
    _signed(X, transform, values, rank)
    for part in (slice(0, rank), slice(rank, k)):
        unit = 1 / np.sqrt(np.mean(X[:, part] ** 2))
        X[:, part] *= unit
        transform[:, part] *= unit
    return Margin(bs, knots, transform, rank, shift, UZ), X


def _row_product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The row-wise Kronecker product: column j * b.shape[1] + l is a[:, j] * b[:, l]."""
    return (a[:, :, None] * b[:, None, :]).reshape(len(a), -1)


def _blocks(parts: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
    """mgcv's ``t2.model.matrix`` (full = FALSE): the products of one part (Z or N) of each
    margin, in mgcv's order; the last, all N, is the unpenalized one."""
    blocks = list(parts[0])
    for Z, N in parts[1:]:
        blocks = [_row_product(b, Z) for b in blocks] + [_row_product(b, N) for b in blocks]
    return blocks


@dataclass
class TensorSmooth(PerLevel):
    """One penalized block of a ``t2()`` term (the first also carries the term's fixed
    columns): its margins, its place among the blocks, and Z at the fitted rows."""

    column: str
    k: int
    margins: list[Margin]
    block: int  # 0 .. 2^d - 2, mgcv's order
    constraint: np.ndarray  # (2^d, 2^d - 1): the sum-to-zero constrained unpenalized block
    Z: np.ndarray
    variables: tuple[str, ...] = ()
    by: str | None = None
    level: str | None = None
    index: int = 0
    call: ClassVar[str] = "t2"

    @property
    def term(self) -> str:
        if self.by is None:
            return f"t2({self.column})"
        return f"t2({self.column}, by = {self.by})[{self.level}]"

    @property
    def name(self) -> str:
        """The block's name, brms's: ``t2(x, z)_1`` for the first (its SD ``sds(t2(x, z)_1)``)."""
        return f"{self.term}_{self.block + 1}"

    @property
    def key(self) -> str:
        base = "t2_" + "_".join(self.predictors)
        base = base if self.by is None else f"{base}_by_{self.by}{self.index}"
        return f"{base}_{self.block + 1}"

    @property
    def fixed_names(self) -> list[str]:
        """The fixed columns (the first block carries the term's): ``t2(x, z)_1`` ..."""
        if self.block:
            return []
        return [f"{self.term}_{j + 1}" for j in range(self.constraint.shape[1])]

    def columns(self, x: np.ndarray, by_labels=None) -> tuple[np.ndarray, np.ndarray]:
        """The fixed columns (the first block's; else none) and Z at new rows (rows x d)."""
        x = np.asarray(x, dtype=float).reshape(len(x), -1)
        blocks = _blocks([m.basis(x[:, i]) for i, m in enumerate(self.margins)])
        blocks = [self.on_level(b, by_labels) for b in blocks]
        fixed = blocks[-1] @ self.constraint if self.block == 0 else np.zeros((len(x), 0))
        return fixed, blocks[self.block]


def tensor_terms(columns: tuple[str, ...], x: np.ndarray, k: int, by=None, bs: str = "cr"):
    """The blocks of ``t2(columns, k = k, bs = bs)`` at the fitted rows (x: rows x d) and the
    term's fixed columns. ``by``: as for ``smooth_term`` (one level's term of ``by = f``)."""
    column = ", ".join(columns)
    x = np.asarray(x, dtype=float).reshape(len(x), len(columns))
    mask = np.ones(len(x), dtype=bool) if by is None else np.asarray(by[3]) == by[1]
    if k < 3:
        raise DataError(f"t2({column}, k = {k}): each margin's penalized spline needs k >= 3")
    for name, values in zip(columns, x.T, strict=True):
        distinct = len(np.unique(values if by is None else values[mask]))
        if distinct < k:
            where = "" if by is None else f" on level {by[1]!r} of '{by[0]}'"
            raise DataError(
                f"t2({column}) needs at least k = {k} distinct values of '{name}'{where}, it has {distinct}: "
                f"give a smaller k (t2({column}, k = {max(3, distinct)}))"
            )
    margins, parts = [], []
    for values in x.T:
        margin, X = _margin(values, k, bs)
        margins.append(margin)
        parts.append((X[:, : margin.rank], X[:, margin.rank :]))
    blocks = [b * mask[:, None] for b in _blocks(parts)]
    # Sum-to-zero over the rows of the unpenalized block only (mgcv's t2 constraint).
    q, _ = np.linalg.qr(blocks[-1].sum(axis=0)[:, None], mode="complete")
    constraint = q[:, 1:]
    variables = tuple(columns)
    terms = [TensorSmooth(column, k, margins, j, constraint, blocks[j], variables)
             for j in range(len(blocks) - 1)]  # fmt: skip
    if by is not None:
        for term in terms:
            term.by, term.level, term.index = by[0], by[1], by[2]
    return terms, blocks[-1] @ constraint
