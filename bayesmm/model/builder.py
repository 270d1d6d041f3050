"""Design + family + priors -> a ``pymc.Model`` (with bayesmm.spec.covariance, which builds each
random-effect term's covariance).

Parameterization (what is sampled, and how the reported quantities follow):

* Fixed effects: the predictors other than the intercept are centred at their
  means, so the sampled ``Intercept_c`` is the intercept at average predictors
  (nearly uncorrelated with the slopes). The reported ``fixef`` back-transforms:
  Intercept = Intercept_c - sum_j mean(x_j) * b_j. Each slope is sampled per SD of its
  predictor (``b_std = sd(x_j) * b_j``, its prior stretched to match), so that the
  sampler's jittered starting points keep the linear predictor within a few units
  whatever the predictor's units; ``b`` is reported on the user's scale.
* Group effects are non-centred, ``z ~ Normal(0, 1)`` per level and term and
  ``r = z @ L.T`` where ``L`` is the Cholesky factor of the term's covariance, which the
  term's covariance structure builds (bayesmm.spec.covariance: LKJ-Cholesky for unstructured
  terms, ``r = z * sd`` for one-column and ``||`` terms, closed forms for cs and ar1);
  or centred, ``r ~ Normal(0, L L^T)`` drawn as they are, for terms whose levels are
  informative (bayesmm.model.parameterization chooses per term from the data); a centred term
  nested in others is drawn around their effects (casks around their batch's), and one
  whose levels each have one value of some predictors around their fixed effects (broods
  around their year's and their location's height's). Where the group effects are just
  a centred term and the one term it is nested in, both intercepts, the parent's effects
  are integrated out of the child's prior (_nested_marginal_part).
* The mean of the group effects over levels, ``m = mean(r)``, trades off against the
  fixed coefficient of the same column (the intercept, or a slope that also varies):
  when every level is pinned down by its data, only ``b + m`` is, and a sampler moving
  ``b`` must move every ``z`` with it. So each term's standard normals are written in
  an orthonormal basis whose first vector is constant over levels (``z = H w``, H a
  Householder reflection; the prior of ``w`` is that of ``z``), and for such a column
  the sampled variable is ``t = b + m`` with the prior of ``b`` moved by ``m``;
  ``b = t - m`` is then exactly distributed as its prior says (a shear: unit Jacobian).
  ``w[0]`` decouples from the likelihood, and ``t`` is what the data pin down.
* The likelihood indexes group effects by level code, ``r[code, j] * x_j``;
  it never forms the dense n x (levels * terms) Z.
"""

from __future__ import annotations

import numpy as np

from ..design.build import Design, RandomEffectTerm
from ..families import additions
from ..families.base import Family
from ..lazy import pm, pt
from ..spec.priors import Prior, PriorEntry, stack_priors
from .fixed import centred_slopes, fixed_center, sampled_fixed_matrix
from .parameterization import centring_parents, level_parents
from .variables import (
    OBS_DIM,
    TermNames,
    coords,
    cor_dim,
    fixef_var,
    gp_dim,
    gp_var,
    group_var,
    level_dim,
    monotonic_dim,
    monotonic_var,
    smooth_dim,
    smooth_var,
    term_dim,
)

__all__ = ["build_pymc_model", "build_collapsed_model"]

LOCATION_SCALE = {
    "Normal": ("mu", "sigma"),
    "StudentT": ("mu", "sigma"),
    "Cauchy": ("alpha", "beta"),
    "Laplace": ("mu", "b"),
    "Logistic": ("mu", "s"),
    "Gumbel": ("mu", "beta"),
}


def _coefficient(name: str, prior: Prior, shift=None, scale=1.0, dims: str | None = None):
    """A fixed coefficient b with ``prior``, returned as b but sampled as
    ``u = scale * (b + shift)`` when the prior is a location-scale family: ``shift`` is the
    shear of the module docstring (None: none), ``scale`` the predictor's SD, so that ``u``
    is the change in the linear predictor per SD of the predictor. The sampler's starting
    points (jittered by up to +-1 around the prior's centre) then stay within a few units of
    the linear predictor whatever the predictor's units: a slope of cHEIGHT (SD 20) started
    at 0.8 puts exp(30) into a Poisson mean, and the chain never moves. ``u`` has the prior
    of b moved and stretched accordingly, so b has exactly ``prior`` (a linear map)."""
    form = coefficient_form(name, prior, shift, scale)
    if form is None:
        return prior.create(name, dims=dims)
    sampled, params = form
    scale = np.asarray(scale, dtype=float)
    u = getattr(pm, prior.dist)(sampled, **params, dims=dims)
    return (u if np.all(scale == 1.0) else u / scale) - (0.0 if shift is None else shift)


def coefficient_form(name: str, prior: Prior, shift=None, scale=1.0) -> tuple[str, dict] | None:
    """The name and prior parameters of the ``u`` that _coefficient samples for the
    coefficient ``name``, or None when it samples the coefficient itself with ``prior``."""
    scale = np.asarray(scale, dtype=float)
    if prior.dist not in LOCATION_SCALE or (shift is None and np.all(scale == 1.0)):
        return None
    location, spread = LOCATION_SCALE[prior.dist]
    moved = 0.0 if shift is None else shift
    params = dict(prior.params)
    params[location] = (params.get(location, 0.0) + moved) * scale  # PyMC's defaults: 0 and 1
    params[spread] = params.get(spread, 1.0) * scale
    sampled = name + ("" if shift is None else "_plus_mean_r") + ("" if np.all(scale == 1.0) else "_std")
    return sampled, params


def slope_scales(design: Design, slope_idx: list[int]) -> np.ndarray:
    """Each slope's predictor SD (1 for a constant column): what _slopes samples it per."""
    spread = design.X[:, slope_idx].std(axis=0)
    return np.where(spread > 0, spread, 1.0)


def _level_basis(w, n_levels: int):
    """``H w`` for the Householder reflection H that maps the first unit vector to the
    constant unit vector: orthonormal, so ``H w ~ Normal(0, I)`` when ``w`` is, and the mean
    over levels of ``H w`` is ``w[0] / sqrt(n_levels)``. Costs O(levels)."""
    v = -np.full(n_levels, 1.0 / np.sqrt(n_levels))
    v[0] += 1.0
    v /= np.linalg.norm(v)
    return w - 2.0 * v[:, None] * pt.dot(v, w)[None, :]


def qr_factors(Xc: np.ndarray, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """R* and its inverse for the thin QR decomposition of the centred slope columns, scaled
    as brms and rstanarm do: Xc = Q* R*, Q* = Q sqrt(n - 1), so that the sampled theta = R* b
    is on the scale of a predictor's SD and its coordinates are uncorrelated in the
    likelihood. A column that is (nearly) a combination of the others has no such basis:
    DataError naming it."""
    from ..design.build import DataError

    n = Xc.shape[0]
    R = np.linalg.qr(Xc, mode="r") / np.sqrt(max(n - 1, 1))
    R = R * np.sign(np.diag(R))[:, None]  # a positive diagonal: R* is unique
    norms = np.sqrt((Xc**2).sum(axis=0) / max(n - 1, 1))
    flat = np.abs(np.diag(R)) <= 1e-8 * np.maximum(norms, 1e-300)
    if flat.any():
        raise DataError(
            f"decomp='QR' needs linearly independent fixed-effect columns; "
            f"{', '.join(repr(names[j]) for j in np.flatnonzero(flat))} is a combination of the others"
        )
    return R, np.linalg.inv(R)


def _qr_logp(value, shift, R_inverse, log_det, priors: list):
    """log density of theta = R* (b + shift) when b has ``priors`` (elementwise: a list of
    (Prior, indices)); the map is linear, so the Jacobian is the constant 1 / |det R*|."""
    b = pt.dot(R_inverse, value) - shift
    total = -log_det
    for prior, idx in priors:
        total = total + pt.sum(pm.logp(prior.as_dist(shape=len(idx)), b[idx]))
    return total


def _qr_slopes(design: Design, entries: list[PriorEntry], slope_idx: list[int], shift):
    """The slopes b sampled through theta = R* (b + shift) (decomp='QR'), with b's priors exact."""
    names = [design.fixef_names[j] for j in slope_idx]
    R, R_inverse = qr_factors(centred_slopes(design)[1], names)
    stacked = stack_priors([e.prior for e in entries])
    priors = [(stacked, np.arange(len(entries)))] if stacked is not None else [
        (e.prior, np.array([j])) for j, e in enumerate(entries)
    ]  # fmt: skip
    log_det = float(np.sum(np.log(np.abs(np.diag(R)))))

    def draw(shift, size):
        b = pt.concatenate([prior.as_dist(shape=len(idx)) for prior, idx in priors])
        order = np.argsort(np.concatenate([idx for _, idx in priors]))
        return pt.dot(R, b[order] + shift)

    def logp(value, shift):
        return _qr_logp(value, shift, R_inverse, log_det, priors)

    theta = pm.CustomDist(design.var("b_qr"), shift, dist=draw, logp=logp, signature="(p)->(p)",
                          dims=design.var("b_coef"))  # fmt: skip
    return pm.Deterministic(design.var("b"), pt.dot(R_inverse, theta) - shift, dims=design.var("b_coef"))


def _slopes(
    design: Design, priors: dict[str, PriorEntry], slope_idx: list[int], shifts: dict, qr: bool = False
):
    """The slope vector b, each sampled per SD of its predictor (or, with ``qr``, through the
    QR decomposition of the slope columns), and sheared by the mean group effects where
    ``shifts`` has them and the slopes' priors are one location family."""
    entries = [priors[design.qualified(design.fixef_names[j])] for j in slope_idx]
    names = [design.fixef_names[j] for j in slope_idx]
    if qr:
        # The QR density reads any priors exactly, so the shear needs no location family.
        shift = pt.stack([shifts.get(n, pt.constant(0.0)) for n in names]) if shifts else np.zeros(len(names))
        return _qr_slopes(design, entries, slope_idx, shift)
    scales = slope_scales(design, slope_idx)
    stacked = stack_priors([e.prior for e in entries])
    if stacked is None:  # priors of different families: one variable per coefficient
        parts = [_coefficient(f"{design.var('b')}[{e.parameter}]", e.prior, scale=s)
                 for e, s in zip(entries, scales, strict=True)]  # fmt: skip
        b = pt.stack(parts)
    else:
        shift = None
        if any(n in shifts for n in names) and stacked.dist in LOCATION_SCALE:
            shift = pt.stack([shifts.get(n, pt.constant(0.0)) for n in names])
        b = _coefficient(design.var("b"), stacked, shift, scales, dims=design.var("b_coef"))
    if b.name == design.var("b"):  # sampled as it is
        return b
    return pm.Deterministic(design.var("b"), b, dims=design.var("b_coef"))


def _fixed_coefficients(
    design: Design, priors: dict[str, PriorEntry], shifts: dict, qr: bool = False, b=None
):
    """The sampled fixed coefficients: the intercept at average predictors (or None), the
    slopes b (or None) and their columns; registers ``fixef`` (the user's scale). ``shifts``
    maps fixed-effect names to the mean of the group effects of the same column (pytensor
    scalars, for the shear); ``b``: the slopes when already built (see _linear_predictor)."""
    center = fixed_center(design)
    slope_idx, _ = centred_slopes(design)
    if b is None and slope_idx:
        b = _slopes(design, priors, slope_idx, shifts, qr)
    intercept_c = None
    if design.has_intercept:
        prior = priors[design.qualified("Intercept")].prior
        intercept_c = _coefficient(design.var("Intercept_c"), prior, shifts.get("Intercept"))
    pieces = []
    for name in design.fixef_names:
        if name == "Intercept":
            # Back-transform the centred intercept to the user's scale.
            shift = pt.dot(center[slope_idx], b) if b is not None else 0.0
            pieces.append(intercept_c - shift)
        else:
            pieces.append(b[slope_idx.index(design.fixef_names.index(name))])
    if pieces:
        pm.Deterministic(fixef_var(design), pt.stack(pieces), dims=design.var("fixef_term"))
    return intercept_c, b, slope_idx


def _fixed_part(design: Design, priors: dict[str, PriorEntry], shifts: dict, qr: bool = False, b=None):
    """X b, with the centred intercept (see _fixed_coefficients)."""
    intercept_c, b, _ = _fixed_coefficients(design, priors, shifts, qr, b)
    eta = pt.zeros(design.n_obs)
    if b is not None:
        eta = eta + pt.dot(centred_slopes(design)[1], b)
    if intercept_c is not None:
        eta = eta + intercept_c
    return eta


def _term_effects(
    design: Design, term: RandomEffectTerm, k: int, priors: dict[str, PriorEntry], centred: bool, around=None
):
    """Group effects r (levels x terms) of one random-effect term, written in the level basis.

    Non-centred: standard normals w, mapped to effects by the term's covariance factor,
    r = H w F^T. Centred (bayesmm.model.parameterization chooses): the level basis's first row,
    the mean over levels, stays non-centred (the shear takes it out of the likelihood, so
    only its prior holds it and a centred form would be a funnel); the other rows are drawn
    as effects, v ~ Normal(0, Sigma) each, and r = H v. H is orthonormal, so the rows of v
    are independent Normal(0, Sigma) exactly when those of r are: both forms are the same
    model, sampled along different coordinates.

    ``around`` (centred terms nested in others, levels x terms): the effects of the terms it
    is nested in, summed at each of its levels (a cask's batch effect). The centred rows
    are then drawn around them (hierarchical centring, Gelfand, Sahu & Carlin 1995): the
    sampled rows are those of r + around, a shift by other parameters (unit Jacobian), so
    that what a cask's data pin down, its batch's effect plus its own, is one coordinate
    that does not move when the batch's effect does."""
    names = TermNames(design, term, k)
    structure = term.covariance
    n_levels = term.n_levels
    if not centred:
        if structure.latent == term.n_terms:
            w = pm.Normal(names("z"), 0.0, 1.0, dims=(level_dim(term.group), names.columns_dim))
        else:  # fewer latent factors than columns (rr)
            w = pm.Normal(names("z"), 0.0, 1.0, shape=(n_levels, structure.latent))
        r, sds, cors = structure.build(_level_basis(w, n_levels), priors, names)
        if term.level_factor is not None:
            # gr(g, cov = A): r's rows are independent Normal(0, Sigma); L_A r is MVN(0, Sigma (x) A).
            r = pt.dot(term.level_factor, r)
        return r, sds, cors
    F, sds, cors = structure.factor(priors, names)
    mean_row = structure.apply(pm.Normal(names("z"), 0.0, 1.0, shape=(1, term.n_terms)), F, sds)
    if n_levels == 1:
        return mean_row, sds, cors
    if around is None:
        rows = structure.centred(names("v"), F, sds, n_levels - 1)
    else:  # rows of H (r + around) ~ Normal(rows of H around, Sigma); H = H^T
        shift = _level_basis(around, n_levels)[1:]
        rows = structure.centred(names("v"), F, sds, n_levels - 1, mu=shift) - shift
    return _level_basis(pt.concatenate([mean_row, rows], axis=0), n_levels), sds, cors


def _varies(design: Design, term: RandomEffectTerm, c: int) -> bool:
    """Whether column ``c`` of ``term`` is a fixed slope's predictor (a slope that also varies)."""
    column = term.columns[c]
    if column == "Intercept" or column not in design.fixef_names:
        return False
    return bool(np.allclose(term.matrix[:, c], design.X[:, design.fixef_names.index(column)]))


def _sheared_slopes(design: Design) -> set[str]:
    """The fixed slopes sampled sheared by a term's mean group effect (see _shear_shifts)."""
    terms = design.random
    return {term.columns[c] for term in terms for c in range(term.n_terms) if _varies(design, term, c)}


def level_covariates(design: Design, term: RandomEffectTerm) -> tuple[list[int], np.ndarray]:
    """The fixed slopes whose predictors are constant within each level of ``term`` (a brood's
    year, a location's height), as positions among the slopes, and their centred values per
    level (levels x slopes); none for a term without an intercept column."""
    slope_idx, Xc = centred_slopes(design)
    ones = np.all(term.matrix == 1.0, axis=0)
    if not slope_idx or not ones.any():
        return [], np.zeros((term.n_levels, 0))
    sizes = np.maximum(np.bincount(term.codes, minlength=term.n_levels), 1)
    means = np.column_stack([np.bincount(term.codes, Xc[:, j], minlength=term.n_levels) / sizes
                             for j in range(Xc.shape[1])])  # fmt: skip
    tolerance = 1e-9 * np.maximum(np.abs(Xc).max(axis=0), 1.0)
    constant = np.all(np.abs(means[term.codes] - Xc) <= tolerance, axis=0)
    spread = Xc.std(axis=0) > 0
    found = [j for j in range(len(slope_idx)) if constant[j] and spread[j]]
    return found, means[:, found]


def _level_fixed(design: Design, term: RandomEffectTerm, b):
    """The part of the fixed effects constant within each of ``term``'s levels, in its
    intercept column (levels x terms), or None: what a centred term is drawn around with its
    parents' effects, so that the sampled coordinate is a level's whole deviation."""
    found, values = level_covariates(design, term)
    if not found:
        return None
    unit = np.zeros(term.n_terms)
    unit[int(np.argmax(np.all(term.matrix == 1.0, axis=0)))] = 1.0
    return pt.dot(values, b[found])[:, None] * unit[None, :]


def _shear_shifts(design: Design, term: RandomEffectTerm, r, shifts: dict) -> None:
    """Add the mean over levels of ``r`` (one term's group effects) to ``shifts``: to the
    intercept, the part of ``r`` constant across rows, sum_c mean(r[:, c]) * mean(Z[:, c]);
    to a slope, the mean of the term column equal to its predictor."""
    mean_r = pt.mean(r, axis=0)
    if design.has_intercept:
        shift = pt.dot(mean_r, term.matrix.mean(axis=0))
        shifts["Intercept"] = shifts["Intercept"] + shift if "Intercept" in shifts else shift
    for c, column in enumerate(term.columns):
        if _varies(design, term, c):
            shifts[column] = shifts[column] + mean_r[c] if column in shifts else mean_r[c]


def _random_part(
    design: Design,
    priors: dict[str, PriorEntry],
    centred: tuple[bool, ...],
    skip: str | None = None,
    b=None,
    shapes: dict | None = None,
):
    """The group effects' contribution to the linear predictor, and the shear shifts;
    ``centred`` says for each term of ``design.random`` whether it is sampled centred. A
    centred term nested in others with its columns is centred around their effects (built
    first), and, given the slopes ``b``, around the fixed effects constant within its levels.
    The grouping factor ``skip`` (integrated out: bayesmm.model.collapsed) is left out. A
    column mo(x) multiplies its effects by the monotonic transform ``shapes["mo(x)"]``."""
    shapes = shapes or {}
    terms = list(design.random)
    index = {id(term): i for i, term in enumerate(terms)}
    centred = tuple(bool(c) for c in centred) or (False,) * len(terms)
    parents_of = centring_parents(design) if any(centred) else [None] * len(terms)
    built: dict[int, tuple] = {}

    def effects_of(i: int):
        if i not in built:
            term = terms[i]
            parents = [j for j in parents_of[i] or () if terms[j].group != skip] if centred[i] else None
            around = None
            if parents:
                around = sum(effects_of(j)[0][level_parents(term, terms[j])] for j in parents)
            within = _level_fixed(design, term, b) if centred[i] and b is not None else None
            if within is not None:
                around = within if around is None else around + within
            k = [t is term for t in design.groups[term.group]].index(True)
            built[i] = _term_effects(design, term, k, priors, centred[i], around)
        return built[i]

    eta = pt.zeros(design.n_obs)
    shifts: dict = {}
    for group, group_terms in design.groups.items():
        if group == skip:
            continue
        effects, sds, cors = [], [], []
        for term in group_terms:
            r, sd, cor = effects_of(index[id(term)])
            _shear_shifts(design, term, r, shifts)
            effects.append(r)
            sds.append(sd)
            if cor is not None:
                cors.append(cor)
            # One row lookup per term, r[codes], rather than one fancy index r[codes, j] per
            # column (one scatter-add in the gradient instead of one per column); the codes as
            # one tensor, since indexing with the NumPy array itself makes PyTensor inspect
            # every element in Python (5 s at a million rows).
            rows = r[pt.as_tensor_variable(term.codes)]
            ones = np.all(term.matrix == 1.0, axis=0)
            for j, column in enumerate(term.columns):
                # Intercept columns are all ones: skip the multiplication.
                if column in shapes:
                    eta = eta + rows[:, j] * shapes[column]
                else:
                    eta = eta + (rows[:, j] if ones[j] else rows[:, j] * term.matrix[:, j])
        _report_group(design, group, effects, sds, cors)
    return eta, shifts


def marginal_nesting(design: Design, centred: tuple[bool, ...], qr: bool = False) -> tuple[int, int] | None:
    """(child, parent) indices into ``design.random`` when the group effects are exactly two
    one-column intercept terms, the child centred and nested in the parent (broods in
    locations, casks in batches), no slope sheared and no ``qr``: the parent's effects are
    then integrated out of the child's prior (_nested_marginal_part); else None."""
    terms = design.random
    if len(terms) != 2 or len(design.groups) != 2 or qr or not any(centred):
        return None
    if any(t.n_terms != 1 or not np.all(t.matrix == 1.0) or t.covariance.name != "diag" for t in terms):
        return None
    if any(t.level_factor is not None for t in terms):  # the integral assumes independent levels
        return None
    parents = centring_parents(design)
    for child in (0, 1):
        if centred[child] and parents[child] == (1 - child,):
            return child, 1 - child
    return None


def _nested_marginal_part(design: Design, priors: dict[str, PriorEntry], child: int, parent: int):
    """The linear predictor of a child term nested in a parent term (one intercept column
    each; marginal_nesting), with the parent's effects integrated out of the child's prior.

    Each child level's whole linear predictor, u_j = Intercept_c + (fixed part constant
    within j) + r_child_j + r_parent_l(j), is what the sampler moves (full hierarchical
    centring: the child's rows pin it down). Given the fixed part m_j, the u_j of one parent
    level l with n_l children are jointly Normal(m, s_c^2 I + s_p^2 1 1^T), whose density
    is written out: with e = u - m and E_l the sum of e over level l's children,

        log p(u) = -1/2 [ (sum e^2 - sum_l s_p^2 E_l^2 / (s_c^2 + n_l s_p^2)) / s_c^2
                          + (J - L) log s_c^2 + sum_l log(s_c^2 + n_l s_p^2) + J log 2 pi ].

    No parent effect is sampled, so the parents' SD does not have to move with them (the
    funnel that kept grouseticks' sd(LOCATION) at a bulk ESS of 145-293). They are then
    drawn from their exact conditional by standard normals xi that nothing else reads:
    r_p,l = s_p^2 E_l / (s_c^2 + n_l s_p^2) + xi_l (s_c^2 s_p^2 / (s_c^2 + n_l s_p^2))^(1/2),
    which with p(u) is the joint distribution of u and r_p; r_c = e - r_p[parent]."""
    terms = design.random
    inner, outer = terms[child], terms[parent]
    up = level_parents(inner, outer)
    count = np.bincount(up, minlength=outer.n_levels).astype(float)
    intercept_c, b, slope_idx = _fixed_coefficients(design, priors, {}, False)
    _, Xc = centred_slopes(design)
    found, values = level_covariates(design, inner)
    within = [j for j in range(len(slope_idx)) if j not in found]
    mean = pt.zeros(inner.n_levels)
    if intercept_c is not None:
        mean = mean + intercept_c
    if found:
        mean = mean + pt.dot(values, b[found])
    _, sd_inner, _ = inner.covariance.factor(priors, TermNames(design, inner, 0))
    _, sd_outer, _ = outer.covariance.factor(priors, TermNames(design, outer, 0))
    var_c, var_p = sd_inner[0] ** 2, sd_outer[0] ** 2
    n_inner, n_outer = inner.n_levels, outer.n_levels

    def parent_sums(e, var_c, var_p):
        """E_l, and s_c^2 + n_l s_p^2, per parent level."""
        return pt.inc_subtensor(pt.zeros(n_outer)[up], e), var_c + count * var_p

    def logp(value, mean, var_c, var_p):
        e = value - mean
        sums, spread = parent_sums(e, var_c, var_p)
        quadratic = (pt.sum(e**2) - pt.sum(var_p * sums**2 / spread)) / var_c
        log_det = (n_inner - n_outer) * pt.log(var_c) + pt.sum(pt.log(spread))
        return -0.5 * (quadratic + log_det + n_inner * np.log(2 * np.pi))

    def random(mean, var_c, var_p, rng=None, size=None):
        shape = np.shape(mean) if size is None else tuple(np.atleast_1d(size))
        outer_draws = rng.normal(0.0, np.sqrt(var_p), shape[:-1] + (n_outer,))
        return mean + outer_draws[..., up] + rng.normal(0.0, np.sqrt(var_c), shape)

    def support_point(rv, size, mean, var_c, var_p):
        return pt.full_like(rv, 0.0) + mean

    u = pm.CustomDist(TermNames(design, inner, 0)("u"), mean, var_c, var_p, logp=logp, random=random,
                      support_point=support_point, dims=level_dim(inner.group))  # fmt: skip
    xi = pm.Normal(TermNames(design, outer, 0)("z"), 0.0, 1.0, dims=level_dim(outer.group))
    e = u - mean
    sums, spread = parent_sums(e, var_c, var_p)
    r_outer = var_p * sums / spread + xi * pt.sqrt(var_c * var_p / spread)
    r_inner = e - r_outer[up]
    for term, r, sd in ((inner, r_inner, sd_inner), (outer, r_outer, sd_outer)):
        _report_group(design, term.group, [r[:, None]], [sd], [])
    eta = u[pt.as_tensor_variable(inner.codes)]
    if within:
        eta = eta + pt.dot(Xc[:, within], b[within])
    return eta


def _report_group(design: Design, group: str, effects: list, sds: list, cors: list) -> None:
    """Register a grouping factor's reported ``r_``, ``sd_`` and ``cor_`` (its terms' pieces)."""
    pm.Deterministic(
        group_var(design, "r", group),
        effects[0] if len(effects) == 1 else pt.concatenate(effects, axis=1),
        dims=(level_dim(group), term_dim(design, group)),
    )
    pm.Deterministic(
        group_var(design, "sd", group),
        pt.concatenate([pt.atleast_1d(s) for s in sds]),
        dims=term_dim(design, group),
    )
    if cors:
        pm.Deterministic(group_var(design, "cor", group), pt.concatenate(cors), dims=cor_dim(design, group))


def _linear_predictor(
    design: Design,
    priors: dict[str, PriorEntry],
    centred: tuple[bool, ...] = (),
    qr: bool = False,
    skip: str | None = None,
    smooth_weights: list | None = None,
):
    """The linear predictor per row; the grouping factor ``skip`` (integrated out) is left out.

    A centred term whose levels each have one value of some predictors (a brood's year) is
    drawn around those predictors' fixed effects, which are then built first; only when no
    slope is sheared (their shear depends on the group effects) and without ``qr``."""
    nesting = marginal_nesting(design, centred, qr) if skip is None else None
    shapes = _monotonic_shapes(design, priors) if design.monotonic else {}
    if nesting is not None:
        eta = _nested_marginal_part(design, priors, *nesting)
    else:
        b = None
        slope_idx, _ = centred_slopes(design)
        if design.random and any(centred) and slope_idx and not qr and not _sheared_slopes(design):
            if any(c and level_covariates(design, t)[0] for c, t in zip(centred, design.random, strict=True)):
                b = _slopes(design, priors, slope_idx, {}, qr)
        eta, shifts = _random_part(design, priors, centred, skip, b, shapes) if design.random else (0.0, {})
        eta = eta + _fixed_part(design, priors, shifts, qr, b)
    if design.monotonic:
        eta = eta + _monotonic_part(design, priors, shapes)
    if design.smooths:
        eta = eta + _smooth_part(design, priors, smooth_weights)
    if design.gps:
        eta = eta + _gp_part(design, priors)
    if design.offset is not None:
        eta = eta + design.offset
    return eta


def _smooth_part(design: Design, priors: dict[str, PriorEntry], weights: list | None = None):
    """Each smooth's penalized part Z s, s ~ Normal(0, sds^2) (brms's construction; its
    smoothing parameter is 1 / sds^2; the straight line is among the fixed effects), drawn
    partially non-centred: r ~ Normal(0, sds^w), s = sds^(1 - w) r, with each coefficient's
    weight w from the data (bayesmm.model.parameterization.smooth_centring; w = 0, brms's
    non-centred form, where not given)."""
    eta = pt.zeros(design.n_obs)
    for k, smooth in enumerate(design.smooths):
        dims = smooth_dim(design, smooth)
        sds = priors[design.qualified(f"sds({smooth.name})")].prior.create(smooth_var(design, "sds", smooth))
        w = np.zeros(smooth.Z.shape[1]) if weights is None else weights[k]
        if np.any(w > 0):
            z = pm.Normal(smooth_var(design, "zs", smooth), 0.0, sds**w, dims=dims)
            coefficients = pm.Deterministic(smooth_var(design, "s", smooth), sds ** (1 - w) * z, dims=dims)
        else:
            z = pm.Normal(smooth_var(design, "zs", smooth), 0.0, 1.0, dims=dims)
            coefficients = pm.Deterministic(smooth_var(design, "s", smooth), sds * z, dims=dims)
        eta = eta + pt.dot(smooth.Z, coefficients)
    return eta


def _gp_part(design: Design, priors: dict[str, PriorEntry]):
    """Each Hilbert-space GP's function phi (sqrt(S(w)) z) (bayesmm.design.gp): z standard
    normal, S the kernel's spectral density at the basis's frequencies w."""
    eta = pt.zeros(design.n_obs)
    for gp in design.gps:
        dims = gp_dim(design, gp)
        sd = priors[design.qualified(f"sdgp({gp.name})")].prior.create(gp_var(design, "sdgp", gp))
        entry = priors[design.qualified(f"lscale({gp.name})")]
        lengthscale = entry.prior.create(gp_var(design, "lscale", gp))
        z = pm.Normal(gp_var(design, "zgp", gp), 0.0, 1.0, dims=dims)
        density = gp.density(sd, lengthscale, math=pt)
        coefficients = pm.Deterministic(gp_var(design, "gp", gp), pt.sqrt(density) * z, dims=dims)
        eta = eta + pt.dot(gp.Z, coefficients)
    return eta


def _monotonic_shapes(design: Design, priors: dict[str, PriorEntry]) -> dict:
    """Each mo(x)'s transform at the rows, D sum(zeta[1..x]) at level x of 0..D, by name
    (``"mo(x)"``): zeta a simplex (the share of each step in the whole change), sampled here.
    A random-effect term's column mo(x), (mo(x) | g), is this transform too (brms's varying
    monotonic effects share the simplex)."""
    shapes = {}
    for term in design.monotonic:
        entry = priors[design.qualified(f"simo({term.name})")]
        zeta = entry.prior.create(monotonic_var(design, "simo", term), dims=monotonic_dim(design, term))
        levels = pt.concatenate([pt.zeros(1), pt.cumsum(term.n_steps * zeta)])
        shapes[term.name] = levels[pt.as_tensor_variable(term.codes)]
    return shapes


def _monotonic_part(design: Design, priors: dict[str, PriorEntry], shapes: dict):
    """brms's monotonic effects: mo(x) adds b D sum(zeta[1..x]) at level x of 0..D, so the
    levels' effects are monotone in the direction of b's sign."""
    eta = pt.zeros(design.n_obs)
    for term in design.monotonic:
        b = priors[design.qualified(f"bsp({term.name})")].prior.create(monotonic_var(design, "bsp", term))
        eta = eta + b * shapes[term.name]
    return eta


def build_pymc_model(
    design: Design,
    family: Family,
    priors: list[PriorEntry],
    parts: dict[str, Design] | None = None,
    centred: tuple[bool, ...] = (),
    qr: bool = False,
    smooth_weights: list | None = None,
) -> pm.Model:
    """The PyMC model of ``design`` under ``family`` with the resolved ``priors``.

    ``parts`` maps a distributional parameter (``"zi"``, ``"hu"``, ``"dispersion"``) to the
    design of its own linear predictor; its value per row replaces a constant parameter.
    ``centred`` says for each term of ``design.random`` whether its group effects are
    sampled centred (bayesmm.model.parameterization; empty: all non-centred). The parts' terms
    are non-centred. ``qr``: the mean's slopes are sampled through the QR decomposition of
    their columns (decomp="QR"). ``smooth_weights``: each smooth's coefficients' partial
    centring (bayesmm.model.parameterization.smooth_centring; None: non-centred).
    """
    parts = parts or {}
    by_name = {e.parameter: e for e in priors}
    model_coords = {OBS_DIM: list(range(design.n_obs)), **coords(design)}
    for part in parts.values():
        model_coords.update(coords(part))
    with pm.Model(coords=model_coords) as model:
        eta = _linear_predictor(design, by_name, centred, qr, smooth_weights=smooth_weights)
        params = family.create_params(by_name, family.constant_params(parts), design)
        for name, part in parts.items():
            inverse = family.part(name).inverse_graph
            params[family.part_parameter(name)] = inverse(_linear_predictor(part, by_name))
        additions.likelihood(family, design.response_var, eta, params, design, dims=OBS_DIM)
    return model


def _collapsed_factor(design: Design, priors: dict[str, PriorEntry], group: str):
    """The covariance factor L (q x k) of one grouping factor's effects (its terms' factors on
    the diagonal), with k; registers the group's ``sd_`` and ``cor_``."""
    terms = design.groups[group]
    factors, sds, cors = [], [], []
    for k, term in enumerate(terms):
        F, sd, cor = term.covariance.factor(priors, TermNames(design, term, k))
        sd = pt.atleast_1d(sd)
        # sd times the identity rather than pt.diag(sd), whose graph and gradient (an
        # OpFromGraph, a fancy-indexed set) add 11 nodes to Dyestuff's log-density.
        factors.append(sd[:, None] * np.eye(term.n_terms) if F is None else F)
        sds.append(sd)
        if cor is not None:
            cors.append(cor)
    latent = [t.covariance.latent for t in terms]
    if len(terms) == 1:
        L = factors[0]
    else:
        L = pt.zeros((sum(t.n_terms for t in terms), sum(latent)))
        for term, F, start, width in zip(terms, factors, np.cumsum([0, *latent[:-1]]), latent, strict=True):
            L = pt.set_subtensor(L[term.start : term.start + term.n_terms, start : start + width], F)
    pm.Deterministic(group_var(design, "sd", group), pt.concatenate(sds), dims=term_dim(design, group))
    if cors:
        pm.Deterministic(group_var(design, "cor", group), pt.concatenate(cors), dims=cor_dim(design, group))
    return L, sum(latent)


def build_collapsed_model(
    design: Design, family: Family, priors: list[PriorEntry], centred: tuple[bool, ...] = (), qr: bool = False
) -> pm.Model:
    """The model of ``design`` with the effects of one grouping factor integrated out
    (bayesmm.model.collapsed; a Gaussian model): the same priors on every parameter, the marginal
    likelihood over that factor's effects, which are drawn after sampling. With one grouping
    factor the likelihood reads per-level sufficient statistics; with several, the other
    factors' effects are sampled (``centred`` as in build_pymc_model) and the likelihood
    reads each row's residual given them."""
    from .collapsed import CollapsedStatistics, collapsed_group, collapsed_logp, residual_logp

    by_name = {e.parameter: e for e in priors}
    group = collapsed_group(design)
    (sigma_name,) = family.constant_params({})
    with pm.Model(coords=coords(design)) as model:
        if len(design.groups) == 1:
            intercept_c, b, _ = _fixed_coefficients(design, by_name, {}, qr)
            sampled = [pt.atleast_1d(c) for c in (intercept_c, b) if c is not None]
            L, k = _collapsed_factor(design, by_name, group)
            sigma = by_name[sigma_name].prior.create(sigma_name)
            stats = CollapsedStatistics.of(design, sampled_fixed_matrix(design))
            theta = pt.concatenate(sampled) if sampled else None
            loglik = collapsed_logp(stats, theta, L, k, sigma)
        else:
            eta = _linear_predictor(design, by_name, centred, qr, skip=group)
            L, k = _collapsed_factor(design, by_name, group)
            sigma = by_name[sigma_name].prior.create(sigma_name)
            loglik = residual_logp(design, group, design.y - eta, L, k, sigma)
        pm.Potential("collapsed_loglik", loglik)
    return model
