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

from .variables import fixef_var, group_var

if TYPE_CHECKING:  # pragma: no cover
    from ..design.build import Design
    from ..families.base import Family

__all__ = [
    "collapsed_group", "why_not_collapsible", "CollapsedStatistics", "woodbury_logp", "collapsed_logp",
    "residual_logp", "draw_group_effects", "group_effect_draws", "MAX_LATENT",
]  # fmt: skip

# Per-level factorizations are written out elementwise (as covariance.UNROLLED_SOLVE) up to
# this many latent columns per level.
MAX_LATENT = 6


def collapsed_group(design: Design) -> str | None:
    """The grouping factor whose effects are integrated out: of those with at most MAX_LATENT
    latent columns per level, the one with the most effects (levels x columns); None if none."""
    sizes = {
        group: terms[0].n_levels * sum(t.covariance.latent for t in terms)
        for group, terms in design.groups.items()
        if sum(t.covariance.latent for t in terms) <= MAX_LATENT
    }
    return max(sizes, key=sizes.get) if sizes else None


def why_not_collapsible(design: Design, family: Family, parts: dict) -> str | None:
    """Why no group effects of ``design`` can be integrated out (None: they can)."""
    if family.name != "gaussian" or family.link.name != "identity":
        return f"family '{family.name}' with link '{family.link.name}' (only gaussian with identity link)"
    if parts:
        return f"the formulas for {', '.join(sorted(parts))} (a constant sigma is needed)"
    if design.monotonic or design.smooths or design.gps:
        return "the monotonic effects mo(), smooths s() or Gaussian processes gp()"
    if any(term.level_factor is not None for term in design.random):
        return "a term with a known covariance of its levels, gr(g, cov = A)"
    if design.additions.any:
        return "the addition terms se(), weights(), cens() or trunc() (equal, uncensored rows are needed)"
    if not design.random:
        return "the model has no group effects"
    if collapsed_group(design) is None:
        return f"every grouping factor has more than {MAX_LATENT} varying columns per level"
    return None


@dataclass
class CollapsedStatistics:
    """What the collapsed likelihood reads from the data, per level j of the one grouping
    factor (Z: the group's term columns side by side, D: the centred fixed-effects matrix as
    the model samples it, intercept first)."""

    theta_ls: np.ndarray  # (p,) least-squares coefficients of y - offset on D
    rss_ls: float  # e^T e, e = y - offset - D theta_ls
    DtD: np.ndarray  # (p, p)
    ZtZ: np.ndarray  # (J, q, q)
    Zte: np.ndarray  # (J, q)
    ZtD: np.ndarray  # (J, q, p)
    n: int

    @classmethod
    def of(cls, design: Design, D: np.ndarray) -> CollapsedStatistics:
        (group,) = design.groups
        codes, J, Z = _level_columns(design, group)
        y = _response(design)
        D = np.asarray(D, dtype=float).reshape(len(y), -1)
        theta = np.linalg.lstsq(D, y, rcond=None)[0] if D.shape[1] else np.zeros(0)
        e = y - D @ theta
        return cls(
            theta_ls=theta, rss_ls=float(e @ e), DtD=D.T @ D, ZtZ=_per_level(codes, J, Z, Z),
            Zte=_per_level(codes, J, Z, e[:, None])[:, :, 0], ZtD=_per_level(codes, J, Z, D), n=len(y),
        )  # fmt: skip


def _level_columns(design: Design, group: str) -> tuple[np.ndarray, int, np.ndarray]:
    """A grouping factor's level code per row, its number of levels, and its terms' columns
    side by side (n, q), in the order of ``r_<group>``."""
    terms = design.groups[group]
    return terms[0].codes, terms[0].n_levels, np.column_stack([t.matrix for t in terms])


def _response(design: Design) -> np.ndarray:
    """y less the offset: what the fixed and group effects explain."""
    return np.asarray(design.y, dtype=float) - (0.0 if design.offset is None else design.offset)


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


def _product(a, b):
    """a @ b for a matrix ``a`` and a matrix or vector ``b``, as a product and a sum: numba
    compiles these elementwise operations faster than a BLAS ``Dot``, whose function pointer
    is fetched in object mode when a process first calls it (0.24 s of every warm sleepstudy
    fit, inside its first sampling), and the contracted dimensions here are small (q^2, q or p)."""
    import pytensor.tensor as pt

    b = pt.as_tensor_variable(b)
    if b.ndim == 1:
        return pt.sum(a * b[None, :], axis=1)
    return pt.sum(a[:, :, None] * b[None, :, :], axis=1)


def woodbury_logp(ZtZ: np.ndarray, residual_z, rss, n: int, L, k: int, sigma):
    """The log-likelihood of the module docstring, a PyTensor scalar, from the per-level
    ``ZtZ`` (J, q, q), the residuals of the rest of the model summed per level against the
    term columns, ``residual_z`` (J, q), their sum of squares ``rss``, the number of rows
    ``n``, the (q, k) covariance factor ``L`` and the residual SD ``sigma``."""
    import pytensor.tensor as pt

    J, q, _ = ZtZ.shape
    sigma2 = sigma**2
    # M_j = L^T Z_j^T Z_j L for every level at once: (J, q q) times the (q q, k k) Kronecker
    # product of L with itself.
    kron = (L[:, None, :, None] * L[None, :, None, :]).reshape((q * q, k * k))
    M = _product(ZtZ.reshape(J, q * q), kron)
    w = _product(residual_z, L)  # (J, k)
    A = [[M[:, i * k + j] + (sigma2 if i == j else 0.0) for j in range(k)] for i in range(k)]
    C = _unrolled_cholesky(A)
    logdet, quad, v = 0.0, 0.0, []
    for i in range(k):  # forward substitution C v = w; w^T A^-1 w = |v|^2
        v.append((w[:, i] - sum((C[i][m] * v[m] for m in range(i)), start=0.0)) / C[i][i])
        logdet = logdet + 2.0 * pt.log(C[i][i])
        quad = quad + v[i] ** 2
    return -0.5 * (
        n * np.log(2 * np.pi) + pt.sum(logdet) + (n - J * k) * pt.log(sigma2) + (rss - pt.sum(quad)) / sigma2
    )


def collapsed_logp(stats: CollapsedStatistics, theta, L, k: int, sigma):
    """woodbury_logp from the sufficient statistics of a model with one grouping factor:
    ``theta`` the (p,) sampled fixed coefficients (None when p = 0). O(J k^2 p) per call."""
    import pytensor.tensor as pt

    J, q, p = stats.ZtD.shape
    residual_z, rss = stats.Zte, stats.rss_ls
    if p:
        delta = theta - stats.theta_ls
        residual_z = residual_z - _product(stats.ZtD.reshape(J * q, p), delta).reshape((J, q))
        rss = rss + pt.sum(delta * _product(stats.DtD, delta))
    return woodbury_logp(stats.ZtZ, residual_z, rss, stats.n, L, k, sigma)


def residual_logp(design: Design, group: str, residual, L, k: int, sigma):
    """woodbury_logp from the per-row ``residual`` of the rest of the model (a PyTensor
    vector: y minus the fixed part, the offset and the other grouping factors' effects), for
    a model with several grouping factors. O(n q) per call."""
    import pytensor.tensor as pt

    codes, J, Z = _level_columns(design, group)
    rows = pt.as_tensor_variable(codes)
    residual_z = pt.stack(
        [pt.inc_subtensor(pt.zeros(J)[rows], residual * Z[:, c]) for c in range(Z.shape[1])], axis=1
    )
    ZtZ = _per_level(codes, J, Z, Z)
    return woodbury_logp(ZtZ, residual_z, pt.sum(residual**2), design.n_obs, L, k, sigma)


def _factors(Sigma: np.ndarray) -> np.ndarray:
    """A factor L with L L^T = Sigma for each (q, q) covariance (PSD: eigenvectors scaled by the
    roots of the eigenvalues, so singular and reduced-rank Sigma work too). The conditional of
    r = L u depends on Sigma only, so any factor gives the same draws' distribution."""
    values, vectors = np.linalg.eigh(Sigma)
    return vectors * np.sqrt(np.clip(values, 0.0, None))[..., None, :]


def draw_group_effects(
    ZtZ: np.ndarray,
    residual_z_of,
    Sigma: np.ndarray,
    sigma: np.ndarray,
    rng: np.random.Generator,
    chunk: int = 64,
) -> np.ndarray:
    """(S, J, q) group effects, one per posterior draw, from their exact conditional given the
    draw's covariance (S, q, q), residual SD (S,) and ``residual_z_of(draws)``: the residuals
    of the rest of the model summed per level against the term columns, (draws, J, q), for a
    slice of the draws (computed a chunk at a time: at 10^5 levels the whole would not fit)."""
    S, (J, q, _) = Sigma.shape[0], ZtZ.shape
    out = np.empty((S, J, q))
    eye = np.eye(q)
    for start in range(0, S, chunk):
        s = slice(start, min(start + chunk, S))
        L = _factors(Sigma[s])  # (s, q, q)
        sigma2 = (sigma[s] ** 2)[:, None, None, None]
        w = np.einsum("sab,sja->sjb", L, residual_z_of(s))
        A = sigma2 * eye + np.einsum("sca,jcd,sdb->sjab", L, ZtZ, L)
        C = np.linalg.cholesky(A)
        mean = np.linalg.solve(A, w[..., None])[..., 0]
        # C^-T noise has covariance A^-1; times sigma: sigma^2 A^-1
        spread = np.linalg.solve(np.swapaxes(C, -1, -2), rng.standard_normal(mean.shape)[..., None])[..., 0]
        u = mean + np.sqrt(sigma2[..., 0]) * spread
        out[s] = np.einsum("sab,sjb->sja", L, u)
    return out


def _covariance_draws(design: Design, group: str, posterior, S: int) -> np.ndarray:
    """(S, q, q) covariance of one grouping factor's effects (its terms' blocks) per draw."""
    terms = design.groups[group]
    q = sum(t.n_terms for t in terms)
    sds = posterior[group_var(design, "sd", group)].values.reshape(S, q)
    cor_name = group_var(design, "cor", group)
    cors = posterior[cor_name].values.reshape(S, -1) if cor_name in posterior else np.zeros((S, 0))
    Sigma = np.zeros((S, q, q))
    used = 0
    for term in terms:
        structure, columns = term.covariance, term.covariance.columns
        n_pairs = len(structure.cor_pairs)
        pairs = cors[:, used : used + n_pairs] if n_pairs else None
        Sigma[:, columns, columns] = structure.covariance(sds[:, columns], pairs)
        used += n_pairs
    return Sigma


def _residual_z_crossed(design: Design, group: str, posterior, fixef, codes, J: int, Z: np.ndarray):
    """``residual_z_of`` for a grouping factor crossed with others: the residuals given the
    fixed effects and the other factors' effects, summed per level against the term columns.
    The sums are linear in those effects, so they are sparse matrices built once (a level
    by the other factor's levels it shares rows with: InstEval's students by lecturers,
    73,421 entries) applied to each slice of draws, never an (draws, rows) array."""
    import scipy.sparse as sp

    S = fixef.shape[0]
    at = (codes, np.arange(design.n_obs))
    per_level = [sp.csr_matrix((Z[:, c], at), shape=(J, design.n_obs)) for c in range(Z.shape[1])]
    y = _response(design)
    Zy = np.stack([m @ y for m in per_level], axis=-1)  # (J, q)
    ZX = np.stack([m @ design.X for m in per_level], axis=-1)  # (J, p, q)
    others = []  # (the term's effects (S, levels * columns), one sparse (J, levels * columns) per c)
    for term in (t for t in design.random if t.group != group):
        effects = posterior[group_var(design, "r", term.group)].values
        effects = effects.reshape(S, term.n_levels, -1)[:, :, term.covariance.columns].reshape(S, -1)
        width = term.n_terms
        rows = np.repeat(np.arange(design.n_obs), width)
        cols = (term.codes[:, None] * width + np.arange(width)).ravel()
        shape = (design.n_obs, effects.shape[1])
        term_matrix = sp.csc_matrix((term.matrix.ravel(), (rows, cols)), shape=shape)
        others.append((effects, [(m @ term_matrix).tocsr() for m in per_level]))

    def residual_z_of(s):
        out = Zy[None] - np.einsum("jpq,sp->sjq", ZX, fixef[s])
        for effects, sums in others:
            block = effects[s].T  # (levels * columns, draws)
            for c, m in enumerate(sums):
                out[:, :, c] -= (m @ block).T
        return out

    return residual_z_of


def group_effect_draws(design: Design, group: str, posterior, rng: np.random.Generator):
    """``r_<group>`` for every draw of ``posterior`` (an xarray Dataset with ``fixef``, the
    group's ``sd_`` and ``cor_``, ``sigma`` and the other grouping factors' ``r_``), drawn from
    the conditional of the module docstring; an xarray DataArray with the model's dimensions."""
    import xarray as xr

    from .fixed import sampled_fixed_coefficients, sampled_fixed_matrix
    from .variables import level_dim, term_dim

    chains, draws = posterior.sizes["chain"], posterior.sizes["draw"]
    codes, J, Z = _level_columns(design, group)
    S, q = chains * draws, Z.shape[1]
    fixef_name = fixef_var(design)
    fixef = posterior[fixef_name].values.reshape(S, -1) if fixef_name in posterior else np.zeros((S, 0))
    if len(design.groups) == 1:  # from the sufficient statistics: O(J) per draw
        stats = CollapsedStatistics.of(design, sampled_fixed_matrix(design))
        delta = sampled_fixed_coefficients(design, fixef) - stats.theta_ls

        def residual_z_of(s):
            return stats.Zte[None] - np.einsum("jqp,sp->sjq", stats.ZtD, delta[s])

        ZtZ = stats.ZtZ
    else:  # the other factors' effects given: O(pairs of levels that share rows) per draw
        residual_z_of = _residual_z_crossed(design, group, posterior, fixef, codes, J, Z)
        ZtZ = _per_level(codes, J, Z, Z)
    Sigma = _covariance_draws(design, group, posterior, S)
    sigma = posterior["sigma"].values.reshape(S)
    chunk = max(1, min(64, int(2e7 // (J * q))))
    r = draw_group_effects(ZtZ, residual_z_of, Sigma, sigma, rng, chunk).reshape(chains, draws, J, q)
    dims = ("chain", "draw", level_dim(group), term_dim(design, group))
    coords = {"chain": posterior["chain"].values, "draw": posterior["draw"].values,
              dims[2]: list(design.group_levels(group)), dims[3]: design.group_columns(group)}  # fmt: skip
    return xr.DataArray(r, dims=dims, coords=coords, name=group_var(design, "r", group))
