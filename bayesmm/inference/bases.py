"""The basis-function terms of a linear predictor on the template's tape
(bayesmm.inference.template): brms's monotonic effects mo(x), smooths s(x) and Hilbert-space
Gaussian processes gp(x), as bayesmm.model.builder._monotonic_part, _smooth_part and
_gp_part write them.

mo(x) adds b D sum(zeta[1..x]) at level x of 0..D, zeta a simplex (Dirichlet prior).

A smooth adds Z s with s ~ Normal(0, sds^2), drawn partially non-centred with each
coefficient's weight w (bayesmm.model.parameterization.smooth_centring): r ~ Normal(0, sds^w),
s = sds^(1 - w) r. A GP adds phi (sqrt(S(w)) z), z standard normal, S the kernel's spectral
density at the basis's frequencies (bayesmm.design.gp.spectral_density, evaluated here on
the tape through the same function).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .densities import LOG_2PI
from .tape import Tape, Var


@dataclasses.dataclass
class _Smooth:
    sds: str
    z: str
    s: str
    Z: np.ndarray
    weights: np.ndarray


@dataclasses.dataclass
class _GP:
    sd: str
    lengthscale: str
    z: str
    f: str
    Z: np.ndarray
    term: object


class Bases:
    """A linear predictor's smooths and GPs: their free variables, added to ``variables``
    (name -> prior family, its parameters, size; None parameters: written here)."""

    def __init__(self, design, by_name: dict, variables: dict, smooth_weights: list | None):
        from ..model.variables import gp_var, monotonic_var, smooth_var

        self.smooths, self.gps, self.monotonic = [], [], []
        for term in design.monotonic:  # (name, simplex, slope, rows' levels, D)
            names = [monotonic_var(design, kind, term) for kind in ("simo", "bsp")]
            keys = (f"simo({term.name})", f"bsp({term.name})")
            sizes = (term.n_steps - 1, 1)  # the simplex's sampled coordinates, the slope
            for name, key, size in zip(names, keys, sizes, strict=True):
                prior = by_name[design.qualified(key)].prior
                variables[name] = (prior.dist, dict(prior.params), size)
            self.monotonic.append((term.name, *names, np.asarray(term.codes, dtype=np.int64), term.n_steps))
        for k, smooth in enumerate(design.smooths):
            prior = by_name[design.qualified(f"sds({smooth.name})")].prior
            names = [smooth_var(design, kind, smooth) for kind in ("sds", "zs", "s")]
            weights = np.zeros(smooth.Z.shape[1]) if smooth_weights is None else np.asarray(smooth_weights[k])
            variables[names[0]] = (prior.dist, dict(prior.params), 1)
            variables[names[1]] = ("Normal", None if np.any(weights > 0) else {}, smooth.Z.shape[1])
            self.smooths.append(_Smooth(*names, np.asarray(smooth.Z, dtype=float), weights.astype(float)))
        for gp in design.gps:
            names = [gp_var(design, kind, gp) for kind in ("sdgp", "lscale", "zgp", "gp")]
            for name, key in zip(names[:2], (f"sdgp({gp.name})", f"lscale({gp.name})"), strict=True):
                prior = by_name[design.qualified(key)].prior
                variables[name] = (prior.dist, dict(prior.params), 1)
            variables[names[2]] = ("Normal", {}, gp.Z.shape[1])
            self.gps.append(_GP(*names, np.asarray(gp.Z, dtype=float), gp))

    def __bool__(self) -> bool:
        return bool(self.smooths or self.gps or self.monotonic)


def monotonic_rows(t: Tape, bases: Bases, constrained: dict) -> dict[str, Var]:
    """Each mo(x)'s transform at the rows, D sum(zeta[1..x]) at level x of 0..D, by name
    (bayesmm.model.builder._monotonic_shapes): its own effect's and a (mo(x) | g) term's."""
    rows = {}
    for name, simplex, _, codes, steps in bases.monotonic:
        zeta = constrained[simplex]
        levels = [t.constant(np.zeros(1))]
        for k in range(steps):
            levels.append(t.add(levels[-1], t.mul(t.element(zeta, k), t.constant(float(steps)))))
        rows[name] = t.gather(t.join(levels), codes)
    return rows


def add(t: Tape, bases: Bases, eta: Var | None, constrained: dict, reported: dict, terms: list | None,
        monotonic: dict):  # fmt: skip
    """eta plus each monotonic effect's (``monotonic``: their transforms at the rows,
    monotonic_rows), smooth's and GP's part; the log-densities of partially centred smooth
    coefficients are added to ``terms`` (None: the expansion, which reports s_ and gp_)."""
    parts = []
    for name, _, slope, _, _ in bases.monotonic:  # b D sum(zeta[1..x]) at level x
        parts.append(t.mul(monotonic[name], constrained[slope]))
    for smooth in bases.smooths:
        sds, z = constrained[smooth.sds], constrained[smooth.z]
        w = smooth.weights
        if np.any(w > 0):  # z ~ Normal(0, sds^w): -z^2 / (2 sds^(2w)) - w log sds - log(2 pi) / 2
            log_sds = t.log(sds)
            if terms is not None:
                scaled = t.mul(z, t.exp(t.mul(log_sds, t.constant(-w))))
                spread = t.mul(log_sds, t.constant(-float(w.sum())))
                density = t.add(t.mul(t.sumsq(scaled), t.constant(-0.5)), spread)
                terms.append(t.add(density, t.constant(-0.5 * w.size * LOG_2PI)))
            coefficients = t.mul(z, t.exp(t.mul(log_sds, t.constant(1.0 - w))))
        else:
            coefficients = t.mul(z, sds)
        reported[smooth.s] = coefficients
        parts.append(t.matvec(smooth.Z, coefficients))
    for gp in bases.gps:
        sd, lengthscale = (_Value(t, constrained[name]) for name in (gp.sd, gp.lengthscale))
        density = gp.term.density(sd, lengthscale, math=_Math(t))
        coefficients = t.mul(t.sqrt(density.var), constrained[gp.z])
        reported[gp.f] = coefficients
        parts.append(t.matvec(gp.Z, coefficients))
    for part in parts:
        eta = part if eta is None else t.add(eta, part)
    return eta


class _Value:
    """A tape value with the arithmetic operators spectral_density uses (numbers and NumPy
    arrays are constants)."""

    def __init__(self, t: Tape, var: Var):
        self.t, self.var = t, var

    def _of(self, other) -> Var:
        return other.var if isinstance(other, _Value) else self.t.constant(np.asarray(other, dtype=float))

    def _operator(name: str, reflected: bool = False):  # the tape's operation ``name``
        def method(self, other):
            a, b = (self._of(other), self.var) if reflected else (self.var, self._of(other))
            return _Value(self.t, getattr(self.t, name)(a, b))

        return method

    __add__ = __radd__ = _operator("add")
    __mul__ = __rmul__ = _operator("mul")
    __sub__, __rsub__ = _operator("sub"), _operator("sub", reflected=True)
    __truediv__, __rtruediv__ = _operator("div"), _operator("div", reflected=True)
    del _operator

    def __neg__(self):
        return _Value(self.t, self.t.neg(self.var))

    def __pow__(self, power):
        power = float(power)
        if power == 2.0:
            return _Value(self.t, self.t.sqr(self.var))
        if power == 1.0:
            return self
        if power == int(power) and 2 < power <= 6:
            out = self.var
            for _ in range(int(power) - 1):
                out = self.t.mul(out, self.var)
            return _Value(self.t, out)
        return _Value(self.t, self.t.exp(self.t.mul(self.t.log(self.var), self.t.constant(power))))


class _Math:
    """The functions spectral_density takes from its ``math`` argument, on the tape."""

    def __init__(self, t: Tape):
        self.t = t

    def exp(self, value):
        return _Value(self.t, self.t.exp(value.var))
