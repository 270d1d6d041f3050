"""Responses coded as categories 1..K: cumulative (ordinal) and categorical."""

from __future__ import annotations

import copy

import numpy as np
from scipy import special

from ..design.build import DataError, Design
from ..lazy import pm, pt
from ..spec.priors import Prior
from ..warn import warn_user
from .base import Family, FormulaParameter


class _CategoryFamily(Family):
    """A response of categories 1..K whose parameters depend on K (an ordinal model's
    thresholds, a categorical model's linear predictors): configured from the design by
    ``for_design``, on a copy; a configured family keeps its categories in refits."""

    def __init__(self, link: str | None = None):
        super().__init__(link)
        self.categories: tuple[str, ...] | None = None

    def __repr__(self) -> str:
        categories = "" if self.categories is None else f", categories={len(self.categories)}"
        return f"{self.name}(link={self.link.name}{categories})"

    def for_design(self, design: Design) -> Family:
        levels = tuple(design.response_levels or ())
        if self.categories is not None:  # configured before (a refit): the categories stay
            if len(levels) > len(self.categories) or np.any(design.y > len(self.categories)):
                raise DataError(
                    f"the response '{design.response_name}' has categories beyond the model's "
                    f"{len(self.categories)} ({', '.join(self.categories)})"
                )
            return self
        configured = copy.copy(self)
        configured.categories = levels
        configured._configure(design)
        return configured

    def _configure(self, design: Design) -> None:
        """Set the parameters that depend on the categories (on the configured copy)."""
        raise NotImplementedError

    @property
    def n_categories(self) -> int:
        return len(self.categories)


class Categorical(_CategoryFamily):
    """Unordered categories 1..K (brms's ``categorical()``, the multinomial logit): one linear
    predictor per category but the first, the reference, P(y = k) = softmax(0, mu2, ..., muK)_k.
    Each predictor has the mean's formula, fixed and group effects both, and its own
    parameters: ``mu2:Intercept``, ``mu2:x``, ``sd(mu3:Intercept|g)``; ``dpars={"mu3": "~ z"}``
    gives a category its own formula. Category k is the k-th level of a factor response (of
    sorted text, or the integer k)."""

    name = "categorical"
    links = ("logit",)
    categorical = True

    def __init__(self, link: str | None = None):
        super().__init__(link)
        self.parts, self.required_parts = (), {}

    @property
    def main_part(self) -> str:
        return "mu2"

    def _configure(self, design: Design) -> None:
        text = design.formula.text
        self.parts = tuple(f"mu{k}" for k in range(3, len(self.categories) + 1))
        self.required_parts = {part: text[text.index("~") :] for part in self.parts}

    def part(self, part: str) -> FormulaParameter:
        return FormulaParameter("identity", Prior("StudentT", nu=3.0, mu=0.0, sigma=2.5))

    def _logits(self, eta, params):
        eta = np.asarray(eta, dtype=float)
        others = [np.broadcast_to(params[p], eta.shape) for p in self.parts]
        return np.stack([np.zeros_like(eta), eta, *others], axis=-1)

    def likelihood(self, name, eta, params, design, dims):
        logits = pt.stack([pt.zeros_like(eta), eta, *(params[p] for p in self.parts)], axis=1)
        return pm.Categorical(name, logit_p=logits, observed=design.y.astype("int64") - 1, dims=dims)

    def probabilities(self, eta: np.ndarray, params: dict) -> np.ndarray:
        """P(y = k) for k = 1..K, (draws, rows, K)."""
        return special.softmax(self._logits(eta, params), axis=-1)

    def mean(self, eta, params, trials=None):
        raise ValueError("a categorical response has no mean: use predict(kind='probs') for each category's "
                         "probability")  # fmt: skip

    def log_likelihood(self, y, eta, params, trials=None):
        logp = special.log_softmax(self._logits(eta, params), axis=-1)
        k = np.broadcast_to(np.asarray(y, dtype=int) - 1, logp.shape[:-1])
        return np.take_along_axis(logp, k[..., None], axis=-1)[..., 0]

    def draw(self, eta, params, trials, rng):
        cumulative = np.cumsum(self.probabilities(eta, params), axis=-1)
        u = rng.random(cumulative.shape[:-1])
        return 1.0 + (cumulative[..., :-1] < u[..., None]).sum(axis=-1).astype(float)


def _log1mexp(x):
    """log(1 - exp(x)) for x <= 0, accurate at both ends (Maechler 2012)."""
    x = np.asarray(x, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x > -np.log(2.0), np.log(-np.expm1(x)), np.log1p(-np.exp(x)))


class Cumulative(_CategoryFamily):
    """Ordered categories 1..K (brms's ``cumulative``, R's ``ordinal::clmm``): a latent
    variable eta + e, e logistic (logit link) or standard normal (probit), falls into category
    k between the thresholds Intercept[k-1] and Intercept[k], so that
    P(y <= k) = F(Intercept[k] - eta). The thresholds take the intercept's place (the linear
    predictor has none) and are ordered; each has brms's default prior, Student-t(3, 0, 2.5),
    restricted to the ordered values."""

    name = "cumulative"
    links = ("logit", "probit")
    ordinal = True

    def __init__(self, link: str | None = None):
        super().__init__(link)
        self.params = ()

    def _configure(self, design: Design) -> None:
        self.params = tuple(f"Intercept[{k}]" for k in range(1, len(self.categories)))

    def param_class(self, name: str) -> str:
        return "Intercept" if name.startswith("Intercept[") else name

    def check_response(self, design: Design) -> None:
        counts = np.bincount(design.y.astype(int), minlength=self.n_categories + 1)[1:]
        empty = [c for c, n in zip(self.categories, counts, strict=True) if n == 0]
        if empty:
            warn_user(
                f"categor{'y' if len(empty) == 1 else 'ies'} {', '.join(map(repr, empty))} of the response "
                f"'{design.response_name}' never occur: the thresholds around them are estimated from "
                "their priors alone",
                UserWarning,
            )

    def param_priors(self, design: Design) -> dict[str, Prior]:
        return {name: Prior("StudentT", nu=3.0, mu=0.0, sigma=2.5) for name in self.params}

    def _initial_thresholds(self, design: Design) -> np.ndarray:
        """Thresholds at the observed cumulative proportions (strictly increasing)."""
        counts = np.bincount(design.y.astype(int), minlength=self.n_categories + 1)[1:] + 0.5
        cumulative = np.cumsum(counts)[:-1] / counts.sum()
        return np.sort(self.link.link(cumulative)) + 1e-3 * np.arange(self.n_categories - 1)

    def create_params(self, priors: dict, names: list[str], design: Design) -> dict:
        entries = [priors[name] for name in self.params]

        def draw(size):
            # The ordered prior of iid thresholds is that of their order statistics.
            return pt.sort(pt.stack([e.prior.as_dist() for e in entries]))

        def logp(value):
            return sum(pm.logp(e.prior.as_dist(), value[k]) for k, e in enumerate(entries))

        start = self._initial_thresholds(design)

        def support_point(rv, size):
            return pt.as_tensor_variable(start)

        thresholds = pm.CustomDist(
            "thresholds", dist=draw, logp=logp, support_point=support_point, signature="->(k)",
            transform=pm.distributions.transforms.ordered,
        )  # fmt: skip
        return {name: pm.Deterministic(name, thresholds[k]) for k, name in enumerate(self.params)}

    def _thresholds(self, params: dict) -> np.ndarray:
        """(..., K - 1) thresholds, broadcasting against (draws, rows)."""
        return np.stack([np.asarray(params[name], dtype=float) for name in self.params], axis=-1)

    def likelihood(self, name, eta, params, design, dims):
        cutpoints = pt.stack([params[k] for k in self.params])
        observed = design.y.astype("int64") - 1  # PyMC's categories count from 0
        if self.link.name == "logit":
            return pm.OrderedLogistic(name, eta=eta, cutpoints=cutpoints, compute_p=False, observed=observed,
                                      dims=dims)  # fmt: skip
        return pm.OrderedProbit(name, eta=eta, cutpoints=cutpoints, sigma=1.0, compute_p=False,
                                observed=observed, dims=dims)  # fmt: skip

    def _log_cdf(self, z):
        return special.log_expit(z) if self.link.name == "logit" else special.log_ndtr(z)

    def probabilities(self, eta: np.ndarray, params: dict) -> np.ndarray:
        """P(y = k) for k = 1..K, (draws, rows, K)."""
        cumulative = self.link.inverse(self._thresholds(params) - np.asarray(eta)[..., None])
        shape = cumulative.shape[:-1]
        padded = np.concatenate([np.zeros(shape + (1,)), cumulative, np.ones(shape + (1,))], axis=-1)
        return np.diff(padded, axis=-1)

    def mean(self, eta, params, trials=None):
        # E(y) = 1 + sum_k P(y > k)
        return 1.0 + (1.0 - self.link.inverse(self._thresholds(params) - np.asarray(eta)[..., None])).sum(-1)

    def log_likelihood(self, y, eta, params, trials=None):
        eta = np.asarray(eta, dtype=float)
        tau = np.broadcast_to(self._thresholds(params), eta.shape[:-1] + (1, self.n_categories - 1))
        infinite = np.full(tau.shape[:-1] + (1,), np.inf)
        padded = np.concatenate([-infinite, tau, infinite], axis=-1)
        k = np.asarray(y, dtype=int)
        upper = np.take_along_axis(padded, np.broadcast_to(k, padded.shape[:-2] + k.shape)[..., None], -1)
        lower = np.take_along_axis(padded, np.broadcast_to(k - 1, padded.shape[:-2] + k.shape)[..., None], -1)
        a, b = upper[..., 0] - eta, lower[..., 0] - eta
        with np.errstate(invalid="ignore"):
            # F(a) - F(b), or for the upper tail S(b) - S(a) with S(z) = F(-z) (both links symmetric).
            below = self._log_cdf(a) + _log1mexp(self._log_cdf(b) - self._log_cdf(a))
            above = self._log_cdf(-b) + _log1mexp(self._log_cdf(-a) - self._log_cdf(-b))
        return np.where(a + b > 0, above, below)

    def draw(self, eta, params, trials, rng):
        cumulative = self.link.inverse(self._thresholds(params) - np.asarray(eta)[..., None])
        u = rng.random(cumulative.shape[:-1])
        return 1.0 + (cumulative < u[..., None]).sum(axis=-1).astype(float)
