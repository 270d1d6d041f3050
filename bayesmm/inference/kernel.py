"""The integrated-out Gaussian model's log-density written by hand, once for every model of
its kind: in C, compiled by the system's C compiler on first use (0.3 s), or in numba where
no compiler works (5-6 s, once per machine).

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

kernel.c and the numba functions below are the same operations in the same order; compiled
without fused multiply-adds, they give the same bits, so a seed gives the same draws with
either. C is taken where a compiler works (``BAYESMM_KERNEL=numba`` forces numba).

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

import functools
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np
from nutpie.compile_pymc import address_as_void_pointer

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
# #defines (_c_source).
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
    graph then, e.g. to measure it), ``numba`` takes the numba functions even where a C
    compiler is found."""
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


@numba.njit(cache=True, error_model="numpy")
def _constrain(ints, floats, x, values, dvalues, dlogp):
    """The constrained values of the flat vector ``x`` into ``values``, their derivatives in
    ``x`` into ``dvalues`` and the priors' derivatives in the constrained values into
    ``dlogp``; returns the priors' log-densities plus the transforms' log-Jacobians (whose
    derivatives in ``x`` _logp adds)."""
    n = ints[N_DIM]
    total = 0.0
    for i in range(n):
        t = ints[ints[O_TRANSFORM] + i]
        xi = x[i]
        if t == 0:
            v, dv = xi, 1.0
        elif t == 1:
            v = math.exp(xi)
            dv = v
            total += xi
        else:
            v = 1.0 / (1.0 + math.exp(-xi))
            dv = v * (1.0 - v)
            total += math.log(v) + math.log1p(-v)
        values[i], dvalues[i] = v, dv
        code = ints[ints[O_FAMILY] + i]
        p1, p2, p3 = floats[ints[F_P1] + i], floats[ints[F_P2] + i], floats[ints[F_P3] + i]
        total += floats[ints[F_CONST] + i]
        if code == 0:
            z = (v - p1) / p2
            total -= 0.5 * z * z
            dlogp[i] = -z / p2
        elif code == 1 or code == 3:
            d = v - p1 if code == 1 else v
            total -= 0.5 * (p3 + 1.0) * math.log1p(d * d / (p3 * p2 * p2))
            dlogp[i] = -(p3 + 1.0) * d / (p3 * p2 * p2 + d * d)
        elif code == 2:
            total -= 0.5 * (v / p2) ** 2
            dlogp[i] = -v / (p2 * p2)
        elif code == 4:
            total -= math.log1p((v / p2) ** 2)
            dlogp[i] = -2.0 * v / (p2 * p2 + v * v)
        elif code == 5:
            total -= p2 * v
            dlogp[i] = -p2
        else:
            total += (p1 - 1.0) * math.log(v) + (p2 - 1.0) * math.log1p(-v)
            dlogp[i] = (p1 - 1.0) / v - (p2 - 1.0) / (1.0 - v)
    return total


@numba.njit(cache=True, error_model="numpy")
def _factor(ints, values, sds, L, C, left, z):
    """The SDs, the (q, q) covariance factor L and each unstructured term's correlation
    Cholesky factor, in the block C of its columns (the vine's ``left`` before each pair and
    its partial correlations ``z`` kept for the gradient)."""
    q = ints[Q]
    for c in range(q):
        sds[c] = values[ints[ints[O_SD] + c]]
    L[:, :] = 0.0
    C[:, :] = 0.0
    k = 0
    for t in range(ints[T]):
        s, size = ints[ints[O_TSTART] + t], ints[ints[O_TSIZE] + t]
        if ints[ints[O_TKIND] + t] == 0:
            for c in range(s, s + size):
                C[c, c] = 1.0
        else:
            cpc = ints[ints[O_TCPC] + t]
            rest = np.ones(size)
            C[s, s] = 1.0
            m = 0
            for i in range(size - 1):
                for j in range(i + 1, size):
                    z[k] = 2.0 * values[cpc + m] - 1.0
                    left[k] = rest[j]
                    C[s + j, s + i] = z[k] * math.sqrt(rest[j])
                    rest[j] -= C[s + j, s + i] ** 2
                    if i == j - 1:
                        C[s + j, s + j] = math.sqrt(rest[j])
                    k += 1
                    m += 1
        for a in range(s, s + size):
            for b in range(s, a + 1):
                L[a, b] = sds[a] * C[a, b]


@numba.njit(cache=True, error_model="numpy")
def _theta(ints, floats, values, theta):
    for j in range(ints[P]):
        theta[j] = values[ints[ints[O_THETA] + j]] * floats[ints[F_MULT] + j]


@numba.njit(cache=True, error_model="numpy")
def _woodbury(ints, floats, theta, L, sigma, g_theta, g_L):
    """The integrated-out log-likelihood (bayesmm.model.collapsed) and its gradient in theta, L
    (added into ``g_theta`` and ``g_L``) and sigma (returned)."""
    p, q, nJ = ints[P], ints[Q], ints[J]
    n = floats[ints[F_N]]
    delta = np.empty(p)
    for j in range(p):
        delta[j] = theta[j] - floats[ints[F_THETA_LS] + j]
    rss = floats[ints[F_RSS]]
    DtD = floats[ints[F_DTD] : ints[F_DTD] + p * p].reshape((p, p))
    for a in range(p):
        acc = 0.0
        for b in range(p):
            acc += DtD[a, b] * delta[b]
        rss += delta[a] * acc
        g_theta[a] -= acc
    ZtZ = floats[ints[F_ZTZ] : ints[F_ZTZ] + nJ * q * q].reshape((nJ, q, q))
    Zte = floats[ints[F_ZTE] : ints[F_ZTE] + nJ * q].reshape((nJ, q))
    ZtD = floats[ints[F_ZTD] : ints[F_ZTD] + nJ * q * p].reshape((nJ, q, p))
    s2 = sigma * sigma
    r, GL, A, w, a, La, Ainv = np.empty(q), np.empty((q, q)), np.empty((q, q)), np.empty(q), np.empty(q), \
        np.empty(q), np.empty((q, q))  # fmt: skip
    logdet = quad = trace = a2 = 0.0
    done = 0
    if q == 1:  # one column per level (random intercepts): the same, in scalars
        sd1, g_l = L[0, 0], 0.0
        for lev in range(nJ):
            r1 = Zte[lev, 0]
            for b in range(p):
                r1 -= ZtD[lev, 0, b] * delta[b]
            gl = ZtZ[lev, 0, 0] * sd1
            A1 = s2 + sd1 * gl
            inverse = 1.0 / A1
            a1 = sd1 * r1 * inverse
            logdet += math.log(A1)
            quad += sd1 * r1 * a1
            a2 += a1 * a1
            trace += inverse
            g_l += -gl * inverse + (r1 - gl * a1) * a1 / s2
            la = sd1 * a1
            for b in range(p):
                g_theta[b] -= ZtD[lev, 0, b] * la
        g_L[0, 0] += g_l
        done = nJ
    for lev in range(done, nJ):
        for c in range(q):
            acc = Zte[lev, c]
            for b in range(p):
                acc -= ZtD[lev, c, b] * delta[b]
            r[c] = acc
        for c in range(q):  # GL = G L
            for m in range(q):
                acc = 0.0
                for b in range(q):
                    acc += ZtZ[lev, c, b] * L[b, m]
                GL[c, m] = acc
        for i in range(q):  # A = sigma^2 I + L^T G L, then its Cholesky factor in place
            for m in range(i + 1):
                acc = s2 if i == m else 0.0
                for b in range(q):
                    acc += L[b, i] * GL[b, m]
                A[i, m] = acc
        for i in range(q):
            for m in range(i + 1):
                acc = A[i, m]
                for b in range(m):
                    acc -= A[i, b] * A[m, b]
                if i == m:
                    A[i, i] = math.sqrt(acc)
                    logdet += 2.0 * math.log(A[i, i])
                else:
                    A[i, m] = acc / A[m, m]
        for i in range(q):  # w = L^T r
            acc = 0.0
            for b in range(q):
                acc += L[b, i] * r[b]
            w[i] = acc
        _solve(A, w, a, q)
        for i in range(q):
            quad += w[i] * a[i]
            a2 += a[i] * a[i]
        for col in range(q):  # A^-1, column by column
            for i in range(q):
                La[i] = 1.0 if i == col else 0.0
            _solve(A, La, w, q)
            for i in range(q):
                Ainv[i, col] = w[i]
            trace += Ainv[col, col]
        for c in range(q):  # dL += -G L A^-1 + (r - G L a) a^T / sigma^2
            ra = r[c]
            for m in range(q):
                ra -= GL[c, m] * a[m]
            for m in range(q):
                acc = 0.0
                for b in range(q):
                    acc += GL[c, b] * Ainv[b, m]
                g_L[c, m] += -acc + ra * a[m] / s2
        for c in range(q):  # L a
            acc = 0.0
            for m in range(q):
                acc += L[c, m] * a[m]
            La[c] = acc
        for b in range(p):
            acc = 0.0
            for c in range(q):
                acc += ZtD[lev, c, b] * La[c]
            g_theta[b] -= acc
    for b in range(p):
        g_theta[b] /= s2
    k = q
    value = -0.5 * (n * math.log(2.0 * math.pi) + logdet + (n - nJ * k) * math.log(s2) + (rss - quad) / s2)
    g_sigma = -sigma * trace - (n - nJ * k) / sigma + (rss - quad) / (s2 * sigma) - a2 / sigma
    return value, g_sigma


@numba.njit(cache=True, error_model="numpy")
def _solve(C, b, out, q):
    """out = (C C^T)^-1 b for the lower Cholesky factor C."""
    for i in range(q):
        acc = b[i]
        for m in range(i):
            acc -= C[i, m] * out[m]
        out[i] = acc / C[i, i]
    for i in range(q - 1, -1, -1):
        acc = out[i]
        for m in range(i + 1, q):
            acc -= C[m, i] * out[m]
        out[i] = acc / C[i, i]


@numba.njit(cache=True, error_model="numpy")
def _back_through_factor(ints, sds, C, left, z, g_L, g_values):
    """The gradient in L carried back to the SDs and the partial correlations' values."""
    k = 0
    for t in range(ints[T]):
        s, size = ints[ints[O_TSTART] + t], ints[ints[O_TSIZE] + t]
        if ints[ints[O_TKIND] + t] == 0:
            for c in range(s, s + size):
                g_values[ints[ints[O_SD] + c]] += g_L[c, c]
            continue
        gC = np.zeros((size, size))
        for a in range(size):
            acc = 0.0
            for b in range(a + 1):
                acc += g_L[s + a, s + b] * C[s + a, s + b]
                gC[a, b] = g_L[s + a, s + b] * sds[s + a]
            g_values[ints[ints[O_SD] + s + a]] += acc
        n_pairs = size * (size - 1) // 2
        g_left = np.zeros(size)
        cpc = ints[ints[O_TCPC] + t]
        m = n_pairs - 1
        for i in range(size - 2, -1, -1):
            for j in range(size - 1, i, -1):
                kk = k + m
                if i == j - 1:
                    g_left[j] += gC[j, j] * 0.5 / C[s + j, s + j]
                gC[j, i] += g_left[j] * (-2.0 * C[s + j, s + i])
                root = math.sqrt(left[kk])
                g_values[cpc + m] += 2.0 * gC[j, i] * root
                if root > 0.0:
                    g_left[j] += gC[j, i] * z[kk] * 0.5 / root
                m -= 1
        k += n_pairs


@numba.njit(cache=True, error_model="numpy")
def _logp(ints, floats, x, grad):
    """The log-density at the flat vector ``x``, its gradient into ``grad``."""
    n, p, q = ints[N_DIM], ints[P], ints[Q]
    values, dvalues, g_values = np.empty(n), np.empty(n), np.empty(n)
    total = _constrain(ints, floats, x, values, dvalues, g_values)
    theta, g_theta = np.empty(p), np.zeros(p)
    _theta(ints, floats, values, theta)
    sds, L, C, g_L = np.empty(q), np.empty((q, q)), np.empty((q, q)), np.zeros((q, q))
    pairs = max(ints[NC], 1)
    left, z = np.empty(pairs), np.empty(pairs)
    _factor(ints, values, sds, L, C, left, z)
    value, g_sigma = _woodbury(ints, floats, theta, L, values[ints[SIGMA]], g_theta, g_L)
    for j in range(p):
        g_values[ints[ints[O_THETA] + j]] += g_theta[j] * floats[ints[F_MULT] + j]
    g_values[ints[SIGMA]] += g_sigma
    _back_through_factor(ints, sds, C, left, z, g_L, g_values)
    for i in range(n):
        t = ints[ints[O_TRANSFORM] + i]
        grad[i] = g_values[i] * dvalues[i] + (0.0 if t == 0 else (1.0 if t == 1 else 1.0 - 2.0 * values[i]))
    return total + value


@numba.njit(cache=True, error_model="numpy")
def _expand(ints, floats, x, out):
    """The trace's values at ``x``: ``x`` itself, then the gathered constrained values,
    theta, fixed effects, SDs and correlations."""
    n, p, q, nf, nc = ints[N_DIM], ints[P], ints[Q], ints[NF], ints[NC]
    values, scratch = np.empty(n + p + nf + q + nc), np.empty(n)
    _constrain(ints, floats, x, values, scratch, np.empty(n))
    theta = values[n : n + p]
    _theta(ints, floats, values, theta)
    intercept = floats[ints[F_INTERCEPT]] > 0.0
    shift = 0.0
    for j in range(p):
        shift += floats[ints[F_CENTER] + j] * theta[j]
    for i in range(nf):
        src = ints[ints[O_FIXEF] + i]
        values[n + p + i] = theta[src] - (shift if intercept and src == 0 else 0.0)
    sds = values[n + p + nf : n + p + nf + q]
    L, C = np.empty((q, q)), np.empty((q, q))
    pairs = max(nc, 1)
    _factor(ints, values, sds, L, C, np.empty(pairs), np.empty(pairs))
    for t in range(ints[T]):
        if ints[ints[O_TKIND] + t] == 0:
            continue
        s, size, k = ints[ints[O_TSTART] + t], ints[ints[O_TSIZE] + t], ints[ints[O_TCOR] + t]
        for a in range(size):
            for b in range(a):
                acc = 0.0
                for m in range(b + 1):
                    acc += C[s + a, s + m] * C[s + b, s + m]
                values[n + p + nf + q + k] = acc
                k += 1
    for i in range(n):
        out[i] = x[i]
    for i in range(ints[N_EXTRA]):
        out[n + i] = values[ints[ints[O_GATHER] + i]]


def _logp_c(dim, x_, out_, logp_, user_data_):
    user = numba.carray(user_data_, (4,), np.uint64)
    ints = numba.carray(address_as_void_pointer(user[0]), (user[1],), np.int64)
    floats = numba.carray(address_as_void_pointer(user[2]), (user[3],), np.float64)
    if dim != ints[N_DIM]:
        return -1
    x = numba.carray(x_, (dim,))
    out = numba.carray(out_, (dim,))
    value = _logp(ints, floats, x, out)
    numba.carray(logp_, ())[()] = value
    for i in range(dim):
        if not math.isfinite(out[i]):
            return 3
    if not math.isfinite(value):
        return 4
    return 0


def _expand_c(dim, expanded, x_, out_, user_data_):
    user = numba.carray(user_data_, (4,), np.uint64)
    ints = numba.carray(address_as_void_pointer(user[0]), (user[1],), np.int64)
    floats = numba.carray(address_as_void_pointer(user[2]), (user[3],), np.float64)
    if dim != ints[N_DIM] or expanded != dim + ints[N_EXTRA]:
        return -1
    _expand(ints, floats, numba.carray(x_, (dim,)), numba.carray(out_, (expanded,)))
    return 0


def cfuncs():
    """The kernel's two C callbacks (log-density with gradient, expansion), each with the
    ``address`` nutpie calls, and where they came from: ``"C"`` (kernel.c, compiled by the
    system's C compiler on first use, ``"C (compiled)"`` in the process that compiled it) or
    ``"numba"`` where no compiler works (``"numba (compiled)"`` likewise)."""
    if os.environ.get("BAYESMM_KERNEL") != "numba":
        library = _c_library()
        if library is not None:
            return library
    return _numba_cfuncs()


@functools.cache
def _numba_cfuncs():
    """The numba functions as C callbacks, always run as numba's disk cache has them: code
    compiled in a process and the same code loaded from the cache can differ in the last bits
    of a result (bayesmm.inference.native._compiled_in_child), so a first compile is loaded back."""
    types = numba.types
    int64, double, size, data = types.int64, types.CPointer(types.double), types.uint64, types.voidptr
    signatures = ((_logp_c, int64(size, double, double, double, data)),
                  (_expand_c, int64(size, size, double, double, data)))  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", numba.NumbaWarning)
        compiled = [numba.cfunc(sig, cache=True, error_model="numpy")(f) for f, sig in signatures]
        fresh = any(c._cache_hits == 0 for c in compiled)
        if fresh:
            compiled = [numba.cfunc(sig, cache=True, error_model="numpy")(f) for f, sig in signatures]
    return compiled[0], compiled[1], "numba (compiled)" if fresh else "numba"


@dataclass(frozen=True)
class _CFunction:
    """A function of the compiled kernel.c: its address, and the library that holds it."""

    address: int
    library: object


# Strict IEEE arithmetic (no fused multiply-adds), so that every machine and compiler
# version computes what numba's functions compute, to the rounding of each operation.
C_FLAGS = ("-O2", "-fPIC", "-shared", "-std=gnu99", "-ffp-contract=off", "-fno-fast-math")


def _c_source() -> str:
    defines = "".join(f"#define {name} {i}\n" for i, name in enumerate(_FIELDS))
    return defines + f"#define HEADER {HEADER}\n" + Path(__file__).with_name("kernel.c").read_text()


def _compiler() -> str | None:
    import shutil
    import sysconfig

    for candidate in (os.environ.get("CC"), sysconfig.get_config_var("CC"), "cc", "gcc"):
        if candidate:
            found = shutil.which(candidate.split()[0])
            if found:
                return found
    return None


@functools.cache
def _c_library():
    """kernel.c's two functions, compiled into bayesmm's cache folder under the hash of the
    source, compiler and flags (once per machine: about half a second), or None when no
    compiler works here."""
    import ctypes
    import hashlib
    import platform
    import subprocess
    import tempfile

    from .cache import cache_dir

    compiler = _compiler()
    if compiler is None:
        return None
    source = _c_source()
    key = hashlib.sha1("\n".join([source, compiler, *C_FLAGS, platform.machine()]).encode()).hexdigest()[:20]
    folder = cache_dir()
    path = folder / f"kernel_{key}.so"
    label = "C"
    try:
        if not path.exists():
            temporary = folder / f"kernel_{key}.{os.getpid()}.tmp"
            with tempfile.TemporaryDirectory(prefix="bayesmm_kernel_") as scratch:
                c_file = Path(scratch) / "kernel.c"
                c_file.write_text(source)
                done = subprocess.run([compiler, *C_FLAGS, "-o", str(temporary), str(c_file), "-lm"],
                                      capture_output=True, text=True, check=False)  # fmt: skip
            if done.returncode != 0:
                temporary.unlink(missing_ok=True)
                return None
            os.replace(temporary, path)  # whole or not at all
            label = "C (compiled)"
        library = ctypes.CDLL(str(path))
        logp, expand = library.bayesmm_logp, library.bayesmm_expand
    except (OSError, AttributeError):
        return None
    logp_address, expand_address = (ctypes.cast(f, ctypes.c_void_p).value for f in (logp, expand))
    return _CFunction(logp_address, library), _CFunction(expand_address, library), label
