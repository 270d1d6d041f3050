"""Gaussian group effects integrated out: the collapsed likelihood, and exact draws of the
effects afterwards.

For a Gaussian model with identity link whose group effects all belong to one grouping
factor, the rows of level j are

    y_j = D_j theta + Z_j r_j + e_j,   r_j = L u_j,  u_j ~ Normal(0, I_k),  e_j ~ Normal(0, sigma^2 I),

with theta the fixed coefficients (D the centred fixed-effects matrix) and L the factor of
the group effects' covariance (Sigma = L L^T; k columns, fewer than Sigma's for rr). The
effects can be integrated out in closed form, level by level: y_j ~ Normal(D_j theta,
sigma^2 I + Z_j Sigma Z_j^T), the likelihood lme4 profiles. By the Woodbury identity, with
A_j = sigma^2 I_k + L^T Z_j^T Z_j L and w_j = L^T Z_j^T (y_j - D_j theta),

    log p(y | theta, L, sigma) = -1/2 [ n log(2 pi) + sum_j log det A_j + (n - J k) log sigma^2
                                        + (RSS - sum_j w_j^T A_j^-1 w_j) / sigma^2 ].

NUTS then samples only theta, the covariance parameters and sigma: no funnel between the
SDs and the effects exists, whatever the data say about each level, and each log-density
evaluation costs O(J k^2 p) from per-level sufficient statistics, not O(n).

The effects are drawn afterwards, for every posterior draw, from their exact conditional
(Normal, conjugate): u_j | y, theta, L, sigma ~ Normal(A_j^-1 w_j, sigma^2 A_j^-1), r_j = L u_j.
Together the draws are from the same joint posterior the uncollapsed model samples.

Sufficient statistics are taken around the least-squares fit of the fixed part (residuals
e with D^T e = 0, so RSS = e^T e + delta^T D^T D delta, delta = theta - theta_ls, has no
cancellation when the fixed effects explain most of the variance).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from .design import Design
    from .families import Family

__all__ = [
    "why_not_collapsible", "CollapsedStatistics", "collapsed_logp", "draw_group_effects",
    "group_effect_draws", "MAX_LATENT",
]  # fmt: skip

# Per-level factorizations are written out elementwise (as covariance.UNROLLED_SOLVE) up to
# this many latent columns per level.
MAX_LATENT = 6


def why_not_collapsible(design: Design, family: Family, parts: dict) -> str | None:
    """Why the group effects of ``design`` cannot be integrated out (None: they can)."""
    if family.name != "gaussian" or family.link.name != "identity":
        return f"family '{family.name}' with link '{family.link.name}' (only gaussian with identity link)"
    if parts:
        return f"the formulas for {', '.join(sorted(parts))} (a constant sigma is needed)"
    if not design.random:
        return "the model has no group effects"
    if len(design.groups) > 1:
        return (
            f"more than one grouping factor ({', '.join(design.groups)}): crossed or nested "
            "effects do not factor by level"
        )
    latent = sum(t.covariance.latent for t in design.random)
    if latent > MAX_LATENT:
        return f"{latent} varying columns per level (at most {MAX_LATENT})"
    return None


@dataclass
class CollapsedStatistics:
    """What the collapsed likelihood reads from the data, per level j of the one grouping
    factor (Z: the group's term columns side by side, D: the centred fixed-effects matrix as
    the model samples it, intercept first)."""

    D: np.ndarray  # (n, p)
    theta_ls: np.ndarray  # (p,) least-squares coefficients of y - offset on D
    rss_ls: float  # e^T e, e = y - offset - D theta_ls
    DtD: np.ndarray  # (p, p)
    ZtZ: np.ndarray  # (J, q, q)
    Zte: np.ndarray  # (J, q)
    ZtD: np.ndarray  # (J, q, p)
    n: int

    @classmethod
    def of(cls, design: Design, D: np.ndarray) -> CollapsedStatistics:
        terms = design.random
        codes, J = terms[0].codes, terms[0].n_levels
        Z = np.column_stack([t.matrix for t in terms])
        y = np.asarray(design.y, dtype=float) - (0.0 if design.offset is None else design.offset)
        D = np.asarray(D, dtype=float).reshape(len(y), -1)
        theta = np.linalg.lstsq(D, y, rcond=None)[0] if D.shape[1] else np.zeros(0)
        e = y - D @ theta
        return cls(
            D=D, theta_ls=theta, rss_ls=float(e @ e), DtD=D.T @ D, ZtZ=_per_level(codes, J, Z, Z),
            Zte=_per_level(codes, J, Z, e[:, None])[:, :, 0], ZtD=_per_level(codes, J, Z, D), n=len(y),
        )  # fmt: skip


def _per_level(codes: np.ndarray, J: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """(J, a, b) sums over each level's rows of left[i, :, None] * right[i, None, :]."""
    out = np.empty((J, left.shape[1], right.shape[1]))
    for a in range(left.shape[1]):
        for b in range(right.shape[1]):
            out[:, a, b] = np.bincount(codes, weights=left[:, a] * right[:, b], minlength=J)
    return out


def _unrolled_cholesky(A: list[list]) -> list[list]:
    """Lower Cholesky factor of k x k matrices given entry by entry (each a vector over levels)."""
    import pytensor.tensor as pt

    k = len(A)
    C = [[None] * k for _ in range(k)]
    for i in range(k):
        for j in range(i + 1):
            s = A[i][j] - sum((C[i][m] * C[j][m] for m in range(j)), start=0.0)
            C[i][j] = pt.sqrt(s) if i == j else s / C[j][j]
    return C


def collapsed_logp(stats: CollapsedStatistics, theta, L, k: int, sigma):
    """The log-likelihood of the module docstring, a PyTensor scalar: ``theta`` the (p,)
    sampled fixed coefficients (None when p = 0), ``L`` the (q, k) covariance factor,
    ``sigma`` the residual SD."""
    import pytensor.tensor as pt

    J, q, p = stats.ZtD.shape
    sigma2 = sigma**2
    # M_j = L^T Z_j^T Z_j L for every level at once: (J, q q) times the (q q, k k) Kronecker
    # product of L with itself.
    kron = (L[:, None, :, None] * L[None, :, None, :]).reshape((q * q, k * k))
    M = pt.dot(stats.ZtZ.reshape(J, q * q), kron)
    residual_z = stats.Zte
    rss = stats.rss_ls
    if p:
        delta = theta - stats.theta_ls
        residual_z = residual_z - pt.dot(stats.ZtD.reshape(J * q, p), delta).reshape((J, q))
        rss = rss + pt.dot(delta, pt.dot(stats.DtD, delta))
    w = pt.dot(residual_z, L)  # (J, k)
    A = [[M[:, i * k + j] + (sigma2 if i == j else 0.0) for j in range(k)] for i in range(k)]
    C = _unrolled_cholesky(A)
    logdet, quad, v = 0.0, 0.0, []
    for i in range(k):  # forward substitution C v = w; w^T A^-1 w = |v|^2
        v.append((w[:, i] - sum((C[i][m] * v[m] for m in range(i)), start=0.0)) / C[i][i])
        logdet = logdet + 2.0 * pt.log(C[i][i])
        quad = quad + v[i] ** 2
    n, Jk = stats.n, J * k
    return -0.5 * (
        n * np.log(2 * np.pi) + pt.sum(logdet) + (n - Jk) * pt.log(sigma2) + (rss - pt.sum(quad)) / sigma2
    )


def _factors(Sigma: np.ndarray) -> np.ndarray:
    """A factor L with L L^T = Sigma for each (q, q) covariance (PSD: eigenvectors scaled by the
    roots of the eigenvalues, so singular and reduced-rank Sigma work too). The conditional of
    r = L u depends on Sigma only, so any factor gives the same draws' distribution."""
    values, vectors = np.linalg.eigh(Sigma)
    return vectors * np.sqrt(np.clip(values, 0.0, None))[..., None, :]


def draw_group_effects(
    stats: CollapsedStatistics,
    fixef_sampled: np.ndarray,
    Sigma: np.ndarray,
    sigma: np.ndarray,
    rng: np.random.Generator,
    chunk: int = 64,
) -> np.ndarray:
    """(S, J, q) group effects, one per posterior draw, from their exact conditional given
    the draw's sampled fixed coefficients (S, p), covariance (S, q, q) and residual SD (S,)."""
    S = Sigma.shape[0]
    J, q, p = stats.ZtD.shape
    out = np.empty((S, J, q))
    eye = np.eye(q)
    for start in range(0, S, chunk):
        s = slice(start, min(start + chunk, S))
        L = _factors(Sigma[s])  # (s, q, q)
        sigma2 = (sigma[s] ** 2)[:, None, None, None]
        residual_z = stats.Zte[None] - np.einsum("jqp,sp->sjq", stats.ZtD, fixef_sampled[s] - stats.theta_ls)
        w = np.einsum("sab,sja->sjb", L, residual_z)
        A = sigma2 * eye + np.einsum("sca,jcd,sdb->sjab", L, stats.ZtZ, L)
        C = np.linalg.cholesky(A)
        mean = np.linalg.solve(A, w[..., None])[..., 0]
        noise = rng.standard_normal(mean.shape)
        # C^-T noise has covariance A^-1; times sigma: sigma^2 A^-1
        spread = np.linalg.solve(np.swapaxes(C, -1, -2), noise[..., None])[..., 0]
        u = mean + np.sqrt(sigma2[..., 0]) * spread
        out[s] = np.einsum("sab,sjb->sja", L, u)
    return out


def group_effect_draws(design: Design, posterior, rng: np.random.Generator):
    """``r_<group>`` for every draw of ``posterior`` (an xarray Dataset with ``fixef``,
    ``sd_<group>``, ``cor_<group>`` where the terms have correlations, and ``sigma``), drawn
    from the conditional of the module docstring; an xarray DataArray with the model's
    dimensions."""
    import xarray as xr

    from .model import level_dim, sampled_fixed_coefficients, sampled_fixed_matrix, term_dim

    ((group, terms),) = design.groups.items()
    chains, draws = posterior.sizes["chain"], posterior.sizes["draw"]
    S, q = chains * draws, sum(t.n_terms for t in terms)
    sds = posterior[design.var(f"sd_{group}")].values.reshape(S, q)
    cor_name = design.var(f"cor_{group}")
    cors = posterior[cor_name].values.reshape(S, -1) if cor_name in posterior else np.zeros((S, 0))
    Sigma = np.zeros((S, q, q))
    used = 0
    for term in terms:
        structure, columns = term.covariance, term.covariance.columns
        n_pairs = len(structure.cor_pairs)
        pairs = cors[:, used : used + n_pairs] if n_pairs else None
        Sigma[:, columns, columns] = structure.covariance(sds[:, columns], pairs)
        used += n_pairs
    fixef_name = design.var("fixef")
    fixef = posterior[fixef_name].values.reshape(S, -1) if fixef_name in posterior else np.zeros((S, 0))
    stats = CollapsedStatistics.of(design, sampled_fixed_matrix(design))
    theta = sampled_fixed_coefficients(design, fixef)
    sigma = posterior["sigma"].values.reshape(S)
    r = draw_group_effects(stats, theta, Sigma, sigma, rng).reshape(chains, draws, terms[0].n_levels, q)
    dims = ("chain", "draw", level_dim(group), term_dim(design, group))
    coords = {"chain": posterior["chain"].values, "draw": posterior["draw"].values,
              dims[2]: list(terms[0].levels), dims[3]: design.group_columns(group)}  # fmt: skip
    return xr.DataArray(r, dims=dims, coords=coords, name=design.var(f"r_{group}"))
