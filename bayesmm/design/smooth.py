"""Penalized regression splines ``s(x)`` as mixed-model terms, as brms builds them from mgcv
(``smoothCon`` then ``smooth2random``).

Two of mgcv's bases. The default, as mgcv's and brms's, is the thin-plate regression spline
(``bs = "tp"``, Wood 2003): the thin-plate spline's radial functions |x - x_i|^3 / 12 at the
distinct values of x (at most 2,000 of them, evenly spread over the distinct values'
ranks where there are more: mgcv samples them at random), reduced to the k - 2 eigenvectors
of their matrix E with the largest eigenvalues in absolute value, constrained orthogonal to
the straight line (1, x) that completes the basis; the penalty is delta' E delta on the
radial part, the line unpenalized.

The other is mgcv's cubic regression spline (``bs = "cr"``): k knots at quantiles of the
distinct values of x, the function given by its values at the knots, cubic between them
with continuous second derivatives that vanish at the ends (a natural spline), and linear
beyond the end knots; its wiggliness penalty is the integrated squared second derivative,
beta' S beta (Wood 2017, Generalized Additive Models, section 5.3.1). The sum of the smooth
over the data rows is constrained to zero (the intercept carries the level), leaving k - 1
coefficients. Their penalty's eigenvectors split them: the one it does not penalize (the
straight line) enters the fixed effects as the column ``s(x)_1``; the k - 2 penalized
directions, scaled by their eigenvalues' square roots, become Z, whose coefficients are
Normal(0, sds^2) as a random effect's are. The smoothing parameter is then 1 / sds^2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .errors import DataError

__all__ = ["Smooth", "cr_basis", "cr_penalty", "smooth_term", "read_smooth", "tp_setup", "tp_basis",
           "spline_setup", "spline_basis", "BASES"]  # fmt: skip

BASES = ("tp", "cr")
# mgcv's max.knots for a thin-plate regression spline: at most this many distinct values.
TP_MAX_KNOTS = 2000


def _radial(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """The thin-plate spline's radial function eta(r) between rows of points and centres (both
    rows x d): r^3 / 12 for one column, r^2 log(r) / (8 pi) for two (m = 2; Wood 2003)."""
    if points.shape[1] == 1:
        return np.abs(points[:, :1] - centres[:, 0][None, :]) ** 3 / 12
    r = np.sqrt(((points[:, None, :] - centres[None, :, :]) ** 2).sum(axis=-1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(r > 0, r**2 * np.log(r) / (8 * np.pi), 0.0)


def tp_setup(distinct: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The thin-plate regression spline of k functions over the distinct values (rows x d, d
    = 1 or 2) of the columns: its knots, their mean (the shift), the map UZ from the radial
    functions at the knots to the k - d - 1 penalized coefficients, and the penalty S (k x k,
    the polynomial null space's d + 1 coefficients last, unpenalized)."""
    knots = np.asarray(distinct, dtype=float).reshape(len(distinct), -1)
    if len(knots) > TP_MAX_KNOTS:
        knots = knots[np.round(np.linspace(0, len(knots) - 1, TP_MAX_KNOTS)).astype(int)]
    shift = knots.mean(axis=0)
    centred = knots - shift
    E = _radial(centred, centred)
    null = np.column_stack([np.ones(len(centred)), centred])  # 1, x (and z)
    values, vectors = np.linalg.eigh(E)
    top = np.argsort(-np.abs(values), kind="stable")[:k]
    values, vectors = values[top], vectors[:, top]
    q, _ = np.linalg.qr(vectors.T @ null, mode="complete")
    Z = q[:, null.shape[1] :]  # the coefficients orthogonal to the null space
    S = np.zeros((k, k))
    S[: Z.shape[1], : Z.shape[1]] = Z.T @ np.diag(values) @ Z
    return knots, shift, vectors @ Z, S


def tp_basis(x: np.ndarray, knots: np.ndarray, shift, UZ: np.ndarray) -> np.ndarray:
    """The thin-plate regression spline's basis at ``x`` (rows, or rows x d): the penalized
    functions, then 1 and each column less its shift."""
    points = np.asarray(x, dtype=float).reshape(len(x), -1) - shift
    radial = _radial(points, knots.reshape(len(knots), -1) - shift)
    return np.column_stack([radial @ UZ, np.ones(len(points)), points])


def _spacing(knots: np.ndarray):
    h = np.diff(knots)
    k = len(knots)
    D = np.zeros((k - 2, k))
    B = np.zeros((k - 2, k - 2))
    for i in range(k - 2):
        D[i, i], D[i, i + 1], D[i, i + 2] = 1 / h[i], -1 / h[i] - 1 / h[i + 1], 1 / h[i + 1]
        B[i, i] = (h[i] + h[i + 1]) / 3
        if i < k - 3:
            B[i, i + 1] = B[i + 1, i] = h[i + 1] / 6
    return h, D, B


def cr_penalty(knots: np.ndarray) -> np.ndarray:
    """S = D' B^-1 D: beta' S beta is the integral of the spline's squared second derivative."""
    _, D, B = _spacing(knots)
    return D.T @ np.linalg.solve(B, D)


def cr_basis(x: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """The cubic regression spline basis at ``x`` (rows x k): column j is the natural cubic
    spline through the knots that is 1 at knot j and 0 at the others; linear beyond the ends."""
    x = np.asarray(x, dtype=float)
    h, D, B = _spacing(knots)
    k = len(knots)
    F = np.zeros((k, k))
    F[1:-1] = np.linalg.solve(B, D)  # second derivatives at the knots, per unit coefficient
    X = np.zeros((len(x), k))
    j = np.clip(np.searchsorted(knots, x, side="right") - 1, 0, k - 2)
    inside = (x >= knots[0]) & (x <= knots[-1])
    xi = np.clip(x, knots[0], knots[-1])
    hj = h[j]
    right, left = knots[j + 1] - xi, xi - knots[j]
    a_minus, a_plus = right / hj, left / hj
    c_minus = (right**3 / hj - hj * right) / 6
    c_plus = (left**3 / hj - hj * left) / 6
    rows = np.arange(len(x))
    X[rows, j] += a_minus
    X[rows, j + 1] += a_plus
    X += c_minus[:, None] * F[j] + c_plus[:, None] * F[j + 1]
    if not inside.all():  # linear beyond the end knots, with the spline's slope there
        below, above = x < knots[0], x > knots[-1]
        slope_low = (np.eye(k)[1] - np.eye(k)[0]) / h[0] - h[0] / 6 * F[1]
        slope_high = (np.eye(k)[-1] - np.eye(k)[-2]) / h[-1] + h[-1] / 6 * F[-2]
        X[below] += (x[below] - knots[0])[:, None] * slope_low
        X[above] += (x[above] - knots[-1])[:, None] * slope_high
    return X


def spline_setup(distinct: np.ndarray, k: int, bs: str):
    """A penalized spline of k functions over the distinct values (rows x d) of its columns:
    its knots (one column: a vector), the thin-plate basis's shift and UZ (cr: 0 and None),
    and the penalty S (k x k)."""
    if bs == "tp":
        knots, shift, UZ, S = tp_setup(distinct, k)
        return (knots[:, 0] if knots.shape[1] == 1 else knots), shift, UZ, S
    knots = np.quantile(distinct[:, 0], np.linspace(0, 1, k))  # mgcv's place.knots
    return knots, 0.0, None, cr_penalty(knots)


def spline_basis(x: np.ndarray, bs: str, knots: np.ndarray, shift, UZ) -> np.ndarray:
    """The spline's basis (before any constraint) at ``x`` (rows, or rows x columns)."""
    if bs == "tp":
        return tp_basis(x, knots, shift, UZ)
    return cr_basis(np.asarray(x, dtype=float).reshape(len(x), -1)[:, 0], knots)


class PerLevel:
    """What a smooth ``s(x)`` and a Gaussian process ``gp(x)`` share when ``by = f`` gives each
    level of f its own: the display name, the key in PyMC's variable names, and the basis
    zeroed on the other levels' rows. The classes hold ``column`` (as written: ``x`` or ``x, z``),
    ``variables`` (the columns of a term of several, else empty), ``by``, ``level``, ``index``."""

    call: ClassVar[str]

    @property
    def name(self) -> str:
        if self.by is None:
            return f"{self.call}({self.column})"
        return f"{self.call}({self.column}, by = {self.by})[{self.level}]"

    @property
    def predictors(self) -> tuple[str, ...]:
        """The data's columns the term is a function of."""
        return self.variables or (self.column,)

    @property
    def key(self) -> str:
        """The term in PyMC's variable names: ``x``, ``x_z`` for two columns, or ``x_by_f2``
        for f's third level."""
        base = "_".join(self.predictors)
        return base if self.by is None else f"{base}_by_{self.by}{self.index}"

    def on_level(self, basis: np.ndarray, by_labels) -> np.ndarray:
        """``basis`` (rows x columns) zero on the rows of the factor's other levels."""
        if self.by is None:
            return basis
        return basis * (np.asarray(by_labels) == self.level)[:, None]


@dataclass
class Smooth(PerLevel):
    """One ``s(x)`` term: its knots and the maps from the basis to the fixed column and to Z."""

    column: str
    k: int
    knots: np.ndarray  # cr: the knots; tp: the distinct values the radial functions sit at
    constraint: np.ndarray  # (k, k - 1): the sum-to-zero constrained basis is X @ constraint
    fixed_map: np.ndarray  # (k - 1, 1): the unpenalized direction
    random_map: np.ndarray  # (k - 1, k - 2): the penalized directions over sqrt(eigenvalue)
    Z: np.ndarray  # (rows, k - 2) at the fitted rows
    by: str | None = None  # s(x, by = f): the factor, and this smooth's level of it (its number)
    level: str | None = None
    index: int = 0
    bs: str = "cr"
    shift: float | np.ndarray = 0.0  # tp: the knots' mean, and the map to the penalized coefficients
    UZ: np.ndarray | None = None
    variables: tuple[str, ...] = ()  # the columns, for s(x, z) (one column: empty)
    call: ClassVar[str] = "s"

    def basis(self, x: np.ndarray) -> np.ndarray:
        """The basis (before the sum-to-zero constraint) at ``x`` (rows, or rows x columns)."""
        return spline_basis(x, self.bs, self.knots, self.shift, self.UZ)

    @property
    def fixed_names(self) -> list[str]:
        """The unpenalized directions' fixed-effect names: ``s(x)_1``; ``s(x, z)_1``, ``_2``."""
        return [f"{self.name}_{j + 1}" for j in range(self.fixed_map.shape[1])]

    def columns(self, x: np.ndarray, by_labels=None) -> tuple[np.ndarray, np.ndarray]:
        """The fixed columns (rows x d) and Z (rows x (k - d - 1)) at new values of x (rows x d;
        and, for a by-factor smooth, the rows' labels of the factor: zero on other levels' rows)."""
        constrained = self.on_level(self.basis(x) @ self.constraint, by_labels)
        return constrained @ self.fixed_map, constrained @ self.random_map


def read_smooth(column: str, data, term: str = "s") -> np.ndarray:
    """The values of ``s(column)``'s (or ``gp(column)``'s) predictor (NaN where missing); a
    factor is refused."""
    import pandas as pd

    from .errors import missing_column_error

    if column not in data.columns:
        raise missing_column_error(column, f"{term}({column})", data.columns)
    values = data[column]
    if isinstance(values.dtype, pd.CategoricalDtype) or not pd.api.types.is_numeric_dtype(values) or (
        pd.api.types.is_bool_dtype(values)
    ):
        raise DataError(
            f"{term}({column}) smooths a number; '{column}' is a factor (or text or logical): enter it as a "
            f"term, y ~ {column}, or vary the level by it with (1 | {column})"
        )
    return values.to_numpy(dtype=float)


def smooth_term(column, x: np.ndarray, k: int, by=None, bs: str = "cr") -> tuple[Smooth, np.ndarray]:
    """The ``s(column, k = k, bs = bs)`` term of the fitted rows, and its fixed columns (rows x
    d). ``column``: a name, or a tuple of two names with x rows x 2 for s(x, z) (thin-plate
    only). ``by``: (factor, its level, the level's number, the rows' labels) for one level's
    smooth of ``s(x, by = f)``: its knots from every row's x (as mgcv's), its basis zero on
    the other levels' rows and constrained to sum to zero over its own."""
    names = (column,) if isinstance(column, str) else tuple(column)
    column = ", ".join(names)
    d = len(names)
    x = np.asarray(x, dtype=float)
    points = x.reshape(len(x), d)
    mask = np.ones(len(x), dtype=bool) if by is None else np.asarray(by[3]) == by[1]
    if by is not None and len(np.unique(points[mask], axis=0)) < 3:
        raise DataError(f"s({column}, by = {by[0]}): level {by[1]!r} has under 3 distinct '{column}' values")
    distinct = np.unique(points, axis=0)
    if k < d + 2:
        raise DataError(f"s({column}, k = {k}): a penalized spline of {d} column(s) needs k >= {d + 2}")
    for name, values in zip(names, points.T, strict=True):
        if np.ptp(values) == 0:
            raise DataError(f"s({column}): '{name}' takes one value only, over which nothing varies")
    if len(distinct) < k:
        raise DataError(
            f"s({column}) needs at least k = {k} distinct values of '{column}', it has {len(distinct)}: "
            f"give a smaller k (s({column}, k = {max(d + 2, len(distinct))})) or enter '{column}' as a factor"
        )
    knots, shift, UZ, S = spline_setup(distinct, k, bs)
    X = spline_basis(points, bs, knots, shift, UZ) * mask[:, None]
    # Sum-to-zero over the rows: the null space of the constraint's direction (mgcv's QR).
    q, _ = np.linalg.qr(X.sum(axis=0)[:, None], mode="complete")
    constraint = q[:, 1:]
    S_c = constraint.T @ S @ constraint
    values, vectors = np.linalg.eigh((S_c + S_c.T) / 2)
    order = np.argsort(values)[::-1]
    values, vectors = values[order], vectors[:, order]
    penalized = values > values[0] * 1e-10
    if penalized.sum() != k - 1 - d:
        free = k - 1 - int(penalized.sum())
        raise DataError(f"s({column}): the spline's penalty has {free} unpenalized directions, not {d}")
    fixed_map = vectors[:, ~penalized]
    random_map = vectors[:, penalized] / np.sqrt(values[penalized])
    constrained = X @ constraint
    fixed = constrained @ fixed_map
    # One column: the unpenalized direction is the straight line; fix its sign to rise with x.
    if d == 1 and np.corrcoef(fixed[mask, 0], points[mask, 0])[0, 1] < 0:
        fixed_map, fixed = -fixed_map, -fixed
    smooth = Smooth(column, k, knots, constraint, fixed_map, random_map, constrained @ random_map, bs=bs,
                    shift=shift, UZ=UZ, variables=names if d > 1 else ())  # fmt: skip
    if by is not None:
        smooth.by, smooth.level, smooth.index = by[0], by[1], by[2]
    return smooth, fixed
