"""brms's monotonic effects ``mo(x)``: an ordered predictor with levels 0, 1, ..., D enters as
b * D * sum(zeta[1..x]), zeta a simplex of D increments (bayesmm.model.builder samples b and
zeta). Here: each row's level code and the cumulative indicator matrix M (rows x D),
M[i, k] = 1 where row i's level is above k, so that the effect is M @ (b D zeta)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..spec.functions import level_label
from .errors import DataError, missing_column_error

__all__ = ["Monotonic", "read_monotonic", "varying_monotonic", "placeholder_expr"]

# mo(x) in a random-effect term's varying part, (mo(x) | g): its column, and the placeholder
# column `mo(x)` that stands for it in the term's matrix (the level codes 0..D; the model
# puts the monotonic transform D sum(zeta[1..x]) there, bayesmm.model.builder).
_MO_CALL = re.compile(r"\bmo\s*\(\s*`?([A-Za-z_.][\w.]*)`?\s*\)")


def varying_monotonic(expr: str) -> list[str]:
    """The columns x of the mo(x) in a random-effect term's varying part, in order."""
    return list(dict.fromkeys(_MO_CALL.findall(expr)))


def placeholder_expr(expr: str) -> str:
    """The varying part with each mo(x) as the column `mo(x)` (its placeholder)."""
    return _MO_CALL.sub(lambda m: f"`mo({m.group(1)})`", expr)


@dataclass
class Monotonic:
    """One ``mo(x)`` term: the column, its levels in order (labels), each row's level code."""

    column: str
    levels: list[str]
    codes: np.ndarray  # (rows,) integers 0..D

    @property
    def name(self) -> str:
        return f"mo({self.column})"

    @property
    def n_steps(self) -> int:
        """D: the number of increments between the first level and the last."""
        return len(self.levels) - 1

    def transform(self, shares) -> np.ndarray:
        """D sum(zeta[1..level]) at each level 0..D, from the shares zeta (D,) or their draws
        (draws x D): the levels' effects per unit of bsp."""
        steps = np.cumsum(self.n_steps * np.asarray(shares, dtype=float), axis=-1)
        return np.concatenate([np.zeros(steps.shape[:-1] + (1,)), steps], axis=-1)

    def matrix(self, codes: np.ndarray | None = None) -> np.ndarray:
        """The cumulative indicators (rows x D) of ``codes`` (default: the fitted rows')."""
        codes = self.codes if codes is None else codes
        return (codes[:, None] > np.arange(self.n_steps)[None, :]).astype(float)

    def encode(self, data: pd.DataFrame, where: str) -> np.ndarray:
        """New rows' level codes, by the fitted levels; an unseen level is refused."""
        if self.column not in data.columns:
            raise missing_column_error(self.column, where, data.columns)
        labels = _labels(data[self.column], self.column)
        index = {level: k for k, level in enumerate(self.levels)}
        unseen = [label for label in dict.fromkeys(labels) if label not in index]
        if unseen:
            raise DataError(
                f"{self.name} in {where} has level(s) {', '.join(map(repr, unseen[:5]))} that the fitted "
                f"data did not have (levels {', '.join(self.levels)})"
            )
        return np.array([index[label] for label in labels], dtype=np.int64)


def _labels(column: pd.Series, name: str) -> list[str]:
    if column.isna().any():
        row = column.index[int(np.argmax(column.isna().to_numpy()))]
        raise DataError(f"mo({name}) has a missing value in row {row!r}")
    if isinstance(column.dtype, pd.CategoricalDtype):
        return [level_label(v) for v in column.astype(object)]
    whole = lambda v: isinstance(v, (int, float, np.integer, np.floating)) and float(v).is_integer()  # noqa: E731
    return [level_label(int(v)) if whole(v) else level_label(v) for v in column]


def read_monotonic(column: str, data: pd.DataFrame) -> tuple[list[str], np.ndarray]:
    """The levels of ``mo(column)`` and each row's code: an ordered categorical's categories in
    their order, or the integers from the smallest to the largest value (every one a level,
    seen or not, as brms); anything else is refused, saying what to write."""
    if column not in data.columns:
        raise missing_column_error(column, f"mo({column})", data.columns)
    values = data[column].dropna()
    if isinstance(values.dtype, pd.CategoricalDtype):
        if not values.cat.ordered:
            raise DataError(
                f"mo({column}) needs an ordered predictor; '{column}' is an unordered categorical: make it "
                f"pd.Categorical(..., categories=[...], ordered=True) in the order of its levels"
            )
        levels = [level_label(c) for c in values.cat.categories]
        codes = data[column].cat.codes.to_numpy().astype(float)
        codes[codes < 0] = np.nan
    elif pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        numbers = values.to_numpy(dtype=float)
        if not np.all(numbers == np.round(numbers)):
            bad = values.index[int(np.argmax(numbers != np.round(numbers)))]
            raise DataError(
                f"mo({column}) needs an ordered factor or integers; '{column}' holds {values[bad]:g} in row "
                f"{bad!r}: a continuous predictor enters as a number (y ~ {column})"
            )
        low, high = int(numbers.min()), int(numbers.max())
        levels = [str(v) for v in range(low, high + 1)]
        codes = data[column].to_numpy(dtype=float) - low
    else:
        raise DataError(
            f"mo({column}) needs an ordered factor or integers; '{column}' holds text: make it an ordered "
            f"pd.Categorical(..., ordered=True)"
        )
    if len(levels) < 2:
        raise DataError(f"mo({column}) has a single level ({levels[0]}): there is no effect to estimate")
    if len(levels) > 100:
        raise DataError(f"mo({column}) has {len(levels)} levels: enter '{column}' as a number instead")
    return levels, codes
