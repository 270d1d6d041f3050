"""Gaussian processes ``gp(x)`` by their Hilbert-space approximation (HSGP; Solin and Sarkka
2020, Riutort-Mayol et al. 2023), as brms's ``gp(x, k = , c = )`` and PyMC's ``pm.gp.HSGP``.

With x centred at its mean and the domain [-L, L], L = c * max|x - mean|, the GP's function
is approximately sum_j phi_j(x) sqrt(S(sqrt(lambda_j))) z_j with z_j standard normal: phi_j
the Laplacian's eigenfunctions on the domain, sqrt(1 / L) sin(sqrt(lambda_j) (x + L)),
lambda_j = (j pi / 2L)^2, and S the kernel's spectral density (bayesmm.model.builder). The
basis phi depends on the data only, so it is computed here, once, and for new rows from the
stored centre and L; beyond [-L, L] the approximation does not hold (new x are refused there).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy import optimize, stats

from .errors import DataError
from .smooth import PerLevel

__all__ = ["GaussianProcess", "gp_term", "lengthscale_prior_parameters", "spectral_density"]


def spectral_density(kernel: str, frequencies, sd, lengthscale, math=np):
    """The kernel's one-dimensional spectral density S(w) at ``frequencies`` (``math``: numpy,
    or pytensor.tensor for the model's graph): exponentiated quadratic
    sd^2 sqrt(2 pi) l exp(-l^2 w^2 / 2); Matern nu = 3/2 and 5/2
    sd^2 (4 r^3 or 16/3 r^5) / (r^2 + w^2)^(nu + 1/2), r = sqrt(2 nu) / l."""
    if kernel == "exp_quad":
        return sd**2 * np.sqrt(2 * np.pi) * lengthscale * math.exp(-0.5 * lengthscale**2 * frequencies**2)
    if kernel == "matern32":
        r = np.sqrt(3.0) / lengthscale
        return sd**2 * 4.0 * r**3 / (r**2 + frequencies**2) ** 2
    r = np.sqrt(5.0) / lengthscale
    return sd**2 * (16.0 / 3.0) * r**5 / (r**2 + frequencies**2) ** 3


@dataclass
class GaussianProcess(PerLevel):
    """One ``gp(x)`` term: the basis's centre, half-width L, size k and kernel, and phi at the rows."""

    column: str
    k: int
    c: float
    kernel: str
    center: float
    L: float
    Z: np.ndarray  # (rows, k): the basis functions at the fitted rows
    lscale_prior: tuple[float, float] = (2.0, 1.0)  # the length scale's InverseGamma(alpha, beta)
    means: np.ndarray | None = None  # each basis function's mean over the fitted rows
    by: str | None = None  # gp(x, by = f): the factor, and this GP's level of it (its number)
    level: str | None = None
    index: int = 0
    call: ClassVar[str] = "gp"

    @property
    def frequencies(self) -> np.ndarray:
        """sqrt(lambda_j), j = 1..k."""
        return np.arange(1, self.k + 1) * np.pi / (2 * self.L)

    def basis(self, x: np.ndarray) -> np.ndarray:
        """phi at x, each function less its mean over the fitted rows (see gp_term)."""
        x = np.asarray(x, dtype=float) - self.center
        phi = np.sqrt(1 / self.L) * np.sin(self.frequencies[None, :] * (x[:, None] + self.L))
        return phi if self.means is None else phi - self.means

    def columns(self, x: np.ndarray, by_labels=None) -> tuple[np.ndarray, np.ndarray]:
        """No fixed column, and the basis at new values of x (inside the approximation's domain;
        for a by-factor GP, zero on the rows of other levels)."""
        x = np.asarray(x, dtype=float)
        outside = np.abs(x - self.center) > self.L
        if outside.any():
            raise DataError(
                f"{self.name}: new value {x[outside][0]:g} lies outside the approximation's domain "
                f"[{self.center - self.L:g}, {self.center + self.L:g}] (c = {self.c:g} times the fitted "
                "range around its centre): refit with a larger c"
            )
        return np.zeros((len(x), 0)), self.on_level(self.basis(x), by_labels)


def gp_term(column: str, x: np.ndarray, k: int, c: float, kernel: str, by=None) -> GaussianProcess:
    """The ``gp(column)`` term of the fitted rows. ``by``: (factor, level, its number, the rows'
    labels) for one level's GP of ``gp(x, by = f)``: its domain from every row's x, its basis
    zero on the other levels' rows and centred over its own, its length-scale prior from its own x."""
    x = np.asarray(x, dtype=float)
    mask = np.ones(len(x), dtype=bool) if by is None else np.asarray(by[3]) == by[1]
    center = float(np.mean(x))
    half = float(np.max(np.abs(x - center)))
    if half == 0:
        raise DataError(f"gp({column}): '{column}' takes a single value, over which nothing can vary")
    term = GaussianProcess(column, k, c, kernel, center, c * half, np.zeros((len(x), k)))
    # The function's mean over the rows is the intercept's to carry (as a smooth's sum-to-zero
    # constraint does): uncentred, the broad first basis functions trade off against the
    # intercept and the sampler crawls along that ridge.
    term.means = term.basis(x[mask]).mean(axis=0)
    term.Z = term.basis(x) * mask[:, None]
    if by is not None and len(np.unique(x[mask])) < 3:
        raise DataError(f"gp({column}, by = {by[0]}): level {by[1]!r} has under 3 distinct '{column}' values")
    term.lscale_prior = lengthscale_prior_parameters(term, x[mask])
    if by is not None:
        term.by, term.level, term.index = by[0], by[1], by[2]
    return term


def lengthscale_prior_parameters(term: GaussianProcess, x: np.ndarray) -> tuple[float, float]:
    """An inverse-gamma prior for the length scale with 1% of its mass below the shortest
    length scale the data and the basis can resolve and 1% above the data's range (brms's and
    Betancourt's tuning). The shortest: the larger of the smallest gap between distinct values
    and what k basis functions resolve, 1.75 c S / k for half-range S (Riutort-Mayol et al.)."""
    distinct = np.unique(np.asarray(x, dtype=float))
    upper = float(np.ptp(distinct))
    half = term.L / term.c
    lower = max(float(np.min(np.diff(distinct))), 1.75 * term.c * half / term.k)
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
