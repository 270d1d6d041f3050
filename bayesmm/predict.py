"""Predictions from posterior draws: linear predictor, expected response, new responses.

Everything is computed in numpy from the stored design and the posterior draws;
no PyMC graph is compiled. New data go through the fitted formulaic specs (same
categories, same ``scale``/``poly`` transforms), never a fresh parse.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import xarray as xr

from .design import DataError, encode_new_data
from .formula import parse_formula
from .results import constant_params, covariance_draws, interval_names

if TYPE_CHECKING:  # pragma: no cover
    from .fit import Fit

__all__ = ["predict", "linear_predictor_draws", "family_param_draws"]

KINDS = ("mean", "linear", "response")
NEW_LEVELS = ("error", "sample", "population")


def _flat(values: np.ndarray) -> np.ndarray:
    """(chain, draw, ...) -> (chain * draw, ...)."""
    return values.reshape((-1,) + values.shape[2:])


def family_param_draws(
    fit: Fit, newdata: pd.DataFrame | None = None, re_form=None, new_levels: str = "error", random_seed=None
) -> dict[str, np.ndarray]:
    """Family parameters as arrays that broadcast against (draws, n): (draws, 1) for constant
    ones, (draws, n) for those given by a distributional formula (zi=, hu=, dispersion=)."""
    post = fit.idata.posterior
    params = {name: _flat(post[name].values)[:, None] for name in constant_params(fit)}
    for part, design in getattr(fit.model, "parts", {}).items():
        eta, _, _ = linear_predictor_draws(fit, newdata, re_form, new_levels, random_seed, design=design)
        family = fit.model.family
        params[family.part_parameter(part)] = family.part(part).inverse(eta)
    return params


def _kept_groups(design, re_form) -> set[str]:
    groups = set(design.groups)
    if re_form is None:
        return groups
    text = str(re_form).strip()
    if text.replace(" ", "") in ("~0", "0", "none", "NA", "~NA", "NULL"):
        return set()
    parsed = parse_formula(text if "~" in text else f"~ {text}")
    wanted = {t.group for t in parsed.random}
    unknown = wanted - groups
    if unknown:
        raise DataError(
            f"re_form names grouping factor(s) {', '.join(sorted(unknown))} that the model does not have "
            f"(it has {', '.join(sorted(groups)) or 'none'})"
        )
    return wanted


def _new_level_effects(fit: Fit, design, term, n_new: int, rng: np.random.Generator) -> np.ndarray:
    """(draws, n_new, terms) effects for unseen levels, drawn from the fitted population."""
    cov = covariance_draws(fit, term.group, design)
    cols = term.covariance.columns
    cov = cov[:, cols, cols]
    chol = np.linalg.cholesky(cov + 1e-12 * np.eye(cov.shape[1]))
    z = rng.standard_normal((cov.shape[0], n_new, cov.shape[1]))
    return np.einsum("sij,snj->sni", chol, z)


def linear_predictor_draws(
    fit: Fit,
    newdata: pd.DataFrame | None = None,
    re_form=None,
    new_levels: str = "error",
    random_seed=None,
    trials=None,
    design=None,
):
    """(draws, n) linear predictor (of the mean, or of ``design``'s part) and the trials for
    those rows (binomial), from the posterior."""
    if new_levels not in NEW_LEVELS:
        raise ValueError(f"new_levels must be one of {', '.join(NEW_LEVELS)}, got {new_levels!r}")
    design = fit.design if design is None else design
    post = fit.idata.posterior
    rng = np.random.default_rng(random_seed)
    if newdata is None:
        X, offset, row_trials = design.X, design.offset, design.trials
        codes = [t.codes for t in design.random]
        matrices = [t.matrix for t in design.random]
        unseen = [[] for _ in design.random]
        rows = design.rows
    else:
        encoded = encode_new_data(design, newdata, trials=trials)
        X, offset, row_trials = encoded.X, encoded.offset, encoded.trials
        codes, matrices, unseen, rows = encoded.codes, encoded.matrices, encoded.new_levels, encoded.rows
    fixef = design.var("fixef")
    n_draws = post.sizes["chain"] * post.sizes["draw"]
    eta = _flat(post[fixef].values) @ X.T if fixef in post else np.zeros((n_draws, X.shape[0]))
    if offset is not None:
        eta = eta + offset
    keep = _kept_groups(design, re_form)
    for term, term_codes, matrix, term_unseen in zip(design.random, codes, matrices, unseen, strict=True):
        if term.group not in keep:
            continue
        effects = _flat(post[design.var(f"r_{term.group}")].values)[:, :, term.covariance.columns]
        if term_unseen:
            if new_levels == "error":
                raise DataError(
                    f"level(s) {', '.join(repr(u) for u in term_unseen)} of '{term.group}' in the new data "
                    "were not in the fitted data; use new_levels='sample' (draw them from the fitted "
                    "population) or 'population' (set their group effects to zero)"
                )
            extra = (
                _new_level_effects(fit, design, term, len(term_unseen), rng)
                if new_levels == "sample"
                else np.zeros((effects.shape[0], len(term_unseen), term.n_terms))
            )
            effects = np.concatenate([effects, extra], axis=1)  # unseen levels' codes follow the fitted ones
        eta = eta + np.einsum("snj,nj->sn", effects[:, term_codes, :], matrix)
    return eta, row_trials, rows


def predict(
    fit: Fit,
    newdata: pd.DataFrame | None = None,
    kind: str = "mean",
    re_form=None,
    new_levels: str = "error",
    summary: bool = True,
    prob: float = 0.95,
    random_seed=None,
    trials=None,
):
    """Posterior predictions; see :meth:`bayesmm.Fit.predict`."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    eta, row_trials, rows = linear_predictor_draws(fit, newdata, re_form, new_levels, random_seed, trials)
    family = fit.model.family
    if family.needs_trials and kind != "linear" and row_trials is None:
        cbind = fit.design.formula.cbind
        hint = f", or include the columns of cbind({', '.join(cbind)})" if cbind else ""
        raise DataError(
            f"binomial predictions need the number of trials: pass trials= (a column name or array){hint}"
        )
    params = family_param_draws(fit, newdata, re_form, new_levels, random_seed)
    if kind == "linear":
        values = eta
    elif kind == "mean":
        values = family.mean(eta, params, row_trials)
    else:
        values = family.draw(eta, params, row_trials, np.random.default_rng(random_seed))
    if summary:
        lo, hi = interval_names(prob)
        q = np.quantile(values, [(1 - prob) / 2, (1 + prob) / 2], axis=0)
        return pd.DataFrame(
            {"mean": values.mean(axis=0), "sd": values.std(axis=0, ddof=1), lo: q[0], hi: q[1]}, index=rows
        )
    post = fit.idata.posterior
    shaped = values.reshape(post.sizes["chain"], post.sizes["draw"], -1)
    return xr.DataArray(
        shaped,
        dims=("chain", "draw", "obs"),
        coords={"chain": post.chain.values, "draw": post.draw.values, "obs": np.asarray(rows)},
        name=kind,
    )
