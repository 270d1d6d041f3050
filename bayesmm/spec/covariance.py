"""Covariance structures of random-effect terms: one object per term.

A term ``(x | g)`` has group effects r_j ~ Normal(0, Sigma) for each level j of g. What
Sigma looks like is the term's covariance structure, written as a prefix in the formula:

=================  =========================================  =====================
formula            Sigma                                      parameters
=================  =========================================  =====================
``(1 + x | g)``    unstructured: any SDs and correlations     p SDs, LKJ on the
                                                              correlation matrix
``(1 + x || g)``,  diagonal: independent effects              p SDs
``diag(1 + x|g)``
``cs(1 + x | g)``  compound symmetry: one correlation rho     p SDs, rho
                   shared by every pair
``ar1(0 + t | g)`` first-order autoregressive over the        p SDs, rho
                   columns in order: cor(i, j) = rho^|i-j|
``rr(x | g, d)``   reduced rank: Lambda Lambda^T with p x d   the loadings Lambda
                   loadings (d latent factors)
=================  =========================================  =====================

Each structure is one small class. It owns:

* the names of its parameters and their default prior entries;
* the PyMC construction: its covariance factor F (Sigma = F F^T), SDs and reported correlations;
  standard normals z in, effects z F^T out (non-centred), or the effects drawn as they are
  (centred: bayesmm.model.parameterization says which);
* the numpy covariance matrix from draws (for new levels) or from given values (for simulation);
* its columns' slice within its grouping factor, which may have several terms.

A new structure is a subclass registered in ``STRUCTURES``: the formula parser reads its
``prefix``, the summary its ``label``, prior sensitivity its ``cor_prior_on_correlations``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from ..design.build import RandomEffectTerm
    from .priors import Prior, PriorEntry

__all__ = [
    "Covariance", "Unstructured", "Diagonal", "CompoundSymmetry", "AR1", "ReducedRank", "STRUCTURES",
    "PREFIXES",
    "covariance_of",
]  # fmt: skip


# Up to this many columns, a centred term's density solves F x = v by substitution written
# out (elementwise operations) instead of MvNormal's triangular solve, whose numba LAPACK
# binding and gradient are slow to compile: sleepstudy's (Days | Subject), centred, compiled
# in 84 s with empty caches against 99 s with MvNormal (single runs move by 10-15 s).
UNROLLED_SOLVE = 6


def _chol_normal_logp(value, mu, F):
    """log Normal(value | mu, F F^T) over the last axis, F lower triangular with a positive
    diagonal: x = F^-1 (value - mu) by forward substitution, then -|x|^2/2 - log det F."""
    import pytensor.tensor as pt

    delta = value - mu
    p = int(value.type.shape[-1])
    solved = []
    for j in range(p):
        acc = delta[..., j]
        for k in range(j):
            acc = acc - F[..., j, k] * solved[k]
        solved.append(acc / F[..., j, j])
    square = sum(x**2 for x in solved)
    log_det = sum(pt.log(F[..., j, j]) for j in range(p))
    return -0.5 * square - log_det - 0.5 * p * np.log(2 * np.pi)


def _chol_normal_draws(mu, F, rng=None, size=None):
    """Draws of Normal(mu, F F^T): mu + F z (for prior and simulated draws)."""
    p = np.shape(mu)[-1]
    batch = np.broadcast_shapes(np.shape(mu)[:-1], np.shape(F)[:-2]) if size is None else tuple(size)
    z = rng.standard_normal((*batch, p))
    return mu + np.einsum("...ij,...j->...i", F, z)


class Covariance:
    """The covariance structure of one random-effect term; see the module docstring."""

    name: ClassVar[str]
    # How the formula asks for it: the prefix of its bar term (cs(x | g)); None for (x | g).
    prefix: ClassVar[str | None] = None
    # Whether the bar term takes a number after the grouping factor (rr(x | g, d)).
    takes_rank: ClassVar[bool] = False
    # The prior class of the correlation parameter (None: the structure has none).
    cor_class: ClassVar[str | None] = None
    # Whether that prior is a density of the reported correlations (so prior sensitivity can
    # evaluate it on their draws); reduced rank's is a prior on loadings.
    cor_prior_on_correlations: ClassVar[bool] = True
    # Whether the effects can be sampled centred, as Normal(0, F F^T) with F lower triangular
    # (bayesmm.model.parameterization decides whether they are).
    centrable: ClassVar[bool] = True

    def __init__(self, term: RandomEffectTerm, start: int = 0):
        self.term = term
        self.start = start  # the term's first column among its grouping factor's columns

    @property
    def latent(self) -> int:
        """Standard normals per level that ``build`` maps to the p effects (p, or fewer)."""
        return self.p

    @classmethod
    def label(cls, spec) -> str:
        """How the term reads in the formula and the summary: ``(x | g)``, ``(x || g)``."""
        return f"({spec.expr} {'|' if spec.correlated else '||'} {spec.grouping})"

    @classmethod
    def problem_with(cls, columns: list[str], spec) -> str | None:
        """What is wrong with a term's columns for this structure (None: nothing); the design
        raises it as a DataError naming the term."""
        return None

    # -- names -----------------------------------------------------------
    @property
    def p(self) -> int:
        return self.term.n_terms

    @property
    def columns(self) -> slice:
        """The term's columns within its grouping factor's effects (``r_<g>``, ``sd_<g>``)."""
        return slice(self.start, self.start + self.p)

    @property
    def cor_pairs(self) -> list[tuple[int, int]]:
        """Index pairs (i, j), i > j, of the reported correlations, row by row."""
        if self.cor_class is None:
            return []
        return [(i, j) for i in range(self.p) for j in range(i)]

    @property
    def cor_parameter(self) -> str:
        """The name of the correlation parameter's prior: ``cor(g)``, ``cor(zi:g)``."""
        return f"cor({self.term.qualified_group})"

    # -- priors ----------------------------------------------------------
    def cor_prior(self) -> Prior | None:
        return None

    def prior_entries(self, qualify, sd_prior: Prior) -> list[PriorEntry]:
        """Default prior entries: the SDs, then the correlation parameter if any."""
        group = qualify(self.term.group)
        from .priors import PriorEntry

        entries = [PriorEntry(name, qualify("sd"), group, sd_prior) for name in self.term.sd_names]
        prior = self.cor_prior()
        if prior is not None:
            entries.append(PriorEntry(self.cor_parameter, qualify(self.cor_class), group, prior))
        return entries

    def check_priors(self, by_name: dict[str, PriorEntry]) -> None:
        """Raise a PriorError when the resolved priors do not fit the structure."""

    # -- PyMC ------------------------------------------------------------
    def factor(self, priors: dict[str, PriorEntry], var):
        """The covariance factor F (p x latent, Sigma = F F^T; None for a diagonal Sigma, whose
        factor is the SDs), the SDs (p,) and the reported correlations (one per pair of
        ``cor_pairs``, or None), as PyMC variables named through ``var``."""
        raise NotImplementedError

    def build(self, z, priors: dict[str, PriorEntry], var):
        """Group effects (levels x p) from standard normals ``z`` (levels x latent), the SDs and
        the reported correlations: the non-centred form, r = z F^T."""
        F, sds, cors = self.factor(priors, var)
        return self.apply(z, F, sds), sds, cors

    @staticmethod
    def apply(z, F, sds):
        """z F^T: rows of standard normals to rows of effects."""
        import pytensor.tensor as pt

        return z * sds if F is None else pt.dot(z, F.T)

    def centred(self, name: str, F, sds, rows: int, mu=0.0):
        """``rows`` rows of effects drawn as they are (the centred form): Normal(mu, Sigma)
        each, Sigma = F F^T with F lower triangular, ``mu`` zero or (rows x p). Reduced-rank
        structures have no such form."""
        import pymc as pm

        if F is None:
            return pm.Normal(name, mu, sds, shape=(rows, self.p))
        mu = mu + np.zeros(self.p)
        if self.p > UNROLLED_SOLVE:
            return pm.MvNormal(name, mu=mu, chol=F, shape=(rows, self.p))
        return pm.CustomDist(
            name, mu, F, logp=_chol_normal_logp, random=_chol_normal_draws, signature="(p),(p,p)->(p)",
            shape=(rows, self.p),
        )  # fmt: skip

    def _sds(self, priors: dict[str, PriorEntry], var):
        import pytensor.tensor as pt

        entries = [priors[n] for n in self.term.sd_names]
        name = var("sd_raw")
        from .priors import stack_priors

        stacked = stack_priors([e.prior for e in entries])
        if stacked is not None:
            return stacked.create(name, dims=var.columns_dim)
        # Not a Deterministic of its own: the SDs are reported as sd_<g>, and a Deterministic
        # here, passed on unchanged into sd_<g> when the factor has one term, made two
        # trace variables of one, which PyMC's graph copy (bayesmm.inference.sampling.data_model)
        # refuses ("Variable name sd_g_raw already exists").
        return pt.stack([e.prior.create(f"{name}[{e.parameter}]") for e in entries])

    # -- numpy -----------------------------------------------------------
    def correlation(self, cors: np.ndarray) -> np.ndarray:
        """(draws, p, p) correlation matrices from the reported correlations, (draws, pairs)."""
        cors = np.asarray(cors, dtype=float).reshape(-1, len(self.cor_pairs))
        corr = np.tile(np.eye(self.p), (cors.shape[0], 1, 1))
        for k, (i, j) in enumerate(self.cor_pairs):
            corr[:, i, j] = corr[:, j, i] = cors[:, k]
        return corr

    def covariance(self, sds: np.ndarray, cors: np.ndarray | None) -> np.ndarray:
        """(draws, p, p) covariance matrices from SD draws (draws, p) and correlations."""
        sds = np.asarray(sds, dtype=float).reshape(-1, self.p)
        corr = self.correlation(cors) if self.cor_pairs else np.tile(np.eye(self.p), (sds.shape[0], 1, 1))
        return sds[:, :, None] * corr * sds[:, None, :]

    def from_values(self, values: dict[str, float]) -> np.ndarray:
        """The (p, p) covariance from parameter values by the summary's names (for simulation).

        SDs are required. Correlations are optional and default to 0. For a structure with one correlation
        parameter, ``cor(g)`` gives it."""
        sds = np.array([values[n] for n in self.term.sd_names], dtype=float)
        return self.covariance(sds[None, :], self._pair_values(values)[None, :] if self.cor_pairs else None)[
            0
        ]

    def _pair_values(self, values: dict[str, float]) -> np.ndarray:
        return np.array([values.get(n, 0.0) for n in self.term.cor_names], dtype=float)

    @property
    def parameter_names(self) -> list[str]:
        """The names simulate() accepts for this term: SDs, correlations, the structure's own."""
        return list(self.term.sd_names) + list(self.term.cor_names)


class Diagonal(Covariance):
    """Independent effects: ``(x || g)``, ``diag(x | g)`` and every one-column term."""

    name = "diag"
    prefix = "diag"

    def factor(self, priors, var):
        return None, self._sds(priors, var), None


class Unstructured(Covariance):
    """Any SDs and correlations: an LKJ(eta) prior on the correlation matrix.

    The correlation matrix's Cholesky factor is built elementwise from its canonical partial
    correlations (the C-vine's; Lewandowski, Kurowicka and Joe 2009, section 3.2): with z the
    partial correlation of columns i and j > i given columns 0..i-1, and (z + 1) / 2 ~
    Beta(b_i, b_i), b_i = eta + (p - 2 - i) / 2, independently, the correlation matrix is
    LKJ(eta) (for p = 2, (r + 1) / 2 ~ Beta(eta, eta)). Then L[j, i] = z sqrt(1 - sum_k<i
    L[j, k]^2) and L[j, j] = sqrt(1 - sum_k<j L[j, k]^2). The SDs are their own variables,
    as in a diagonal term. PyMC's ``LKJCholeskyCov`` is the same model; its Cholesky factor
    is a fancy-indexed set (AdvancedSetSubtensor), one of the ops that numba compiles
    slowly (sleepstudy's integrated-out model compiled in 43-68 s with it against 29-37 s
    for its uncorrelated form)."""

    name = "us"
    cor_class = "cor"

    def cor_prior(self) -> Prior:
        from .priors import Prior

        return Prior("LKJ", eta=1.0)

    @property
    def vine_pairs(self) -> list[tuple[int, int]]:
        """One partial correlation per pair (i, j), j > i, column by column of the vine."""
        return [(i, j) for i in range(self.p - 1) for j in range(i + 1, self.p)]

    def vine_beta(self, eta: float) -> np.ndarray:
        """b_i of each pair's Beta(b_i, b_i) (the class docstring), in vine_pairs' order."""
        return np.array([eta + (self.p - 2 - i) / 2.0 for i, _ in self.vine_pairs])

    def factor(self, priors, var):
        import pymc as pm
        import pytensor.tensor as pt

        p = self.p
        sds = self._sds(priors, var)
        pairs = self.vine_pairs
        b = self.vine_beta(priors[self.cor_parameter].prior.params["eta"])
        z = 2.0 * pm.Beta(var("cpc"), alpha=b, beta=b, shape=len(pairs)) - 1.0
        L = [[pt.constant(0.0) for _ in range(p)] for _ in range(p)]
        L[0][0] = pt.constant(1.0)
        left = [pt.constant(1.0) for _ in range(p)]  # 1 - the sum of squares so far, per row
        for k, (i, j) in enumerate(pairs):
            L[j][i] = z[k] * pt.sqrt(left[j])
            left[j] = left[j] - L[j][i] ** 2
            if i == j - 1:
                L[j][j] = pt.sqrt(left[j])
        cholesky = pt.stack([pt.stack(row) for row in L])
        cors = pt.stack([sum(L[i][k] * L[j][k] for k in range(j + 1)) for i, j in self.cor_pairs])
        return sds[:, None] * cholesky, sds, cors


class _OneCorrelation(Covariance):
    """A structure with p SDs and one correlation parameter rho, whose Cholesky factor of the
    correlation matrix is known in closed form or cheap."""

    @classmethod
    def label(cls, spec) -> str:
        return f"{cls.prefix}({spec.expr} | {spec.grouping})"

    def pair_correlation(self, rho, i: int, j: int):
        raise NotImplementedError

    def cholesky_of_correlation(self, rho):
        raise NotImplementedError

    def factor(self, priors, var):
        import pytensor.tensor as pt

        sds = self._sds(priors, var)
        rho = priors[self.cor_parameter].prior.create(var("rho"))
        chol = sds[:, None] * self.cholesky_of_correlation(rho)
        cors = pt.stack([self.pair_correlation(rho, i, j) for i, j in self.cor_pairs])
        return chol, sds, cors

    def _pair_values(self, values):
        if self.cor_parameter in values:
            rho = float(values[self.cor_parameter])
            return np.array([self.pair_correlation(rho, i, j) for i, j in self.cor_pairs], dtype=float)
        return super()._pair_values(values)

    @property
    def parameter_names(self):
        return super().parameter_names + [self.cor_parameter]


class CompoundSymmetry(_OneCorrelation):
    """``cs(x | g)``: one correlation shared by every pair; positive definite for rho in
    (-1/(p-1), 1), the support of its default uniform prior."""

    name = "cs"
    prefix = "cs"
    cor_class = "cs"

    def cor_prior(self) -> Prior:
        from .priors import Prior

        return Prior("Uniform", lower=-1.0 / (self.p - 1), upper=1.0)

    def pair_correlation(self, rho, i, j):
        return rho

    def cholesky_of_correlation(self, rho):
        import pytensor.tensor as pt

        p = self.p
        return pt.linalg.cholesky((1.0 - rho) * pt.eye(p) + rho * pt.ones((p, p)))


class AR1(_OneCorrelation):
    """``ar1(0 + t | g)``: first-order autoregressive correlation over the term's columns in
    their order (the levels of an ordered factor ``t``), cor(i, j) = rho^|i - j|, with one SD
    per column. The Cholesky factor is closed-form: L[i, 0] = rho^i and
    L[i, j] = rho^(i-j) sqrt(1 - rho^2) for 1 <= j <= i."""

    name = "ar1"
    prefix = "ar1"
    cor_class = "ar1"

    @classmethod
    def problem_with(cls, columns, spec):
        if "Intercept" in columns or len(columns) < 2:
            return (
                "ar1() correlates the effects of ordered columns, such as the levels of a time factor "
                f"without an intercept: write ar1(0 + factor(time) | {spec.group}); "
                f"its columns here are {', '.join(columns)}"
            )
        return None

    def cor_prior(self) -> Prior:
        from .priors import Prior

        return Prior("Uniform", lower=-1.0, upper=1.0)

    def pair_correlation(self, rho, i, j):
        return rho ** abs(i - j)

    def cholesky_of_correlation(self, rho):
        import pytensor.tensor as pt

        p = self.p
        lag = np.subtract.outer(np.arange(p), np.arange(p))
        powers = rho ** pt.as_tensor(np.maximum(lag, 0).astype(float))
        scale = np.where(np.arange(p) == 0, 1.0, 0.0)[None, :]
        factor = scale + (1.0 - scale) * pt.sqrt(1.0 - rho**2)
        return pt.where(pt.as_tensor(lag >= 0), powers * factor, 0.0)

    def check_priors(self, by_name):
        prior = by_name[self.cor_parameter].prior
        if prior.dist == "Uniform" and not (-1.0 <= prior.params["lower"] < prior.params["upper"] <= 1.0):
            from .priors import PriorError

            raise PriorError(f"the AR(1) correlation {self.cor_parameter} lives in (-1, 1); got {prior}")


class ReducedRank(Covariance):
    """``rr(x | g, d)``: reduced-rank (factor-analytic) covariance Sigma = Lambda Lambda^T,
    with Lambda the p x d loadings of d latent factors (glmmTMB's ``rr``), for terms with
    many columns whose effects move together. Identified as glmmTMB does: Lambda is lower
    trapezoidal (zero above the diagonal) with a positive diagonal. The group effects are
    r = u Lambda^T with u ~ Normal(0, I_d) per level. The summary reports the SDs and
    correlations that Sigma implies.

    The loadings' prior, ``loadings(g)``, is a Normal(0, s) (or Student-t) on the free
    loadings; the diagonal ones, which fix each factor's sign, take its positive half. By
    default s is the scale of the family's SD prior."""

    name = "rr"
    prefix = "rr"
    takes_rank = True
    cor_class = "rr"
    cor_prior_on_correlations = False
    centrable = False  # Sigma is singular: the effects exist only through the latent factors

    @classmethod
    def label(cls, spec) -> str:
        return f"rr({spec.expr} | {spec.grouping}, {spec.rank})"

    @property
    def latent(self) -> int:
        return min(self.term.spec.rank or 2, self.p)

    @property
    def cor_parameter(self) -> str:
        return f"loadings({self.term.qualified_group})"

    def prior_entries(self, qualify, sd_prior: Prior) -> list[PriorEntry]:
        from .priors import Prior, PriorEntry

        group = qualify(self.term.group)
        scale = float(sd_prior.params.get("sigma", 1.0))
        prior = Prior("Normal", mu=0.0, sigma=scale)
        return [PriorEntry(self.cor_parameter, qualify(self.cor_class), group, prior)]

    def check_priors(self, by_name):
        from .priors import PriorError

        prior = by_name[self.cor_parameter].prior
        if prior.dist not in ("Normal", "StudentT") or np.any(prior.params.get("mu", 0.0) != 0.0):
            raise PriorError(
                f"the prior for {self.cor_parameter} must be Normal(mu=0, sigma=...) or StudentT(mu=0, ...): "
                f"the diagonal loadings take its positive half; got {prior}"
            )

    def _lower_trapezoid(self) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        diagonal = [(j, j) for j in range(self.latent)]
        below = [(i, j) for j in range(self.latent) for i in range(j + 1, self.p)]
        return diagonal, below

    def factor(self, priors, var):
        import pytensor.tensor as pt

        from .priors import Prior

        prior = priors[self.cor_parameter].prior
        half = Prior(f"Half{prior.dist}", **{k: v for k, v in prior.params.items() if k != "mu"})
        diagonal, below = self._lower_trapezoid()
        loadings = pt.zeros((self.p, self.latent))
        values = half.create(var("loadings_diag"), shape=len(diagonal))
        loadings = pt.set_subtensor(loadings[tuple(np.array(diagonal).T)], values)
        if below:
            free = prior.create(var("loadings"), shape=len(below))
            loadings = pt.set_subtensor(loadings[tuple(np.array(below).T)], free)
        cov = pt.dot(loadings, loadings.T)
        sds = pt.sqrt(pt.diagonal(cov))
        cors = pt.stack([cov[i, j] / (sds[i] * sds[j]) for i, j in self.cor_pairs])
        return loadings, sds, cors


STRUCTURES: dict[str, type[Covariance]] = {
    cls.name: cls for cls in (Unstructured, Diagonal, CompoundSymmetry, AR1, ReducedRank)
}


# The formula's prefixes, each with the structure it asks for.
PREFIXES: dict[str, type[Covariance]] = {cls.prefix: cls for cls in STRUCTURES.values() if cls.prefix}


def covariance_of(term: RandomEffectTerm, start: int = 0) -> Covariance:
    """The structure a term's formula asks for; one-column terms are diagonal whatever the prefix."""
    structure = term.spec.structure if term.n_terms > 1 else "diag"
    return STRUCTURES[structure](term, start)
