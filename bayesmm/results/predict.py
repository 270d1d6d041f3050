"""Predictions from posterior draws: linear predictor, expected response, new responses.

Everything is computed in numpy from the stored design and the posterior draws;
no PyMC graph is compiled. New data go through the fitted formulaic specs (same
categories, same ``scale``/``poly`` transforms), never a fresh parse.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import xarray as xr

from ..design.additions import additions_for_new_data
from ..design.build import DataError, encode_new_data
from ..families import additions
from ..model.variables import fixef_var, gp_var, group_var, monotonic_var, smooth_var
from ..spec.formula import parse_formula
from .summaries import constant_params, covariance_draws, interval_names

if TYPE_CHECKING:  # pragma: no cover
    from .fit import Fit

__all__ = [
    "predict", "linear_predictor", "LinearPredictor", "linear_predictor_of", "linear_predictor_draws",
    "family_param_draws",
]  # fmt: skip

KINDS = ("mean", "linear", "response", "probs")
NEW_LEVELS = ("error", "sample", "population")


def _flat(values: np.ndarray) -> np.ndarray:
    """(chain, draw, ...) -> (chain * draw, ...)."""
    return values.reshape((-1,) + values.shape[2:])


def drops_all_groups(re_form) -> bool:
    """Whether ``re_form`` leaves out every group effect: ``"~0"``, ``"NA"``, R's other spellings."""
    spellings = ("~0", "0", "none", "NA", "~NA", "NULL")
    return re_form is not None and str(re_form).replace(" ", "") in spellings


def _kept_groups(design, re_form) -> set[str]:
    groups = set(design.groups)
    if re_form is None:
        return groups
    text = str(re_form).strip()
    if drops_all_groups(text):
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


def linear_predictor(fixef, X, offset, effects) -> np.ndarray:
    """The one numpy evaluator of a linear predictor: (S, n) from S draws (or S = 1 set of
    values) of the fixed effects ``fixef`` (S, p) or None, the rows' fixed-effect matrix ``X``
    (n, p) and offset (n,) or None, and ``effects``: per random-effect term, its effects
    (S, levels, k), the rows' level codes (n,) and term matrix (n, k)."""
    n = X.shape[0]
    S = fixef.shape[0] if fixef is not None else (effects[0][0].shape[0] if effects else 1)
    eta = fixef @ X.T if fixef is not None else np.zeros((S, n))
    if offset is not None:
        eta = eta + offset
    for values, codes, matrix in effects:
        eta = eta + np.einsum("snj,nj->sn", values[:, codes, :], matrix)
    return eta


@dataclass
class LinearPredictor:
    """The linear predictor of one design (the mean's or a part's) at given rows, from the
    posterior. Every group effect it needs, new levels' included, is drawn once when it is
    made, so evaluating it in row chunks (``predictor(rows)``) gives the same numbers as all
    at once while holding draws x chunk, not draws x rows."""

    fixef: np.ndarray | None  # (S, p)
    X: np.ndarray
    offset: np.ndarray | None
    trials: np.ndarray | None
    effects: list  # (values (S, levels, k), codes, matrix) per kept term
    labels: pd.Index  # the rows' index labels
    n_draws: int

    def __call__(self, rows: slice = slice(None)) -> np.ndarray:
        offset = None if self.offset is None else self.offset[rows]
        effects = [(values, codes[rows], matrix[rows]) for values, codes, matrix in self.effects]
        if self.fixef is None and not effects:
            return np.zeros((self.n_draws, len(self.X[rows]))) + (0.0 if offset is None else offset)
        return linear_predictor(self.fixef, self.X[rows], offset, effects)

    @property
    def n_rows(self) -> int:
        return self.X.shape[0]


def linear_predictor_of(
    fit: Fit,
    newdata=None,
    re_form=None,
    new_levels: str = "error",
    random_seed=None,
    trials=None,
    design=None,
) -> LinearPredictor:
    """The :class:`LinearPredictor` of the mean (or of ``design``'s part) at the fitted rows or
    ``newdata``; ``new_levels`` says what unseen grouping levels get (see ``Fit.predict``)."""
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
        labels = design.rows
        monotonic_codes = [t.codes for t in design.monotonic]
        smooth_matrices = [s.Z for s in design.smooths]
        gp_matrices = [g.Z for g in design.gps]
    else:
        encoded = encode_new_data(design, newdata, trials=trials)
        X, offset, row_trials = encoded.X, encoded.offset, encoded.trials
        codes, matrices, unseen, labels = encoded.codes, encoded.matrices, encoded.new_levels, encoded.rows
        monotonic_codes = encoded.monotonic
        smooth_matrices = encoded.smooths
        gp_matrices = encoded.gps
    fixef = fixef_var(design)
    n_draws = post.sizes["chain"] * post.sizes["draw"]
    keep = _kept_groups(design, re_form)
    # Each mo(x)'s transform per draw at its levels 0..D, D sum(zeta[1..level]), and the rows'
    # levels, by name.
    transforms = {t.name: t.transform(_flat(post[monotonic_var(design, "simo", t)].values))
                  for t in design.monotonic}  # fmt: skip
    level_codes = {t.name: codes for t, codes in zip(design.monotonic, monotonic_codes, strict=True)}
    effects = []
    for term, term_codes, matrix, term_unseen in zip(design.random, codes, matrices, unseen, strict=True):
        if term.group not in keep:
            continue
        values = _flat(post[group_var(design, "r", term.group)].values)[:, :, term.covariance.columns]
        if term_unseen:
            if new_levels == "error":
                raise DataError(
                    f"level(s) {', '.join(repr(u) for u in term_unseen)} of '{term.group}' in the new data "
                    "were not in the fitted data; use new_levels='sample' (draw them from the fitted "
                    "population) or 'population' (set their group effects to zero)"
                )
            if new_levels == "sample" and term.level_factor is not None:
                new = ", ".join(repr(u) for u in term_unseen[:5])
                raise DataError(
                    f"level(s) {new} of '{term.group}' are new, and {term.spec.text} correlates levels "
                    f"through data2['{term.spec.cov}'], which has no row for them: refit with them in it, or "
                    "predict with new_levels='population' (effects of zero)"
                )
            extra = (
                _new_level_effects(fit, design, term, len(term_unseen), rng)
                if new_levels == "sample"
                else np.zeros((values.shape[0], len(term_unseen), term.n_terms))
            )
            values = np.concatenate([values, extra], axis=1)  # unseen levels' codes follow the fitted ones
        varying = [j for j, c in enumerate(term.columns) if c in transforms]
        if varying:
            # (mo(x) | g): a level's effect times the transform of the row's level of x, one
            # lookup by the pair (level of g, level of x) per draw.
            matrix = np.array(matrix, dtype=float)
            for j in varying:
                transform, x_codes = transforms[term.columns[j]], level_codes[term.columns[j]]
                pairs = values[:, :, j, None] * transform[:, None, :]  # (draws, levels of g, levels of x)
                effects.append((pairs.reshape(len(pairs), -1, 1), term_codes * transform.shape[1] + x_codes,
                                np.ones((len(term_codes), 1))))  # fmt: skip
                matrix[:, j] = 0.0
        effects.append((values, term_codes, matrix))
    for term in design.monotonic:
        # mo(x): each level's effect b D sum(zeta[1..level]), as one more lookup by level code.
        b = _flat(post[monotonic_var(design, "bsp", term)].values)
        codes = level_codes[term.name]
        effects.append(((b[:, None] * transforms[term.name])[:, :, None], codes, np.ones((len(codes), 1))))
    # s(x) and gp(x): the basis times the coefficients, as one "level" whose effects they are.
    names = [smooth_var(design, "s", s) for s in design.smooths]
    names += [gp_var(design, "gp", g) for g in design.gps]
    for name, basis in zip(names, smooth_matrices + gp_matrices, strict=True):
        coefficients = _flat(post[name].values)
        effects.append((coefficients[:, None, :], np.zeros(len(basis), dtype=np.int64), basis))
    fixef_draws = _flat(post[fixef].values) if fixef in post else None
    return LinearPredictor(fixef_draws, X, offset, row_trials, effects, labels, n_draws)


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
    predictor = linear_predictor_of(fit, newdata, re_form, new_levels, random_seed, trials, design)
    return predictor(), predictor.trials, predictor.labels


def family_param_draws(
    fit: Fit, newdata: pd.DataFrame | None = None, re_form=None, new_levels: str = "error", random_seed=None
) -> dict[str, np.ndarray]:
    """Family parameters as arrays that broadcast against (draws, n): (draws, 1) for constant
    ones, (draws, n) for those given by a distributional formula (zi=, hu=, dispersion=, dpars)."""
    parts = _part_predictors(fit, newdata, re_form, new_levels, random_seed)
    return _family_params(fit, parts, slice(None))


def _part_predictors(fit: Fit, newdata, re_form, new_levels, random_seed) -> dict[str, LinearPredictor]:
    return {
        part: linear_predictor_of(fit, newdata, re_form, new_levels, random_seed, design=design)
        for part, design in getattr(fit.model, "parts", {}).items()
    }


def _family_params(fit: Fit, parts: dict[str, LinearPredictor], rows: slice) -> dict[str, np.ndarray]:
    post = fit.idata.posterior
    family = fit.model.family
    params = {name: _flat(post[name].values)[:, None] for name in constant_params(fit)}
    for part, predictor in parts.items():
        params[family.part_parameter(part)] = family.part(part).inverse(predictor(rows))
    return params


# Predictions summarised per row are computed in chunks of rows holding about this many
# numbers (draws x rows) at a time: 128 MB of float64.
CHUNK_NUMBERS = 2**24


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
    """Posterior predictions; see :meth:`bayesmm.Fit.predict`. Summaries are computed in
    chunks of rows (``CHUNK_NUMBERS``), so large new data need not fit draws x rows in memory."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    family = fit.model.family
    if kind == "probs" and not family.has_categories:
        raise ValueError(f"kind='probs' gives category probabilities of an ordinal or categorical model, "
                         f"not of a {family.name} model; use kind='mean'")  # fmt: skip
    predictor = linear_predictor_of(fit, newdata, re_form, new_levels, random_seed, trials)
    if family.needs_trials and kind != "linear" and predictor.trials is None:
        cbind = fit.design.formula.cbind
        hint = f", or include the columns of cbind({', '.join(cbind)})" if cbind else ""
        raise DataError(
            f"binomial predictions need the number of trials: pass trials= (a column name or array){hint}"
        )
    parts = _part_predictors(fit, newdata, re_form, new_levels, random_seed)
    rng = np.random.default_rng(random_seed)
    extras = fit.design.additions if newdata is None else additions_for_new_data(fit.design, newdata)
    if kind == "response" and fit.design.additions.se is not None and not extras.sigma and extras.se is None:
        name = fit.design.formula.addition("se").get("se")
        raise DataError(
            f"the model's residual SDs are the known se({name}): drawing responses for new rows needs them, "
            f"so include the column '{name}' in the new data"
        )
    if kind == "probs":
        return _category_probabilities(fit, predictor, parts, summary, prob)

    def values_at(rows: slice) -> np.ndarray:
        eta = predictor(rows)
        if kind == "linear":
            return eta
        params = _family_params(fit, parts, rows)
        row_trials = None if predictor.trials is None else predictor.trials[rows]
        row_extras = extras.take(rows)
        if kind == "mean":
            return additions.mean(family, eta, params, row_trials, row_extras)
        return additions.draw(family, eta, params, row_trials, rng, row_extras)

    if summary:
        lo, hi = interval_names(prob)
        size = max(1, CHUNK_NUMBERS // predictor.n_draws)
        tables = []
        for start in range(0, max(predictor.n_rows, 1), size):
            values = values_at(slice(start, start + size))
            q = np.quantile(values, [(1 - prob) / 2, (1 + prob) / 2], axis=0)
            tables.append({"mean": values.mean(axis=0), "sd": values.std(axis=0, ddof=1), lo: q[0], hi: q[1]})
        columns = {name: np.concatenate([t[name] for t in tables]) for name in tables[0]}
        return pd.DataFrame(columns, index=predictor.labels)
    values = values_at(slice(None))
    rows = predictor.labels
    post = fit.idata.posterior
    shaped = values.reshape(post.sizes["chain"], post.sizes["draw"], -1)
    return xr.DataArray(
        shaped,
        dims=("chain", "draw", "obs"),
        coords={"chain": post.chain.values, "draw": post.draw.values, "obs": np.asarray(rows)},
        name=kind,
    )


def _category_probabilities(fit: Fit, predictor: LinearPredictor, parts: dict, summary: bool, prob: float):
    """P(y = k) per row and category of an ordinal or categorical model: a table with columns
    (stat, category), or with ``summary=False`` the draws, dims (chain, draw, obs, category)."""
    family = fit.model.family
    categories = list(family.categories)
    lo, hi = interval_names(prob)
    size = max(1, CHUNK_NUMBERS // (predictor.n_draws * len(categories)))
    chunks = []
    for start in range(0, max(predictor.n_rows, 1), size):
        rows = slice(start, start + size)
        p = family.probabilities(predictor(rows), _family_params(fit, parts, rows))
        if not summary:
            chunks.append(p)
            continue
        q = np.quantile(p, [(1 - prob) / 2, (1 + prob) / 2], axis=0)
        chunks.append(np.concatenate([p.mean(axis=0), p.std(axis=0, ddof=1), q[0], q[1]], axis=1))
    values = np.concatenate(chunks, axis=-2)
    if summary:
        columns = pd.MultiIndex.from_product([["mean", "sd", lo, hi], categories], names=["stat", "category"])
        return pd.DataFrame(values, index=predictor.labels, columns=columns)
    post = fit.idata.posterior
    return xr.DataArray(
        values.reshape(post.sizes["chain"], post.sizes["draw"], *values.shape[1:]),
        dims=("chain", "draw", "obs", "category"),
        coords={"chain": post.chain.values, "draw": post.draw.values, "obs": np.asarray(predictor.labels),
                "category": categories},
        name="probs",
    )  # fmt: skip
