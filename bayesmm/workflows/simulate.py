"""Simulate responses from a formula with chosen parameters (as lme4's ``simulate`` with ``newparams``).

Group effects are drawn fresh for every simulated data set. Parameters use the
names of ``fit.summary()``: fixed effects (``Intercept``, ``x``), group-level SDs
(``sd(Intercept|g)``), correlations (``cor(Intercept,x|g)``, default 0) and family
parameters (``sigma``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..design.build import build_design
from ..families import additions
from ..families.base import Family
from ..families.registry import get_family
from ..results.predict import linear_predictor
from ..spec.formula import parse_formula

__all__ = ["simulate"]


def _with_placeholder_response(formula: str, data: pd.DataFrame) -> tuple[str, pd.DataFrame, str]:
    """Simulation needs no response: give the design a column of zeros (on a copy of the data)."""
    parsed = parse_formula(formula)
    if parsed.response is None:
        name = "y" if "y" not in data.columns else "simulated_response"
        return f"{name} {formula.strip()}", data.assign(**{name: 0}), name
    name = parsed.response.strip("` ")
    if parsed.cbind is None and name not in data.columns:
        # Inside trunc()'s bounds, where the formula has them.
        trunc = parsed.addition("trunc")
        lower = trunc.get("lb") if trunc is not None else None
        fill = float(lower) if lower is not None and lower.lstrip("+-").replace(".", "", 1).isdigit() else 0
        return formula, data.assign(**{name: fill}), name
    return formula, data, name


def _family_params(family: Family) -> list[str]:
    """Family parameters, with a zero-inflation or hurdle probability (zi, hu) as a constant."""
    return list(family.params) + [family.part_parameter(p) for p in family.required_parts]


def _ordinal(design, family: Family, params: dict[str, float]):
    """An ordinal model's design without the intercept, and its family configured with as many
    categories as the thresholds Intercept[1], Intercept[2], ... in ``params`` make."""
    import dataclasses

    k = 1
    while f"Intercept[{k}]" in params:
        k += 1
    if k < 3:
        raise ValueError("simulating ordinal data needs the thresholds Intercept[1], Intercept[2], ... "
                         "(at least two: three categories)")  # fmt: skip
    thresholds = np.array([params[f"Intercept[{j}]"] for j in range(1, k)])
    if np.any(np.diff(thresholds) <= 0):
        raise ValueError(
            f"the thresholds Intercept[1], ..., Intercept[{k - 1}] must increase, got {thresholds}"
        )
    keep = [j for j, n in enumerate(design.fixef_names) if n != "Intercept"]
    levels = tuple(str(j) for j in range(1, k + 1))
    names = [design.fixef_names[j] for j in keep]
    design = dataclasses.replace(design, X=design.X[:, keep], fixef_names=names, y=np.ones(design.n_obs),
                                 response_levels=levels)  # fmt: skip
    return design, family.for_design(design)


def _check_params(design, family: Family, params: dict[str, float]) -> None:
    required = (
        list(design.fixef_names) + [n for t in design.random for n in t.sd_names] + _family_params(family)
        + [f"{kind}({m.name})" for m in design.monotonic for kind in ("bsp", "simo")]
        + [f"sds({s.name})" for s in design.smooths]
        + [f"{kind}({g.name})" for g in design.gps for kind in ("sdgp", "lscale")]
    )  # fmt: skip
    # Correlations default to 0; a cs() or ar1() term's may be given once, as cor(g).
    optional = [n for t in design.random for n in t.covariance.parameter_names if n not in t.sd_names]
    missing = [n for n in required if n not in params]
    unknown = [n for n in params if n not in required + optional]
    if missing:
        raise ValueError(f"simulate needs values for {', '.join(missing)}")
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {', '.join(unknown)}; "
            f"this model's parameters: {', '.join(required + optional)}"
        )


def simulate(
    formula: str,
    data: pd.DataFrame,
    family: str | Family = "gaussian",
    params: dict[str, float] | None = None,
    seed=None,
    nsim: int = 1,
    *,
    link: str | None = None,
    trials=None,
    data2: dict | None = None,
) -> pd.DataFrame:
    """Simulate responses from a formula with chosen parameters (lme4's ``simulate`` with
    ``newparams``), for power analyses, simulation-based checks and teaching.

    Group effects are drawn afresh for every data set.

    Parameters
    ----------
    formula
        A formula as for [`Model`][bayesmm.Model]; the response may be left out
        (``"~ x + (1 | g)"``).
    data
        The predictor and grouping columns. It is never modified.
    family
        A family name or [`Family`][bayesmm.Family].
    params
        Every parameter by the summary's names: fixed effects (``Intercept``, ``x``),
        group-level SDs (``sd(Intercept|g)``), family parameters (``sigma``, ``zi``, ...);
        correlations (``cor(Intercept,x|g)``) are optional and default to 0. Missing or
        unknown names raise a ValueError listing them.
    seed
        Seed, or None.
    nsim
        Number of data sets.
    link
        A non-default link, or None.
    trials
        Binomial trials: a column name or an array.
    data2
        The matrices a ``gr(g, cov = A)`` term names, as for [`Model`][bayesmm.Model]: its
        levels' effects are then drawn correlated by A. A ``mo(x)`` term takes
        ``bsp(mo(x))`` (the average step) and ``simo(mo(x))`` (the D steps' shares, summing
        to 1) in ``params``.

    Returns
    -------
    pandas.DataFrame
        Columns ``sim_1`` ... ``sim_<nsim>``, one row per row of ``data``.

    Examples
    --------
    >>> data = pd.DataFrame({"g": np.repeat(["a", "b", "c", "d"], 25)})
    >>> params = {"Intercept": 0.0, "sd(Intercept|g)": 1.0, "sigma": 0.5}
    >>> sims = bm.simulate("~ 1 + (1 | g)", data, params=params, seed=1, nsim=2)
    >>> list(sims.columns), len(sims)
    (['sim_1', 'sim_2'], 100)
    """
    family = get_family(family, link)
    formula, frame, _ = _with_placeholder_response(formula, data)
    design = build_design(formula, frame, trials=trials, binary_response=family.binary_response, data2=data2)
    if family.ordinal:
        design, family = _ordinal(design, family, dict(params or {}))
    if family.needs_trials and design.trials is None:
        raise ValueError("simulating binomial data needs trials= (a column name or array)")
    params = dict(params or {})
    _check_params(design, family, params)
    rng = np.random.default_rng(seed)
    beta = np.array([params[n] for n in design.fixef_names], dtype=float)
    family_params = {name: np.array([[params[name]]], dtype=float) for name in _family_params(family)}
    columns = {}
    covariances = [term.covariance.from_values(params) for term in design.random]
    # Each mo(x)'s transform at its levels, D sum(zeta[1..level]): times bsp its effects, and
    # at the rows a (mo(x) | g) column's values.
    transforms = {}
    for term in design.monotonic:
        shares = np.asarray(params[f"simo({term.name})"], dtype=float)
        if shares.shape != (term.n_steps,) or np.any(shares < 0) or not np.isclose(shares.sum(), 1.0):
            raise ValueError(f"simo({term.name}) takes {term.n_steps} non-negative shares summing to 1, "
                             f"got {params[f'simo({term.name})']!r}")  # fmt: skip
        transforms[term.name] = term.transform(shares)
    rows = {term.name: transforms[term.name][term.codes] for term in design.monotonic}
    matrices = []
    for term in design.random:
        matrix = term.matrix.copy()
        for j, column in enumerate(term.columns):
            if column in rows:
                matrix[:, j] = rows[column]
        matrices.append(matrix)
    for k in range(nsim):
        effects = []
        for term, cov, matrix in zip(design.random, covariances, matrices, strict=True):
            values = rng.multivariate_normal(np.zeros(term.n_terms), cov, size=term.n_levels)
            if term.level_factor is not None:  # gr(g, cov = A): levels correlated by A
                values = term.level_factor @ values
            effects.append((values[None], term.codes, matrix))
        for smooth in design.smooths:  # the smooth's wiggles, drawn afresh as group effects are
            coefficients = params[f"sds({smooth.name})"] * rng.normal(size=smooth.Z.shape[1])
            effects.append((coefficients[None, None, :], np.zeros(len(smooth.Z), dtype=np.int64), smooth.Z))
        for gp in design.gps:  # a fresh function from the GP (its Hilbert-space approximation)
            density = gp.density(params[f"sdgp({gp.name})"], params[f"lscale({gp.name})"])
            coefficients = np.sqrt(density) * rng.normal(size=gp.n_basis)
            effects.append((coefficients[None, None, :], np.zeros(len(gp.Z), dtype=np.int64), gp.Z))
        for term in design.monotonic:
            levels = params[f"bsp({term.name})"] * transforms[term.name]
            effects.append((levels[None, :, None], term.codes, np.ones((len(term.codes), 1))))
        eta = linear_predictor(beta[None, :], design.X, design.offset, effects)
        drawn = additions.draw(family, eta, family_params, design.trials, rng, design.additions)
        columns[f"sim_{k + 1}"] = drawn[0]
    return pd.DataFrame(columns, index=design.rows)
