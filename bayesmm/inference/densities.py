"""The log-densities bayesmm.inference.template writes on the tape: each prior family's
(from a table of its parameters and constant term) and each family's log-likelihood,
summed over rows, as PyMC defines them (tests/test_template.py compares).
"""

from __future__ import annotations

import numpy as np

from .tape import Tape, Var

LOG_2PI = float(np.log(2.0 * np.pi))

COUNTS = (
    "poisson",
    "negativebinomial",
    "nbinom1",
    "zi_poisson",
    "zi_negativebinomial",
    "hu_poisson",
    "hu_negativebinomial",
    "zi_nbinom1",
    "hu_nbinom1",
)
# PyMC's negative binomial takes the Poisson limit above this alpha (its gammaln difference
# falls below their ulp).
_NB_POISSON_ALPHA = 1e10
# The prior families by bayesmm.Prior name: their code, and their parameters with PyMC's
# defaults (None: required); _OWN_DENSITIES has the tables of Gamma, Uniform and Logistic.
DENSITIES = {
    "Normal": (0, {"mu": 0.0, "sigma": 1.0}),
    "StudentT": (1, {"nu": None, "mu": 0.0, "sigma": 1.0}),
    "HalfNormal": (2, {"sigma": 1.0}),
    "HalfStudentT": (3, {"nu": None, "sigma": 1.0}),
    "HalfCauchy": (4, {"beta": None}),
    "Exponential": (5, {"lam": None}),
    "Beta": (6, {"alpha": None, "beta": None}),
}
GAMMA, UNIFORM, LOGISTIC, INVERSE_GAMMA, DIRICHLET = 7, 8, 9, 10, 11
# Location-scale priors beside the Normal's, StudentT's and Logistic's (p1 the location, p2 the
# scale), the positive LogNormal (mu, sigma) and Weibull (alpha, beta), and the flat ones.
CAUCHY, LAPLACE, GUMBEL, LOGNORMAL, WEIBULL, FLAT, HALF_FLAT = 12, 13, 14, 15, 16, 17, 18
# Their codes and the log of their normalising constant beside log scale (log pi, log 2, 0);
# their parameters' names are bayesmm.model.builder.LOCATION_SCALE's.
_LOCATION_SCALE = {"Cauchy": (CAUCHY, np.log(np.pi)), "Laplace": (LAPLACE, np.log(2.0)),
                   "Gumbel": (GUMBEL, 0.0)}  # fmt: skip
# The transform each family's variable has in PyMC: 0 none, 1 log, 2 log-odds, 3 an interval's,
# 5 the simplex's; 4, the ordered one, is an ordinal model's thresholds' (whatever their prior).
ORDERED, SIMPLEX = 4, 5
TRANSFORM_OF = {0: 0, 1: 0, 2: 1, 3: 1, 4: 1, 5: 1, 6: 2, GAMMA: 1, UNIFORM: 3, LOGISTIC: 0, INVERSE_GAMMA: 1,
                DIRICHLET: SIMPLEX, CAUCHY: 0, LAPLACE: 0, GUMBEL: 0, LOGNORMAL: 1, WEIBULL: 1, FLAT: 0,
                HALF_FLAT: 1}  # fmt: skip


class Unsupported(Exception):
    """A model bayesmm.inference.template does not write (the message says why)."""


def _density(dist: str, params: dict, size: int) -> tuple[int, np.ndarray]:
    """The family's code and its (4, size) parameters: p1, p2, p3 and the constant term."""
    from scipy.special import betaln, gammaln

    if dist not in DENSITIES:
        raise Unsupported(f"a {dist} prior")
    code, defaults = DENSITIES[dist]
    if dist == "Exponential" and "scale" in params and "lam" not in params:
        params = {"lam": 1.0 / np.asarray(params["scale"], dtype=float)}
    if set(params) - set(defaults):
        raise Unsupported(f"{dist} with parameters {sorted(params)}")
    full = {}
    for name, default in defaults.items():
        if params.get(name, default) is None:
            raise Unsupported(f"{dist} without {name}")
        full[name] = np.broadcast_to(np.asarray(params.get(name, default), dtype=float), (size,))
    out = np.zeros((4, size))

    def t_constant(nu):  # Student-t's normalising constant, less log sigma
        return gammaln((nu + 1) / 2) - gammaln(nu / 2) - 0.5 * np.log(nu * np.pi)

    if code == 0:
        out[0], out[1] = full["mu"], full["sigma"]
        out[3] = -np.log(full["sigma"]) - 0.5 * np.log(2 * np.pi)
    elif code == 1:
        out[0], out[1], out[2] = full["mu"], full["sigma"], full["nu"]
        out[3] = t_constant(full["nu"]) - np.log(full["sigma"])
    elif code == 2:
        out[1] = full["sigma"]
        out[3] = 0.5 * np.log(2 / np.pi) - np.log(full["sigma"])
    elif code == 3:
        out[1], out[2] = full["sigma"], full["nu"]
        out[3] = np.log(2.0) + t_constant(full["nu"]) - np.log(full["sigma"])
    elif code == 4:
        out[1] = full["beta"]
        out[3] = np.log(2.0) - np.log(np.pi) - np.log(full["beta"])
    elif code == 5:
        out[1] = full["lam"]
        out[3] = np.log(full["lam"])
    else:
        out[0], out[1] = full["alpha"], full["beta"]
        out[3] = -betaln(full["alpha"], full["beta"])
    return code, out


def scaled(prior, scale, name: str):
    """What bayesmm.model.builder._coefficient samples for a coefficient with this prior (no shear):
    the variable's name, its prior's parameters and the multiplier from it to the coefficient."""
    from ..model.builder import coefficient_form

    scale = np.asarray(scale, dtype=float)
    form = coefficient_form(name, prior, None, scale)
    if form is None:
        return name, dict(prior.params), np.ones_like(scale)
    return form[0], form[1], 1.0 / scale


def _gamma(params: dict, size: int, inverse: bool = False) -> tuple[int, np.ndarray]:
    """A Gamma (or InverseGamma) prior's code and (4, size) table: alpha, beta, unused, the
    constant term alpha log beta - gammaln(alpha) (PyMC's Gamma also takes mu and sigma)."""
    from scipy.special import gammaln

    name = "InverseGamma" if inverse else "Gamma"
    if set(params) == {"mu", "sigma"} and not inverse:
        mu, sigma = (np.asarray(params[k], dtype=float) for k in ("mu", "sigma"))
        params = {"alpha": mu**2 / sigma**2, "beta": mu / sigma**2}
    if set(params) != {"alpha", "beta"}:
        raise Unsupported(f"{name} with parameters {sorted(params)}")
    table = np.zeros((4, size))
    for row, key in enumerate(("alpha", "beta")):
        table[row] = np.broadcast_to(np.asarray(params[key], dtype=float), (size,))
    table[3] = table[0] * np.log(table[1]) - gammaln(table[0])
    return (INVERSE_GAMMA if inverse else GAMMA), table


def _uniform(params: dict, size: int) -> tuple[int, np.ndarray]:
    """A Uniform prior's code and (4, size) table: lower, upper, unused, -log(upper - lower)."""
    if set(params) != {"lower", "upper"}:
        raise Unsupported(f"Uniform with parameters {sorted(params)}")
    table = np.zeros((4, size))
    for row, key in enumerate(("lower", "upper")):
        table[row] = np.broadcast_to(np.asarray(params[key], dtype=float), (size,))
    if not np.all(np.isfinite(table[:2])):
        raise Unsupported("a Uniform prior without two finite bounds")
    table[3] = -np.log(table[1] - table[0])
    return UNIFORM, table


def _logistic(params: dict, size: int) -> tuple[int, np.ndarray]:
    """A Logistic prior's code and (4, size) table: mu, s, unused, -log s."""
    if set(params) - {"mu", "s"}:
        raise Unsupported(f"Logistic with parameters {sorted(params)}")
    table = np.zeros((4, size))
    for row, (key, default) in enumerate((("mu", 0.0), ("s", 1.0))):
        table[row] = np.broadcast_to(np.asarray(params.get(key, default), dtype=float), (size,))
    table[3] = -np.log(table[1])
    return LOGISTIC, table


def _dirichlet(params: dict, size: int) -> tuple[int, np.ndarray]:
    """A Dirichlet prior's code and (4, size + 1) table (its value, the simplex, has one more
    element than the sampled one): a, unused, unused, the constant gammaln(sum a) - sum
    gammaln(a) in the first column."""
    from scipy.special import gammaln

    if set(params) != {"a"}:
        raise Unsupported(f"Dirichlet with parameters {sorted(params)}")
    table = np.zeros((4, size + 1))
    table[0] = np.broadcast_to(np.asarray(params["a"], dtype=float), (size + 1,))
    table[3, 0] = gammaln(table[0].sum()) - gammaln(table[0]).sum()
    return DIRICHLET, table


def _location_scale(dist: str):
    """The table maker of a Cauchy, Laplace or Gumbel prior: location, scale, unused, and the
    constant term (-log(pi beta), -log(2 b), -log beta)."""
    from ..model.builder import LOCATION_SCALE

    (code, shift), (location, spread) = _LOCATION_SCALE[dist], LOCATION_SCALE[dist]

    def table_of(params: dict, size: int) -> tuple[int, np.ndarray]:
        if set(params) != {location, spread}:
            raise Unsupported(f"{dist} with parameters {sorted(params)}")
        table = np.zeros((4, size))
        for row, key in enumerate((location, spread)):
            table[row] = np.broadcast_to(np.asarray(params[key], dtype=float), (size,))
        table[3] = -np.log(table[1]) - shift
        return code, table

    return table_of


def _positive(dist: str):
    """The table maker of a LogNormal (mu, sigma; constant -log sigma - log(2 pi) / 2) or
    Weibull (alpha, beta; constant log alpha - alpha log beta) prior."""
    code, keys = (LOGNORMAL, ("mu", "sigma")) if dist == "LogNormal" else (WEIBULL, ("alpha", "beta"))

    def table_of(params: dict, size: int) -> tuple[int, np.ndarray]:
        given = {**({"mu": 0.0} if code == LOGNORMAL else {}), **params}
        if set(given) != set(keys):
            raise Unsupported(f"{dist} with parameters {sorted(params)}")
        table = np.zeros((4, size))
        for row, key in enumerate(keys):
            table[row] = np.broadcast_to(np.asarray(given[key], dtype=float), (size,))
        if code == LOGNORMAL:
            table[3] = -np.log(table[1]) - 0.5 * LOG_2PI
        else:
            table[3] = np.log(table[0]) - table[0] * np.log(table[1])
        return code, table

    return table_of


def _flat(code: int):
    def table_of(params: dict, size: int) -> tuple[int, np.ndarray]:
        if params:
            raise Unsupported(f"a flat prior with parameters {sorted(params)}")
        return code, np.zeros((4, size))

    return table_of


_OWN_DENSITIES = {
    **{dist: _location_scale(dist) for dist in _LOCATION_SCALE},
    "LogNormal": _positive("LogNormal"),
    "Weibull": _positive("Weibull"),
    "Flat": _flat(FLAT),
    "HalfFlat": _flat(HALF_FLAT),
    "Gamma": _gamma,
    "Dirichlet": _dirichlet,
    "Uniform": _uniform,
    "Logistic": _logistic,
    "InverseGamma": lambda params, size: _gamma(params, size, inverse=True),
}


def prior_table(dist: str, params: dict, size: int) -> tuple[int, np.ndarray]:
    """A prior's code and (4, size) table."""
    return _OWN_DENSITIES[dist](params, size) if dist in _OWN_DENSITIES else _density(dist, params, size)


def prior(t: Tape, value: Var, code: int, table: np.ndarray, mu=None, logit=None) -> Var:
    """The sum of the prior's log-density over ``value``'s elements (prior_table's families
    and tables); ``mu``: a location moved by other parameters (added to p1);
    ``logit``: the sampled log-odds of a Beta variable."""
    constant = float(np.sum(table[3]))
    if code in (0, 1, LOGISTIC, CAUCHY, LAPLACE, GUMBEL):  # location-scale: z = (x - location) / scale
        s = value
        if mu is not None:
            s = t.sub(s, t.add(t.constant(table[0]), mu))
        elif np.any(table[0] != 0.0):
            s = t.sub(s, t.constant(table[0]))
        if np.any(table[1] != 1.0):
            s = t.div(s, t.constant(table[1]))
    elif code in (2, 3, 4):  # HalfNormal, HalfStudentT, HalfCauchy
        s = t.div(value, t.constant(table[1])) if np.any(table[1] != 1.0) else value
    if code in (0, 2):
        total = t.mul(t.sumsq(s), t.constant(-0.5))
    elif code in (1, 3):
        nu = table[2]
        total = t.dot(t.log1p(t.div(t.sqr(s), t.constant(nu))), t.constant(-(nu + 1.0) / 2.0))
    elif code == 4:
        total = t.neg(t.sum(t.log1p(t.sqr(s))))
    elif code == 5:  # Exponential
        total = t.dot(value, t.constant(-table[1]))
    elif code == 6:  # Beta: (alpha - 1) log x + (beta - 1) log(1 - x), from the log-odds
        log_x, log_rest = t.neg(t.softplus(t.neg(logit))), t.neg(t.softplus(logit))
        total = t.add(t.dot(log_x, t.constant(table[0] - 1.0)), t.dot(log_rest, t.constant(table[1] - 1.0)))
    elif code == LOGISTIC:  # -z - 2 log(1 + exp(-z))
        total = t.neg(t.add(t.sum(s), t.mul(t.sum(t.softplus(t.neg(s))), t.constant(2.0))))
    elif code in (UNIFORM, FLAT, HALF_FLAT):  # constant (within its bounds: the transform keeps it there)
        total = t.constant(0.0)
    elif code == CAUCHY:  # -log(1 + z^2)
        total = t.neg(t.sum(t.log1p(t.sqr(s))))
    elif code == LAPLACE:  # -|z|
        total = t.neg(t.sum(t.abs(s)))
    elif code == GUMBEL:  # -z - exp(-z)
        total = t.neg(t.add(t.sum(s), t.sum(t.exp(t.neg(s)))))
    elif code == LOGNORMAL:  # -log x - (log x - mu)^2 / (2 sigma^2)
        logs = t.log(value)
        z = t.div(t.sub(logs, t.constant(table[0])), t.constant(table[1]))
        total = t.neg(t.add(t.sum(logs), t.mul(t.sumsq(z), t.constant(0.5))))
    elif code == WEIBULL:  # (alpha - 1) log x - (x / beta)^alpha
        logs = t.log(value)
        power = t.exp(t.mul(t.sub(logs, t.constant(np.log(table[1]))), t.constant(table[0])))
        total = t.sub(t.dot(logs, t.constant(table[0] - 1.0)), t.sum(power))
    elif code == DIRICHLET:  # (a - 1) log x over the simplex
        total = t.dot(t.log(value), t.constant(table[0] - 1.0))
    elif code == INVERSE_GAMMA:  # -(alpha + 1) log x - beta / x
        logs = t.dot(t.log(value), t.constant(table[0] + 1.0))
        total = t.neg(t.add(logs, t.dot(t.div(t.constant(1.0), value), t.constant(table[1]))))
    else:  # Gamma: (alpha - 1) log x - beta x
        total = t.add(t.dot(t.log(value), t.constant(table[0] - 1.0)), t.dot(value, t.constant(-table[1])))
    return t.add(total, t.constant(constant))


class _Rows:
    """Sums over a model's rows (or some of them), each row's term weighted by its likelihood
    weight (brms's weights(); None: 1)."""

    def __init__(self, t: Tape, n: int, weights: np.ndarray | None):
        self.t, self.n, self.weights = t, n, weights
        self.count = float(n if weights is None else np.sum(weights))

    def subset(self, index: np.ndarray) -> _Rows:
        return _Rows(self.t, index.size, None if self.weights is None else self.weights[index])

    def sum(self, value: Var) -> Var:
        """The sum of a per-row value, or the rows' count times a value they share."""
        t = self.t
        if value.shape != (self.n,) or self.n == 1:
            return t.mul(t.sum(value), t.constant(self.count))
        return t.sum(value) if self.weights is None else t.dot(t.constant(self.weights), value)

    def dot(self, a, value: Var) -> Var:
        """sum a_i value_i for a constant per-row a (an array) or a value ``a`` (a Var)."""
        t = self.t
        if not isinstance(a, Var):
            return t.dot(t.constant(a if self.weights is None else a * self.weights), value)
        if self.weights is None:
            return t.dot(a, value)
        return t.dot(a, t.mul(t.constant(self.weights), value))

    def sumsq(self, value: Var) -> Var:
        t = self.t
        return t.sumsq(value) if self.weights is None else t.dot(t.constant(self.weights), t.sqr(value))

    def constant(self, values: np.ndarray) -> float:
        return float(np.sum(values if self.weights is None else values * self.weights))


def likelihood(t: Tape, model, eta: Var, params: dict, logs: dict) -> Var:
    """The response's log-likelihood, summed over rows (each weighted by its likelihood
    weight); ``params``: the family's parameters, each a number or one per row (zi and hu on
    the log-odds scale), ``logs`` the logarithms of those a part formula gives through a log
    link."""
    if model.bounds is not None:
        return _bounded(t, model, eta, params, logs)
    y = model.y
    n = y.size
    rows = _Rows(t, n, model.weights)

    def log_of(name: str) -> Var:
        return logs[name] if name in logs else t.log(params[name])

    if model.kind in ("gaussian", "lognormal", "student"):
        eta = _location(t, model.link, eta)
    if model.kind in ("gaussian", "lognormal"):
        response = y if model.kind == "gaussian" else np.log(y)
        sigma = params["sigma"]
        if sigma.shape == (n,) and n > 1:  # sigma per row
            scaled = t.div(t.sub(t.constant(response), eta), sigma)
            total = t.mul(rows.sumsq(scaled), t.constant(-0.5))
        else:
            squares = rows.sumsq(t.sub(t.constant(response), eta))
            total = t.div(squares, t.mul(t.sqr(sigma), t.constant(-2.0)))
        total = t.sub(total, rows.sum(log_of("sigma")))
        constant = -0.5 * rows.count * LOG_2PI - (
            0.0 if model.kind == "gaussian" else rows.constant(response)
        )
        return t.add(total, t.constant(constant))
    if model.kind == "student":  # PyMC's StudentT(nu, eta, sigma)
        nu, sigma = params["nu"], params["sigma"]
        half = t.mul(t.add(nu, t.constant(1.0)), t.constant(0.5))
        spread = t.div(t.sqr(t.div(t.sub(t.constant(y), eta), sigma)), nu)
        total = t.neg(rows.dot(half, t.log1p(spread)))
        normaliser = t.sub(t.gammaln(half), t.gammaln(t.mul(nu, t.constant(0.5))))
        normaliser = t.sub(normaliser, t.mul(t.log(t.mul(nu, t.constant(np.pi))), t.constant(0.5)))
        total = t.add(total, rows.sum(normaliser))
        return t.sub(total, rows.sum(log_of("sigma")))
    if model.kind == "gamma":  # Gamma(shape, shape / mu)
        shape = params["shape"]
        log_mu, ratio = _log_mean_and_ratio(t, model.link, eta, y)
        own = t.sub(t.mul(shape, log_of("shape")), t.gammaln(shape))
        total = t.sub(rows.sum(own), rows.dot(shape, log_mu))
        total = t.add(total, rows.dot(t.sub(shape, t.constant(1.0)), t.constant(np.log(y))))
        return t.sub(total, rows.dot(shape, ratio))
    if model.kind == "weibull":  # Weibull(k, beta), beta = mu / Gamma(1 + 1 / k): with z = log(y / beta),
        shape = params["shape"]  # log k - log beta + (k - 1) z - exp(k z)
        log_beta, z = _weibull_scale(t, model.link, eta, shape, y)
        total = t.sub(rows.sum(log_of("shape")), rows.sum(log_beta))
        total = t.add(total, rows.sum(t.mul(t.sub(shape, t.constant(1.0)), z)))
        return t.sub(total, rows.sum(t.exp(t.mul(shape, z))))
    if model.kind == "exponential":  # Exponential(1 / mu): -log mu - y / mu
        log_mu, ratio = _log_mean_and_ratio(t, model.link, eta, y)
        return t.neg(t.add(rows.sum(log_mu), rows.sum(ratio)))
    if model.kind == "beta":  # Beta(mu phi, (1 - mu) phi)
        phi = params["phi"]
        mu = _probability(t, model.link, eta)
        a, b = t.mul(mu, phi), t.mul(t.sub(t.constant(1.0), mu), phi)
        total = t.add(rows.dot(t.sub(a, t.constant(1.0)), t.constant(np.log(y))),
                      rows.dot(t.sub(b, t.constant(1.0)), t.constant(np.log1p(-y))))  # fmt: skip
        total = t.sub(total, t.add(rows.sum(t.gammaln(a)), rows.sum(t.gammaln(b))))
        return t.add(total, rows.sum(t.gammaln(phi)))
    if model.kind in COUNTS:
        return _counts(t, model, rows, eta, params)
    if model.kind == "beta_binomial":
        return _beta_binomial(t, model, rows, eta, params["phi"])
    if model.kind == "cumulative":
        return _cumulative(t, model, rows, eta, params["thresholds"])
    if model.kind == "categorical":
        return _categorical(t, model, rows, eta, params)
    if model.kind == "zi_binomial":
        return _zi_binomial(t, model, rows, eta, params["zi"])
    trials = np.ones(n) if model.kind == "bernoulli" else model.trials
    total = _binomial(t, rows, y, trials, model.link, eta)
    if model.kind == "bernoulli":
        return total
    return t.add(total, t.constant(rows.constant(_binomln(trials, y))))


def _binomln(trials: np.ndarray, y: np.ndarray) -> np.ndarray:
    from scipy.special import gammaln

    return gammaln(trials + 1.0) - gammaln(y + 1.0) - gammaln(trials - y + 1.0)


def _binomial(t: Tape, rows: _Rows, y: np.ndarray, trials: np.ndarray, link: str, eta: Var) -> Var:
    """sum y log p + (trials - y) log(1 - p) over rows (the binomial coefficients left out)."""
    if link == "logit":  # log p = eta - softplus(eta), log(1 - p) = -softplus(eta)
        return t.sub(rows.dot(y, eta), rows.dot(trials, t.softplus(eta)))
    log_p, log_q = _log_probabilities(t, link, eta)
    return t.add(rows.dot(y, log_p), rows.dot(trials - y, log_q))


def _log_probabilities(t: Tape, link: str, eta: Var) -> tuple[Var, Var]:
    """log p and log(1 - p) through the link: log F(eta) and log F(-eta) for the symmetric
    logistic and normal, log(1 - exp(-mu)) and -mu (mu = exp(eta)) for cloglog."""
    if link == "cloglog":
        mu = t.exp(eta)
        return t.log1mexp(t.neg(mu)), t.neg(mu)
    return _log_cdf(t, link, eta), _log_cdf(t, link, t.neg(eta))


def _zi_binomial(t: Tape, model, rows: _Rows, eta: Var, logit: Var) -> Var:
    """The zero-inflated binomial (PyMC's mixture of a point mass at 0, weight zi, and the
    binomial): log(1 - zi) + the binomial's log-probability where y > 0, log(zi + (1 - zi)
    (1 - p)^n) where y = 0."""
    y, n = model.y, model.trials
    zero, positive = np.flatnonzero(y == 0), np.flatnonzero(y > 0)
    log_q, log_w = t.neg(t.softplus(logit)), t.neg(t.softplus(t.neg(logit)))  # log(1 - zi), log zi
    parts = []
    if positive.size:
        some = rows.subset(positive)
        own = _binomial(t, some, y[positive], n[positive], model.link, t.gather(eta, positive))
        own = t.add(own, t.constant(some.constant(_binomln(n[positive], y[positive]))))
        parts.append(t.add(own, some.sum(_rows(t, log_q, positive, y.size))))
    if zero.size:
        some = rows.subset(zero)
        none = t.mul(_log_probabilities(t, model.link, t.gather(eta, zero))[1], t.constant(n[zero]))
        rows_q, rows_w = (_rows(t, v, zero, y.size) for v in (log_q, log_w))
        parts.append(some.sum(t.logaddexp(rows_w, t.add(rows_q, none))))
    return t.total(parts)


def _mean(t: Tape, link: str, eta: Var) -> tuple[Var, Var]:
    """The mean from the linear predictor by the link, and its logarithm."""
    if link == "log":
        return t.exp(eta), eta
    if link in ("logit", "probit", "cloglog"):
        mu = _probability(t, link, eta)
    elif link == "identity":
        mu = eta
    elif link == "sqrt":
        mu = t.sqr(eta)
    elif link == "inverse":
        mu = t.div(t.constant(1.0), eta)
    else:
        raise Unsupported(f"a mean through the {link} link")
    return mu, t.log(mu)


def _location(t: Tape, link: str, eta: Var) -> Var:
    """The location mu of a Gaussian, lognormal or Student-t model (its density's and its
    tails'): eta itself on the identity link."""
    return eta if link == "identity" else _mean(t, link, eta)[0]


def _log_mean_and_ratio(t: Tape, link: str, eta: Var, y: np.ndarray) -> tuple[Var, Var]:
    """log mu and y / mu (on the log link, eta and y exp(-eta))."""
    if link == "log":
        return eta, t.mul(t.constant(y), t.exp(t.neg(eta)))
    mu, log_mu = _mean(t, link, eta)
    return log_mu, t.div(t.constant(y), mu)


def _probability(t: Tape, link: str, eta: Var) -> Var:
    """The inverse link of a probability: sigmoid, the normal CDF or 1 - exp(-exp(eta))."""
    if link == "logit":
        return t.sigmoid(eta)
    if link == "probit":
        return t.mul(t.erfc(t.mul(eta, t.constant(-1.0 / np.sqrt(2.0)))), t.constant(0.5))
    if link == "cloglog":
        return t.neg(t.expm1(t.neg(t.exp(eta))))
    raise Unsupported(f"a probability through the {link} link")


def _beta_binomial(t: Tape, model, rows: _Rows, eta: Var, phi: Var) -> Var:
    """PyMC's BetaBinomial(n, mu phi, (1 - mu) phi): binomln(n, y) + betaln(y + a, n - y + b)
    - betaln(a, b), summed over rows."""
    from scipy.special import gammaln

    y, n = model.y, model.trials
    mu = _probability(t, model.link, eta)
    a, b = t.mul(mu, phi), t.mul(t.sub(t.constant(1.0), mu), phi)
    up = t.add(rows.sum(t.gammaln(t.add(t.constant(y), a))), rows.sum(t.gammaln(t.add(t.constant(n - y), b))))
    up = t.sub(up, rows.sum(t.gammaln(t.add(t.constant(n), t.add(a, b)))))
    down = t.sub(t.add(rows.sum(t.gammaln(a)), rows.sum(t.gammaln(b))), rows.sum(t.gammaln(t.add(a, b))))
    binomln = rows.constant(gammaln(n + 1.0) - gammaln(y + 1.0) - gammaln(n - y + 1.0))
    return t.add(t.sub(up, down), t.constant(binomln))


def _rows(t: Tape, value: Var, index: np.ndarray, n: int) -> Var:
    """A per-row value (n rows) at the rows ``index``, or a value the rows share as it is."""
    return t.gather(value, index) if value.shape == (n,) and n > 1 else value


def _counts(t: Tape, model, rows: _Rows, eta: Var, params: dict) -> Var:
    """The Poisson and negative binomial log-likelihoods, plain, zero-inflated (PyMC's mixture
    of a point mass at 0, weight zi, and the count distribution) or hurdle (log hu at 0; else
    log(1 - hu) + the count's log-probability less log(1 - its probability of 0))."""
    y = model.y
    count, form = model.kind.split("_")[-1], model.kind.split("_")[0]
    f = _poisson if count == "poisson" else _negative_binomial
    alpha = params.get("alpha")
    if form not in ("zi", "hu"):
        mu, log_mu = _mean(t, model.link, eta)
        if count == "nbinom1":  # a negative binomial of shape mu / phi
            alpha = t.div(mu, params["phi"])
        return f(t, rows, y, mu, log_mu, alpha)
    zero, positive = np.flatnonzero(y == 0), np.flatnonzero(y > 0)

    def shape(mu, index):  # the negative binomial's shape at the rows ``index`` (NB1's mu / phi)
        if count == "nbinom1":
            return t.div(mu, _rows(t, params["phi"], index, y.size))
        return None if alpha is None else _rows(t, alpha, index, y.size)

    logit = params[form]  # of zi or hu
    log_q = t.neg(t.softplus(logit))  # log(1 - zi), log(1 - hu)
    log_w = t.neg(t.softplus(t.neg(logit)))  # log zi, log hu
    total = None
    if positive.size:
        mu, log_mu = _mean(t, model.link, t.gather(eta, positive))
        some, own_alpha = rows.subset(positive), shape(mu, positive)
        total = t.add(
            f(t, some, y[positive], mu, log_mu, own_alpha), some.sum(_rows(t, log_q, positive, y.size))
        )
        if form == "hu":  # less log(1 - f(0))
            total = t.sub(total, some.sum(t.log1mexp(_log_f0(t, count, mu, own_alpha))))
    if zero.size:
        some = rows.subset(zero)
        if form == "hu":
            zeros = some.sum(_rows(t, log_w, zero, y.size))
        else:  # log(zi + (1 - zi) f(0))
            mu = _mean(t, model.link, t.gather(eta, zero))[0]
            log_f0 = _log_f0(t, count, mu, shape(mu, zero))
            zeros = some.sum(
                t.logaddexp(_rows(t, log_w, zero, y.size), t.add(_rows(t, log_q, zero, y.size), log_f0))
            )
        total = zeros if total is None else t.add(total, zeros)
    return total


def _poisson(t: Tape, rows: _Rows, y: np.ndarray, mu: Var, log_mu: Var, alpha=None) -> Var:
    """The Poisson log-likelihood with mean mu, summed over rows."""
    from scipy.special import gammaln

    linear = t.sub(rows.dot(y, log_mu), rows.sum(mu))
    return t.add(linear, t.constant(-rows.constant(gammaln(y + 1.0))))


def _log_f0(t: Tape, count: str, mu: Var, alpha) -> Var:
    """The count distribution's log-probability of 0 at each row: -mu, or alpha log(alpha /
    (mu + alpha))."""
    if count == "poisson":
        return t.neg(mu)
    return t.mul(alpha, t.sub(t.log(alpha), t.log(t.add(mu, alpha))))


def _negative_binomial(t: Tape, rows: _Rows, y: np.ndarray, mu: Var, log_mu: Var, alpha: Var) -> Var:
    """NB2's log-likelihood with mean mu and shape alpha, summed over rows: PyMC's
    gammaln(y + alpha) - gammaln(alpha) - gammaln(y + 1) + y log(mu / (mu + alpha))
    + alpha log(alpha / (mu + alpha)), or its Poisson limit where alpha > 1e10."""
    from scipy.special import gammaln

    log_total = t.log(t.add(mu, alpha))  # log(mu + alpha)
    constant = t.constant(-rows.constant(gammaln(y + 1.0)))
    if alpha.shape == (y.size,) and y.size > 1:  # a shape per row: the limit row by row
        ys = t.constant(y)
        linear = t.mul(ys, log_mu)
        negbin = t.sub(t.gammaln(t.add(ys, alpha)), t.gammaln(alpha))
        negbin = t.add(negbin, t.sub(t.mul(alpha, t.log(alpha)), t.mul(t.add(ys, alpha), log_total)))
        each = t.switch(t.greater(alpha, _NB_POISSON_ALPHA), t.sub(linear, mu), t.add(negbin, linear))
        return t.add(rows.sum(each), constant)
    linear = rows.dot(y, log_mu)
    spread = rows.dot(t.add(t.constant(y), alpha), log_total)
    shape = t.sub(rows.sum(t.gammaln(t.add(t.constant(y), alpha))), rows.sum(t.gammaln(alpha)))
    own = rows.sum(t.mul(alpha, t.log(alpha)))
    negbin = t.add(t.add(t.sub(linear, spread), t.add(shape, own)), constant)
    poisson = t.add(t.sub(linear, rows.sum(mu)), constant)
    return t.switch(t.greater(alpha, _NB_POISSON_ALPHA), poisson, negbin)


def _cumulative(t: Tape, model, rows: _Rows, eta: Var, thresholds: Var) -> Var:
    """The ordinal log-likelihood (PyMC's OrderedLogistic and OrderedProbit): log(F(c_k - eta)
    - F(c_(k-1) - eta)) at category k with c_0 = -inf and c_K = inf, summed over rows; the
    first and last categories' one-sided forms and the middle ones' difference written so
    that neither loses digits where both probabilities are near 0 or near 1."""
    y = model.y.astype(int)
    n_thresholds = thresholds.shape[0] if thresholds.shape else 1
    first, last = np.flatnonzero(y == 1), np.flatnonzero(y == n_thresholds + 1)
    middle = np.flatnonzero((y > 1) & (y <= n_thresholds))
    parts = []
    if first.size:  # log F(c_1 - eta)
        a = t.sub(t.element(thresholds, 0), t.gather(eta, first))
        parts.append(rows.subset(first).sum(_log_cdf(t, model.link, a)))
    if last.size:  # log(1 - F(c_(K-1) - eta)) = log F(eta - c_(K-1))
        b = t.sub(t.gather(eta, last), t.element(thresholds, n_thresholds - 1))
        parts.append(rows.subset(last).sum(_log_cdf(t, model.link, b)))
    if middle.size:
        rows_eta = t.gather(eta, middle)
        a = t.sub(t.gather(thresholds, y[middle] - 1), rows_eta)  # c_k - eta
        b = t.sub(t.gather(thresholds, y[middle] - 2), rows_eta)  # c_(k-1) - eta, below a
        parts.append(rows.subset(middle).sum(_log_cdf_difference(t, model.link, a, b)))
    return t.total(parts)


def _log_cdf(t: Tape, link: str, z: Var) -> Var:
    """log F(z): -softplus(-z) (logistic), log Phi(z) (normal)."""
    if link == "logit":
        return t.neg(t.softplus(t.neg(z)))
    if link == "probit":
        return t.log_ndtr(z)
    raise Unsupported(f"a probability through the {link} link")


def _log_cdf_difference(t: Tape, link: str, a: Var, b: Var) -> Var:
    """log(F(a) - F(b)) for a > b. Logistic: a - softplus(a) - softplus(b) + log(1 - exp(b - a)).
    Normal: F(a) - F(b) = (erfc(-a / sqrt 2) - erfc(-b / sqrt 2)) / 2, or by symmetry
    (erfc(b / sqrt 2) - erfc(a / sqrt 2)) / 2 where a + b > 0: the tails' difference taken
    on the side where they are small (which side is constant in the gradient)."""
    if link == "logit":
        own = t.sub(t.sub(a, t.softplus(a)), t.softplus(b))
        return t.add(own, t.log1mexp(t.sub(b, a)))
    if link != "probit":
        raise Unsupported(f"an ordinal model's {link} link")
    upper = t.greater(t.add(a, b), 0.0)  # 1 where the upper tails are the smaller
    lower = t.sub(t.constant(1.0), upper)
    near = t.sub(t.mul(upper, b), t.mul(lower, a))  # b, or -a: the tail nearer the middle
    far = t.sub(t.mul(upper, a), t.mul(lower, b))  # a, or -b
    scale = t.constant(1.0 / np.sqrt(2.0))
    tails = t.sub(t.erfc(t.mul(near, scale)), t.erfc(t.mul(far, scale)))
    return t.log(t.mul(tails, t.constant(0.5)))


def _categorical(t: Tape, model, rows: _Rows, eta: Var, params: dict) -> Var:
    """The multinomial logit (PyMC's Categorical of softmax(0, mu2, ..., muK)): the row's
    category's logit less log(1 + exp(mu2) + ... + exp(muK)), summed over rows."""
    y, n = model.y, model.y.size
    logits = [eta] + [params[name] for name in model.categories]
    logits = [v if v.shape == (n,) else t.add(v, t.constant(np.zeros(n))) for v in logits]
    normaliser = t.logsumexp([t.softplus(logits[0]), *logits[1:]])  # softplus: log(exp(0) + exp(mu2))
    total = t.neg(rows.sum(normaliser))
    for k, value in enumerate(logits, start=2):
        chosen = (y == k).astype(float)
        if chosen.any():
            total = t.add(total, rows.dot(chosen, value))
    return total


def _weibull_scale(t: Tape, link: str, eta: Var, shape: Var, y: np.ndarray) -> tuple[Var, Var]:
    """The Weibull's log scale, log mu - gammaln(1 + 1 / k), and log(y / scale) at each row."""
    log_mu = _mean(t, link, eta)[1]
    log_beta = t.sub(log_mu, t.gammaln(t.add(t.div(t.constant(1.0), shape), t.constant(1.0))))
    return log_beta, t.sub(t.constant(np.log(y)), log_beta)


# Censoring and truncation (bayesmm.families.additions): the families whose tails are written.
CENSORABLE = ("gaussian", "student", "lognormal", "weibull", "exponential", "gamma", "beta", "poisson",
              "negativebinomial", "nbinom1")  # fmt: skip


def _bounded(t: Tape, model, eta: Var, params: dict, logs: dict) -> Var:
    """The log-likelihood of a censored or truncated response (bayesmm.families.additions
    .bounded_logp): each kind of row on its own rows, the density where observed, log F(y)
    left-censored, log(1 - F(y)) right-censored, log(F(y2) - F(y)) interval-censored; less
    log P(lb <= Y <= ub) where truncated."""
    import types

    codes, y2, lower, upper = model.bounds
    n = model.y.size
    rows = _Rows(t, n, model.weights)

    def at(index):
        """The rows ``index``' linear predictor and parameters (gathered once per kind of row)."""
        return t.gather(eta, index), {name: _rows(t, value, index, n) for name, value in params.items()}

    def tails(index, *bounds):
        """log F, or log(1 - F) where ``side`` is True, at each (bound, side) on the rows ``index``."""
        eta_i, params_i = at(index)
        return [
            _log_tail(t, model.kind, model.link, bound[index], eta_i, params_i, side)
            for bound, side in bounds
        ]

    parts = []
    for code in (0, -1, 1, 2):
        index = np.flatnonzero(codes == code)
        if not index.size:
            continue
        if code == 0:  # the density: the rows as a model of their own
            weights = None if model.weights is None else model.weights[index]
            sub = types.SimpleNamespace(kind=model.kind, link=model.link, y=model.y[index], weights=weights,
                                        trials=None, bounds=None)  # fmt: skip
            logs_i = {name: _rows(t, value, index, n) for name, value in logs.items()}
            parts.append(likelihood(t, sub, *at(index), logs_i))
        elif code == 2:  # log F(y2) + log(1 - exp(log F(y) - log F(y2)))
            parts.append(
                rows.subset(index).sum(_log_difference(t, *tails(index, (y2, False), (model.y, False))))
            )
        else:
            parts.append(rows.subset(index).sum(tails(index, (model.y, code == 1))[0]))
    finite_lower, finite_upper = np.isfinite(lower), np.isfinite(upper)
    for mask, kind in ((finite_lower & ~finite_upper, "lower"), (~finite_lower & finite_upper, "upper"),
                       (finite_lower & finite_upper, "both")):  # fmt: skip
        index = np.flatnonzero(mask)
        if not index.size:
            continue
        if kind == "lower":
            mass = tails(index, (lower, True))[0]
        elif kind == "upper":
            mass = tails(index, (upper, False))[0]
        else:
            mass = _log_difference(t, *tails(index, (upper, False), (lower, False)))
        parts.append(t.neg(rows.subset(index).sum(mass)))
    return t.total(parts)


def _log_difference(t: Tape, a: Var, b: Var) -> Var:
    """log(exp(a) - exp(b)) for a > b: a + log(1 - exp(b - a))."""
    return t.add(a, t.log1mexp(t.sub(b, a)))


def _log_tail(t: Tape, kind: str, link: str, y: np.ndarray, eta: Var, params: dict, upper: bool):
    """log F(y) (``upper`` False) or log(1 - F(y)) at each row, F the family's CDF."""
    if kind in ("gaussian", "lognormal"):  # the normal CDF of z = (y - mu) / sigma
        mu = _location(t, link, eta)
        response = t.constant(y if kind == "gaussian" else np.log(y))
        z = t.div(t.sub(response, mu), params["sigma"])
        return t.log_ndtr(t.neg(z) if upper else z)  # 1 - Phi(z) = Phi(-z)
    if kind == "poisson":  # F(y) = Q(y + 1, mu), 1 - F(y) = P(y + 1, mu)
        return t.log_gammainc(y + 1.0, _mean(t, link, eta)[0], upper=not upper)
    if kind in ("negativebinomial", "nbinom1"):  # F(y) = I_p(n, y + 1), p = n / (n + mu)
        mu = _mean(t, link, eta)[0]
        n = params["alpha"] if kind == "negativebinomial" else t.div(mu, params["phi"])  # NB1: mu / phi
        p = t.div(n, t.add(n, mu))
        return t.log_betainc(n, y + 1.0, p, upper=upper)
    if kind == "student":  # I_x(nu / 2, 1 / 2) / 2 on the small tail's side, x = nu / (nu + z^2)
        z = t.div(t.sub(t.constant(y), _location(t, link, eta)), params["sigma"])
        return t.student_log_tail(z, params["nu"], upper=upper)
    if kind == "beta":  # F(y) = I_y(mu phi, (1 - mu) phi)
        mu, phi = _mean(t, link, eta)[0], params["phi"]
        a, b = t.mul(mu, phi), t.mul(t.sub(t.constant(1.0), mu), phi)
        return t.log_betainc(a, b, y, upper=upper)
    if kind == "gamma":  # F(y) = P(k, k y / mu) of the shape k; 1 - F = Q
        shape = params["shape"]
        scaled = t.mul(shape, _log_mean_and_ratio(t, link, eta, y)[1])
        return t.log_gammainc(shape, scaled, upper=upper)
    if kind == "weibull":  # 1 - F = exp(-(y / beta)^k)
        shape = params["shape"]
        power = t.exp(t.mul(shape, _weibull_scale(t, link, eta, shape, y)[1]))
    elif kind == "exponential":  # 1 - F = exp(-y / mu)
        power = _log_mean_and_ratio(t, link, eta, y)[1]
    else:
        raise Unsupported(f"censoring or truncation in the {kind} family")
    return t.neg(power) if upper else t.log1mexp(t.neg(power))
