"""Power-scaling sensitivity to the prior and the likelihood (Kallioinen, Paananen, Buerkner &
Vehtari 2023; R's priorsense, ArviZ's ``psense``).

The posterior's draws are reweighted by importance sampling as if the prior (or the
likelihood) were raised to a power near 1; how far each summary parameter's distribution
moves, per unit change of the log-power (a cumulative Jensen-Shannon distance), is its
sensitivity. The prior that is scaled is brms's ``lprior``: the priors of the model's
top-level parameters (fixed effects, thresholds, group-level SDs and correlations, family
parameters), not the normal distribution of the group effects, which is part of the model's
structure.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import xarray as xr

from ..inference.idata import get_group
from ..spec.covariance import STRUCTURES
from .comparison import add_log_likelihood
from .summaries import summary_draws

if TYPE_CHECKING:  # pragma: no cover
    from .fit import Fit

__all__ = ["log_prior_draws", "psense"]


def _correlation_logp(entry, fit: Fit, draws: dict[str, np.ndarray]) -> np.ndarray | None:
    """An LKJ(eta) prior's log density of each draw's correlation matrix, (eta - 1) log det R
    up to a constant; a one-parameter structure's (cs, ar1) prior at its correlation."""
    from .summaries import designs

    for design in designs(fit):
        for term in design.random:
            if design.qualified(term.group) != entry.group or not term.cor_names:
                continue
            if entry.prior.dist == "LKJ":
                eta = float(entry.prior.params["eta"])
                k = term.n_terms
                R = np.broadcast_to(np.eye(k), next(iter(draws.values())).shape + (k, k)).copy()
                pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
                for (i, j), name in zip(pairs, term.cor_names, strict=True):
                    R[..., i, j] = R[..., j, i] = draws[name]
                return (eta - 1.0) * np.linalg.slogdet(R)[1]
            return _logp(entry.prior, draws[term.cor_names[0]])
    return None


def _logp(prior, values: np.ndarray) -> np.ndarray:
    import pymc as pm

    return pm.logp(prior.as_dist(shape=values.shape), values).eval()


# The prior classes whose densities are over the reported correlations (cor, cs, ar1).
CORRELATION_CLASSES = tuple(
    c.cor_class for c in STRUCTURES.values() if c.cor_class and c.cor_prior_on_correlations
)


def log_prior_draws(fit: Fit) -> np.ndarray:
    """(chain, draw) log density of each draw under the model's priors (brms's ``lprior``)."""
    draws = summary_draws(fit)
    total = np.zeros(next(iter(draws.values())).shape)
    for entry in fit.model.prior_entries:
        if entry.cls.endswith(CORRELATION_CLASSES) or entry.prior.dist == "LKJ":
            values = _correlation_logp(entry, fit, draws)
        elif entry.parameter in draws:
            values = _logp(entry.prior, draws[entry.parameter])
        else:
            values = None
        if values is not None:
            total = total + values
    return total


def psense(fit: Fit, threshold: float = 0.05, alphas=(0.99, 1.01)) -> pd.DataFrame:
    """Prior and likelihood sensitivity of every summary parameter; see :meth:`bayesmm.Fit.psense`."""
    import arviz_stats as azs

    add_log_likelihood(fit)
    draws = summary_draws(fit)
    names = list(draws)
    post = get_group(fit.idata, "posterior")
    coords = {"chain": post.chain.values, "draw": post.draw.values}
    # Plain variable names for ArviZ (the summary's hold brackets and bars), renamed back below.
    variables = {f"p{k}": (("chain", "draw"), draws[name]) for k, name in enumerate(names)}
    posterior = xr.Dataset(variables, coords=coords)
    log_prior = xr.Dataset({"lprior": (("chain", "draw"), log_prior_draws(fit))}, coords=coords)
    tree = xr.DataTree.from_dict(
        {"posterior": posterior, "log_prior": log_prior,
         "log_likelihood": get_group(fit.idata, "log_likelihood")}
    )  # fmt: skip
    # ArviZ logs a pointer to its docs when it flags something; the table's diagnosis says it.
    logger = logging.getLogger("arviz_stats.psense")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        table = azs.psense_summary(tree, threshold=threshold, alphas=alphas, round_to=6)
    finally:
        logger.setLevel(level)
    table.index = pd.Index([names[int(str(i)[1:])] for i in table.index], name="parameter")
    table = table.rename(columns={"prior": "prior_sensitivity", "likelihood": "likelihood_sensitivity"})
    return table
