"""Gaussian processes ``gp(x)`` by their Hilbert-space approximation (HSGP; Solin and Sarkka
2020, Riutort-Mayol et al. 2023), as brms's ``gp(x, k = , c = )`` and PyMC's ``pm.gp.HSGP``.

With x centred at its mean and the domain [-L, L], L = c * max|x - mean|, the GP's function
is approximately sum_j phi_j(x) sqrt(S(sqrt(lambda_j))) z_j with z_j standard normal: phi_j
the Laplacian's eigenfunctions on the domain, sqrt(1 / L) sin(sqrt(lambda_j) (x + L)),
lambda_j = (j pi / 2L)^2, and S the kernel's spectral density (bayesmm.model.builder). The
basis phi depends on the data only, so it is computed here, once, and for new rows from the
stored centre and L; beyond [-L, L] the approximation does not hold (new x are refused there).

``gp(x, z)`` (several columns) is brms's isotropic GP with one length scale over the
columns' own units (brms's ``iso = TRUE``, ``scale = FALSE``): each column gets its own
centre and L, the basis is every product of one eigenfunction per column (k per column,
k^d in all), lambda_j the sum of the columns' eigenvalues, and S the kernel's
d-dimensional spectral density at sqrt(lambda_j).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy import optimize, special, stats

from .errors import DataError
from .smooth import PerLevel

__all__ = ["GaussianProcess", "gp_term", "lengthscale_prior_parameters", "spectral_density", "MAX_BASIS"]

# gp(x, z, ...) has k basis functions per column, k^d in all: at most this many.
MAX_BASIS = 1000


def spectral_density(kernel: str, frequencies, sd, lengthscale, math=np, dimension: int = 1):
    """The isotropic kernel's spectral density S(w) in ``dimension`` dimensions at the
    frequencies' norms ``frequencies`` (``math``: numpy, or pytensor.tensor for the model's
    graph). One dimension: exponentiated quadratic sd^2 sqrt(2 pi) l exp(-l^2 w^2 / 2);
    Matern nu = 3/2 and 5/2 sd^2 (4 r^3 or 16/3 r^5) / (r^2 + w^2)^(nu + 1/2), r = sqrt(2 nu) / l.
    d dimensions: sd^2 (2 pi l^2)^(d/2) exp(-l^2 w^2 / 2) and
    sd^2 2^d pi^(d/2) Gamma(nu + d/2) (2 nu)^nu / (Gamma(nu) l^(2 nu)) (2 nu / l^2 + w^2)^-(nu + d/2)
    (Rasmussen and Williams 2006, eq. 4.15 and 4.20)."""
    if dimension > 1:
        d = dimension
        if kernel == "exp_quad":
            scale = (2 * np.pi) ** (d / 2) * lengthscale**d
            return sd**2 * scale * math.exp(-0.5 * lengthscale**2 * frequencies**2)
        nu = 1.5 if kernel == "matern32" else 2.5
        constant = 2**d * np.pi ** (d / 2) * special.gamma(nu + d / 2) * (2 * nu) ** nu / special.gamma(nu)
        power = (2 * nu / lengthscale**2 + frequencies**2) ** (-(nu + d / 2))
        return sd**2 * constant / lengthscale ** (2 * nu) * power
    if kernel == "exp_quad":
        return sd**2 * np.sqrt(2 * np.pi) * lengthscale * math.exp(-0.5 * lengthscale**2 * frequencies**2)
    if kernel == "matern32":
        r = np.sqrt(3.0) / lengthscale
        return sd**2 * 4.0 * r**3 / (r**2 + frequencies**2) ** 2
    r = np.sqrt(5.0) / lengthscale
    return sd**2 * (16.0 / 3.0) * r**5 / (r**2 + frequencies**2) ** 3


@dataclass
class GaussianProcess(PerLevel):
    """One ``gp(x)`` or ``gp(x, z)`` term: each column's centre and half-width L, the basis
    size k per column and the kernel, and phi at the rows."""

    column: str  # the columns as written: "x" or "x, z"
    k: int
    c: float
    kernel: str
    center: float | np.ndarray  # a number for one column, one per column for several
    L: float | np.ndarray
    Z: np.ndarray  # (rows, k^d): the basis functions at the fitted rows
    lscale_prior: tuple[float, float] = (2.0, 1.0)  # the length scale's InverseGamma(alpha, beta)
    means: np.ndarray | None = None  # each basis function's mean over the fitted rows
    by: str | None = None  # gp(x, by = f): the factor, and this GP's level of it (its number)
    level: str | None = None
    index: int = 0
    variables: tuple[str, ...] = ()  # the columns, for gp(x, z) (one column: empty)
    call: ClassVar[str] = "gp"

    @property
    def dimension(self) -> int:
        return len(self.predictors)

    @property
    def n_basis(self) -> int:
        return self.k**self.dimension

    def _scaled(self) -> np.ndarray:
        """Each basis function's sqrt(lambda) per column: (k^d, d)."""
        indices = np.array(list(itertools.product(range(1, self.k + 1), repeat=self.dimension)), dtype=float)
        return indices * np.pi / (2 * np.atleast_1d(self.L))

    @property
    def frequencies(self) -> np.ndarray:
        """sqrt(lambda_j), j over the basis functions."""
        return np.sqrt(np.sum(self._scaled() ** 2, axis=1))

    def density(self, sd, lengthscale, math=np):
        """The kernel's spectral density at the basis's frequencies."""
        return spectral_density(self.kernel, self.frequencies, sd, lengthscale, math, self.dimension)

    def basis(self, x: np.ndarray) -> np.ndarray:
        """phi at x (rows, or rows x columns), each function less its mean over the fitted rows
        (see gp_term)."""
        x = np.asarray(x, dtype=float).reshape(len(x), -1) - np.atleast_1d(self.center)
        L, scaled = np.atleast_1d(self.L), self._scaled()
        phi = np.ones((len(x), len(scaled)))
        for d in range(self.dimension):
            phi *= np.sqrt(1 / L[d]) * np.sin(scaled[None, :, d] * (x[:, d : d + 1] + L[d]))
        return phi if self.means is None else phi - self.means

    def columns(self, x: np.ndarray, by_labels=None) -> tuple[np.ndarray, np.ndarray]:
        """No fixed column, and the basis at new values of x (inside the approximation's domain;
        for a by-factor GP, zero on the rows of other levels)."""
        x = np.asarray(x, dtype=float).reshape(len(x), -1)
        center, L = np.atleast_1d(self.center), np.atleast_1d(self.L)
        for d, name in enumerate(self.predictors):
            outside = np.abs(x[:, d] - center[d]) > L[d]
            if outside.any():
                raise DataError(
                    f"{self.name}: new value {x[outside, d][0]:g} of '{name}' lies outside the "
                    f"approximation's domain [{center[d] - L[d]:g}, {center[d] + L[d]:g}] (c = {self.c:g} "
                    "times the fitted range around its centre): refit with a larger c"
                )
        return np.zeros((len(x), 0)), self.on_level(self.basis(x), by_labels)


def gp_term(column, x: np.ndarray, k: int, c: float, kernel: str, by=None) -> GaussianProcess:
    """The ``gp(column)`` term of the fitted rows (``column`` a name, or a tuple of names with
    x rows x columns for gp(x, z)). ``by``: (factor, level, its number, the rows' labels) for
    one level's GP of ``gp(x, by = f)``: its domain from every row's x, its basis zero on the
    other levels' rows and centred over its own, its length-scale prior from its own x."""
    names = (column,) if isinstance(column, str) else tuple(column)
    x = np.asarray(x, dtype=float).reshape(len(x), len(names))
    mask = np.ones(len(x), dtype=bool) if by is None else np.asarray(by[3]) == by[1]
    centers = x.mean(axis=0)
    halves = np.max(np.abs(x - centers), axis=0)
    for name, half in zip(names, halves, strict=True):
        if half == 0:
            shown = ", ".join(names)
            raise DataError(f"gp({shown}): '{name}' takes one value only, over which nothing varies")
    if k ** len(names) > MAX_BASIS:
        raise DataError(
            f"gp({', '.join(names)}, k = {k}): {k}^{len(names)} = {k ** len(names)} basis functions (k per "
            f"column); at most {MAX_BASIS}: give a smaller k, e.g. gp({', '.join(names)}, k = "
            f"{int(MAX_BASIS ** (1 / len(names)))})"
        )
    one = len(names) == 1
    term = GaussianProcess(
        ", ".join(names), k, c, kernel, float(centers[0]) if one else centers,
        float(c * halves[0]) if one else c * halves, np.zeros((len(x), k ** len(names))),
        variables=() if one else names,
    )  # fmt: skip
    # The function's mean over the rows is the intercept's to carry (as a smooth's sum-to-zero
    # constraint does): uncentred, the broad first basis functions trade off against the
    # intercept and the sampler crawls along that ridge.
    term.means = term.basis(x[mask]).mean(axis=0)
    term.Z = term.basis(x) * mask[:, None]
    if by is not None and len(np.unique(x[mask], axis=0)) < 3:
        raise DataError(f"gp({term.column}, by = {by[0]}): level {by[1]!r} has under 3 distinct values")
    term.lscale_prior = lengthscale_prior_parameters(term, x[mask] if not one else x[mask, 0])
    if by is not None:
        term.by, term.level, term.index = by[0], by[1], by[2]
    return term


def lengthscale_prior_parameters(term: GaussianProcess, x: np.ndarray) -> tuple[float, float]:
    """An inverse-gamma prior for the length scale with 1% of its mass below the shortest
    length scale the data and the basis can resolve and 1% above the data's range (brms's and
    Betancourt's tuning). The shortest: the larger of the smallest gap between distinct values
    and what k basis functions resolve, 1.75 c S / k for half-range S (Riutort-Mayol et al.).
    Several columns (one length scale over all): the range is the diagonal of the data's
    box, the smallest gap the smallest column's, the resolution the coarsest column's."""
    x = np.asarray(x, dtype=float).reshape(len(x), -1)
    distinct = [np.unique(x[:, d]) for d in range(x.shape[1])]
    upper = float(np.sqrt(sum(np.ptp(values) ** 2 for values in distinct)))
    halves = np.atleast_1d(term.L) / term.c
    gaps = [float(np.min(np.diff(values))) for values in distinct if len(values) > 1]
    lower = max(min(gaps), 1.75 * term.c * float(np.max(halves)) / term.k)
    lower = min(lower, upper / 2)

    def miss(log_ab):
        a, b = np.exp(log_ab)
        below = stats.invgamma.logcdf(lower, a, scale=b) - np.log(0.01)
        above = stats.invgamma.logsf(upper, a, scale=b) - np.log(0.01)
        return below**2 + above**2

    start = np.log([3.0, 2.0 * np.sqrt(lower * upper)])
    best = optimize.minimize(miss, start, method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-14})
    a, b = np.exp(best.x)
    return float(a), float(b)
