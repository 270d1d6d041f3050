"""Binary and binomial responses: Bernoulli, binomial and beta-binomial."""

from __future__ import annotations

import numpy as np
import pymc as pm
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

    def likelihood(self, name, eta, params, design, dims):
        if self.link.name == "logit":
            return pm.Bernoulli(name, logit_p=eta, observed=design.y, dims=dims)
        return pm.Bernoulli(name, p=self.link.inverse_graph(eta), observed=design.y, dims=dims)

    def log_likelihood(self, y, eta, params, trials=None):
        if self.link.name == "logit":
            # log(p) and log(1 - p) straight from eta, stable for large |eta|.
            return np.where(y == 1, special.log_expit(eta), special.log_expit(-eta))
        return stats.bernoulli.logpmf(y, self.link.inverse(eta))

    def draw(self, eta, params, trials, rng):
        return rng.binomial(1, self.link.inverse(eta)).astype(float)


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

    def pymc_kwargs(self, eta, params, design) -> dict:
        return {"n": design.trials.astype("int64"), "p": self.link.inverse_graph(eta)}

    def likelihood(self, name, eta, params, design, dims):
        y = design.y.astype("int64")
        if self.link.name == "logit":
            n = design.trials.astype("int64")
            return pm.Binomial(name, n=n, logit_p=eta, observed=y, dims=dims)
        return pm.Binomial(name, **self.pymc_kwargs(eta, params, design), observed=y, dims=dims)

    def mean(self, eta, params, trials=None):
        p = self.link.inverse(eta)
        return p if trials is None else p * trials

    def log_likelihood(self, y, eta, params, trials=None):
        return stats.binom.logpmf(y, trials, self.link.inverse(eta))

    def draw(self, eta, params, trials, rng):
        return rng.binomial(trials.astype(np.int64), self.link.inverse(eta)).astype(float)


class BetaBinomial(_MeanPrecision, Binomial):
    """Overdispersed binomial counts: success probability p ~ Beta(mu phi, (1 - mu) phi) per
    row, mu = g^-1(eta), so that the variance is n mu (1 - mu) (1 + (n - 1) / (phi + 1));
    brms's ``beta_binomial`` and glmmTMB's ``betabinomial`` (its dispersion is phi)."""

    name = "beta_binomial"

    def likelihood(self, name, eta, params, design, dims):
        alpha, beta = self._shapes(self.link.inverse_graph(eta), params["phi"])
        n = design.trials.astype("int64")
        return pm.BetaBinomial(
            name, alpha=alpha, beta=beta, n=n, observed=design.y.astype("int64"), dims=dims
        )

    def log_likelihood(self, y, eta, params, trials=None):
        return stats.betabinom.logpmf(y, trials, *self._shapes(self.link.inverse(eta), params["phi"]))

    def draw(self, eta, params, trials, rng):
        p = rng.beta(*self._shapes(self.link.inverse(eta), params["phi"]))
        return rng.binomial(np.broadcast_to(trials.astype(np.int64), p.shape), p).astype(float)
