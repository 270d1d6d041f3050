"""Binary and binomial responses: Bernoulli, binomial and beta-binomial."""

from __future__ import annotations

import numpy as np
from scipy import special, stats

from ..design.build import DataError, Design
from .base import Family, _check_counts, _MeanPrecision


class Bernoulli(Family):
    name = "bernoulli"
    links = ("logit", "probit", "cloglog")
    binary_response = True

    def check_response(self, design: Design) -> None:
        y = design.y
        if not np.all(np.isin(y, (0.0, 1.0))):
            bad = y[~np.isin(y, (0.0, 1.0))][0]
            raise DataError(
                f"the response '{design.response_name}' must be 0/1 (or a two-level factor) "
                f"for family 'bernoulli'; found {bad}. For counts out of n trials use "
                "family='binomial' with cbind(successes, failures) or trials="
            )

    pymc_name, scipy_distribution, discrete = "Bernoulli", stats.bernoulli, True

    def pymc_arguments(self, mu, params, trials):
        return {"p": mu}

    def scipy_arguments(self, mu, params, trials):
        return {"p": mu}

    def pymc_kwargs(self, eta, params, design):
        # PyMC's logit_p is exact where p rounds to 0 or 1.
        return {"logit_p": eta} if self.link.name == "logit" else super().pymc_kwargs(eta, params, design)

    def log_likelihood(self, y, eta, params, trials=None):
        if self.link.name == "logit":
            # log(p) and log(1 - p) straight from eta, stable for large |eta|.
            return np.where(y == 1, special.log_expit(eta), special.log_expit(-eta))
        return super().log_likelihood(y, eta, params, trials)


class Binomial(Family):
    name = "binomial"
    links = ("logit", "probit", "cloglog")
    needs_trials = True

    def check_response(self, design: Design) -> None:
        if design.trials is None:
            raise DataError(
                f"family '{self.name}' needs the number of trials: write the response as "
                "cbind(successes, failures) or pass trials= (a column name or array)"
            )
        _check_counts(design, "a binomial model")
        trials = design.trials
        if np.any(trials != np.round(trials)) or np.any(trials < 0):
            raise DataError("binomial trials must be non-negative integers")
        over = design.y > trials
        if np.any(over):
            i = int(np.argmax(over))
            raise DataError(
                f"successes exceed trials in {int(over.sum())} rows (first: row {design.rows[i]!r}, "
                f"{design.response_name} = {design.y[i]:g} > trials = {trials[i]:g})"
            )

    def mean(self, eta, params, trials=None):
        p = self.link.inverse(eta)
        return p if trials is None else p * trials

    pymc_name, scipy_distribution, discrete = "Binomial", stats.binom, True

    def pymc_arguments(self, mu, params, trials):
        return {"n": trials, "p": mu}

    def scipy_arguments(self, mu, params, trials):
        return {"n": trials, "p": mu}

    def pymc_kwargs(self, eta, params, design):
        if self.link.name == "logit":  # exact where p rounds to 0 or 1
            return {"n": design.trials.astype("int64"), "logit_p": eta}
        return super().pymc_kwargs(eta, params, design)


class BetaBinomial(_MeanPrecision, Binomial):
    """Overdispersed binomial counts: success probability p ~ Beta(mu phi, (1 - mu) phi) per
    row, mu = g^-1(eta), so that the variance is n mu (1 - mu) (1 + (n - 1) / (phi + 1));
    brms's ``beta_binomial`` and glmmTMB's ``betabinomial`` (its dispersion is phi)."""

    name = "beta_binomial"

    pymc_name, scipy_distribution = "BetaBinomial", stats.betabinom

    def pymc_arguments(self, mu, params, trials):
        alpha, beta = self._shapes(mu, params["phi"])
        return {"alpha": alpha, "beta": beta, "n": trials}

    def scipy_arguments(self, mu, params, trials):
        a, b = self._shapes(mu, params["phi"])
        return {"n": trials, "a": a, "b": b}

    def pymc_kwargs(self, eta, params, design):
        return Family.pymc_kwargs(self, eta, params, design)  # no logit_p: the mean enters the shapes
