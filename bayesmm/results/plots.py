"""Figures of a fit (matplotlib). Each function returns the Axes it drew on.

* :func:`plot_ranef` — caterpillar plot of group effects;
* :func:`plot_shrinkage` — no-pooling versus partial-pooling estimates per level,
  in one dimension (one term) or two (intercept and slope, with the population ellipse);
* :func:`plot_ppc` — posterior predictive checks (density, histogram, hanging
  rootogram, zero counts, a test statistic);
* :func:`plot_priors` — prior versus posterior for the summary's parameters.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.patches import Ellipse
from scipy import optimize, stats

from ..families import additions
from ..inference.idata import get_group, has_group
from ..model.variables import group_var, reported_variables
from . import comparison
from . import summaries as results
from .predict import family_param_draws, linear_predictor

if TYPE_CHECKING:  # pragma: no cover
    from .fit import Fit

__all__ = [
    "plot_ranef",
    "plot_shrinkage",
    "plot_ppc",
    "plot_priors",
    "no_pooling",
    "default_ppc_kind",
    "plot_trace",
]


def plot_ranef(fit: Fit, group: str, prob: float = 0.95, levels="auto", axes=None):
    """Caterpillar plot of ``group``'s effects; documented at :meth:`bayesmm.Fit.plot_ranef`."""
    table = results.ranef(fit, group=group, prob=prob)
    lo, hi = results.interval_names(prob)
    terms = list(table["mean"].columns)
    first = table["mean"][terms[0]].to_numpy()
    order, left_out = _pick_levels(np.argsort(first), table.index, levels)
    if axes is None:
        height = ROW_INCHES * (len(order) + (GAP_ROWS if len(left_out) else 0)) + 1.2
        width = max(5.0, 3.6 * len(terms))
        _, axes = plt.subplots(1, len(terms), figsize=(width, height), sharey=True, squeeze=False)
        axes = axes[0]
    positions = _rows(len(order), left_out)
    for ax, term in zip(axes, terms, strict=True):
        mean = table["mean"][term].to_numpy()[order]
        ax.hlines(positions, table[lo][term].to_numpy()[order], table[hi][term].to_numpy()[order],
                  color="0.5", lw=1.2)  # fmt: skip
        ax.plot(mean, positions, "o", color="C0", ms=4)
        ax.axvline(0.0, color="C3", lw=0.8, ls="--")
        ax.set_title(f"{term} | {group}")
        ax.set_xlabel(f"group effect ({int(prob * 100)}% interval)")
    axes[0].set_yticks(positions, table.index.to_numpy()[order], fontsize=LABEL_POINTS)
    axes[0].set_ylim(-0.7, positions[-1] + 0.7)
    axes[0].set_ylabel(group)
    if len(left_out):
        _say_left_out(axes[0], left_out, first)
    return axes


# ---------------------------------------------------------------------------
# shrinkage


def _posterior_mean(fit: Fit, name: str) -> np.ndarray:
    return fit.idata.posterior[name].mean(("chain", "draw")).values


def no_pooling(fit: Fit, group: str) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Per-level maximum-likelihood estimates of the group's varying terms, from that level's rows alone.

    Everything else in the model (the other fixed effects, other grouping factors, the
    offset, family parameters) is held at its posterior mean and enters as an offset.
    Returns (levels x terms estimates, term names, rows per level). An estimate that runs
    off to infinity (all zeros under a log link, all successes under a logit link) is
    -inf or +inf, and that level's other terms NaN; a level whose rows cannot identify
    every term (one row, a constant slope column) is NaN throughout.
    """
    design, family = fit.design, fit.model.family
    if group not in design.groups:
        part_design, _ = results.group_design(fit, group)  # raises for an unknown name
        raise ValueError(
            f"shrinkage plots need no-pooling estimates, which bayesmm computes for the mean's grouping "
            f"factors; '{group}' belongs to the {part_design.part} part: use fit.plot_ranef('{group}')"
        )
    terms = design.groups[group]
    columns = design.group_columns(group)
    matrix = np.column_stack([t.matrix for t in terms])
    codes = terms[0].codes
    fixef = _posterior_mean(fit, "fixef") if "fixef" in fit.idata.posterior else np.zeros(0)
    # Everything but this group's varying terms, at the posterior means, is a known offset.
    others = np.array([0.0 if n in columns else v for n, v in zip(design.fixef_names, fixef, strict=True)])
    effects = []
    for other in design.random:
        if other.group != group:
            means = _posterior_mean(fit, group_var(design, "r", other.group))
            means = means[None, :, other.covariance.columns]
            effects.append((means, other.codes, other.matrix))
    offset = linear_predictor(others[None, :], design.X, design.offset, effects)[0]
    # Family parameters at their posterior means, per row where a formula gives them.
    params = {name: np.broadcast_to(v.mean(axis=0), (design.n_obs,))[None, :] for name, v in
              family_param_draws(fit).items()}  # fmt: skip
    start = np.array(
        [fixef[design.fixef_names.index(c)] if c in design.fixef_names else 0.0 for c in columns]
    )
    estimates = np.full((len(design.group_levels(group)), len(columns)), np.nan)
    sizes = np.bincount(codes, minlength=estimates.shape[0])
    # A Gaussian mean with identity link: the maximum is least squares, whatever sigma.
    least_squares = family.name == "gaussian" and family.link.name == "identity" and not design.additions.any
    for level in range(estimates.shape[0]):
        rows = codes == level
        X, y, off = matrix[rows], design.y[rows], offset[rows]
        trials = None if design.trials is None else design.trials[rows]
        level_params = {name: value[:, rows] for name, value in params.items()}
        level_additions = design.additions.take(rows)

        def negative_loglik(beta, X=X, y=y, off=off, trials=trials, level_params=level_params,
                            level_additions=level_additions):  # fmt: skip
            eta = (X @ beta + off)[None, :]
            value = -additions.log_likelihood(family, y, eta, level_params, trials, level_additions).sum()
            return value if np.isfinite(value) else 1e300

        if np.linalg.matrix_rank(X) < X.shape[1]:
            continue  # the level's rows cannot identify every varying term
        if least_squares:  # exact, rather than to an optimizer's tolerance
            estimates[level] = np.linalg.lstsq(X, y - off, rcond=None)[0]
            continue
        result = optimize.minimize(negative_loglik, start, method="BFGS")
        if np.all(np.isfinite(result.x)):
            estimates[level] = _at_infinity(negative_loglik, result.x, X)
    return estimates, columns, sizes


# A no-pooling estimate runs off to infinity (all zeros under a log link, all successes
# under a logit link) when moving it INFINITY_STEP further on the linear predictor's scale
# loses less than INFINITY_TOLERANCE of log-likelihood: the likelihood has no maximum.
INFINITY_STEP = 20.0
INFINITY_TOLERANCE = 1e-3


def _at_infinity(negative_loglik, beta: np.ndarray, X: np.ndarray) -> np.ndarray:
    """``beta`` with each coordinate whose likelihood keeps rising (or stays flat) towards
    +-infinity set to that infinity; the level's other coordinates are then NaN, since
    they are not estimable beside an infinite one."""
    best = negative_loglik(beta)
    out = beta.astype(float).copy()
    infinite = np.zeros(beta.size, dtype=bool)
    for j in range(beta.size):
        step = INFINITY_STEP / max(np.abs(X[:, j]).max(), 1e-12)
        for sign in (-1.0, 1.0):
            moved = beta.copy()
            moved[j] += sign * step
            if negative_loglik(moved) <= best + INFINITY_TOLERANCE:
                out[j], infinite[j] = sign * np.inf, True
                break
    if infinite.any():
        out[~infinite] = np.nan
    return out


def plot_shrinkage(
    fit: Fit, group: str, term: str = "Intercept", terms=None, prob: float = 0.95, levels="auto", ax=None
):
    """No-pooling against partial-pooling estimates; documented at :meth:`bayesmm.Fit.plot_shrinkage`."""
    if terms is not None:
        return _plot_shrinkage_2d(fit, group, tuple(terms), ax)
    estimates, columns, sizes = no_pooling(fit, group)
    if term not in columns:
        raise KeyError(f"'{term}' does not vary by '{group}'; varying terms: {', '.join(columns)}")
    table = results.coef(fit, group=group, prob=prob)  # partial pooling: fixed + group effects
    lo, hi = results.interval_names(prob)
    pooled, low, high = (table[c][term].to_numpy() for c in ("mean", lo, hi))
    raw = estimates[:, columns.index(term)]
    shown, left_out = _pick_levels(np.argsort(pooled), table.index, levels)
    y = _rows(len(shown), left_out)
    is_finite = np.isfinite(raw[shown])
    finite = shown[is_finite]
    spread = np.concatenate([low[shown], high[shown], raw[finite]])
    pad = 0.05 * max(np.ptp(spread), 1e-9)
    xlim = (spread.min() - pad, spread.max() + pad)
    body = ROW_INCHES * (y[-1] + 1) + 1.0  # inches of the levels' panel, gap rows included
    if ax is None:
        fig, (top, ax) = plt.subplots(
            2, 1, figsize=(6.5, body + 1.3), sharex=True,
            gridspec_kw={"height_ratios": [1.0, body], "hspace": 0.05},
        )  # fmt: skip
    else:
        top = ax.inset_axes([0, 1.02, 1, 0.18], sharex=ax)
    area = 12 + 60 * sizes[shown] / sizes.max()
    ax.hlines(y, low[shown], high[shown], color="C0", lw=1, alpha=0.6)
    ax.scatter(pooled[shown], y, s=area, color="C0", zorder=3, label="partial pooling (posterior mean)")
    ax.scatter(raw[finite], y[is_finite], s=area[is_finite], facecolors="none", edgecolors="C3", zorder=3,
               label="no pooling (level alone)")  # fmt: skip
    for sign, edge, marker in ((-1, xlim[0], "<"), (1, xlim[1], ">")):
        at = raw[shown] == sign * np.inf
        if at.any():
            ax.scatter(np.full(at.sum(), edge), y[at], marker=marker, s=40, facecolors="none",
                       edgecolors="C3", zorder=4, clip_on=False,
                       label=f"no pooling at {'-' if sign < 0 else '+'}∞ "
                       f"({_why_infinite(fit, group, np.flatnonzero(raw == sign * np.inf), sign)}): "
                       f"{int(np.sum(raw == sign * np.inf))} levels")  # fmt: skip
    starts = np.where(is_finite, raw[shown], np.where(raw[shown] < 0, xlim[0], xlim[1]))
    for yi, a, b in zip(y, starts, pooled[shown], strict=True):
        if not np.isnan(a):
            ax.annotate(
                "", xy=(b, yi), xytext=(a, yi), arrowprops={"arrowstyle": "->", "color": "0.6", "lw": 0.8}
            )
    mean = float(fit.fixef()["mean"].get(term, 0.0))
    sd = float(_posterior_mean(fit, group_var(fit.design, "sd", group))[columns.index(term)])
    ax.axvline(mean, color="0.3", ls="--", lw=0.8)
    ax.set_yticks(y, table.index.to_numpy()[shown], fontsize=LABEL_POINTS)
    ax.set_ylim(-0.7, y[-1] + 0.7)
    ax.set_xlim(xlim)
    ax.set_xlabel(f"{term} for each level of {group}")
    ax.set_ylabel(group)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.6 / body), fontsize=8, frameon=False, ncol=2)
    if len(left_out):
        _say_left_out(ax, left_out, pooled, raw)
    grid = np.linspace(mean - 4 * sd, mean + 4 * sd, 200)
    top.fill_between(grid, stats.norm.pdf(grid, mean, sd), color="0.7")
    top.set_yticks([])
    top.set_title(f"Shrinkage of {term} by {group}: population N({mean:.3g}, {sd:.3g}²)", fontsize=10)
    for side in ("top", "right", "left"):
        top.spines[side].set_visible(False)
    return ax


# Figures of one row per level: rows of ROW_INCHES with LABEL_POINTS labels; beyond
# MAX_LEVELS levels, "auto" shows the EXTREME_LEVELS lowest and highest.
ROW_INCHES = 0.2
LABEL_POINTS = 8
MAX_LEVELS = 60
EXTREME_LEVELS = 30
GAP_ROWS = 2  # the empty rows where the levels left out would be


def _rows(n: int, left_out: np.ndarray) -> np.ndarray:
    """Vertical positions of the levels drawn, with a gap between the extremes when some
    levels in the middle are left out."""
    rows = np.arange(n, dtype=float)
    if len(left_out):
        rows[EXTREME_LEVELS:] += GAP_ROWS
    return rows


def _pick_levels(order: np.ndarray, names, levels) -> tuple[np.ndarray, np.ndarray]:
    """Level indices to draw, in drawing order, and those left out."""
    if isinstance(levels, str) and levels in ("auto", "all"):
        if levels == "all" or len(order) <= MAX_LEVELS:
            return order, order[:0]
        return (
            np.concatenate([order[:EXTREME_LEVELS], order[-EXTREME_LEVELS:]]),
            order[EXTREME_LEVELS:-EXTREME_LEVELS],
        )
    if isinstance(levels, str):
        raise ValueError(f"levels must be 'auto', 'all' or a list of level names, got {levels!r}")
    labels = [str(n) for n in names]
    unknown = [str(v) for v in levels if str(v) not in labels]
    if unknown:
        raise KeyError(
            f"no level {', '.join(repr(u) for u in unknown)}; levels: {', '.join(labels[:10])} ..."
        )
    wanted = {labels.index(str(v)) for v in levels}
    return np.array([i for i in order if i in wanted]), np.array([i for i in order if i not in wanted])


def _say_left_out(ax, left_out: np.ndarray, pooled: np.ndarray, raw=None) -> None:
    """A grey band where the levels not drawn would be, saying which they are."""
    text = (
        f"{len(left_out)} levels with estimates between {pooled[left_out].min():.3g} and "
        f"{pooled[left_out].max():.3g} not drawn"
    )
    if raw is not None and np.isinf(raw[left_out]).any():
        text += f" ({int(np.isinf(raw[left_out]).sum())} with no pooling at ±∞)"
    middle = EXTREME_LEVELS - 0.5 + GAP_ROWS / 2
    ax.axhspan(middle - GAP_ROWS / 2 + 0.2, middle + GAP_ROWS / 2 - 0.2, color="0.93", lw=0)
    ax.text(0.5, middle, text + "\nlevels='all' draws every level", fontsize=7, ha="center", va="center",
            transform=ax.get_yaxis_transform())  # fmt: skip


def _why_infinite(fit: Fit, group: str, levels: np.ndarray, sign: float) -> str:
    """Why these levels' no-pooling estimates run off to infinity (all zeros, all successes)."""
    design = fit.design
    rows = np.isin(design.groups[group][0].codes, levels)
    y, name = design.y[rows], design.response_name
    if sign < 0 and np.all(y == 0):
        return f"all {name} = 0"
    top = design.trials if design.trials is not None else np.ones_like(design.y)
    if (
        sign > 0
        and (fit.model.family.binary_response or design.trials is not None)
        and np.all(y == top[rows])
    ):
        return "all successes"
    return "no finite maximum"


def _plot_shrinkage_2d(fit: Fit, group: str, terms: tuple[str, str], ax=None):
    estimates, columns, sizes = no_pooling(fit, group)
    for t in terms:
        if t not in columns:
            raise KeyError(f"'{t}' does not vary by '{group}'; varying terms: {', '.join(columns)}")
    i, j = (columns.index(t) for t in terms)
    pooled = results.coef(fit, group=group)["mean"]
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 5.5))
    px, py = pooled[terms[0]].to_numpy(), pooled[terms[1]].to_numpy()
    rx, ry = estimates[:, i], estimates[:, j]
    area = 12 + 60 * sizes / sizes.max()
    ok = np.isfinite(rx) & np.isfinite(ry)  # infinite or inestimable ones are counted in the title
    ax.scatter(rx[ok], ry[ok], s=area[ok], facecolors="none", edgecolors="C3", zorder=3,
               label="no pooling (level alone)")  # fmt: skip
    ax.scatter(px, py, s=area, color="C0", label="partial pooling (posterior mean)", zorder=3)
    for a, b, c, d in zip(rx, ry, px, py, strict=True):
        if np.isfinite(a) and np.isfinite(b):
            ax.annotate(
                "", xy=(c, d), xytext=(a, b), arrowprops={"arrowstyle": "->", "color": "0.6", "lw": 0.8}
            )
    fixef = fit.fixef()["mean"]
    center = np.array([fixef.get(terms[0], 0.0), fixef.get(terms[1], 0.0)])
    cov = results.covariance_draws(fit, group).mean(axis=0)[np.ix_([i, j], [i, j])]
    values, vectors = np.linalg.eigh(cov)
    angle = np.degrees(np.arctan2(vectors[1, 1], vectors[0, 1]))
    for level, style in ((0.5, "-"), (0.95, "--")):
        radius = np.sqrt(stats.chi2.ppf(level, 2))
        ax.add_patch(
            Ellipse(
                center,
                2 * radius * np.sqrt(values[1]),
                2 * radius * np.sqrt(values[0]),
                angle=angle,
                fill=False,
                ls=style,
                color="0.3",
                lw=1,
                label=f"population {int(level * 100)}%",
            )
        )
    ax.plot(*center, "k+", ms=10)
    ax.set_xlabel(terms[0])
    ax.set_ylabel(terms[1])
    title = f"Shrinkage of ({terms[0]}, {terms[1]}) by {group}"
    if not ok.all():
        title += (
            f"\n{int((~ok).sum())} levels without a finite no-pooling estimate: only their partial pooling"
        )
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, frameon=False)
    return ax


# ---------------------------------------------------------------------------
# posterior predictive checks

PPC_KINDS = ("density", "hist", "rootogram", "zeros", "dispersion", "stat", "km", "pit", "loo_pit")
# Kinds drawn by ArviZ 1 (arviz-plots), which makes its own figure.
ARVIZ_KINDS = {"density": "plot_ppc_dist", "pit": "plot_ppc_pit", "loo_pit": "plot_loo_pit"}
STATS = {"mean": np.mean, "sd": np.std, "max": np.max, "min": np.min, "median": np.median}


def is_count_response(fit: Fit) -> bool:
    """Counts (a count family's non-negative integers, not 0/1 data): posterior predictive
    checks bin them one bin per count instead of smoothing integers with a density. A
    continuous family's response is never counts, whatever values it takes (lme4's ``cake``
    records whole degrees)."""
    y = fit.design.y
    family = fit.model.family
    if family.continuous or family.binary_response or family.has_categories:
        return False
    return bool(np.all(y >= 0) and np.all(y == np.round(y)) and y.max() > 1)


def _right_censored(fit: Fit) -> bool:
    """Whether some rows are right-censored and none otherwise (survival data)."""
    codes = fit.design.additions.cens
    return codes is not None and bool(np.any(codes == 1)) and bool(np.all(np.isin(codes, (0, 1))))


def kaplan_meier(time: np.ndarray, event: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The Kaplan-Meier estimate of the survival function: the distinct event times and S(t)
    just after each (a censored time counts as at risk at its own time, as R's survfit)."""
    time, event = np.asarray(time, dtype=float), np.asarray(event, dtype=bool)
    order = np.sort(time)
    times = np.unique(time[event])
    at_risk = len(time) - np.searchsorted(order, times, side="left")
    deaths = np.array([np.sum(event & (time == t)) for t in times])
    return times, np.cumprod(1.0 - deaths / at_risk)


def _plot_km(fit: Fit, reps: np.ndarray, ax) -> None:
    """Kaplan-Meier curve of the observed times against the survival curves (1 - ECDF) of
    replicated times, drawn without censoring (bayesplot's ``ppc_km_overlay``): under
    censoring that does not depend on the outcome, the two estimate the same curve."""
    y = fit.design.y
    event = fit.design.additions.cens == 0
    top = np.quantile(reps, 0.99)
    grid = np.linspace(0.0, max(top, y.max()), 200)
    for k, replicate in enumerate(reps):
        survival = 1.0 - np.searchsorted(np.sort(replicate), grid, side="right") / replicate.size
        ax.step(grid, survival, where="post", color="C0", alpha=0.1, lw=0.8,
                label="replicated data sets" if k == 0 else None)  # fmt: skip
    times, survival = kaplan_meier(y, event)
    ax.step(np.r_[0.0, times], np.r_[1.0, survival], where="post", color="k", lw=1.8,
            label="observed (Kaplan-Meier)")  # fmt: skip
    censored = y[~event]
    at = np.searchsorted(times, censored, side="right") - 1
    ax.plot(censored, np.where(at >= 0, survival[np.maximum(at, 0)], 1.0), "|", color="k", ms=7,
            label=f"censored ({censored.size})")  # fmt: skip
    ax.set_xlim(0, grid[-1])
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(fit.design.response_name)
    ax.set_ylabel("share surviving")
    ax.set_title("Survival: observed against replicated")


def default_ppc_kind(fit: Fit) -> str:
    """The kind follows the family, not the values: a density for continuous families, one
    bin per value for binary, binomial and category data, a hanging rootogram for counts, and
    Kaplan-Meier curves for right-censored survival times."""
    family = fit.model.family
    if _right_censored(fit):
        return "km"
    if family.continuous:
        return "density"
    if family.binary_response or family.needs_trials or family.has_categories:
        return "hist"
    return "rootogram" if is_count_response(fit) else "hist"


def _ensure_posterior_predictive(fit: Fit, random_seed) -> None:
    if not has_group(fit.idata, "posterior_predictive"):
        fit.posterior_predictive(random_seed=random_seed)


def _replicates(fit: Fit, num_pp_samples: int, random_seed) -> np.ndarray:
    _ensure_posterior_predictive(fit, random_seed)
    draws = get_group(fit.idata, "posterior_predictive")[fit.design.response_var].values
    flat = draws.reshape(-1, draws.shape[-1])
    pick = np.random.default_rng(random_seed).choice(
        flat.shape[0], min(num_pp_samples, flat.shape[0]), replace=False
    )
    return flat[pick]


def _plot_ppc_arviz(fit: Fit, kind: str, num_pp_samples: int, random_seed):
    """An ArviZ 1 posterior predictive plot of the response; returns its Axes."""
    import arviz as az

    _ensure_posterior_predictive(fit, random_seed)
    name = fit.design.response_var
    options = {"var_names": [name], "backend": "matplotlib"}
    if kind == "density":
        options["num_samples"] = num_pp_samples
    if kind == "loo_pit":
        comparison.add_log_likelihood(fit)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consider using plot_ppc variants")
        collection = getattr(az, ARVIZ_KINDS[kind])(fit.idata, **options)
    ax = collection.viz["plot"][name].item()
    if kind == "density":
        # ArviZ draws the replicates' densities first and the data's last, without a legend.
        replicate, observed = ax.lines[0], ax.lines[-1]
        handles = [Line2D([], [], color=replicate.get_color(), alpha=replicate.get_alpha()),
                   Line2D([], [], color=observed.get_color(), lw=observed.get_linewidth())]  # fmt: skip
        ax.legend(handles, [f"replicated data sets ({len(ax.lines) - 1})", "observed"], fontsize=8,
                  frameon=False)  # fmt: skip
    return ax


def plot_ppc(
    fit: Fit, kind: str | None = None, num_pp_samples: int = 100, stat="mean", random_seed=0, ax=None
):
    """Posterior predictive check; the kinds are documented at :meth:`bayesmm.Fit.plot_ppc`."""
    kind = default_ppc_kind(fit) if kind is None else kind
    if kind not in PPC_KINDS:
        raise ValueError(f"kind must be one of {', '.join(PPC_KINDS)}, got {kind!r}")
    if kind in ARVIZ_KINDS:
        if ax is not None:
            raise ValueError(f"plot_ppc(kind='{kind}') is drawn by ArviZ in its own figure; leave out ax=")
        return _plot_ppc_arviz(fit, kind, num_pp_samples, random_seed)
    y = fit.design.y
    name = fit.design.response_name
    reps = _replicates(
        fit,
        max(num_pp_samples, 500) if kind in ("zeros", "stat", "rootogram") else num_pp_samples,
        random_seed,
    )
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 4))
    if kind == "hist":
        values = np.concatenate([y, reps.ravel()])
        if fit.model.family.has_categories:
            edges = np.arange(0.5, fit.model.family.n_categories + 1.0)
        elif np.all(values == np.round(values)) and np.ptp(values) <= 60:
            edges = np.arange(values.min() - 0.5, values.max() + 1.5)  # one bin per count
        else:
            edges = np.histogram_bin_edges(values, bins=30)
        observed, _ = np.histogram(y, edges)
        replicated = np.array([np.histogram(r, edges)[0] for r in reps])
        centers = (edges[:-1] + edges[1:]) / 2
        ax.bar(centers, observed, width=np.diff(edges), color="0.8", label="observed")
        low, middle, high = np.quantile(replicated, [0.025, 0.5, 0.975], axis=0)
        ax.errorbar(centers, middle, yerr=[middle - low, high - middle], fmt="o", color="C0", ms=3, lw=1,
                    label="replicated median, 95%")  # fmt: skip
        ax.set_xlabel(name)
        ax.set_ylabel("count")
        if fit.model.family.has_categories:  # one bar per category, labelled as in the data
            categories = fit.model.family.categories
            ax.set_xticks(np.arange(1, len(categories) + 1), categories)
            ax.set_xlim(0.4, len(categories) + 0.6)
            ax.set_title("Observed and replicated counts per category")
    elif kind == "rootogram":
        _require_counts(y, kind)
        # Counts up to the data's maximum, or a little past it where replicates reach further.
        k = np.arange(0, int(max(y.max(), np.quantile(reps, 0.99))) + 1)
        frequencies = np.stack([(reps == v).sum(axis=1) for v in k], axis=1)  # replicate x count
        expected = frequencies.mean(axis=0)
        low, high = np.quantile(frequencies, [0.025, 0.975], axis=0)
        observed = np.array([(y == v).sum() for v in k])
        top = np.sqrt(expected)
        ax.bar(k, np.sqrt(observed), bottom=top - np.sqrt(observed), width=0.8, color="0.75",
               label="sqrt(observed), hanging")  # fmt: skip
        ax.plot(k, top, "o-", color="C3", ms=3, label="sqrt(expected)")
        # Where a bar's bottom may end if the model is right: the band of sqrt(expected)
        # - sqrt(replicated) around zero.
        ax.fill_between(k, top - np.sqrt(high), top - np.sqrt(low), step="mid", color="C3", alpha=0.2,
                        label="95% of replicates")  # fmt: skip
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xlim(-0.7, k[-1] + 0.7)
        ax.set_xlabel(name)
        ax.set_ylabel("sqrt(frequency)")
        ax.set_title("Hanging rootogram")
    elif kind == "dispersion":
        _plot_dispersion(fit, ax, max(num_pp_samples, 500), random_seed)
    elif kind == "km":
        if fit.design.additions.cens is None or not np.all(np.isin(fit.design.additions.cens, (0, 1))):
            raise ValueError("plot_ppc(kind='km') is for right-censored survival times: Surv(time, status) "
                             "or y | cens(c) with right-censored rows only")  # fmt: skip
        _plot_km(fit, reps, ax)
    elif kind == "zeros":
        _require_counts(y, kind)
        zeros = (reps == 0).sum(axis=1)
        observed = int((y == 0).sum())
        edges = np.arange(zeros.min() - 0.5, zeros.max() + 1.5, max(1, int(np.ceil(np.ptp(zeros) / 40))))
        ax.hist(zeros, bins=edges, color="0.75", label="replicated data sets")
        ax.axvline(observed, color="C3", lw=2, label=f"observed: {observed}")
        ax.set_xlabel(f"number of zeros in {name}")
        ax.set_title(f"P(replicated zeros ≥ observed) = {np.mean(zeros >= observed):.2f}")
    else:
        function = STATS[stat] if isinstance(stat, str) else stat
        label = stat if isinstance(stat, str) else getattr(stat, "__name__", "statistic")
        values = np.array([function(r) for r in reps])
        observed = function(y)
        ax.hist(values, bins=30, color="0.75", label="replicated data sets")
        ax.axvline(observed, color="C3", lw=2, label=f"observed: {observed:.4g}")
        ax.set_xlabel(f"{label}({name})")
        ax.set_title(f"P(T(replicated) ≥ T(observed)) = {np.mean(values >= observed):.2f}")
    ax.legend(fontsize=8, frameon=False)
    return ax


def dispersion_draws(fit: Fit, random_seed=0) -> tuple[np.ndarray, np.ndarray]:
    """Per posterior draw, the Pearson dispersion sum((y - mu)^2 / V(mu)) / n of the observed
    and of that draw's replicated data, mu being the draw's expected response and V the
    Poisson variance (counts) or the binomial one, mu (1 - mu / trials)."""
    y = fit.design.y
    family = fit.model.family
    if not (is_count_response(fit) or family.binary_response or family.needs_trials):
        raise ValueError("plot_ppc(kind='dispersion') is for counts and binomial data")
    _ensure_posterior_predictive(fit, random_seed)
    replicated = get_group(fit.idata, "posterior_predictive")[fit.design.response_var].values
    mu = fit.predict(kind="mean", summary=False).values
    replicated, mu = replicated.reshape(-1, y.size), mu.reshape(-1, y.size)
    if family.binary_response or family.needs_trials:
        trials = np.ones_like(y) if fit.design.trials is None else fit.design.trials
        variance = mu * (1 - mu / trials)
    else:
        variance = mu
    variance = np.maximum(variance, 1e-12)
    observed = ((y - mu) ** 2 / variance).mean(axis=1)
    return observed, ((replicated - mu) ** 2 / variance).mean(axis=1)


def _plot_dispersion(fit: Fit, ax, num_pp_samples: int, random_seed) -> None:
    observed, replicated = dispersion_draws(fit, random_seed)
    pick = np.random.default_rng(random_seed).choice(observed.size, min(num_pp_samples, observed.size), False)
    ax.scatter(replicated[pick], observed[pick], s=6, color="C0", alpha=0.4, label="posterior draws")
    low = min(observed[pick].min(), replicated[pick].min())
    high = max(observed[pick].max(), replicated[pick].max())
    ax.plot([low, high], [low, high], color="0.3", lw=1, label="observed = replicated")
    p = float(np.mean(replicated >= observed))
    ax.set_xlabel("dispersion of replicated data")
    ax.set_ylabel("dispersion of observed data")
    verdict = (
        "more variation than the model produces"
        if p < 0.05
        else "less variation than the model produces"
        if p > 0.95
        else "consistent with the model"
    )
    ax.set_title(f"Pearson dispersion Σ(y−μ)²/V(μ)/n: P(replicated ≥ observed) = {p:.2f}\n({verdict})",
                 fontsize=10)  # fmt: skip


def _require_counts(y: np.ndarray, kind: str) -> None:
    if np.any(y < 0) or np.any(y != np.round(y)):
        raise ValueError(f"plot_ppc(kind='{kind}') is for count responses")


# ---------------------------------------------------------------------------
# priors


def plot_priors(fit: Fit, draws: int = 2000, random_seed=0, axes=None):
    """Prior against posterior densities; documented at :meth:`bayesmm.Fit.plot_priors`."""
    # Only the parameters' priors: the response's prior predictive is not needed (and can
    # overflow for counts under wide priors).
    prior = fit.model.prior_draws(draws=draws, random_seed=random_seed)
    posterior = results.summary_draws(fit)
    prior_draws = _summary_prior_draws(fit, prior)
    names = list(posterior)
    records = results.parameters(fit)
    if axes is None:
        cols = min(3, len(names))
        rows = int(np.ceil(len(names) / cols))
        _, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.4 * rows), squeeze=False)
    flat_axes = np.ravel(axes)
    for ax, name in zip(flat_axes, names, strict=False):
        post = posterior[name].ravel()
        low, high = np.quantile(post, [0.001, 0.999])
        width = high - low
        grid = np.linspace(low - width, high + width, 300)
        if records[name].positive:
            grid = grid[grid > 0]
        if records[name].kind == "cor":
            grid = np.linspace(-0.999, 0.999, 300)
        ax.fill_between(grid, stats.gaussian_kde(prior_draws[name])(grid), color="0.8", label="prior")
        ax.plot(grid, stats.gaussian_kde(post)(grid), color="C0", label="posterior")
        ax.set_title(name, fontsize=9)
        ax.set_yticks([])
    for ax in flat_axes[len(names) :]:
        ax.set_visible(False)
    flat_axes[0].legend(fontsize=8, frameon=False)
    flat_axes[0].figure.tight_layout()
    return axes


def _summary_prior_draws(fit: Fit, prior) -> dict[str, np.ndarray]:
    """Prior draws under the summary's names (the prior group has the model's variable names)."""
    from .summaries import summary_draws_from

    return {name: values.ravel() for name, values in summary_draws_from(fit, prior).items()}


def plot_trace(fit: Fit, **kwargs):
    """ArviZ's trace plot of the summary's parameters, titled with the summary's names and with
    a legend of the chains; documented at :meth:`bayesmm.Fit.plot_trace`."""
    import arviz as az

    kwargs.setdefault("backend", "matplotlib")
    # Constrained layout keeps each row's titles clear of the x-labels above them.
    kwargs["figure_kwargs"] = {"layout": "constrained", **kwargs.get("figure_kwargs", {})}
    draws = results.summary_draws(fit)
    wanted = kwargs.get("var_names")
    wanted = [wanted] if isinstance(wanted, str) else wanted
    if wanted is None or all(name in draws for name in wanted):
        tree = _summary_tree(fit, draws)
    else:  # the posterior's own variables (r_Subject, ...)
        tree = fit.idata
    collection = az.plot_trace(tree, **kwargs)
    collection.add_legend("chain")
    return collection


def _summary_tree(fit: Fit, draws: dict[str, np.ndarray]):
    """A DataTree whose posterior holds the summary's rows by their names (and the fit's
    sample stats, for the divergence marks)."""
    import xarray as xr

    posterior = get_group(fit.idata, "posterior")
    coords = {"chain": posterior["chain"].values, "draw": posterior["draw"].values}
    groups = {"posterior": xr.Dataset({name: (("chain", "draw"), value) for name, value in draws.items()},
                                      coords=coords)}  # fmt: skip
    if has_group(fit.idata, "sample_stats"):
        groups["sample_stats"] = get_group(fit.idata, "sample_stats")
    return xr.DataTree.from_dict(groups)


def summary_variables(fit: Fit) -> list[str]:
    """The posterior variables behind the summary's rows (fixef, sd_, cor_, family parameters)."""
    model = fit.model
    return reported_variables(model.design, model.family, model.parts, group_effects=False)
