"""The integrated-out Gaussian log-likelihood (bayesmm.model.collapsed) written on the
template's tape (bayesmm.inference.template), for every model bayesmm collapses: one
grouping factor from per-level sufficient statistics, O(J k^2 p) per evaluation, or several,
from each row's residual given the other factors' effects, O(n q).

With A_j = sigma^2 I_k + L^T Z_j^T Z_j L and w_j = L^T Z_j^T r_j for the residuals r of the
rest of the model, the log-likelihood is

    -1/2 [ n log(2 pi) + sum_j log det A_j + (n - J k) log sigma^2 + (RSS - sum_j |C_j^-1 w_j|^2) / sigma^2 ]

with C_j the Cholesky factor of A_j, each entry a vector over the J levels (k is at most
bayesmm.model.collapsed.MAX_LATENT, so the factorization is written out entry by entry, as
bayesmm.model.collapsed does in PyTensor).
"""

from __future__ import annotations

import numpy as np

from .tape import Tape, Var


class Statistics:
    """What the log-likelihood reads of the data: the collapsed factor's per-level Z^T Z
    (J, q, q), and with one grouping factor the sufficient statistics around the fixed
    part's least-squares fit (bayesmm.model.collapsed.CollapsedStatistics); with several,
    the rows' level codes and term columns (None where all ones) and the response less
    the offset."""

    def __init__(self, design, group: str):
        from ..model.collapsed import CollapsedStatistics, _level_columns, _per_level
        from ..model.fixed import sampled_fixed_matrix

        codes, self.levels, Z = _level_columns(design, group)
        self.n = design.n_obs
        self.one = len(design.groups) == 1
        self.codes = np.asarray(codes, dtype=np.int64)
        self.columns = [None if np.all(Z[:, c] == 1.0) else np.asarray(Z[:, c], dtype=float)
                        for c in range(Z.shape[1])]  # fmt: skip
        self.stats = CollapsedStatistics.of(design, sampled_fixed_matrix(design)) if self.one else None
        self.ZtZ = self.stats.ZtZ if self.one else _per_level(self.codes, self.levels, Z, Z)
        self.y = np.asarray(design.y, dtype=float)

    @property
    def q(self) -> int:
        return self.ZtZ.shape[1]


def log_likelihood(t: Tape, data: Statistics, fit: Var, L: list, sigma: Var) -> Var:
    """The log-likelihood of the module docstring. ``fit``: the sampled fixed coefficients
    theta (one grouping factor; None when there are none) or each row's fitted value from
    the rest of the model (several); ``L``: the (q, k) covariance factor, L[a][i] a number
    (a Var) or None where it is 0; ``sigma`` the residual SD."""
    q, J = data.q, data.levels
    k = len(L[0])
    if data.one:  # r_j from the statistics: Z^T e - Z^T D delta, RSS = e^T e + delta^T D^T D delta
        stats = data.stats
        residual = [t.constant(stats.Zte[:, a]) for a in range(q)]
        rss = t.constant(stats.rss_ls)
        if fit is not None:
            delta = t.sub(fit, t.constant(stats.theta_ls))
            residual = [t.sub(r, t.matvec(stats.ZtD[:, a, :], delta)) for a, r in enumerate(residual)]
            rss = t.add(rss, t.dot(delta, t.matvec(stats.DtD, delta)))
    else:  # the rows' residuals summed per level against each term column
        rows = t.sub(t.constant(data.y), fit)
        residual = [t.scatter_add(rows if column is None else t.mul(rows, t.constant(column)), data.codes, J)
                    for column in data.columns]  # fmt: skip
        rss = t.sumsq(rows)

    total = t.total

    def times(a, b):
        return None if a is None or b is None else t.mul(a, b)

    # w_j = L^T r_j; (Z^T Z L)[a][j] and M = L^T Z^T Z L (its lower triangle), vectors over levels.
    w = [total(times(residual[a], L[a][i]) for a in range(q)) for i in range(k)]
    ZtZ = [[None if not np.any(data.ZtZ[:, a, b]) else t.constant(data.ZtZ[:, a, b]) for b in range(q)]
           for a in range(q)]  # fmt: skip
    GL = [[total(times(ZtZ[a][b], L[b][j]) for b in range(q)) for j in range(k)] for a in range(q)]
    variance = t.sqr(sigma)
    C = [[None] * k for _ in range(k)]
    logdet, quad, v = None, None, []
    for i in range(k):
        for j in range(i + 1):
            entry = total(times(L[a][i], GL[a][j]) for a in range(q))
            entry = t.constant(np.zeros(J)) if entry is None else entry
            if i == j:
                entry = t.add(entry, variance)
            for m in range(j):
                entry = t.sub(entry, t.mul(C[i][m], C[j][m]))
            C[i][j] = t.sqrt(entry) if i == j else t.div(entry, C[j][j])
        solved = w[i] if w[i] is not None else t.constant(np.zeros(J))
        for m in range(i):
            solved = t.sub(solved, t.mul(C[i][m], v[m]))
        v.append(t.div(solved, C[i][i]))
        logdet = total([logdet, t.sum(t.log(C[i][i]))])
        quad = total([quad, t.sumsq(v[i])])
    n = data.n
    inside = t.add(t.mul(logdet, t.constant(2.0)), t.mul(t.log(sigma), t.constant(2.0 * (n - J * k))))
    inside = t.add(inside, t.div(t.sub(rss, quad), variance))
    return t.add(t.mul(inside, t.constant(-0.5)), t.constant(-0.5 * n * np.log(2.0 * np.pi)))
