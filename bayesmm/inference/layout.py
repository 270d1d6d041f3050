"""The trace of a model the template writes, laid out from the design without PyMC: every
variable's name, shape and dimensions, the free variables' value names, the coordinates, and
the starting points (each free variable's support point on the unconstrained scale).

These are what bayesmm.model.builder's PyMC model gives (its variables' names, shapes and
dims, PyMC's value names such as ``sd_g_raw_log__``, its support points), written here from
the template's record of the model (bayesmm.inference.template._Model) so that a fit on the
template need not build the PyMC model or import PyMC. tests/test_template.py holds them
equal to PyMC's for every case the template covers; a variable this module cannot place
makes the template leave the layout to PyMC's model (template.Unsupported).

The free variables come in the template's order (PyMC's is the builder's order of creation);
the trace's other variables follow them, the constrained values of transformed variables
first, then the reported ones.
"""

from __future__ import annotations

import numpy as np

from . import densities
from .densities import Unsupported

__all__ = ["TRANSFORM_NAMES", "value_name", "labels", "with_value_dims", "coords", "support_points"]

# PyMC's names of the transforms (densities.TRANSFORM_OF's codes), in value names.
TRANSFORM_NAMES = {1: "log", 2: "logodds", 3: "interval", densities.ORDERED: "ordered",
                   densities.SIMPLEX: "simplex"}  # fmt: skip
_EULER = 0.5772156649015329


def value_name(name: str, transform: int) -> str:
    """PyMC's name of a free variable's value: ``sigma_log__`` (``sigma`` untransformed)."""
    return name if not transform else f"{name}_{TRANSFORM_NAMES[transform]}__"


# -- names, shapes and dims --------------------------------------------------------------------


def with_value_dims(dims: dict, pairs, shape_of: dict) -> dict:
    """``dims`` with each transformed value its variable's dims where their shapes agree
    (a simplex's value has one element fewer, and no dims). ``pairs``: (variable, value
    name); ``shape_of``: name -> shape in the trace."""
    out = dict(dims)
    for name, value in pairs:
        if value != name and name in out and shape_of.get(name) == shape_of.get(value):
            out[value] = out[name]
    return out


def labels(model) -> dict[str, tuple[tuple, tuple]]:
    """Every variable of the model's trace by name: (shape, dims), as the builder's PyMC
    model has them (a free variable's are those of its constrained value)."""
    out: dict[str, tuple[tuple, tuple]] = {}
    for predictor in [model.mean, *(p for p, _ in model.parts.values())]:
        _predictor(predictor, out)
    if model.collapsed is not None:
        _collapsed(model, out)
    for name in model.constants:
        out[name] = ((), ())
    if model.thresholds:
        out["thresholds"] = ((len(model.thresholds),), ())
        for name in model.thresholds:
            out[name] = ((), ())
    return out


def _predictor(pred, out: dict) -> None:
    """One linear predictor's variables: its coefficients, group effects, smooths and GPs."""
    from ..model.variables import (
        TermNames,
        cor_dim,
        gp_dim,
        level_dim,
        monotonic_dim,
        smooth_dim,
        term_dim,
    )

    d = pred.design
    if pred.intercept is not None:
        out[pred.intercept[0]] = ((), ())
    n_slopes = len(d.fixef_names) - int("Intercept" in d.fixef_names)
    if pred.slopes is not None:
        out[pred.slopes[0]] = ((n_slopes,), (d.var("b_coef"),))
        out[pred.b_name] = ((n_slopes,), (d.var("b_coef"),))
    if d.fixef_names:
        out[pred.fixef_name] = ((len(d.fixef_names),), (d.var("fixef_term"),))
    for group, (r, sd, cor, positions) in pred.groups.items():
        terms = d.groups[group]
        columns = len(d.group_columns(group))
        out[r] = ((terms[0].n_levels, columns), (level_dim(group), term_dim(d, group)))
        out[sd] = ((columns,), (term_dim(d, group),))
        pairs = sum(len(t.cor_parameters) for t in terms)
        if pairs:
            out[cor] = ((pairs,), (cor_dim(d, group),))
        for k, (term, i) in enumerate(zip(terms, positions, strict=True)):
            _term(pred.terms[i], TermNames(d, term, k), level_dim(group), out, pred.variables)
    if pred.nesting is not None:
        _nesting(pred, out)
    bases = pred.bases
    for name, simo, bsp, _, steps in bases.monotonic:
        term = next(t for t in d.monotonic if t.name == name)
        out[simo], out[bsp] = ((steps,), (monotonic_dim(d, term),)), ((), ())
    for smooth, term in zip(bases.smooths, d.smooths, strict=True):
        basis = (smooth.Z.shape[1],), (smooth_dim(d, term),)
        out[smooth.sds], out[smooth.z], out[smooth.s] = ((), ()), basis, basis
    for gp in bases.gps:
        basis = (gp.Z.shape[1],), (gp_dim(d, gp.term),)
        out[gp.sd], out[gp.lengthscale], out[gp.z], out[gp.f] = ((), ()), ((), ()), basis, basis


def _term(term, names, levels_dim: str, out: dict, variables: dict) -> None:
    """One term's free variables: SDs, correlations (or rr()'s loadings), standard normals and
    centred rows."""
    p = term.p
    if term.sd_raw is not None:
        out[term.sd_raw] = ((p,), (names.columns_dim,))
    _correlations(names, variables, out)
    if term.v is not None:
        out[term.z] = ((1, p), ())
        out[term.v] = ((term.levels - 1, p), ())
    elif term.latent == p:
        out[term.z] = ((term.levels, p), (levels_dim, names.columns_dim))
    else:
        out[term.z] = ((term.levels, term.latent), ())


def _nesting(pred, out: dict) -> None:
    """A nested pair's variables: the child levels' u, the parent's standard normals, both SDs
    and their reported effects and SDs (one column each)."""
    from ..model.variables import TermNames, level_dim, term_dim

    d, nest = pred.design, pred.nesting
    for k, term in enumerate(nest.terms):
        names = TermNames(d, term, 0)
        out[nest.sd_raw[k]] = ((1,), (names.columns_dim,))
        out[nest.r[k]] = ((term.n_levels, 1), (level_dim(term.group), term_dim(d, term.group)))
        out[nest.sd[k]] = ((1,), (term_dim(d, term.group),))
        out[(nest.u, nest.xi)[k]] = ((term.n_levels,), (level_dim(term.group),))


def _collapsed(model, out: dict) -> None:
    """The integrated-out factor's SDs, correlations (or loadings) and its reported sd_ and cor_."""
    from ..model.variables import TermNames, cor_dim, group_var, term_dim

    d = model.design
    group, terms, _ = model.collapsed
    columns = len(d.group_columns(group))
    out[group_var(d, "sd", group)] = ((columns,), (term_dim(d, group),))
    pairs = sum(len(t.cor_parameters) for t in d.groups[group])
    if pairs:
        out[group_var(d, "cor", group)] = ((pairs,), (cor_dim(d, group),))
    for k, (record, term) in enumerate(zip(terms, d.groups[group], strict=True)):
        names = TermNames(d, term, k)
        if record.sd_raw is not None:
            out[record.sd_raw] = ((record.p,), (names.columns_dim,))
        _correlations(names, model.variables, out)


def _correlations(names, variables: dict, out: dict) -> None:
    """A term's correlation variables, those of ``variables``: the vine's partial
    correlations, rr()'s loadings (vectors), cs()'s and ar1()'s rho (a number)."""
    for kind in ("cpc", "loadings_diag", "loadings"):
        if names(kind) in variables:
            out[names(kind)] = ((variables[names(kind)][2],), ())
    if names("rho") in variables:
        out[names("rho")] = ((), ())


def coords(source) -> dict[str, list]:
    """The PyMC model's coordinates (bayesmm.model.builder): the rows' (not in the collapsed
    model) and those of each linear predictor's design."""
    from ..model.variables import OBS_DIM
    from ..model.variables import coords as design_coords

    design = source.design
    out = {} if source.collapsed else {OBS_DIM: list(range(design.n_obs))}
    out.update(design_coords(design))
    for part in source.parts.values():
        out.update(design_coords(part))
    return out


# -- starting points ---------------------------------------------------------------------------


def support_points(model, source, free: list[tuple]) -> dict[str, np.ndarray]:
    """Each free variable's support point, PyMC's (its prior's mean, or a mode where PyMC
    takes one), on the unconstrained scale, by value name. ``free``: the template's free
    variables (name, value name, start, size, prior code, table, transform). Variables whose
    density the template writes with the predictor (centred rows, QR's theta, partially
    centred smooths) start where PyMC's support points put them (_written_start)."""
    out = {}
    for name, value, _, size, code, table, transform in free:
        if name == "thresholds" and model.thresholds:
            point = np.asarray(source.family._initial_thresholds(source.design), dtype=float)
        elif model.variables[name][1] is None:
            point = _written_start(model, name, size)
        else:
            point = _support(code, table, size)
        out[value] = _unconstrained(point, transform, table)
    return out


def _support(code: int, table: np.ndarray, size: int) -> np.ndarray:
    """A prior family's support point (PyMC's support_point) from its (4, size) table."""
    p1, p2 = table[0], table[1]
    if code in (0, 1, densities.LOGISTIC, densities.CAUCHY, densities.LAPLACE, densities.FLAT):
        return p1.copy() if code != densities.FLAT else np.zeros(size)
    if code in (2, 3, 4):  # the half families: their scale
        return p2.copy()
    if code == 5:
        return 1.0 / p2
    if code == 6:
        return p1 / (p1 + p2)
    if code == densities.GAMMA:
        return p1 / p2
    if code == densities.INVERSE_GAMMA:  # its mean where it has one, else its mode
        return np.where(p1 > 1, p2 / np.where(p1 > 1, p1 - 1, 1.0), p2 / (p1 + 1))
    if code == densities.UNIFORM:
        return (p1 + p2) / 2
    if code == densities.GUMBEL:
        return p1 + p2 * _EULER
    if code == densities.LOGNORMAL:
        return np.exp(p1 + p2**2 / 2)
    if code == densities.WEIBULL:
        from scipy.special import gamma

        return p2 * gamma(1 + 1 / p1)
    if code == densities.HALF_FLAT:
        return np.ones(size)
    if code == densities.DIRICHLET:
        return p1 / p1.sum()
    raise Unsupported(f"the support point of prior code {code}")


def _unconstrained(point: np.ndarray, transform: int, table: np.ndarray) -> np.ndarray:
    """PyMC's forward transform of a constrained value."""
    point = np.asarray(point, dtype=float)
    if transform == 1:
        return np.log(point)
    if transform == 2:
        return np.log(point) - np.log1p(-point)
    if transform == 3:
        a, b = table[0], table[1]
        return np.log(point - a) - np.log(b - point)
    if transform == densities.SIMPLEX:
        logs = np.log(point)
        return logs[:-1] - logs.sum() / logs.size
    if transform == densities.ORDERED:
        return np.concatenate([point[:1], np.log(np.diff(point))])
    return point


def _written_start(model, name: str, size: int) -> np.ndarray:
    """Where a variable whose density the template writes starts, as PyMC's support points
    have it: QR's theta at R* times the slopes' support point, a nested child's u at its
    levels' mean (the intercept and the slopes constant within its levels at their support
    points), everything else at zero."""
    mean = model.mean
    if mean.qr is not None and name == mean.slopes[0]:
        R_inverse, _, (code, table) = mean.qr
        return np.linalg.solve(R_inverse, _support(code, table, size))
    nest = mean.nesting
    if nest is None or name != nest.u:
        return np.zeros(size)
    start = np.zeros(size)
    if mean.intercept is not None:
        start += _variable_support(model, mean.intercept[0])[0]
    if nest.found:  # the slopes constant within the child's levels, at their support points
        slopes = mean.slopes[1] * _variable_support(model, mean.slopes[0])
        start += np.asarray(nest.values, dtype=float) @ slopes[nest.found]
    return start


def _variable_support(model, name: str) -> np.ndarray:
    dist, params, size = model.variables[name]
    code, table = densities.prior_table(dist, params or {}, size)
    return _support(code, table, size)
