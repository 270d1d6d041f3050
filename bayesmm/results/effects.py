"""What the model says a predictor does: conditional effects (brms's ``conditional_effects``,
bambi's ``plot_predictions``) and pairwise contrasts of a factor's levels (in the spirit of
emmeans).

Both predict on a reference grid built from the model frame: the predictor of interest
over its range (a number) or its levels (a factor), the other predictors at their means
(numbers) or reference levels (factors), as brms does. Predictions go through
``fit.predict`` on that grid, so transforms, contrasts and new-level rules are the fitted
model's own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations, product
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..design.build import DataError
from .predict import drops_all_groups
from .summaries import interval_names

if TYPE_CHECKING:  # pragma: no cover
    from .fit import Fit

__all__ = ["conditional_effects", "contrasts", "reference_grid", "marginal_means", "MarginalMeans"]

# Points along a numeric predictor's range (brms's resolution).
RESOLUTION = 100
# The level a grid row gets for each grouping factor: never a fitted one.
NEW_LEVEL = "(new level)"


def _is_factor(column: pd.Series) -> bool:
    """Categories (a categorical, text or logical column), not a number."""
    dtype = column.dtype
    return (
        isinstance(dtype, pd.CategoricalDtype)
        or pd.api.types.is_bool_dtype(dtype)
        or not pd.api.types.is_numeric_dtype(dtype)
    )


def _levels(column: pd.Series) -> list:
    if isinstance(column.dtype, pd.CategoricalDtype):
        present = set(column.dropna().unique())
        return [c for c in column.cat.categories if c in present]
    if pd.api.types.is_bool_dtype(column):
        return [False, True]
    return sorted(column.dropna().unique(), key=str)


def _predictors(fit: Fit) -> tuple[list[str], list[str], pd.DataFrame]:
    """The model frame's predictor columns (not the response or trials), the columns that
    only name groups, and the frame restricted to the fitted rows. A column that is a fixed
    effect and also names groups (a treatment whose replicates are nested in it,
    ``recipe + (1 | recipe:replicate)``) is a predictor."""
    model = fit.model
    frame = model.model_frame.loc[fit.design.rows]
    designs = [fit.design, *model.parts.values()]
    group_columns = dict.fromkeys(f for d in designs for t in d.random for f in t.spec.group_factors)
    response = {c for e in fit.design.responses for c in e.columns}
    predictors = []
    for design in designs:
        predictors += design.fixed_terms.columns + [c for e in design.offset_expressions for c in e.columns]
        predictors += [c for t in design.random for c in t.terms.columns]
    monotonic = {t.column: t for d in designs for t in d.monotonic}
    predictors += list(monotonic) + [c for d in designs for s in [*d.smooths, *d.gps] for c in s.predictors]
    predictors = [c for c in dict.fromkeys(predictors) if c not in response | {model.trials_column}]
    groups = [c for c in group_columns if c not in predictors]
    # A number entered as factor(x) or C(x) takes its levels only (the grid's mean of it is no level).
    as_factor = {o.expression.columns[0] for d in designs for o in d.fixed_terms.operands
                 if o.kind == "factor" and len(o.expression.columns) == 1}  # fmt: skip
    for column in as_factor & set(predictors):
        if not _is_factor(frame[column]):
            frame = frame.assign(**{column: pd.Categorical(frame[column])})
    for column, term in monotonic.items():
        # A mo() predictor takes its levels only: an integer one becomes an ordered factor of them.
        if not isinstance(frame[column].dtype, pd.CategoricalDtype):
            values = [int(v) for v in term.levels]
            frame = frame.assign(**{column: pd.Categorical(frame[column].astype(int), categories=values,
                                                           ordered=True)})  # fmt: skip
    return predictors, groups, frame


def _values(column: pd.Series, resolution: int) -> list:
    if _is_factor(column):
        return _levels(column)
    return list(np.linspace(column.min(), column.max(), resolution))


def _by_values(column: pd.Series) -> list:
    """The ``by`` variable's values: its levels, or (a number) its mean and mean +- 1 SD (brms)."""
    if _is_factor(column):
        return _levels(column)
    mean, sd = float(column.mean()), float(column.std())
    return [mean - sd, mean, mean + sd]


def _typical(column: pd.Series):
    """A predictor held fixed: its mean (a number) or reference level (a factor)."""
    if _is_factor(column):
        return _levels(column)[0]
    if pd.api.types.is_integer_dtype(column) and not pd.api.types.is_bool_dtype(column):
        return float(column.mean())
    return column.mean()


def reference_grid(fit: Fit, varying: dict[str, list], conditions: dict | None = None) -> pd.DataFrame:
    """Every combination of the ``varying`` predictors' values, the other predictors at their
    means or reference levels (or as ``conditions`` gives them), and the columns that only
    name groups at a level the fit has not seen; predictions on it hold group effects at zero
    (``re_form="~0"``) unless asked otherwise. (Binomial trials are 1: proportions.)"""
    predictors, groups, frame = _predictors(fit)
    conditions = dict(conditions or {})
    unknown = [c for c in [*varying, *conditions] if c not in predictors]
    if unknown:
        raise DataError(
            f"{', '.join(repr(c) for c in unknown)} {'is' if len(unknown) == 1 else 'are'} not a predictor "
            f"of this model; its predictors are {', '.join(predictors) or 'none'}"
        )
    combos = list(product(*varying.values())) or [()]
    grid = pd.DataFrame(combos, columns=list(varying))
    for column in predictors:
        if column in varying:
            continue
        grid[column] = conditions[column] if column in conditions else _typical(frame[column])
    for column in predictors + list(varying):
        source = frame[column]
        if isinstance(source.dtype, pd.CategoricalDtype):
            grid[column] = pd.Categorical(grid[column], categories=source.cat.categories,
                                          ordered=source.cat.ordered)  # fmt: skip
    for group in groups:
        grid[group] = NEW_LEVEL
    return grid


def _parse_effect(effect: str, by: str | None) -> tuple[str, str | None]:
    if not isinstance(effect, str) or not effect.strip():
        raise ValueError(
            f"conditional_effects takes a predictor's name, such as 'x' or 'x:f'; got {effect!r}"
        )
    names = [n.strip() for n in effect.split(":")]
    if len(names) > 2 or (len(names) == 2 and by is not None):
        raise ValueError(
            f"give one predictor and at most one 'by' (as 'x:f' or by='f'), got {effect!r}, by={by!r}"
        )
    return (names[0], names[1]) if len(names) == 2 else (names[0], by)


def _draws(fit: Fit, grid: pd.DataFrame, scale: str, re_form) -> np.ndarray:
    """(draws, rows) predictions on the grid: the expected response or the linear predictor."""
    kind = {"response": "mean", "linear": "linear"}.get(scale)
    if kind is None:
        raise ValueError(f"scale must be 'response' or 'linear', got {scale!r}")
    new_levels = "population" if drops_all_groups(re_form) else "sample"
    trials = np.ones(len(grid)) if fit.design.trials is not None else None  # binomial: proportions
    values = fit.predict(grid, kind=kind, re_form=re_form, new_levels=new_levels, summary=False,
                         random_seed=0, trials=trials)  # fmt: skip
    return values.values.reshape(-1, len(grid))


def _contrast_row(label: str, difference: np.ndarray, prob: float) -> dict:
    """One pairwise difference's row: its mean, SD, central interval and the posterior
    probability of its sign (p_direction)."""
    lo, hi = interval_names(prob)
    q = np.quantile(difference, [(1 - prob) / 2, (1 + prob) / 2])
    sign = max(np.mean(difference > 0), np.mean(difference < 0))
    row = {"contrast": label, "estimate": difference.mean(), "sd": difference.std(ddof=1)}
    return {**row, lo: q[0], hi: q[1], "p_direction": sign}


def _summarise(draws: np.ndarray, prob: float) -> dict[str, np.ndarray]:
    lo, hi = interval_names(prob)
    q = np.quantile(draws, [(1 - prob) / 2, 0.5, (1 + prob) / 2], axis=0)
    return {"estimate": draws.mean(axis=0), "median": q[1], lo: q[0], hi: q[2]}


def conditional_effects(
    fit: Fit,
    effect: str,
    by: str | None = None,
    scale: str = "response",
    re_form="~0",
    conditions: dict | None = None,
    prob: float = 0.95,
    resolution: int = RESOLUTION,
) -> pd.DataFrame:
    """The expected response (or linear predictor) over one predictor's values, per level of
    ``by``; see :meth:`bayesmm.Fit.conditional_effects`."""
    x, by = _parse_effect(effect, by)
    _, _, frame = _predictors(fit)
    varying = {x: _values(frame[x], resolution)} if x in frame.columns else {x: []}
    if by is not None:
        if by == x:
            raise ValueError(f"'{x}' cannot be its own 'by'")
        varying[by] = _by_values(frame[by]) if by in frame.columns else []
    grid = reference_grid(fit, varying, conditions)
    table = grid[list(varying)].copy()
    for name, values in _summarise(_draws(fit, grid, scale, re_form), prob).items():
        table[name] = values
    table.attrs.update({"effect": x, "by": by, "scale": scale, "prob": prob, "re_form": re_form})
    return table


def contrasts(
    fit: Fit, factor: str, by: str | None = None, scale: str = "response", re_form="~0", prob: float = 0.95
) -> pd.DataFrame:
    """Pairwise differences between a factor's levels; see :meth:`bayesmm.Fit.contrasts`."""
    predictors, _, frame = _predictors(fit)
    if factor not in predictors:
        raise DataError(
            f"'{factor}' is not a predictor of this model; its predictors are {', '.join(predictors)}"
        )
    if not _is_factor(frame[factor]):
        raise DataError(f"'{factor}' is a number, not a factor: contrasts compare a factor's levels "
                        f"(conditional_effects('{factor}') shows a number's effect)")  # fmt: skip
    levels = _levels(frame[factor])
    by_values = [None] if by is None else _by_values(frame[by])
    # Other factors are averaged over their levels with equal weights (emmeans's reference grid).
    others = {c: _levels(frame[c]) for c in predictors if c not in (factor, by) and _is_factor(frame[c])}
    varying = {factor: levels, **({by: by_values} if by is not None else {}), **others}
    grid = reference_grid(fit, varying)
    draws = _draws(fit, grid, scale, re_form)
    rows = []
    for value in by_values:
        at = np.ones(len(grid), dtype=bool) if by is None else (grid[by] == value).to_numpy()
        means = {level: draws[:, at & (grid[factor] == level).to_numpy()].mean(axis=1) for level in levels}
        for a, b in combinations(levels, 2):
            row = _contrast_row(f"{b} - {a}", means[b] - means[a], prob)
            rows.append(row if by is None else {by: value, **row})
    table = pd.DataFrame(rows)
    table.attrs.update({"factor": factor, "by": by, "scale": scale, "prob": prob})
    return table


@dataclass
class MarginalMeans:
    """Estimated marginal means (emmeans's EMMs) with their posterior draws, as
    [`Fit.marginal_means`][bayesmm.Fit.marginal_means] returns them.

    Parameters
    ----------
    table
        One row per level of the specs (and of ``by``): ``estimate``, ``sd``, ``median``
        and the interval's ends.
    draws
        The posterior draws, (draws, rows of ``table``).
    specs
        The factors the means are per level of.
    by
        The factor they are within, or None.
    scale
        ``"response"`` or ``"linear"``.
    prob
        The intervals' probability.

    Examples
    --------
    >>> cbpp = bm.datasets.load("cbpp")
    >>> cbpp_fit = bm.Model("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp,
    ...                     family="binomial").fit(draws=300, chains=2, progressbar=False)
    >>> means = cbpp_fit.marginal_means("period")
    >>> means.table["estimate"]
    """

    table: pd.DataFrame
    draws: np.ndarray = field(repr=False)  # (draws, rows of table)
    specs: list[str] = field(default_factory=list)
    by: str | None = None
    scale: str = "response"
    prob: float = 0.95

    def contrasts(self, prob: float | None = None) -> pd.DataFrame:
        """Pairwise differences of the marginal means, draw by draw, within each level of
        ``by`` (emmeans's ``pairs()``), on the means' own scale.

        Parameters
        ----------
        prob
            Probability of the central interval; None: the means' own.

        Returns
        -------
        pandas.DataFrame
            One row per pair: ``contrast`` (``"b - a"``), ``estimate``, ``sd``, the interval's
            ends and ``p_direction``, the posterior probability of the estimate's sign.

        Examples
        --------
        >>> cbpp = bm.datasets.load("cbpp")
        >>> cbpp_fit = bm.Model("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp,
        ...                     family="binomial").fit(draws=300, chains=2, progressbar=False)
        >>> cbpp_fit.marginal_means("period").contrasts()
        """
        prob = self.prob if prob is None else prob
        labels = [" ".join(str(v) for v in row) for row in self.table[self.specs].itertuples(index=False)]
        groups = [None] if self.by is None else list(dict.fromkeys(self.table[self.by]))
        rows = []
        for value in groups:
            at = np.ones(len(self.table), bool) if value is None else self.table[self.by].eq(value).to_numpy()
            for a, b in combinations(np.flatnonzero(at), 2):
                row = _contrast_row(f"{labels[b]} - {labels[a]}", self.draws[:, b] - self.draws[:, a], prob)
                rows.append(row if value is None else {self.by: value, **row})
        return pd.DataFrame(rows)

    def __repr__(self) -> str:
        return f"Estimated marginal means ({self.scale} scale)\n{self.table.to_string()}"

    def _repr_html_(self) -> str:
        return f"<h4>Estimated marginal means ({self.scale} scale)</h4>" + self.table.to_html()


def marginal_means(fit: Fit, specs, by=None, weights="equal", scale="response", prob=0.95) -> MarginalMeans:
    """Estimated marginal means over a reference grid; see :meth:`bayesmm.Fit.marginal_means`."""
    specs = [specs] if isinstance(specs, str) else list(specs)
    if weights not in ("equal", "proportional"):
        raise ValueError(f"weights must be 'equal' or 'proportional' (emmeans's), got {weights!r}")
    if scale not in ("response", "linear"):
        raise ValueError(f"scale must be 'response' or 'linear', got {scale!r}")
    if fit.model.family.has_categories:
        raise ValueError("marginal means of an ordinal or categorical model are not supported: use "
                         "predict(kind='probs') on a grid")  # fmt: skip
    predictors, _, frame = _predictors(fit)
    named = [*specs, *([by] if by is not None else [])]
    if len(set(named)) != len(named) or not specs:
        raise ValueError(f"give one or more factors, each once, in specs and by; got {specs!r}, by={by!r}")
    for name in named:
        if name not in predictors:
            known = ", ".join(predictors)
            raise DataError(f"'{name}' is not a predictor of this model; its predictors are {known}")
        if not _is_factor(frame[name]):
            raise DataError(f"'{name}' is a number, not a factor: marginal means are per level of factors "
                            f"(conditional_effects('{name}') shows a number's effect)")  # fmt: skip
    # The reference grid (emmeans's): every level of every factor, numbers at their means.
    others = [c for c in predictors if c not in named and _is_factor(frame[c])]
    varying = {c: _levels(frame[c]) for c in [*named, *others]}
    grid = reference_grid(fit, varying)
    eta = _draws(fit, grid, "linear", "~0")
    if others and weights == "proportional":  # each combination of the others as often as in the data
        counts = frame.groupby(others, observed=True).size()
        cell_weights = np.array([counts.get(tuple(row) if len(others) > 1 else row[0], 0)
                                 for row in grid[others].itertuples(index=False)], dtype=float)  # fmt: skip
    else:
        cell_weights = np.ones(len(grid))
    keys = grid[named].apply(tuple, axis=1)
    table = grid[named].drop_duplicates().reset_index(drop=True)
    columns = []
    for key in table.apply(tuple, axis=1):
        at = (keys == key).to_numpy()
        w = cell_weights[at]
        if w.sum() == 0:
            raise DataError(f"no data row has {dict(zip(named, key, strict=True))} with any combination of "
                            f"{', '.join(others)}: weights='proportional' cannot average there")  # fmt: skip
        columns.append(eta[:, at] @ (w / w.sum()))
    draws = np.column_stack(columns)
    if scale == "response":  # emmeans's back-transformation of the averaged linear predictor
        draws = fit.model.family.link.inverse(draws)
    for name, values in _summarise(draws, prob).items():
        table[name] = values
    table.insert(len(named) + 1, "sd", draws.std(axis=0, ddof=1))
    return MarginalMeans(table, draws, specs, by, scale, prob)


def plot_conditional_effects(fit: Fit, table: pd.DataFrame, points: bool = False, ax=None):
    """A line with its credible band per ``by`` value (a numeric predictor), or points with
    intervals (a factor); with ``points`` the data as well (on the response scale)."""
    import matplotlib.pyplot as plt

    x, by, prob = table.attrs["effect"], table.attrs["by"], table.attrs["prob"]
    lo, hi = interval_names(prob)
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 4))
    _, _, frame = _predictors(fit)
    numeric = not _is_factor(frame[x])
    groups = [(None, table)] if by is None else list(table.groupby(by, sort=False, observed=True))
    offsets = np.linspace(-0.15, 0.15, len(groups)) if len(groups) > 1 else [0.0]
    levels = _levels(frame[x]) if not numeric else None
    for k, (value, rows) in enumerate(groups):
        label = (
            None if by is None else f"{by} = {value:.3g}" if isinstance(value, float) else f"{by} = {value}"
        )
        if numeric:
            ax.plot(rows[x], rows["estimate"], color=f"C{k}", label=label)
            ax.fill_between(rows[x], rows[lo], rows[hi], color=f"C{k}", alpha=0.2, lw=0)
        else:
            position = np.array([levels.index(v) for v in rows[x]]) + offsets[k]
            error = [rows["estimate"] - rows[lo], rows[hi] - rows["estimate"]]
            ax.errorbar(position, rows["estimate"], yerr=error, fmt="o", color=f"C{k}", label=label,
                        capsize=3)  # fmt: skip
    if not numeric:
        ax.set_xticks(range(len(levels)), [str(v) for v in levels])
    if points:
        if table.attrs["scale"] != "response":
            raise ValueError(
                "points=True draws the data, which are on the response scale: use scale='response'"
            )
        y = fit.design.y / (fit.design.trials if fit.design.trials is not None else 1.0)
        xs = frame[x].to_numpy() if numeric else np.array([levels.index(v) for v in frame[x]], dtype=float)
        jitter = 0.0 if numeric else np.random.default_rng(0).uniform(-0.1, 0.1, len(xs))
        ax.scatter(xs + jitter, y, s=8, color="0.4", alpha=0.4, zorder=0, label="data")
    ax.set_xlabel(x)
    scale = "linear predictor" if table.attrs["scale"] == "linear" else f"E({fit.design.response_name})"
    ax.set_ylabel(scale)
    population = drops_all_groups(table.attrs["re_form"])
    groups_text = "population level" if population else "a new level of each group"
    ax.set_title(f"Conditional effect of {x} ({int(prob * 100)}% intervals, {groups_text})", fontsize=10)
    if by is not None or points:
        ax.legend(fontsize=8, frameon=False)
    return ax
