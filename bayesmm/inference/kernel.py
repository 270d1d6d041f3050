"""The integrated-out Gaussian model's log-density written by hand, once for every model of
its kind, in C (kernel.c), built into an extension module when bayesmm is installed.

nutpie samples a PyMC model through numba code that PyTensor generates node by node, and
numba types and optimises every node's function anew for each model: sleepstudy's
``Reaction ~ Days + (Days | Subject)`` compiles in 25-30 s with empty caches, and even
``Reaction ~ Days`` in 8.5 s, while the sampling itself takes a quarter of a second. The
model whose group effects are integrated out (bayesmm.model.collapsed, with one grouping factor)
has a fixed shape whatever the data: priors on a few parameters, an unconstrained-to-
constrained map, the correlation's Cholesky factor from its canonical partial correlations,
and the Woodbury log-likelihood from per-level sufficient statistics. Written out here once,
with its gradient, it reads the sizes, priors and statistics of a particular model from two
arrays (the *program*), so one compiled copy serves every model of this kind, of any size.

kernel.c is compiled without fused multiply-adds (setup.py), so every machine computes the
same bits and a seed gives the same draws. Where the extension module was not built (no C
compiler at installation), these models take PyTensor's graph, and bayesmm says so once.

What it covers: the models bayesmm.model.builder.build_collapsed_model builds from sufficient
statistics (a Gaussian mean with identity link, group effects of one grouping factor), whose
terms are unstructured or diagonal, without decomp="QR", and whose priors are of the families
in ``DENSITIES``. :func:`program` checks the PyMC model against what it expects (every free
variable's name, size, family and transform) and returns None for anything else, which PyMC's
graph then serves as before (bayesmm.inference.native; ``BAYESMM_KERNEL=0`` sends every model there).
The tests compare the kernel with PyMC at random points: log-density, gradient and every
variable of the trace.

The log-density is PyMC's, constant terms included: the sum over free variables of the
prior's log-density at the constrained value plus the transform's log-Jacobian, plus the
integrated-out log-likelihood (bayesmm.model.collapsed's module docstring). Its gradient is written
out: with A_j = sigma^2 I + L^T G_j L (G_j = Z_j^T Z_j), w_j = L^T r_j and a_j = A_j^-1 w_j,

    d/dL     = sum_j [ -G_j L A_j^-1 + (r_j - G_j L a_j) a_j^T / sigma^2 ]
    d/dsigma = -sigma sum_j tr A_j^-1 - (n - J k) / sigma + (RSS - sum_j w_j^T a_j) / sigma^3
               - sum_j |a_j|^2 / sigma
    d/dtheta = -(D^T D delta + sum_j (Z_j^T D_j)^T L a_j) / sigma^2,

and back through the Cholesky factor's construction (reverse mode, by hand).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ..model.variables import fixef_var, group_var

__all__ = ["DENSITIES", "Program", "program", "why_not", "cfuncs", "enabled"]

# The prior families the kernel evaluates, by bayesmm.Prior name; the number is the code in
# the program. Each one's parameters with PyMC's defaults (None: required).
DENSITIES = {
    "Normal": (0, {"mu": 0.0, "sigma": 1.0}),
    "StudentT": (1, {"nu": None, "mu": 0.0, "sigma": 1.0}),
    "HalfNormal": (2, {"sigma": 1.0}),
    "HalfStudentT": (3, {"nu": None, "sigma": 1.0}),
    "HalfCauchy": (4, {"beta": None}),
    "Exponential": (5, {"lam": None}),
    "Beta": (6, {"alpha": None, "beta": None}),
}
# The transform each family's variable has in PyMC: 0 none, 1 log, 2 log-odds.
_TRANSFORM_OF = {0: 0, 1: 0, 2: 1, 3: 1, 4: 1, 5: 1, 6: 2}
_TRANSFORM_NAMES = {None: 0, "LogTransform": 1, "LogOddsTransform": 2}

# The integer program's header: sizes and indices, then the offsets of its sections (in the
# integer array) and of the float sections (in the float array). kernel.c gets them as
# #defines from kernel_fields.h, written from this tuple (tests/test_kernel.py checks it).
_FIELDS = (
    "N_DIM P Q J T NF NC N_EXTRA SIGMA O_FAMILY O_TRANSFORM O_THETA O_SD O_TSTART O_TSIZE O_TKIND "
    "O_TCPC O_TCOR O_FIXEF O_GATHER F_P1 F_P2 F_P3 F_CONST F_MULT F_CENTER F_INTERCEPT F_N F_THETA_LS "
    "F_RSS F_DTD F_ZTZ F_ZTE F_ZTD"
).split()
(N_DIM, P, Q, J, T, NF, NC, N_EXTRA, SIGMA, O_FAMILY, O_TRANSFORM, O_THETA, O_SD, O_TSTART,
 O_TSIZE, O_TKIND, O_TCPC, O_TCOR, O_FIXEF, O_GATHER, F_P1, F_P2, F_P3, F_CONST, F_MULT,
 F_CENTER, F_INTERCEPT, F_N, F_THETA_LS, F_RSS, F_DTD, F_ZTZ, F_ZTE, F_ZTD) = range(len(_FIELDS))  # fmt: skip
HEADER = len(_FIELDS)


def enabled() -> bool:
    """Whether models the kernel covers use it: ``BAYESMM_KERNEL=0`` turns it off (PyTensor's
    graph then, e.g. to measure it)."""
    return os.environ.get("BAYESMM_KERNEL", "1") != "0"


# -- the program: what a particular model gives the kernel ------------------------------


@dataclass
class Program:
    """A model's program (``ints``, ``floats``) and the layout of its draws as nutpie
    describes it (bayesmm.inference.native's layout dict)."""

    ints: np.ndarray
    floats: np.ndarray
    layout: dict


class _Unsupported(Exception):
    """The model is not one the kernel covers (the message says why)."""


def program(pymc_model, source) -> Program | None:
    """The kernel's program for ``pymc_model``, the sampled model of bayesmm's ``source``
    (the shared-data copy that bayesmm.inference.sampling.data_model makes), or None when the kernel
    does not cover the model."""
    try:
        return _program(pymc_model, source)
    except _Unsupported:
        return None


def why_not(pymc_model, source) -> str | None:
    """Why the kernel does not cover the model (None: it does)."""
    try:
        _program(pymc_model, source)
    except _Unsupported as reason:
        return str(reason)
    return None


def _density(dist: str, params: dict, size: int) -> tuple[int, np.ndarray]:
    """The family's code and its (4, size) parameters: p1, p2, p3 and the constant term."""
    from scipy.special import betaln, gammaln

    if dist not in DENSITIES:
        raise _Unsupported(f"a {dist} prior")
    code, defaults = DENSITIES[dist]
    if dist == "Exponential" and "scale" in params and "lam" not in params:
        params = {"lam": 1.0 / np.asarray(params["scale"], dtype=float)}
    if set(params) - set(defaults):
        raise _Unsupported(f"{dist} with parameters {sorted(params)}")
    full = {}
    for name, default in defaults.items():
        if params.get(name, default) is None:
            raise _Unsupported(f"{dist} without {name}")
        full[name] = np.broadcast_to(np.asarray(params.get(name, default), dtype=float), (size,))
    out = np.zeros((4, size))

    def t_constant(nu):  # Student-t's normalising constant, less log sigma
        return gammaln((nu + 1) / 2) - gammaln(nu / 2) - 0.5 * np.log(nu * np.pi)

    if code == 0:
        out[0], out[1] = full["mu"], full["sigma"]
        out[3] = -np.log(full["sigma"]) - 0.5 * np.log(2 * np.pi)
    elif code == 1:
        out[0], out[1], out[2] = full["mu"], full["sigma"], full["nu"]
        out[3] = t_constant(full["nu"]) - np.log(full["sigma"])
    elif code == 2:
        out[1] = full["sigma"]
        out[3] = 0.5 * np.log(2 / np.pi) - np.log(full["sigma"])
    elif code == 3:
        out[1], out[2] = full["sigma"], full["nu"]
        out[3] = np.log(2.0) + t_constant(full["nu"]) - np.log(full["sigma"])
    elif code == 4:
        out[1] = full["beta"]
        out[3] = np.log(2.0) - np.log(np.pi) - np.log(full["beta"])
    elif code == 5:
        out[1] = full["lam"]
        out[3] = np.log(full["lam"])
    else:
        out[0], out[1] = full["alpha"], full["beta"]
        out[3] = -betaln(full["alpha"], full["beta"])
    return code, out


def _scaled(prior, scale, name: str):
    """What bayesmm.model.builder._coefficient samples for a coefficient with this prior (no shear):
    the variable's name, its prior's parameters and the multiplier from it to the coefficient."""
    from ..model.builder import coefficient_form

    scale = np.asarray(scale, dtype=float)
    form = coefficient_form(name, prior, None, scale)
    if form is None:
        return name, dict(prior.params), np.ones_like(scale)
    return form[0], form[1], 1.0 / scale


def _expected(source):
    """The free variables the kernel expects in the sampled model of ``source``, by name:
    (dist, params, size); and the model's parts: theta's and the SDs' sources as (name,
    element), theta's multipliers, the terms (kind, start, size, cpc name, SD variable's
    name), sigma's name and the grouping factor."""
    from ..model.builder import slope_scales
    from ..model.collapsed import collapsed_group
    from ..model.fixed import centred_slopes
    from ..model.variables import TermNames
    from ..spec.covariance import Diagonal, Unstructured
    from ..spec.priors import stack_priors

    design = source.design
    if not source.collapsed or len(design.groups) != 1 or source.decomp == "QR" or source.parts:
        raise _Unsupported("not integrated out from sufficient statistics (one grouping factor, no QR)")
    by_name = {e.parameter: e for e in source.prior_entries}
    variables, theta, mults = {}, [], []
    if design.has_intercept:
        prior = by_name[design.qualified("Intercept")].prior
        variables[design.var("Intercept_c")] = (prior.dist, dict(prior.params), 1)
        theta.append((design.var("Intercept_c"), 0))
        mults.append(1.0)
    slope_idx, _ = centred_slopes(design)
    if slope_idx:
        entries = [by_name[design.qualified(design.fixef_names[j])] for j in slope_idx]
        scales = slope_scales(design, slope_idx)
        stacked = stack_priors([e.prior for e in entries])
        if stacked is None:
            for e, s in zip(entries, scales, strict=True):
                coefficient = f"{design.var('b')}[{e.parameter}]"
                name, params, mult = _scaled(e.prior, s, coefficient)
                variables[name] = (e.prior.dist, params, 1)
                theta.append((name, 0))
                mults.append(float(mult))
        else:
            name, params, mult = _scaled(stacked, scales, design.var("b"))
            variables[name] = (stacked.dist, params, len(slope_idx))
            theta += [(name, j) for j in range(len(slope_idx))]
            mults += list(np.broadcast_to(mult, len(slope_idx)))
    group = collapsed_group(design)
    sds, terms = [], []
    for k, term in enumerate(design.groups[group]):
        cov, var = term.covariance, TermNames(design, term, k)
        if type(cov) not in (Diagonal, Unstructured):
            raise _Unsupported(f"a {cov.name} covariance")
        entries = [by_name[n] for n in term.sd_names]
        stacked = stack_priors([e.prior for e in entries])
        if stacked is not None:
            variables[var("sd_raw")] = (stacked.dist, dict(stacked.params), term.n_terms)
            sds += [(var("sd_raw"), i) for i in range(term.n_terms)]
        else:
            for e in entries:
                variables[f"{var('sd_raw')}[{e.parameter}]"] = (e.prior.dist, dict(e.prior.params), 1)
                sds.append((f"{var('sd_raw')}[{e.parameter}]", 0))
        cpc = None
        if isinstance(cov, Unstructured):
            lkj = by_name[cov.cor_parameter].prior
            if lkj.dist != "LKJ" or set(lkj.params) != {"eta"}:
                raise _Unsupported(f"a {lkj.dist} prior on {cov.cor_parameter}")
            b = cov.vine_beta(float(lkj.params["eta"]))
            cpc = var("cpc")
            variables[cpc] = ("Beta", {"alpha": b, "beta": b}, len(b))
        terms.append((0 if cpc is None else 1, term.covariance.start, term.n_terms, cpc, var("sd_raw")))
    (sigma_name,) = source.family.constant_params({})
    prior = by_name[sigma_name].prior
    variables[sigma_name] = (prior.dist, dict(prior.params), 1)
    return variables, theta, sds, np.array(mults, dtype=float), terms, sigma_name, group


def _shape(variable, size: int) -> list[int]:
    """A variable's shape: its static one, or (size,) for a vector without one; an error
    when that has not ``size`` elements."""
    shape = variable.type.shape
    if any(s is None for s in shape):
        if len(shape) != 1:
            raise _Unsupported(f"{variable.name} has no static shape")
        return [size]
    if int(np.prod(shape, dtype=int)) != size:
        raise _Unsupported(f"the trace's {variable.name}")
    return [int(s) for s in shape]


def _program(pymc_model, source) -> Program:
    from ..model.collapsed import CollapsedStatistics
    from ..model.fixed import fixed_center, sampled_fixed_matrix

    design = source.design
    if source.family.name != "gaussian" or source.family.link.name != "identity":
        raise _Unsupported("not a Gaussian model with identity link")
    variables, theta_src, sd_src, mults, terms, sigma_name, group = _expected(source)
    free = list(pymc_model.free_RVs)
    if sorted(v.name for v in free) != sorted(variables):
        raise _Unsupported("the sampled model's free variables are not the expected ones")
    # Elements of the flat vector, in PyMC's order of free variables (nutpie's layout).
    start, codes, params, names, slices, shapes = {}, [], [], [], [], []
    offset = 0
    for rv in free:
        dist, prior_params, size = variables[rv.name]
        value = pymc_model.rvs_to_values[rv]
        shape = _shape(value, size)
        code, table = _density(dist, prior_params, size)
        transform = pymc_model.rvs_to_transforms.get(rv)
        kind = None if transform is None else type(transform).__name__
        if _TRANSFORM_NAMES.get(kind) != _TRANSFORM_OF[code]:
            raise _Unsupported(f"{rv.name} has the transform {transform}")
        start[rv.name] = offset
        codes.append(np.full(size, code))
        params.append(table)
        names.append(value.name)
        slices.append([offset, offset + size])
        shapes.append(shape)
        offset += size
    n_dim = offset
    family = np.concatenate(codes)
    transforms = np.array([_TRANSFORM_OF[c] for c in family], dtype=np.int64)
    table = np.concatenate(params, axis=1)

    theta = np.array([start[name] + i for name, i in theta_src], dtype=np.int64)
    sd = np.array([start[name] + i for name, i in sd_src], dtype=np.int64)
    p, q = len(theta), len(sd)
    kinds = np.array([t[0] for t in terms], dtype=np.int64)
    tstart = np.array([t[1] for t in terms], dtype=np.int64)
    tsize = np.array([t[2] for t in terms], dtype=np.int64)
    tcpc = np.array([-1 if t[3] is None else start[t[3]] for t in terms], dtype=np.int64)
    pairs = [s * (s - 1) // 2 if kind else 0 for kind, _, s, *_ in terms]
    tcor = np.cumsum([0, *pairs[:-1]]).astype(np.int64)
    nc = int(sum(pairs))

    slope_idx = [j for j, n in enumerate(design.fixef_names) if n != "Intercept"]
    first = 1 if design.has_intercept else 0
    fixef = np.array([0 if n == "Intercept" else first + slope_idx.index(j)
                      for j, n in enumerate(design.fixef_names)], dtype=np.int64)  # fmt: skip
    center = np.zeros(p)
    center[first:] = fixed_center(design)[slope_idx]

    # The trace: the free variables as sampled, then what nutpie expands them to, each an
    # index into the kernel's values [constrained free | theta | fixef | sds | cors].
    e_theta, e_fixef = n_dim, n_dim + p
    e_sd = e_fixef + len(fixef)
    e_cor = e_sd + q
    joined = set(names)
    recipes = {rv.name: np.arange(start[rv.name], start[rv.name] + variables[rv.name][2]) for rv in free}
    recipes[fixef_var(design)] = e_fixef + np.arange(len(fixef))
    recipes[design.var("b")] = e_theta + np.arange(first, p)
    recipes[group_var(design, "sd", group)] = e_sd + np.arange(q)
    recipes[group_var(design, "cor", group)] = e_cor + np.arange(nc)
    gather, offset = [], n_dim
    for variable in pymc_model.unobserved_value_vars:
        if variable.name in joined:
            continue
        if variable.name not in recipes:
            raise _Unsupported(f"the trace's {variable.name}")
        size = len(recipes[variable.name])
        shapes.append(_shape(variable, size))
        gather.append(recipes[variable.name])
        names.append(variable.name)
        slices.append([offset, offset + size])
        offset += size
    gather = np.concatenate(gather).astype(np.int64) if gather else np.zeros(0, dtype=np.int64)

    stats = CollapsedStatistics.of(design, sampled_fixed_matrix(design))
    Jn = stats.ZtZ.shape[0]
    float_sections = [table[0], table[1], table[2], table[3], mults, center,
                      [1.0 if design.has_intercept else 0.0], [float(stats.n)], stats.theta_ls,
                      [stats.rss_ls], stats.DtD.ravel(), stats.ZtZ.ravel(), stats.Zte.ravel(),
                      stats.ZtD.ravel()]  # fmt: skip
    int_sections = [family, transforms, theta, sd, tstart, tsize, kinds, tcpc, tcor, fixef, gather]
    ints = np.zeros(HEADER, dtype=np.int64)
    ints[[N_DIM, P, Q, J, T, NF, NC, N_EXTRA, SIGMA]] = [
        n_dim, p, q, Jn, len(terms), len(fixef), nc, len(gather), start[sigma_name]
    ]  # fmt: skip
    position = HEADER
    for field, section in zip(range(O_FAMILY, O_GATHER + 1), int_sections, strict=True):
        ints[field] = position
        position += len(section)
    position = 0
    for field, section in zip(range(F_P1, F_ZTD + 1), float_sections, strict=True):
        ints[field] = position
        position += len(section)
    ints = np.concatenate([ints, *[np.asarray(s, dtype=np.int64) for s in int_sections]])
    floats = np.concatenate([np.asarray(s, dtype=float).ravel() for s in float_sections])
    reparameterized = [
        pymc_model.rvs_to_values[rv].name for rv in free if pymc_model.rvs_to_transforms.get(rv) is not None
    ]
    layout = {
        "n_dim": n_dim, "n_expanded": offset, "n_free": len(free), "names": names, "slices": slices,
        "shapes": shapes, "reparameterized": reparameterized,
    }  # fmt: skip
    return Program(ints, floats, layout)


# -- the kernel ------------------------------------------------------------------------------


def cfuncs():
    """The kernel's two C functions (log-density with gradient, expansion), each with the
    ``address`` nutpie calls, from the extension module built when bayesmm was installed
    (kernel.c through kernel_module.c); None where that module is not installed (no C
    compiler at installation), and models then take PyTensor's graph."""
    from .engine import extension_functions

    return extension_functions("addresses")
