"""Continuous responses: Gaussian, Student-t, lognormal, gamma and beta."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
from scipy import stats

from ..design.build import DataError, Design
from ..spec.priors import Prior
from .base import Family, FormulaParameter, _MeanPrecision, mad


class Gaussian(Family):
    name = "gaussian"
    continuous = True
    links = ("identity", "log")
    params = ("sigma",)
    dispersion_param = "sigma"
    censorable = True

    def for_design(self, design: Design) -> Family:
        # se(s) without sigma = TRUE: the residual SD of each row is known, not a parameter.
        if design.additions.se is None or design.additions.sigma or "sigma" not in self.params:
            return self
        known = copy.copy(self)
        known.params = tuple(p for p in self.params if p != "sigma")
        known.dispersion_param = None
        return known

    def response_scale(self, design: Design) -> float:
        # brms: max(2.5, mad(y)); the floor keeps priors proper for nearly constant data.
        return max(2.5, mad(design.y))

    def intercept_prior(self, design: Design) -> Prior:
        location = float(np.median(design.y))
        if self.link.name == "log":
            location = float(np.log(max(location, 1e-8)))
            return Prior("StudentT", nu=3.0, mu=location, sigma=2.5)
        return Prior("StudentT", nu=3.0, mu=location, sigma=self.response_scale(design))

    def coefficient_scale(self, design: Design) -> float:
        if self.link.name == "log":
            return 2.5
        return 2.5 * float(np.std(design.y))

    def sd_prior(self, design: Design) -> Prior:
        scale = 2.5 if self.link.name == "log" else self.response_scale(design)
        return Prior("HalfStudentT", nu=3.0, sigma=scale)

    def param_priors(self, design: Design) -> dict[str, Prior]:
        return {"sigma": Prior("HalfStudentT", nu=3.0, sigma=self.response_scale(design))}

    pymc_name, scipy_distribution = "Normal", stats.norm

    def pymc_arguments(self, mu, params, trials):
        return {"mu": mu, "sigma": params["sigma"]}

    def scipy_arguments(self, mu, params, trials):
        return {"loc": mu, "scale": params["sigma"]}


class Beta(_MeanPrecision, Family):
    """Proportions strictly between 0 and 1: mean mu = g^-1(eta), precision phi
    (Beta(mu * phi, (1 - mu) * phi), variance mu (1 - mu) / (1 + phi)), as brms's ``Beta``."""

    name = "beta"
    links = ("logit", "probit", "cloglog")
    continuous = True
    censorable = True
    support_lower, support_upper = 0.0, 1.0

    def check_response(self, design: Design) -> None:
        y = design.y
        outside = (y <= 0) | (y >= 1)
        if np.any(outside):
            i = int(np.argmax(outside))
            raise DataError(
                f"the response '{design.response_name}' must lie strictly between 0 and 1 for family "
                f"'beta'; {int(outside.sum())} values do not (first: row {design.rows[i]!r}, value {y[i]:g})"
            )

    pymc_name, scipy_distribution = "Beta", stats.beta

    def pymc_arguments(self, mu, params, trials):
        alpha, beta = self._shapes(mu, params["phi"])
        return {"alpha": alpha, "beta": beta}

    def scipy_arguments(self, mu, params, trials):
        a, b = self._shapes(mu, params["phi"])
        return {"a": a, "b": b}


def _check_positive(design: Design, family: str) -> None:
    if np.any(design.y <= 0):
        bad = design.y[design.y <= 0][0]
        raise DataError(
            f"the response '{design.response_name}' must be positive for family '{family}'; found {bad:g}"
        )


class GammaFamily(Family):
    """Positive continuous responses: mean mu = g^-1(eta), shape k (coefficient of variation 1/sqrt(k))."""

    name = "gamma"
    links = ("log", "identity", "inverse")
    continuous = True
    params = ("shape",)
    dispersion_param = "shape"
    censorable = True
    support_lower = 0.0

    def check_response(self, design: Design) -> None:
        _check_positive(design, self.name)

    def intercept_prior(self, design: Design) -> Prior:
        location = float(self.link.link(np.array(np.mean(design.y))))
        return Prior("StudentT", nu=3.0, mu=location, sigma=2.5)

    def param_priors(self, design: Design) -> dict[str, Prior]:
        return {"shape": Prior("Gamma", alpha=0.01, beta=0.01)}  # brms's default

    pymc_name, scipy_distribution = "Gamma", stats.gamma

    def pymc_arguments(self, mu, params, trials):
        return {"alpha": params["shape"], "beta": params["shape"] / mu}

    def scipy_arguments(self, mu, params, trials):
        return {"a": params["shape"], "scale": mu / params["shape"]}


class StudentT(Gaussian):
    """Heavy-tailed continuous responses: location mu, scale sigma, degrees of freedom nu."""

    name = "student"
    links = ("identity", "log")
    params = ("sigma", "nu")
    # nu by a formula: log link; the intercept's prior is about what Gamma(2, 0.1) on nu
    # says on the log scale (median near 17, 95% within 3 to 60).
    formula_params = {"nu": FormulaParameter("log", Prior("StudentT", nu=3.0, mu=2.8, sigma=0.7))}

    def param_priors(self, design: Design) -> dict[str, Prior]:
        return {**super().param_priors(design), "nu": Prior("Gamma", alpha=2.0, beta=0.1)}  # brms's nu prior

    pymc_name, scipy_distribution = "StudentT", stats.t

    def pymc_arguments(self, mu, params, trials):
        return {"nu": params["nu"], "mu": mu, "sigma": params["sigma"]}

    def scipy_arguments(self, mu, params, trials):
        return {"df": params["nu"], "loc": mu, "scale": params["sigma"]}


class LogNormal(Gaussian):
    """Positive responses whose logarithm is normal: mu (= eta) and sigma on the log scale."""

    name = "lognormal"
    links = ("identity",)
    log_response = True
    support_lower = 0.0

    def check_response(self, design: Design) -> None:
        _check_positive(design, self.name)

    def _log_design(self, design: Design) -> Design:
        # Default priors are those of a Gaussian model for log(y).
        return dataclasses.replace(design, y=np.log(design.y))

    def response_scale(self, design: Design) -> float:
        return super().response_scale(self._log_design(design))

    def intercept_prior(self, design: Design) -> Prior:
        # The Gaussian's prior for log(y), its scale from log(y) itself: not through
        # response_scale, which would take the logarithm again.
        logged = self._log_design(design)
        scale = Gaussian.response_scale(self, logged)
        return Prior("StudentT", nu=3.0, mu=float(np.median(logged.y)), sigma=scale)

    def coefficient_scale(self, design: Design) -> float:
        return super().coefficient_scale(self._log_design(design))

    def mean(self, eta, params, trials=None):
        return np.exp(eta + params["sigma"] ** 2 / 2)

    pymc_name, scipy_distribution = "LogNormal", stats.lognorm

    def pymc_arguments(self, mu, params, trials):  # mu is the mean of log(y): the identity link
        return {"mu": mu, "sigma": params["sigma"]}

    def scipy_arguments(self, mu, params, trials):
        return {"s": params["sigma"], "scale": np.exp(mu)}
