"""What brms's addition terms do to a family's likelihood, in PyMC's graph and in numpy.

- ``se(s)``: the Gaussian's or Student-t's residual SD of each row is the known s (brms's
  ``sigma = FALSE``), or sqrt(sigma^2 + s^2) with ``se(s, sigma = TRUE)``.
- ``weights(w)``: each row's log-likelihood is multiplied by its weight, so that an integer
  weight counts as that many copies of the row (brms's semantics). The pointwise
  log-likelihood that LOO reads is the weighted one, as brms's.
- ``cens(c, y2)``: a left-censored row contributes log F(y), a right-censored one
  log(1 - F(y)) (for counts P(Y > y), Stan's lccdf), an interval-censored one
  log(F(y2) - F(y)) (brms's codes -1, 1, 2; 0 the density).
- ``trunc(lb, ub)``: each row's contribution less log P(lb <= Y <= ub) (for counts
  F(ub) - F(lb - 1), so that lb = 1 is the zero-truncated distribution).

The family declares the distribution once (``pymc_name`` and ``scipy_distribution``);
everything here is written over those, so a censorable family needs nothing of its own.
"""

from __future__ import annotations

import hashlib

import numpy as np

from ..design.additions import Additions
from ..design.build import Design
from ..lazy import pm, pt
from .base import Family

__all__ = [
    "check_additions",
    "with_known_se",
    "likelihood",
    "log_likelihood",
    "draw",
    "mean",
]


def check_additions(family: Family, design: Design, parts) -> None:
    """Refuse an addition term the family cannot take, naming both (before anything is built)."""
    additions, formula = design.additions, design.formula
    if additions.se is not None:
        if family.name not in ("gaussian", "student"):
            raise ValueError(
                f"se() gives each row a known residual SD; family '{family.name}' has none "
                "(se() is for family 'gaussian' or 'student')"
            )
        if "dispersion" in parts and not additions.sigma:
            raise ValueError(
                "se() fixes the residual SD, so a dispersion= formula for sigma has nothing to model; "
                "write se(s, sigma = TRUE) to estimate a residual SD besides the known one"
            )
    for name in ("cens", "trunc"):
        if formula.addition(name) is None:
            continue
        if not family.censorable:
            what = "censoring" if name == "cens" else "truncation"
            raise ValueError(
                f"{name}() ({what}) means nothing for family '{family.name}' here: bayesmm censors and "
                "truncates the families gaussian, student, lognormal, gamma, beta, exponential, weibull, "
                "poisson, negativebinomial and nbinom1 (a hurdle family is the zero-truncated count model "
                "with zeros)"
            )


def with_known_se(params: dict, additions: Additions, graph: bool) -> dict:
    """The family's parameters with sigma per row where se() gives it (graph: PyTensor)."""
    if additions.se is None:
        return params
    se = additions.se
    if not additions.sigma:
        return {**params, "sigma": pt.as_tensor(se) if graph else se[None, :]}
    sigma = params["sigma"]
    if graph:
        return {**params, "sigma": pt.sqrt(pt.square(sigma) + se**2)}
    return {**params, "sigma": np.sqrt(np.square(sigma) + se[None, :] ** 2)}


# -- PyMC -------------------------------------------------------------------


def likelihood(family: Family, name: str, eta, params: dict, design: Design, dims: str):
    """The response's observed PyMC variable with the design's addition terms."""
    additions = design.additions
    params = with_known_se(params, additions, graph=True)
    if additions.weights is None and not additions.bounded:
        return family.likelihood(name, eta, params, design, dims)
    if not additions.bounded:
        # Weights only, for any family: the observed variable as it is, and a potential that
        # adds (w - 1) times each row's log-likelihood.
        variable = family.likelihood(name, eta, params, design, dims)
        pointwise = pm.modelcontext(None).logp(vars=[variable], sum=False)[0]
        pm.Potential(f"{name}_weights", pt.sum((additions.weights - 1.0) * pointwise))
        return variable
    kwargs = family.pymc_kwargs(eta, params, design)
    keys = list(kwargs)
    distribution = getattr(pm, family.pymc_name)
    observed = design.y.astype("int64") if family.discrete else design.y

    def dist(*args):  # draws of the response without censoring (brms's predictions)
        *params, size = args
        return distribution.dist(**dict(zip(keys, params, strict=True)), size=size)

    def logp(value, *args):
        def rows(index):
            return distribution.dist(
                **{k: a if a.ndim == 0 else a[index] for k, a in zip(keys, args, strict=True)}
            )

        return bounded_logp(family, rows, value, additions)

    # The censoring and truncation live in the log-density's closure, not in the model's
    # graph: its name carries their fingerprint, so that a model with other codes, bounds or
    # weights never shares a compiled structure with this one (bayesmm.inference.sampling).
    inputs = [pt.as_tensor(kwargs[k]) for k in keys]
    label = f"Bounded_{_fingerprint(additions)}"
    return pm.CustomDist(name, *inputs, dist=dist, logp=logp, observed=observed, dims=dims, class_name=label)


def _fingerprint(additions: Additions) -> str:
    """A digest of everything the bounded log-density reads besides its parameters."""
    digest = hashlib.sha1()
    for name in ("cens", "y2", "lb", "ub", "weights"):
        value = getattr(additions, name)
        data = b"-" if value is None else np.ascontiguousarray(value, dtype=float).tobytes()
        digest.update(name.encode() + data)
    return digest.hexdigest()[:16]


def _truncation(family: Family, additions: Additions):
    """Per row, the effective lower bound (lb - 1 for counts: P(Y >= lb) = 1 - F(lb - 1)) and
    the upper bound, each infinite where it truncates nothing (at or beyond the support)."""
    n = len(additions.cens if additions.cens is not None else additions.lb)
    lower = np.full(n, -np.inf) if additions.lb is None else additions.lb - (1.0 if family.discrete else 0.0)
    upper = np.full(n, np.inf) if additions.ub is None else additions.ub.copy()
    lower = np.where(lower < family.support_lower if family.discrete else lower <= family.support_lower,
                     -np.inf, lower)  # fmt: skip
    upper = np.where(upper >= family.support_upper, np.inf, upper)
    return lower, upper


def bounded_logp(family: Family, rows, value, additions: Additions):
    """Each row's log-likelihood with censoring, truncation and weights, as a PyTensor
    vector: ``rows(index)`` is the distribution of those rows. Each kind of row is computed
    on its own rows only, so no tail probability is evaluated where it is not needed (and no
    gradient of one can be NaN there)."""
    n = len(additions.cens if additions.cens is not None else additions.lb)
    codes = additions.cens if additions.cens is not None else np.zeros(n)
    total = pt.zeros(n)

    def put(index, values):
        return pt.set_subtensor(total[index], values) if index.size else total

    for code in (0, -1, 1, 2):
        index = np.flatnonzero(codes == code)
        if not index.size:
            continue
        rv, y = rows(index), value[index]
        if code == 0:
            part = pm.logp(rv, y)
        elif code == -1:
            part = pm.logcdf(rv, y)
        elif code == 1:
            part = pm.logccdf(rv, y)
        else:
            part = pm.math.logdiffexp(pm.logcdf(rv, additions.y2[index]), pm.logcdf(rv, y))
        total = put(index, part)
    lower, upper = _truncation(family, additions)
    for index, kind in _truncated_rows(lower, upper):
        rv = rows(index)
        if kind == "lower":
            norm = pm.logccdf(rv, lower[index])
        elif kind == "upper":
            norm = pm.logcdf(rv, upper[index])
        else:
            norm = pm.math.logdiffexp(pm.logcdf(rv, upper[index]), pm.logcdf(rv, lower[index]))
        total = pt.inc_subtensor(total[index], -norm)
    if additions.weights is not None:
        total = total * additions.weights
    return total


def _truncated_rows(lower: np.ndarray, upper: np.ndarray):
    finite_lower, finite_upper = np.isfinite(lower), np.isfinite(upper)
    for kind, mask in (("lower", finite_lower & ~finite_upper), ("upper", ~finite_lower & finite_upper),
                       ("both", finite_lower & finite_upper)):  # fmt: skip
        if mask.any():
            yield np.flatnonzero(mask), kind


# -- numpy ------------------------------------------------------------------


def _log1mexp(x):
    """log(1 - exp(x)) for x <= 0, accurate at both ends."""
    x = np.minimum(x, 0.0)
    with np.errstate(divide="ignore"):
        return np.where(x > -np.log(2.0), np.log(-np.expm1(x)), np.log1p(-np.exp(x)))


def _logdiffexp(a, b):
    """log(exp(a) - exp(b)) for a >= b."""
    with np.errstate(invalid="ignore"):
        return a + _log1mexp(b - a)


def log_likelihood(family: Family, y, eta, params: dict, trials, additions: Additions) -> np.ndarray:
    """Pointwise log-likelihood (draws, rows) with the addition terms (``additions`` for the
    same rows as ``y``)."""
    params = with_known_se(params, additions, graph=False)
    if not additions.bounded:
        values = family.log_likelihood(y, eta, params, trials)
        return values if additions.weights is None else values * additions.weights
    distribution = family.response_distribution(eta, params, trials)
    codes = additions.cens if additions.cens is not None else np.zeros(len(y))
    with np.errstate(divide="ignore"):
        density = distribution.logpmf(y) if family.discrete else distribution.logpdf(y)
        values = np.where(codes == 0, density, 0.0)
        if np.any(codes == -1):
            values = np.where(codes == -1, distribution.logcdf(y), values)
        if np.any(codes == 1):
            values = np.where(codes == 1, distribution.logsf(y), values)
        if np.any(codes == 2):
            upper = np.where(codes == 2, additions.y2, y)
            values = np.where(
                codes == 2, _logdiffexp(distribution.logcdf(upper), distribution.logcdf(y)), values
            )
        lower, upper = _truncation(family, additions)
        if np.isfinite(lower).any() or np.isfinite(upper).any():
            values = values - _log_mass(distribution, lower, upper)
    return values if additions.weights is None else values * additions.weights


def _log_mass(distribution, lower, upper):
    """log(F(upper) - F(lower)) per row (0 where both are infinite)."""
    with np.errstate(divide="ignore"):
        log_upper = _cdf_at(distribution.logcdf, upper, 0.0)
        log_lower = _cdf_at(distribution.logcdf, lower, -np.inf)
    return _logdiffexp(log_upper, log_lower)


def _cdf_at(cdf, bound: np.ndarray, otherwise: float) -> np.ndarray:
    """``cdf`` at each row's bound where it is finite, ``otherwise`` where it is infinite."""
    finite = np.isfinite(bound)
    return np.where(finite, cdf(np.where(finite, bound, 0.0)), otherwise)


def draw(family: Family, eta, params: dict, trials, rng: np.random.Generator, additions: Additions):
    """New responses (draws, rows): from the model without censoring (brms's
    ``posterior_predict``), within the truncation bounds by inverting the CDF."""
    params = with_known_se(params, additions, graph=False)
    lower, upper = _truncation(family, additions) if additions.lb is not None else (None, None)
    if lower is None or not (np.isfinite(lower).any() or np.isfinite(upper).any()):
        return family.draw(eta, params, trials, rng)
    distribution = family.response_distribution(eta, params, trials)
    shape = np.broadcast_shapes(np.shape(eta), *(np.shape(v) for v in distribution.kwds.values()))
    low, high = _cdf_at(distribution.cdf, lower, 0.0), _cdf_at(distribution.cdf, upper, 1.0)
    u = low + rng.random(shape) * (high - low)
    values = np.asarray(distribution.ppf(u), dtype=float)
    # Where the bounds hold almost no mass u can round onto an end: keep draws inside.
    bottom = lower + (1.0 if family.discrete else 0.0)
    return np.clip(values, np.where(np.isfinite(bottom), bottom, -np.inf), upper)  # -inf + 1 is -inf


_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(64)
_COUNT_LIMIT = 100_000


def mean(family: Family, eta, params: dict, trials, additions: Additions, truncated: bool = True):
    """The expected response (draws, rows): of the truncated distribution where trunc() bounds
    it and ``truncated`` (brms's ``posterior_epred``), else of the distribution itself;
    censoring does not change it."""
    params = with_known_se(params, additions, graph=False)
    plain = family.mean(eta, params, trials)
    if not truncated or additions.lb is None:
        return plain
    lower, upper = _truncation(family, additions)
    if not (np.isfinite(lower).any() or np.isfinite(upper).any()):
        return plain
    distribution = family.response_distribution(eta, params, trials)
    shape = np.broadcast_shapes(np.shape(eta), *(np.shape(v) for v in distribution.kwds.values()))
    mass = np.exp(_log_mass(distribution, lower, upper))
    if family.discrete:
        # E(Y | lb <= Y <= ub) = sum of k f(k) over the bounds, by the mean less the tails.
        low = np.where(np.isfinite(lower), lower, -1.0)
        high = np.where(np.isfinite(upper), upper, -1.0)
        if max(np.max(low), np.max(high)) > _COUNT_LIMIT:
            raise ValueError(
                f"truncation bounds above {_COUNT_LIMIT} make the truncated mean too costly here"
            )
        total = np.broadcast_to(plain, shape).astype(float)
        for bound, below in ((low, True), (high, False)):
            if np.all(bound < 0):
                continue
            ks = np.arange(int(np.max(bound)) + 1).reshape(-1, *(1,) * len(shape))
            partial = np.sum(ks * distribution.pmf(ks) * (ks <= bound), axis=0)
            total = total - partial if below else total - (plain - partial) * np.isfinite(upper)
        return total / mass
    # Continuous: the mean of the quantile function over [F(lb), F(ub)] by Gauss-Legendre.
    low, high = _cdf_at(distribution.cdf, lower, 0.0), _cdf_at(distribution.cdf, upper, 1.0)
    total = np.zeros(shape)
    for node, weight in zip(_NODES, _WEIGHTS, strict=True):
        u = low + (high - low) * (node + 1.0) / 2.0
        total = total + weight * distribution.ppf(u)
    return total / 2.0
