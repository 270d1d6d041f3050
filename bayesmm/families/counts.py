"""Counts: Poisson and the negative binomials (NB2, glmmTMB's NB1)."""

from __future__ import annotations

import numpy as np
from scipy import stats

from ..design.build import Design
from ..spec.priors import Prior
from .base import Family, _check_counts


class Poisson(Family):
    name = "poisson"
    links = ("log", "identity", "sqrt")
    censorable = True
    support_lower = 0.0

    def check_response(self, design: Design) -> None:
        _check_counts(design, "a Poisson model")

    def intercept_prior(self, design: Design) -> Prior:
        mean = max(float(np.mean(design.y)), 0.1)
        location = float(self.link.link(np.array(mean)))
        return Prior("StudentT", nu=3.0, mu=location, sigma=2.5)

    pymc_name, scipy_distribution, discrete = "Poisson", stats.poisson, True

    def pymc_arguments(self, mu, params, trials):
        return {"mu": mu}

    def scipy_arguments(self, mu, params, trials):
        return {"mu": mu}


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

    pymc_name, scipy_distribution = "NegativeBinomial", stats.nbinom

    def pymc_arguments(self, mu, params, trials):
        return {"mu": mu, "alpha": params["alpha"]}

    def scipy_arguments(self, mu, params, trials):
        alpha = params["alpha"]
        return {"n": alpha, "p": alpha / (alpha + mu)}


class NegativeBinomial1(NegativeBinomial):
    """Overdispersed counts with the variance linear in the mean (NB1): variance mu (1 + phi),
    a negative binomial of shape mu / phi; glmmTMB's ``nbinom1`` (its dispersion is phi)."""

    name = "nbinom1"
    params = ("phi",)
    dispersion_param = "phi"

    def param_priors(self, design: Design) -> dict[str, Prior]:
        # phi is the variance's excess over the mean, per unit of the mean: 0 is Poisson.
        return {"phi": Prior("HalfStudentT", nu=3.0, sigma=2.5)}

    def pymc_arguments(self, mu, params, trials):
        return {"mu": mu, "alpha": mu / params["phi"]}

    def scipy_arguments(self, mu, params, trials):
        phi = params["phi"]
        return {"n": mu / phi, "p": np.broadcast_to(1.0 / (1.0 + phi), np.shape(mu))}
