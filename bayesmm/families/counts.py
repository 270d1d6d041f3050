"""Counts: Poisson and the negative binomials (NB2, glmmTMB's NB1)."""

from __future__ import annotations

import numpy as np
import pymc as pm
from scipy import stats

from ..design.build import Design
from ..spec.priors import Prior
from .base import Family, _check_counts


class Poisson(Family):
    name = "poisson"
    links = ("log", "identity", "sqrt")

    def check_response(self, design: Design) -> None:
        _check_counts(design, "a Poisson model")

    def intercept_prior(self, design: Design) -> Prior:
        mean = max(float(np.mean(design.y)), 0.1)
        location = float(self.link.link(np.array(mean)))
        return Prior("StudentT", nu=3.0, mu=location, sigma=2.5)

    def pymc_kwargs(self, eta, params, design) -> dict:
        return {"mu": self.link.inverse_graph(eta)}

    def likelihood(self, name, eta, params, design, dims):
        y = design.y.astype("int64")
        return pm.Poisson(name, **self.pymc_kwargs(eta, params, design), observed=y, dims=dims)

    def log_likelihood(self, y, eta, params, trials=None):
        return stats.poisson.logpmf(y, self.link.inverse(eta))

    def draw(self, eta, params, trials, rng):
        return rng.poisson(self.link.inverse(eta)).astype(float)


class NegativeBinomial(Poisson):
    """Overdispersed counts (NB2): variance mu + mu^2 / alpha; brms's ``negbinomial`` (its ``shape``)."""

    name = "negativebinomial"
    links = ("log", "identity", "sqrt")
    params = ("alpha",)
    dispersion_param = "alpha"

    def check_response(self, design: Design) -> None:
        _check_counts(design, "a negative binomial model")

    def param_priors(self, design: Design) -> dict[str, Prior]:
        return {"alpha": Prior("Gamma", alpha=0.01, beta=0.01)}  # brms's default for the NB shape

    def pymc_kwargs(self, eta, params, design) -> dict:
        return {"mu": self.link.inverse_graph(eta), "alpha": params["alpha"]}

    def likelihood(self, name, eta, params, design, dims):
        y = design.y.astype("int64")
        return pm.NegativeBinomial(name, **self.pymc_kwargs(eta, params, design), observed=y, dims=dims)

    def log_likelihood(self, y, eta, params, trials=None):
        alpha = params["alpha"]
        return stats.nbinom.logpmf(y, alpha, alpha / (alpha + self.link.inverse(eta)))

    def draw(self, eta, params, trials, rng):
        alpha = np.broadcast_to(params["alpha"], np.shape(eta))
        return rng.negative_binomial(alpha, alpha / (alpha + self.link.inverse(eta))).astype(float)


class NegativeBinomial1(NegativeBinomial):
    """Overdispersed counts with the variance linear in the mean (NB1): variance mu (1 + phi),
    a negative binomial of shape mu / phi; glmmTMB's ``nbinom1`` (its dispersion is phi)."""

    name = "nbinom1"
    params = ("phi",)
    dispersion_param = "phi"

    def param_priors(self, design: Design) -> dict[str, Prior]:
        # phi is the variance's excess over the mean, per unit of the mean: 0 is Poisson.
        return {"phi": Prior("HalfStudentT", nu=3.0, sigma=2.5)}

    def pymc_kwargs(self, eta, params, design) -> dict:
        mu = self.link.inverse_graph(eta)
        return {"mu": mu, "alpha": mu / params["phi"]}

    def _shape_and_p(self, eta, params):
        mu, phi = self.link.inverse(eta), params["phi"]
        return mu / phi, np.broadcast_to(1.0 / (1.0 + phi), np.shape(mu))

    def log_likelihood(self, y, eta, params, trials=None):
        return stats.nbinom.logpmf(y, *self._shape_and_p(eta, params))

    def draw(self, eta, params, trials, rng):
        return rng.negative_binomial(*self._shape_and_p(eta, params)).astype(float)
