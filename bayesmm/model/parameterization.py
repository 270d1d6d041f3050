"""Centred or non-centred group effects, chosen per random-effect term from the data.

A term's group effects can be sampled non-centred (standard normals, scaled by the term's
SDs: good when each level's data say little, because the SDs and the effects then do not
form a funnel) or centred (the effects themselves, with the SDs as their prior's scale:
good when each level's data pin its effect down, because the non-centred standard normals
then have to move with the SDs, and the SDs mix slowly). The classical result for the
normal hierarchical model (Papaspiliopoulos, Roberts & Skold 2007) is that the centred
form is the better one when a level's data are more precise than its prior, n_j tau^2 /
sigma^2 > 1.

bayesmm measures that ratio for each column of each term without fitting anything. The
response is linearized on the link scale around each level's mean (the first step of
IRLS), the fixed part is regressed out, and each level's effects are estimated from its
own rows alone (no pooling). Then

    kappa_c = (var_j(beta_jc) - mean_j(se_jc^2)) / median_j(se_jc^2)

is the between-level variance of a column's effects net of their sampling variance (an
estimate of tau_c^2), over the typical sampling variance of one level's estimate. A level
whose rows cannot estimate the term (too few rows, a constant slope column) counts with an
infinite sampling variance, so a term with mostly one-row levels is never centred. A term
is centred when kappa_c > 1 for every one of its columns. A term nested in others (coarser
factors whose levels contain its levels) is then centred around their effects when they
have its columns (bayesmm.model.builder), and otherwise only if every one of them is centred.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from ..design.build import Design, RandomEffectTerm
    from ..families.base import Family

__all__ = ["informativeness", "smooth_centring", "centred_terms", "centring_parents", "level_parents",
           "CENTRING_THRESHOLD"]  # fmt: skip

CENTRING_THRESHOLD = 1.0


def _link_scale_response(design: Design, family: Family) -> np.ndarray:
    """The response linearized on the link scale, u = g(m) + g'(m) (y - m) (IRLS's first
    working response), around m, each row's mean within its level of the finest grouping
    factor whose levels have two rows or more in the median (the overall mean if none has),
    moved off the boundaries of the link's domain by half an observation."""
    y = np.asarray(design.y, dtype=float)
    link = family.link
    if family.log_response:  # its linear predictor is on the scale of log(y)
        return np.log(y)
    if family.ordinal:
        # Each category's latent score: the link at the middle of its cumulative proportions,
        # less than the latent variable's spread, so kappa errs towards non-centring.
        counts = np.bincount(y.astype(int), minlength=int(y.max()) + 1)[1:].astype(float)
        cumulative = np.concatenate([[0.0], np.cumsum(counts) / counts.sum()])
        middle = np.clip((cumulative[:-1] + cumulative[1:]) / 2, 1e-6, 1 - 1e-6)
        return link.link(middle)[y.astype(int) - 1]
    if link.name == "identity":
        return y
    if design.trials is not None:
        y = y / np.maximum(design.trials, 1.0)
    codes = np.zeros(len(y), dtype=int)
    replicated = [t for t in design.random if np.median(np.bincount(t.codes)) >= 2]
    if replicated:
        codes = max(replicated, key=lambda t: t.n_levels).codes
    sizes = np.bincount(codes).astype(float)
    mean = ((np.bincount(codes, weights=y) + 0.5) / (sizes + 1.0))[codes]
    if link.name in ("logit", "probit", "cloglog"):
        mean = np.clip(mean, 1e-6, 1 - 1e-6)
    step = 1e-6 * np.maximum(np.abs(mean), 1e-3)
    slope = (link.link(mean + step) - link.link(mean - step)) / (2 * step)
    return link.link(mean) + slope * (y - mean)


class _LevelFits:
    """One term's no-pooling least-squares fits, level by level: Z_j'Z_j and its inverse
    (J x p x p) by bincounts, and which levels can estimate the term at all (more rows than
    columns, Z_j'Z_j well conditioned)."""

    def __init__(self, term: RandomEffectTerm):
        self.Z, self.codes, J, p = term.matrix, term.codes, term.n_levels, term.n_terms
        self.sizes = np.bincount(self.codes, minlength=J)
        ztz = np.empty((J, p, p))
        for a in range(p):
            for b in range(a, p):
                ztz[:, a, b] = ztz[:, b, a] = np.bincount(
                    self.codes, weights=self.Z[:, a] * self.Z[:, b], minlength=J
                )
        scale = np.maximum(np.einsum("jaa->j", ztz), 1e-300)
        self.estimable = (self.sizes > p) & (np.linalg.cond(ztz / scale[:, None, None]) < 1e8)
        self.inverse = np.zeros((J, p, p))
        self.inverse[self.estimable] = np.linalg.inv(ztz[self.estimable])
        self.beta = np.zeros((J, p))

    def refit(self, residual: np.ndarray) -> np.ndarray:
        """Refit the levels' effects to ``residual`` plus their current fit; the new residual."""
        J, p = self.beta.shape
        target = residual + np.einsum("ia,ia->i", self.Z, self.beta[self.codes])
        ztu = np.column_stack([np.bincount(self.codes, weights=self.Z[:, a] * target, minlength=J)
                               for a in range(p)])  # fmt: skip
        self.beta = np.einsum("jab,jb->ja", self.inverse, ztu)
        return target - np.einsum("ia,ia->i", self.Z, self.beta[self.codes])

    def kappa(self, se2: np.ndarray) -> np.ndarray:
        """kappa per column from the estimable levels' sampling variances (levels x p)."""
        p = self.beta.shape[1]
        if self.estimable.sum() < 2:
            return np.zeros(p)
        all_se2 = np.full(self.beta.shape, np.inf)
        all_se2[self.estimable] = se2
        finite = np.isfinite(se2).all(axis=1)
        if finite.sum() < 2:
            return np.zeros(p)
        between = self.beta[self.estimable][finite].var(axis=0, ddof=1) - se2[finite].mean(axis=0)
        return np.maximum(between, 0.0) / np.median(all_se2, axis=0)

    def pooled_se2(self, sigma2: float) -> np.ndarray:
        return sigma2 * np.einsum("jaa->ja", self.inverse[self.estimable])

    def clustered_se2(self, residual: np.ndarray, clusters: np.ndarray) -> np.ndarray:
        """Sampling variances that count the variation of a nested factor as noise: the
        sandwich (Z'Z)^-1 (sum over clusters of g g') (Z'Z)^-1, g = Z_c' e_c per cluster."""
        J, p = self.beta.shape
        n_clusters = int(clusters.max()) + 1
        score = np.column_stack([np.bincount(clusters, weights=self.Z[:, a] * residual, minlength=n_clusters)
                                 for a in range(p)])  # fmt: skip
        level_of = np.zeros(n_clusters, dtype=int)
        level_of[clusters] = self.codes  # each cluster lies within one level
        count = np.bincount(level_of[np.unique(clusters)], minlength=J).astype(float)
        meat = np.zeros((J, p, p))
        np.add.at(meat, level_of, score[:, :, None] * score[:, None, :])
        meat *= (count / np.maximum(count - 1.0, 1.0))[:, None, None]
        inverse = self.inverse[self.estimable]
        se2 = np.einsum("jab,jbc,jca->ja", inverse, meat[self.estimable], inverse)
        # A level holding one cluster (or fewer clusters than columns) cannot measure it.
        se2[count[self.estimable] <= p] = np.inf
        return se2


def _nested_in(inner: RandomEffectTerm, outer: RandomEffectTerm) -> bool:
    """Whether every level of ``inner``'s factor lies within one level of ``outer``'s, and
    ``inner`` has more levels (a finer factor, as batch:cask in batch)."""
    if inner.n_levels <= outer.n_levels:
        return False
    pairs = np.unique(np.column_stack([inner.codes, outer.codes]), axis=0)
    return len(pairs) == inner.n_levels


def level_parents(inner: RandomEffectTerm, outer: RandomEffectTerm) -> np.ndarray:
    """For each level of ``inner`` (nested in ``outer``), the code of its level of ``outer``."""
    parents = np.zeros(inner.n_levels, dtype=np.int64)
    parents[inner.codes] = outer.codes
    return parents


def _nested_parents(terms: list[RandomEffectTerm]) -> list[tuple[int, ...]]:
    """For each term, the indices of the terms it is nested in."""
    return [tuple(j for j, other in enumerate(terms) if _nested_in(term, other)) for term in terms]


def _centrable_around(terms: list[RandomEffectTerm], parents: list[tuple[int, ...]]) -> list:
    """Each term's ``parents`` where every one has its columns with the same values, else None."""

    def same_columns(term: RandomEffectTerm, other: RandomEffectTerm) -> bool:
        return other.columns == term.columns and np.array_equal(other.matrix, term.matrix)

    return [
        found if all(same_columns(term, terms[j]) for j in found) else None
        for term, found in zip(terms, parents, strict=True)
    ]


def centring_parents(design: Design) -> list[tuple[int, ...] | None]:
    """For each term of ``design.random``, the terms it is nested in (indices), when its
    effects can be centred around theirs: each has the same columns with the same values
    (casks in batches, broods in locations, both intercepts). None where one has other
    columns; () for a term nested in none."""
    return _centrable_around(design.random, _nested_parents(design.random))


# Backfitting sweeps over the terms: enough for crossed factors of balanced designs to
# settle (the residual variance changes by well under 1% after the third sweep).
SWEEPS = 4


def _noise_floor(design: Design, family: Family) -> float:
    """The least residual variance of a row on the link scale.

    An ordinal row tells no more about its linear predictor than its latent variable would
    (variance pi^2 / 3 for the logit link, 1 for the probit), whatever the spread of the
    categories' scores. A binary or binomial row tells no more than its binomial variance at
    the overall proportion p allows, g'(p)^2 p (1 - p) / trials (IRLS's weight, averaged
    over the rows' trials): the linearized response of a level whose rows are all 1 (or all
    0) has no spread of its own, so the residuals alone overstate what few trials say
    (MASS's bacteria, 4-5 Bernoulli rows per child, looked centred at kappa 3.45 and mixed
    badly so)."""
    if family.ordinal:
        return np.pi**2 / 3 if family.link.name == "logit" else 1.0
    if (family.binary_response or family.needs_trials) and family.link.name != "identity":
        trials = np.ones(len(design.y)) if design.trials is None else np.maximum(design.trials, 1.0)
        p = (float(np.sum(design.y)) + 0.5) / (float(np.sum(trials)) + 1.0)
        step = 1e-6 * min(p, 1 - p)
        slope = (family.link.link(p + step) - family.link.link(p - step)) / (2 * step)
        return float(slope**2 * p * (1 - p) / np.mean(trials))
    return 1e-12


def informativeness(design: Design, family: Family) -> list[np.ndarray]:
    """kappa for each column of each term of ``design.random`` (see the module docstring):
    how much more precisely a typical level's own rows estimate its effects than the spread
    of effects across levels. A term is fitted jointly with the terms crossed with it
    (backfitting), so that a crossed factor's variation is not counted as its residual; the
    factors nested in it are left out, and their variation counts as the noise of its
    levels' estimates (cluster-robust variances over the coarsest nested factor)."""
    if family.categorical:  # no one working response; its terms stay non-centred
        return [np.zeros(term.n_terms) for term in design.random]
    u = _link_scale_response(design, family)
    if design.X.shape[1]:
        coef, *_ = np.linalg.lstsq(design.X, u, rcond=None)
        u = u - design.X @ coef
    terms = design.random
    kappas = []
    for term in terms:
        nested = [t for t in terms if _nested_in(t, term)]
        fitted = [t for t in terms if t is term or not (_nested_in(t, term) or _nested_in(term, t))]
        fits = [_LevelFits(t) for t in fitted]
        residual = u
        for _ in range(SWEEPS if len(fits) > 1 else 1):
            for fit in fits:
                residual = fit.refit(residual)
        own = fits[[t is term for t in fitted].index(True)]
        if nested:
            # Clusters at the nested level just below: they carry every finer level's variation.
            below = min(nested, key=lambda t: t.n_levels)
            se2 = own.clustered_se2(residual, below.codes)
        else:
            used = design.X.shape[1] + sum(int(f.estimable.sum()) * f.beta.shape[1] for f in fits)
            sigma2 = max(float(residual @ residual) / max(len(u) - used, 1), _noise_floor(design, family))
            se2 = own.pooled_se2(sigma2)
        kappas.append(own.kappa(se2))
    return kappas


def centred_terms(design: Design, family: Family, setting=None) -> tuple[bool, ...]:
    """Whether each term of ``design.random`` is sampled centred.

    ``setting``: None (choose from the data), True or False (every term that can be
    centred, or none), or a dict from grouping factor names to True/False (the others
    chosen from the data). Reduced-rank terms are always non-centred.
    """
    if setting is not None and not isinstance(setting, (bool, dict)):
        raise ValueError(f"centered takes None, True, False or a dict of group: bool; got {setting!r}")
    if isinstance(setting, dict):
        unknown = sorted(set(setting) - set(design.groups))
        if unknown:
            raise ValueError(
                f"centered names {', '.join(map(repr, unknown))}, not a grouping factor of the formula; "
                f"its grouping factors are {', '.join(map(repr, design.groups)) or 'none'}"
            )
    terms = design.random
    kappas = None
    chosen: list[bool | None] = []
    for k, term in enumerate(terms):
        wanted = setting.get(term.group) if isinstance(setting, dict) else setting
        if not term.covariance.centrable or term.level_factor is not None:  # rr, gr(): non-centred
            chosen.append(False)
        elif wanted is not None:
            chosen.append(bool(wanted))
        else:
            kappas = informativeness(design, family) if kappas is None else kappas
            chosen.append(None if np.all(kappas[k] > CENTRING_THRESHOLD) else False)
    # A term nested in others (casks in batches, broods in locations) trades off against
    # them: each finer level pins the sum of its own effect and its parents'. Centred on its
    # own under non-centred parents it mixed worse than both non-centred (Pastes: min ESS
    # 194 against 410; grouseticks: 127 against 246). Centred around its parents' effects
    # (bayesmm.model.builder, hierarchical centring) that sum is one coordinate; a term that cannot
    # be (a parent with other columns) is centred only if every term it is nested in is.
    parents = _nested_parents(terms)
    around = _centrable_around(terms, parents)
    for k in range(len(terms)):
        if chosen[k] is None:
            chosen[k] = around[k] is not None or all(chosen[j] is not False for j in parents[k])
    return tuple(bool(c) for c in chosen)


def smooth_centring(design: Design, family: Family) -> list[np.ndarray]:
    """For each smooth (each s() term, each block of a t2() term), each penalized
    coefficient's weight w in [0, 1] between the non-centred form (w = 0: a standard normal
    times sds) and the centred one (w = 1: Normal(0, sds)). The model draws the coefficient
    as r ~ Normal(0, sds^w) and takes s = sds^(1 - w) r (partial non-centring,
    Papaspiliopoulos, Roberts and Skold 2003): with w = kappa / (1 + kappa), the precision of
    the data about the coefficient over that of its prior, r's posterior scale hardly moves
    with sds, so neither the funnel of a weakly informed coefficient nor the ridge of a
    well informed one forms. A smooth's columns differ widely in what the data say about
    them (the low-frequency ones are pinned, the high-frequency ones are not), so the weight
    is per coefficient.

    kappa comes from one least-squares fit of the linearized response (as for the group
    effects) on the fixed columns and every smooth's columns together: sds^2 is estimated by
    the mean over the smooth's coefficients of their squared estimates less their sampling
    variances, and kappa_j = sds^2 / se_j^2. Where the columns outnumber the rows, or the
    family has no single working response (categorical), every weight is 0 (non-centred)."""
    weights = [np.zeros(s.Z.shape[1]) for s in design.smooths]
    if not design.smooths or family.categorical:
        return weights
    D = np.column_stack([design.X, *[s.Z for s in design.smooths]])
    n, p = D.shape
    if n <= p + 1:
        return weights
    u = _link_scale_response(design, family)
    gram = D.T @ D
    scale = np.sqrt(np.maximum(np.diag(gram), 1e-300))
    if np.linalg.cond(gram / np.outer(scale, scale)) > 1e10:
        return weights
    inverse = np.linalg.inv(gram)
    coef = inverse @ (D.T @ u)
    residual = u - D @ coef
    sigma2 = max(float(residual @ residual) / (n - p), _noise_floor(design, family))
    se2 = sigma2 * np.diag(inverse)
    start = design.X.shape[1]
    for k, smooth in enumerate(design.smooths):
        block = slice(start, start + smooth.Z.shape[1])
        start = block.stop
        tau2 = max(float(np.mean(coef[block] ** 2 - se2[block])), 0.0)
        kappa = tau2 / se2[block]
        weights[k] = kappa / (1 + kappa)
    return weights
