"""Design + family + priors -> a ``pymc.Model``. The only module that builds PyMC graphs.

Parameterization (what is sampled, and how the reported quantities follow):

* Fixed effects: the predictors other than the intercept are centred at their
  means, so the sampled ``Intercept_c`` is the intercept at average predictors
  (nearly uncorrelated with the slopes). The reported ``fixef`` back-transforms:
  Intercept = Intercept_c - sum_j mean(x_j) * b_j. Slopes are unchanged.
* Group effects are non-centred: ``z ~ Normal(0, 1)`` per level and term, and
  ``r = z @ L.T`` where ``L`` is the Cholesky factor of the term's covariance
  (LKJ-Cholesky prior on the correlations, the ``sd`` priors on the SDs), or
  ``r = z * sd`` for one-column and ``||`` terms.
* The likelihood indexes group effects by level code, ``r[code, j] * x_j``;
  it never forms the dense n x (levels * terms) Z.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from .design import Design, RandomEffectTerm
from .families import Family
from .priors import PriorEntry, stack_priors

__all__ = ["build_pymc_model", "fixed_center", "term_dim", "cor_dim", "OBS_DIM", "PART_LINKS"]

OBS_DIM = "obs"

# Inverse links of the distributional parts: probabilities for zi and hu, a positive
# family parameter for dispersion.
PART_LINKS = {"zi": pt.sigmoid, "hu": pt.sigmoid, "dispersion": pt.exp}


def fixed_center(design: Design) -> np.ndarray:
    """Column means used to centre the fixed-effects matrix (zero for the intercept,
    and zero everywhere for a model without an intercept, where centring would change it)."""
    if not design.has_intercept:
        return np.zeros(design.X.shape[1])
    center = design.X.mean(axis=0)
    center[design.fixef_names.index("Intercept")] = 0.0
    return center


def term_dim(design: Design, group: str) -> str:
    return design.var(f"{group}__term")


def cor_dim(design: Design, group: str) -> str:
    return design.var(f"{group}__cor")


def _term_columns_dim(design: Design, term: RandomEffectTerm) -> str:
    terms = design.groups[term.group]
    if len(terms) == 1:
        return term_dim(design, term.group)
    return f"{term_dim(design, term.group)}{terms.index(term) + 1}"


def _coords(design: Design) -> dict[str, list]:
    coords: dict[str, list] = {design.var("fixef_term"): list(design.fixef_names)}
    slopes = [n for n in design.fixef_names if n != "Intercept"]
    if slopes:
        coords[design.var("b_coef")] = slopes
    for group, terms in design.groups.items():
        coords[group] = list(terms[0].levels)
        coords[term_dim(design, group)] = design.group_columns(group)
        if len(terms) > 1:
            for term in terms:
                coords[_term_columns_dim(design, term)] = list(term.columns)
        cor_names = [n for t in terms for n in t.cor_names]
        if cor_names:
            coords[cor_dim(design, group)] = [n[len("cor(") : n.index("|")] for n in cor_names]
    return coords


def _vector_rv(name: str, priors: list[PriorEntry], dims: str):
    """One vector random variable with per-element priors (stacked when they share a family)."""
    stacked = stack_priors([e.prior for e in priors])
    if stacked is not None:
        return stacked.create(name, dims=dims)
    parts = [e.prior.create(f"{name}[{e.parameter}]") for e in priors]
    return pm.Deterministic(name, pt.stack(parts), dims=dims)


def _fixed_part(design: Design, priors: dict[str, PriorEntry]):
    X = design.X
    center = fixed_center(design)
    eta = pt.zeros(design.n_obs)
    pieces = []
    slope_idx = [j for j, n in enumerate(design.fixef_names) if n != "Intercept"]
    b = None
    if slope_idx:
        slope_priors = [priors[design.qualified(design.fixef_names[j])] for j in slope_idx]
        b = _vector_rv(design.var("b"), slope_priors, dims=design.var("b_coef"))
        Xc = X[:, slope_idx] - center[slope_idx]
        eta = eta + pt.dot(Xc, b)
    intercept_c = None
    if design.has_intercept:
        intercept_c = priors[design.qualified("Intercept")].prior.create(design.var("Intercept_c"))
        eta = eta + intercept_c
    for name in design.fixef_names:
        if name == "Intercept":
            # Back-transform the centred intercept to the user's scale.
            shift = pt.dot(center[slope_idx], b) if b is not None else 0.0
            pieces.append(intercept_c - shift)
        else:
            pieces.append(b[slope_idx.index(design.fixef_names.index(name))])
    if pieces:
        pm.Deterministic(design.var("fixef"), pt.stack(pieces), dims=design.var("fixef_term"))
    return eta


def _term_effects(design: Design, term: RandomEffectTerm, k: int, priors: dict[str, PriorEntry]):
    """Group effects r (levels x terms) of one random-effect term, non-centred."""
    group = term.group
    cols_dim = _term_columns_dim(design, term)
    suffix = "" if k == 0 else str(k + 1)
    z = pm.Normal(design.var(f"z_{group}{suffix}"), 0.0, 1.0, dims=(group, cols_dim))
    sd_entries = [priors[n] for n in term.sd_names]
    if term.compound_symmetry:
        sds = _vector_rv(design.var(f"sd_{group}{suffix}_raw"), sd_entries, dims=cols_dim)
        rho = priors[f"cor({design.qualified(group)})"].prior.create(design.var(f"rho_{group}{suffix}"))
        p = term.n_terms
        corr = (1.0 - rho) * pt.eye(p) + rho * pt.ones((p, p))
        chol = pt.linalg.cholesky(sds[:, None] * corr * sds[None, :])
        return pt.dot(z, chol.T), sds, pt.stack([rho] * len(term.cor_pairs))
    if term.correlated:
        sd_dist = stack_priors([e.prior for e in sd_entries]).as_dist()
        eta_lkj = priors[f"cor({design.qualified(group)})"].prior.params["eta"]
        chol, corr, sds = pm.LKJCholeskyCov(
            design.var(f"chol_{group}{suffix}"),
            n=term.n_terms,
            eta=eta_lkj,
            sd_dist=sd_dist,
            compute_corr=True,
            store_in_trace=False,
        )
        r = pt.dot(z, chol.T)
        cor_values = pt.stack([corr[i, j] for i, j in term.cor_pairs])
        return r, sds, cor_values
    sds = _vector_rv(design.var(f"sd_{group}{suffix}_raw"), sd_entries, dims=cols_dim)
    return z * sds, sds, None


def _random_part(design: Design, priors: dict[str, PriorEntry]):
    eta = pt.zeros(design.n_obs)
    for group, terms in design.groups.items():
        effects, sds, cors = [], [], []
        for k, term in enumerate(terms):
            r, sd, cor = _term_effects(design, term, k, priors)
            effects.append(r)
            sds.append(sd)
            if cor is not None:
                cors.append(cor)
            for j in range(term.n_terms):
                column = term.matrix[:, j]
                contribution = r[term.codes, j]
                # Intercept columns are all ones: skip the multiplication.
                if not np.all(column == 1.0):
                    contribution = contribution * column
                eta = eta + contribution
        pm.Deterministic(
            design.var(f"r_{group}"),
            effects[0] if len(effects) == 1 else pt.concatenate(effects, axis=1),
            dims=(group, term_dim(design, group)),
        )
        pm.Deterministic(
            design.var(f"sd_{group}"),
            pt.concatenate([pt.atleast_1d(s) for s in sds]),
            dims=term_dim(design, group),
        )
        if cors:
            pm.Deterministic(design.var(f"cor_{group}"), pt.concatenate(cors), dims=cor_dim(design, group))
    return eta


def _linear_predictor(design: Design, priors: dict[str, PriorEntry]):
    eta = _fixed_part(design, priors)
    if design.random:
        eta = eta + _random_part(design, priors)
    if design.offset is not None:
        eta = eta + design.offset
    return eta


def build_pymc_model(
    design: Design, family: Family, priors: list[PriorEntry], parts: dict[str, Design] | None = None
) -> pm.Model:
    """The PyMC model of ``design`` under ``family`` with the resolved ``priors``.

    ``parts`` maps a distributional parameter (``"zi"``, ``"hu"``, ``"dispersion"``) to the
    design of its own linear predictor; its value per row replaces a constant parameter.
    """
    parts = parts or {}
    by_name = {e.parameter: e for e in priors}
    coords = {OBS_DIM: list(range(design.n_obs)), **_coords(design)}
    for part in parts.values():
        coords.update(_coords(part))
    with pm.Model(coords=coords) as model:
        eta = _linear_predictor(design, by_name)
        params = {name: by_name[name].prior.create(name) for name in family.constant_params(parts)}
        for name, part in parts.items():
            params[family.part_parameter(name)] = PART_LINKS[name](_linear_predictor(part, by_name))
        family.likelihood(design.response_name, eta, params, design, dims=OBS_DIM)
    return model
