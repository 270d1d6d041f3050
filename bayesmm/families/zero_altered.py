"""Zero-inflated and hurdle forms of the count and binomial families, with their own
``zi=`` or ``hu=`` formula."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ..design.build import Design
from ..lazy import pm
from ..spec.priors import Prior
from .base import Family
from .binomial import Binomial
from .counts import NegativeBinomial, NegativeBinomial1, Poisson


class _ZeroAltered(Family):
    """Shared machinery of zero-inflated and hurdle versions of a count family ``base``.

    Zero-inflated: P(0) = zi + (1 - zi) f(0), P(y) = (1 - zi) f(y) for y > 0.
    Hurdle: P(0) = hu, P(y) = (1 - hu) f(y) / (1 - f(0)) for y > 0.
    The probability (zi or hu) has its own formula, ``"~ 1"`` by default.
    """

    base: ClassVar[type[Family]]
    mixture_name: ClassVar[str]
    probability: ClassVar[str]

    def __init_subclass__(cls, **kwargs):
        # A zero-altered family has its count family's links, parameters, dispersion and trials.
        super().__init_subclass__(**kwargs)
        if "base" in cls.__dict__:
            for attribute in ("links", "params", "dispersion_param", "needs_trials"):
                setattr(cls, attribute, getattr(cls.base, attribute))

    def __init__(self, link: str | None = None):
        super().__init__(link)
        self._base = self.base(link)

    def check_response(self, design: Design) -> None:
        self._base.check_response(design)

    def intercept_prior(self, design: Design) -> Prior:
        return self._base.intercept_prior(design)

    def param_priors(self, design: Design) -> dict[str, Prior]:
        return self._base.param_priors(design)

    def likelihood(self, name, eta, params, design, dims):
        kwargs = Family.pymc_kwargs(self._base, eta, params, design)  # p, not logit_p: PyMC's mixtures take p
        psi = 1.0 - params[self.probability]  # PyMC's psi: the probability of the count part
        distribution = getattr(pm, self.mixture_name)
        return distribution(name, psi=psi, **kwargs, observed=design.y.astype("int64"), dims=dims)

    def _log_f(self, y, eta, params, trials):
        return self._base.log_likelihood(y, eta, params, trials)


class _ZeroInflated(_ZeroAltered):
    probability = "zi"
    parts = ("zi",)
    required_parts = {"zi": "~ 1"}

    def log_likelihood(self, y, eta, params, trials=None):
        zi = params["zi"]
        log_f = self._log_f(y, eta, params, trials)
        log_f0 = self._log_f(np.zeros_like(y), eta, params, trials)
        zero = np.logaddexp(np.log(zi), np.log1p(-zi) + log_f0)
        return np.where(y == 0, zero, np.log1p(-zi) + log_f)

    def draw(self, eta, params, trials, rng):
        counts = self._base.draw(eta, params, trials, rng)
        return np.where(rng.random(counts.shape) < params["zi"], 0.0, counts)

    def mean(self, eta, params, trials=None):
        return (1 - params["zi"]) * self._base.mean(eta, params, trials)


class _Hurdle(_ZeroAltered):
    probability = "hu"
    parts = ("hu",)
    required_parts = {"hu": "~ 1"}

    def _f0(self, eta, params, trials):
        return np.exp(self._log_f(np.zeros(np.shape(eta)[-1]), eta, params, trials))

    def log_likelihood(self, y, eta, params, trials=None):
        hu = np.broadcast_to(params["hu"], np.shape(eta))
        log_f = self._log_f(y, eta, params, trials)
        positive = np.log1p(-hu) + log_f - np.log1p(-self._f0(eta, params, trials))
        return np.where(y == 0, np.log(hu), positive)

    def draw(self, eta, params, trials, rng):
        counts = self._base.draw(eta, params, trials, rng)
        # Zero-truncated draws by redrawing the zeros; a count part that almost never
        # leaves zero is truncated to its smallest positive value, 1.
        for _ in range(100):
            zeros = counts == 0
            if not zeros.any():
                break
            counts = np.where(zeros, self._base.draw(eta, params, trials, rng), counts)
        counts = np.where(counts == 0, 1.0, counts)
        return np.where(rng.random(counts.shape) < params["hu"], 0.0, counts)

    def mean(self, eta, params, trials=None):
        f0 = self._f0(eta, params, trials)
        return (1 - params["hu"]) * self._base.mean(eta, params, trials) / (1 - f0)


class ZeroInflatedPoisson(_ZeroInflated):
    name, base, mixture_name = "zero_inflated_poisson", Poisson, "ZeroInflatedPoisson"


class ZeroInflatedNegativeBinomial(_ZeroInflated):
    name, base, mixture_name = "zero_inflated_negbinomial", NegativeBinomial, "ZeroInflatedNegativeBinomial"


class ZeroInflatedBinomial(_ZeroInflated):
    name, base, mixture_name = "zero_inflated_binomial", Binomial, "ZeroInflatedBinomial"


class HurdlePoisson(_Hurdle):
    name, base, mixture_name = "hurdle_poisson", Poisson, "HurdlePoisson"


class HurdleNegativeBinomial(_Hurdle):
    name, base, mixture_name = "hurdle_negbinomial", NegativeBinomial, "HurdleNegativeBinomial"


class ZeroInflatedNegativeBinomial1(_ZeroInflated):
    name, base, mixture_name = "zero_inflated_nbinom1", NegativeBinomial1, "ZeroInflatedNegativeBinomial"


class HurdleNegativeBinomial1(_Hurdle):
    name, base, mixture_name = "hurdle_nbinom1", NegativeBinomial1, "HurdleNegativeBinomial"
