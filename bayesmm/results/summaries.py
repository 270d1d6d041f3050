"""Posterior summaries in lme4/brms vocabulary: summary, fixef, ranef, coef, varcorr.

Everything here reads the posterior draws stored in ``fit.idata`` and the names
stored in the design; nothing re-parses the formula. Intervals are equal-tailed
(as brms's ``l-95% CI``/``u-95% CI``) and named after their quantiles, e.g.
``q2.5`` and ``q97.5`` for ``prob=0.95``.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

import arviz_stats as az  # not the arviz meta-package, which loads matplotlib
import numpy as np
import pandas as pd
import xarray as xr

from ..inference.idata import get_group
from ..model.variables import fixef_var, gp_var, group_var, monotonic_var, smooth_var
from ..spec.names import Parameter

if TYPE_CHECKING:  # pragma: no cover
    from .fit import Fit

__all__ = ["summary", "fixef", "ranef", "coef", "varcorr", "interval_names"]


def interval_names(prob: float) -> tuple[str, str]:
    if not 0 < prob < 1:
        raise ValueError(f"prob must be between 0 and 1, got {prob}")
    tail = 100 * (1 - prob) / 2
    return f"q{tail:g}", f"q{100 - tail:g}"


def _stats(draws: np.ndarray, prob: float) -> dict[str, np.ndarray]:
    """Mean, SD and equal-tailed interval over the leading (chain, draw) axes."""
    flat = draws.reshape((-1,) + draws.shape[2:])
    lo_name, hi_name = interval_names(prob)
    lo, hi = np.quantile(flat, [(1 - prob) / 2, (1 + prob) / 2], axis=0)
    return {"mean": flat.mean(axis=0), "sd": flat.std(axis=0, ddof=1), lo_name: lo, hi_name: hi}


def _table(named_draws: dict[str, np.ndarray], prob: float, diagnostics: bool = True) -> pd.DataFrame:
    """Summary table of scalar quantities given as (chain, draw) arrays."""
    names = list(named_draws)
    stacked = np.stack([named_draws[n] for n in names], axis=-1)  # chain, draw, parameter
    table = pd.DataFrame(_stats(stacked, prob), index=pd.Index(names, name="parameter"))
    if diagnostics:
        data = xr.Dataset({"x": (("chain", "draw", "parameter"), stacked)})
        table["mcse_mean"] = az.mcse(data, method="mean")["x"].values
        table["ess_bulk"] = az.ess(data, method="bulk")["x"].values
        table["ess_tail"] = az.ess(data, method="tail")["x"].values
        table["r_hat"] = az.rhat(data)["x"].values
    return table


def _posterior(fit: Fit) -> xr.Dataset:
    return get_group(fit.idata, "posterior")


def designs(fit: Fit) -> list:
    """The mean's design, then each distributional part's (zi, hu, dispersion)."""
    return [fit.design, *getattr(fit.model, "parts", {}).values()]


def _design_fixef_draws(design, post: xr.Dataset) -> dict[str, np.ndarray]:
    """Draws of one linear predictor's fixed effects, by qualified name (``x``, ``zi:x``)."""
    if fixef_var(design) not in post:
        return {}
    values = post[fixef_var(design)].values
    return {design.qualified(name): values[..., j] for j, name in enumerate(design.fixef_names)}


def _fixef_draws(fit: Fit, post: xr.Dataset | None = None) -> dict[str, np.ndarray]:
    post = _posterior(fit) if post is None else post
    out: dict[str, np.ndarray] = {}
    for design in designs(fit):
        out.update(_design_fixef_draws(design, post))
    return out


def _special_draws(fit: Fit, post: xr.Dataset | None = None) -> dict[str, np.ndarray]:
    """The rows of the special terms: each mo(x)'s average step ``bsp(mo(x))`` and the steps'
    shares ``simo(mo(x))[k]``, each smooth's ``sds(s(x))``, each GP's ``sdgp`` and ``lscale``."""
    post = _posterior(fit) if post is None else post
    out: dict[str, np.ndarray] = {}
    for design in designs(fit):
        for term in design.monotonic:
            if monotonic_var(design, "bsp", term) not in post:
                continue
            out[design.qualified(f"bsp({term.name})")] = post[monotonic_var(design, "bsp", term)].values
            shares = post[monotonic_var(design, "simo", term)].values
            for k in range(term.n_steps):
                out[design.qualified(f"simo({term.name})[{k + 1}]")] = shares[..., k]
        for smooth in design.smooths:
            if smooth_var(design, "sds", smooth) in post:
                out[design.qualified(f"sds({smooth.name})")] = post[smooth_var(design, "sds", smooth)].values
        for gp in design.gps:
            for kind in ("sdgp", "lscale"):
                if gp_var(design, kind, gp) in post:
                    out[design.qualified(f"{kind}({gp.name})")] = post[gp_var(design, kind, gp)].values
    return out


def _group_draws(fit: Fit, post: xr.Dataset | None = None) -> dict[str, np.ndarray]:
    post = _posterior(fit) if post is None else post
    out: dict[str, np.ndarray] = {}
    for design in designs(fit):
        for group, terms in design.groups.items():
            sds = post[group_var(design, "sd", group)].values
            names = [n for t in terms for n in t.sd_names]
            out.update({name: sds[..., j] for j, name in enumerate(names)})
            cor_names = [n for t in terms for n in t.cor_names]
            if cor_names:
                cors = post[group_var(design, "cor", group)].values
                out.update({name: cors[..., j] for j, name in enumerate(cor_names)})
    return out


def parameters(fit: Fit) -> dict[str, Parameter]:
    """The record of every summary row, by its name: what kind of parameter it is, its part,
    grouping factor and term columns (see bayesmm.spec.names)."""
    records = []
    for design in designs(fit):
        records += [Parameter("fixef", (name,), design.part) for name in design.fixef_names]
        for term in design.monotonic:
            records.append(Parameter("monotonic", (design.qualified(f"bsp({term.name})"),), design.part))
            records += [Parameter("simplex", (design.qualified(f"simo({term.name})[{k + 1}]"),), design.part)
                        for k in range(term.n_steps)]  # fmt: skip
        records += [Parameter("smooth_sd", (design.qualified(f"sds({s.name})"),), design.part)
                    for s in design.smooths]  # fmt: skip
        records += [Parameter(f"gp_{kind}", (design.qualified(f"{kind}({g.name})"),), design.part)
                    for g in design.gps for kind in ("sdgp", "lscale")]  # fmt: skip
    for design in designs(fit):
        for terms in design.groups.values():
            records += [p for t in terms for p in t.sd_parameters] + [
                p for t in terms for p in t.cor_parameters
            ]
    family = fit.model.family
    records += [
        Parameter("threshold" if family.param_class(name) == "Intercept" else "family", (name,))
        for name in constant_params(fit)
    ]
    return {record.name: record for record in records}


def constant_params(fit: Fit) -> list[str]:
    """Family parameters estimated as single numbers (not given by a dispersion= formula)."""
    return fit.model.family.constant_params(getattr(fit.model, "parts", {}))


def _family_draws(fit: Fit, post: xr.Dataset | None = None) -> dict[str, np.ndarray]:
    post = _posterior(fit) if post is None else post
    return {name: post[name].values for name in constant_params(fit)}


class SummaryTable(pd.DataFrame):
    """A summary DataFrame that shows the fit's diagnostic headline above the table."""

    _metadata = ["header"]

    @property
    def _constructor(self):
        return SummaryTable

    def __repr__(self) -> str:
        header = getattr(self, "header", None)
        body = super().__repr__()
        return f"{header}\n{body}" if header else body

    def _repr_html_(self) -> str:
        header = getattr(self, "header", None)
        body = super()._repr_html_()
        return f"<p>{html.escape(header)}</p>{body}" if header else body


def summary_draws(fit: Fit) -> dict[str, np.ndarray]:
    """(chain, draw) draws of every summary row, keyed by its name."""
    return summary_draws_from(fit, _posterior(fit))


def summary_draws_from(fit: Fit, dataset: xr.Dataset) -> dict[str, np.ndarray]:
    """Draws of every summary row from a posterior-shaped dataset (the posterior, or the prior)."""
    return {**_fixef_draws(fit, dataset), **_special_draws(fit, dataset), **_group_draws(fit, dataset),
            **_family_draws(fit, dataset)}  # fmt: skip


def summary_table(fit: Fit, prob: float) -> pd.DataFrame:
    return _table(summary_draws(fit), prob)


def summary(fit: Fit, prob: float = 0.95) -> SummaryTable:
    """Fixed effects, group-level SDs and correlations, family parameters (in that order),
    headed by the diagnostics' one-line verdict."""
    table = SummaryTable(summary_table(fit, prob))
    table.header = fit.diagnose().headline()
    return table


def fixef(fit: Fit, prob: float = 0.95) -> pd.DataFrame:
    return _table(_fixef_draws(fit), prob)


def group_keys(fit: Fit) -> list[str]:
    """Every grouping factor, by the name ranef and coef use: ``Subject`` in the mean's
    linear predictor, ``zi:site`` in the zi part."""
    return [design.qualified(group) for design in designs(fit) for group in design.groups]


def group_design(fit: Fit, key: str):
    """The design (the mean's or a part's) and the grouping factor that ``key`` names."""
    for design in designs(fit):
        for group in design.groups:
            if design.qualified(group) == key:
                return design, group
    raise KeyError(
        f"'{key}' is not a grouping factor of this model; grouping factors: {', '.join(group_keys(fit))}"
    )


def _groups(fit: Fit, group: str | None) -> list[str]:
    if group is None:
        return group_keys(fit)
    group_design(fit, group)  # raises for an unknown name
    return [group]


def _level_table(
    draws: np.ndarray, levels: list[str], terms: list[str], group: str, prob: float
) -> pd.DataFrame:
    """levels x (stat, term) table from (chain, draw, level, term) draws."""
    stats = _stats(draws, prob)
    frames = {stat: pd.DataFrame(values, index=levels, columns=terms) for stat, values in stats.items()}
    table = pd.concat(frames, axis=1, names=["stat", "term"])
    table.index.name = group
    return table


def ranef(fit: Fit, group: str | None = None, prob: float = 0.95):
    """Group-level effects per grouping factor: a DataFrame of levels x (stat, term).

    ``ranef(fit)["Subject"]["mean"]`` is the levels x terms table of posterior
    means, the Bayesian counterpart of lme4's conditional modes. With ``group``
    given, that group's DataFrame is returned directly.
    """
    post = _posterior(fit)
    tables = {}
    for key in _groups(fit, group):
        design, g = group_design(fit, key)
        draws = post[group_var(design, "r", g)].values
        columns = [design.qualified(c) for c in design.group_columns(g)]
        tables[key] = _level_table(draws, design.group_levels(g), columns, key, prob)
    return tables[group] if group is not None else tables


def covariance_draws(fit: Fit, group: str, design=None) -> np.ndarray:
    """(draws, p, p) covariance of a grouping factor's effects (block-diagonal across its terms),
    in the mean's linear predictor or in ``design``'s part."""
    design = fit.design if design is None else design
    post = _posterior(fit)
    sds = post[group_var(design, "sd", group)].values.reshape(-1, len(design.group_columns(group)))
    cor_name = group_var(design, "cor", group)
    cors = post[cor_name].values.reshape(sds.shape[0], -1) if cor_name in post else None
    out = np.zeros(sds.shape + (sds.shape[1],))
    k = 0  # the group's correlations follow its terms' order
    for term in design.groups[group]:
        structure, n_pairs = term.covariance, len(term.cor_pairs)
        block = structure.covariance(sds[:, structure.columns], cors[:, k : k + n_pairs] if n_pairs else None)
        out[:, structure.columns, structure.columns] = block
        k += n_pairs
    return out


def coef_draws(fit: Fit, group: str) -> tuple[np.ndarray, list[str]]:
    """(chain, draw, level, coefficient) draws of fixed plus group effects, and the names,
    within the linear predictor (the mean's or a part's) that ``group`` belongs to."""
    design, g = group_design(fit, group)
    post = _posterior(fit)
    fixed = _design_fixef_draws(design, post)
    random = post[group_var(design, "r", g)].values
    columns = [design.qualified(c) for c in design.group_columns(g)]
    names = list(fixed) + [c for c in columns if c not in fixed]
    n_levels = random.shape[2]
    out = np.zeros(random.shape[:2] + (n_levels, len(names)))
    for k, name in enumerate(names):
        if name in fixed:
            out[..., k] = fixed[name][..., None]
        if name in columns:
            out[..., k] += random[..., columns.index(name)]
    for term in design.monotonic:  # (mo(x) | g): a level's step is bsp plus its own
        if design.qualified(term.name) in columns:
            bsp = post[monotonic_var(design, "bsp", term)].values
            out[..., names.index(design.qualified(term.name))] += bsp[..., None]
    return out, names


def coef(fit: Fit, group: str | None = None, prob: float = 0.95):
    """Per-level coefficients (fixed + group effects), as lme4's ``coef``, with intervals."""
    tables = {}
    for key in _groups(fit, group):
        draws, names = coef_draws(fit, key)
        design, g = group_design(fit, key)
        tables[key] = _level_table(draws, design.group_levels(g), names, key, prob)
    return tables[group] if group is not None else tables


def varcorr(fit: Fit, prob: float = 0.95) -> pd.DataFrame:
    """Group-level SDs and correlations (and the residual SD ``sigma`` where the family has one)."""
    draws = _group_draws(fit)
    post = _posterior(fit)
    if "sigma" in constant_params(fit):
        draws["sigma"] = post["sigma"].values
    table = _table(draws, prob, diagnostics=False)
    records = parameters(fit)
    grouped = [records[name] if name in records else None for name in table.index]
    table.insert(0, "term", [r.term if r is not None and r.group else "" for r in grouped])
    table.insert(0, "group", [r.group if r is not None and r.group else "Residual" for r in grouped])
    return table


# ---------------------------------------------------------------------------
# text and HTML


def _header(fit: Fit) -> list[str]:
    model, design, s = fit.model, fit.design, fit.settings
    groups = "; ".join(f"{g}: {len(design.group_levels(g))} levels" for g in design.groups)
    lines = [
        f" Family: {model.family.name} (link: {model.family.link.name})",
        f"Formula: {design.formula.text}",
        f"   Data: {design.n_obs} observations" + (f"; {groups}" if groups else ""),
        f"  Draws: {s.chains} chains x {s.draws} draws after {s.tune} tuning; "
        f"sampler {s.sampler}, {s.seconds:.1f} s",
    ]
    if design.n_dropped:
        lines.append(f"         ({design.n_dropped} rows with missing values dropped)")
    lines += [f"  Terms: {line}" for line in design.additions.describe()]
    return lines


def _sections(fit: Fit, table: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    fixed = [d.qualified(n) for d in designs(fit) for n in d.fixef_names if d.qualified(n) in table.index]
    fixed += [n for n in table.index if n.startswith(("bsp(", "simo(")) or ":bsp(" in n or ":simo(" in n]
    group = [n for n in table.index if n.startswith(("sd(", "cor(", "sds(", "sdgp(", "lscale("))]
    family = [n for n in constant_params(fit) if n in table.index]
    return [
        (title, table.loc[rows])
        for title, rows in (
            ("Population-level effects", fixed),
            ("Group-level effects", group),
            ("Family parameters", family),
        )
        if rows
    ]


def format_fit(fit: Fit, prob: float = 0.95) -> str:
    table = summary_table(fit, prob).drop(columns="mcse_mean")
    diagnosis = fit.diagnose()
    lines = _header(fit) + ["", diagnosis.headline()]  # the advice is said once: by the fit's warning
    for title, part in _sections(fit, table):
        shown = part.copy()
        shown["ess_bulk"] = shown["ess_bulk"].round().astype(int)
        shown["ess_tail"] = shown["ess_tail"].round().astype(int)
        lines += ["", f"{title}:", shown.to_string(float_format=lambda v: f"{v:.3f}")]
    return "\n".join(lines)


def format_fit_html(fit: Fit, prob: float = 0.95) -> str:
    table = summary_table(fit, prob).drop(columns="mcse_mean")
    diagnosis = fit.diagnose()
    text = _header(fit) + ["", diagnosis.headline()]
    parts = ["<pre>" + html.escape("\n".join(text)) + "</pre>"]
    for title, part in _sections(fit, table):
        parts.append(f"<h4>{html.escape(title)}</h4>")
        parts.append(part.to_html(float_format=lambda v: f"{v:.3f}"))
    return "\n".join(parts)
