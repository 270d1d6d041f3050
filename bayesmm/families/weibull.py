"""The Weibull family of lifetimes, brms's ``weibull()``: the mean mu = g^-1(eta) on a log link
by default and a shape k, so that the scale is mu / Gamma(1 + 1/k) (brms's parameterization:
the linear predictor models the mean, not the scale). k = 1 is the exponential; k > 1 a
hazard that rises with time, k < 1 one that falls.

This file is the whole of the family: the registry finds it here (bayesmm.families.registry)."""

from __future__ import annotations

import numpy as np
from scipy import special, stats

from ..design.build import Design
from ..lazy import pt
from ..spec.priors import Prior
from .base import Family
from .continuous import _check_positive


class Weibull(Family):
    """Positive continuous responses (survival times): mean mu = g^-1(eta), shape k; the
    scale is mu / Gamma(1 + 1/k)."""

    name = "weibull"
    links = ("log", "identity", "inverse")
    continuous = True
    censorable = True
    support_lower = 0.0
    params = ("shape",)
    dispersion_param = "shape"

    def check_response(self, design: Design) -> None:
        _check_positive(design, self.name)

    def intercept_prior(self, design: Design) -> Prior:
        location = float(self.link.link(np.array(max(np.mean(design.y), 1e-8))))
        return Prior("StudentT", nu=3.0, mu=location, sigma=2.5)

    def param_priors(self, design: Design) -> dict[str, Prior]:
        return {"shape": Prior("Gamma", alpha=0.01, beta=0.01)}  # brms's default

    pymc_name, scipy_distribution = "Weibull", stats.weibull_min

    def pymc_arguments(self, mu, params, trials):
        shape = params["shape"]
        return {"alpha": shape, "beta": mu / pt.exp(pt.gammaln(1.0 + 1.0 / shape))}

    def scipy_arguments(self, mu, params, trials):
        shape = params["shape"]
        return {"c": shape, "scale": mu / special.gamma(1.0 + 1.0 / shape)}
