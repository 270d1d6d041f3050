"""The exponential family of waiting times and lifetimes, brms's ``exponential()``: the mean
mu = g^-1(eta) on a log link by default, rate 1 / mu. It has no parameter of its own.

This file is the whole of the family: the registry finds it here (bayesmm.families.registry)."""

from __future__ import annotations

import numpy as np
from scipy import stats

from ..design.build import DataError, Design
from ..spec.priors import Prior
from .base import Family


class Exponential(Family):
    """Non-negative continuous responses with a constant hazard: mean mu = g^-1(eta), variance
    mu^2."""

    name = "exponential"
    links = ("log", "identity", "inverse")
    continuous = True
    censorable = True
    support_lower = 0.0

    def check_response(self, design: Design) -> None:
        if np.any(design.y < 0):
            bad = design.y[design.y < 0][0]
            raise DataError(
                f"the response '{design.response_name}' must be 0 or more for family 'exponential'; "
                f"found {bad:g}"
            )

    def intercept_prior(self, design: Design) -> Prior:
        location = float(self.link.link(np.array(max(np.mean(design.y), 1e-8))))
        return Prior("StudentT", nu=3.0, mu=location, sigma=2.5)

    pymc_name, scipy_distribution = "Exponential", stats.expon

    def pymc_arguments(self, mu, params, trials):
        return {"lam": 1.0 / mu}

    def scipy_arguments(self, mu, params, trials):
        return {"scale": mu}
