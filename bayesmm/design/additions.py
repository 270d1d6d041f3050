"""brms's addition terms, read from the data: a known standard error per row (``se()``),
likelihood weights (``weights()``), censoring (``cens()``, and ``Surv()``'s status) and
truncation bounds (``trunc()``). One :class:`Additions` record per design, row for row with
its response; the families read it (bayesmm.families.additions) and nothing else re-reads
the data.

Censoring is coded as brms codes it: -1 left (the value is at most y), 0 none, 1 right (at
least y), 2 interval (between y and y2).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np
import pandas as pd

from ..spec.formula import Addition, ParsedFormula
from .errors import DataError, missing_column_error

__all__ = ["Additions", "read_additions", "CENSORING"]

# brms's spellings of the censoring codes, and what each means here.
CENSORING = {"left": -1, "none": 0, "right": 1, "interval": 2}
_MEANING = {-1: "left-censored", 0: "observed", 1: "right-censored", 2: "interval-censored"}


@dataclass
class Additions:
    """The addition terms' values for the design's rows (None where the formula has none).

    ``se`` the known standard error of each row and ``sigma`` whether a residual SD is
    estimated besides (brms's ``se(s, sigma = TRUE)``); ``weights`` each row's likelihood
    weight; ``cens`` the censoring codes (-1, 0, 1, 2) and ``y2`` the upper ends of the
    interval-censored rows; ``lb`` and ``ub`` the truncation bounds (-inf and inf where
    there is none).
    """

    se: np.ndarray | None = None
    sigma: bool = False
    weights: np.ndarray | None = None
    cens: np.ndarray | None = None
    y2: np.ndarray | None = None
    lb: np.ndarray | None = None
    ub: np.ndarray | None = None
    columns: tuple[str, ...] = ()  # the data columns they read

    @property
    def any(self) -> bool:
        return any(getattr(self, f) is not None for f in ("se", "weights", "cens", "lb"))

    @property
    def bounded(self) -> bool:
        """Whether the likelihood is censored or truncated (not only weighted or with known SEs)."""
        return self.cens is not None and bool(np.any(self.cens != 0)) or self.lb is not None

    def take(self, index) -> Additions:
        """The same additions for a subset of the rows (an index or a boolean mask)."""
        values = {
            f.name: getattr(self, f.name)[index]
            for f in fields(self)
            if isinstance(getattr(self, f.name), np.ndarray)
        }
        return replace(self, **values)

    def describe(self) -> list[str]:
        """One line per addition term, for the summary's header."""
        lines = []
        if self.se is not None:
            residual = " plus an estimated residual SD" if self.sigma else ""
            lines.append(
                f"known standard errors se() {np.min(self.se):.3g} to {np.max(self.se):.3g}{residual}"
            )
        if self.weights is not None:
            lines.append(f"likelihood weights: sum {np.sum(self.weights):.6g} over {self.weights.size} rows")
        if self.cens is not None:
            counts = [
                f"{int(np.sum(self.cens == c))} {_MEANING[c]}"
                for c in (0, -1, 1, 2)
                if np.any(self.cens == c)
            ]
            lines.append("censoring: " + ", ".join(counts))
        if self.lb is not None:
            lower, upper = np.unique(self.lb), np.unique(self.ub)
            show = lambda v: f"{v[0]:g}" if v.size == 1 else "per row"  # noqa: E731
            lines.append(f"truncated to [{show(lower)}, {show(upper)}]")
        return lines


def read_additions(parsed: ParsedFormula, data: pd.DataFrame) -> tuple[Additions, dict[str, np.ndarray]]:
    """The addition terms' values on every row of ``data``, and for each a mask of the rows
    whose value is missing (dropped with the other incomplete rows)."""
    values: dict[str, object] = {}
    missing: dict[str, np.ndarray] = {}
    columns: list[str] = []

    def column(addition: Addition, key: str, numeric: bool = True):
        name = addition.get(key)
        if name is None:
            return None
        if name not in data.columns:
            raise missing_column_error(name, f"{addition.name}()", data.columns)
        columns.append(name)
        series = data[name]
        if not numeric:
            return series
        number = pd.to_numeric(series, errors="coerce")
        text = number.isna() & series.notna()
        if text.any():
            row = series.index[int(np.argmax(text.to_numpy()))]
            raise DataError(
                f"column '{name}' in {addition.name}() must hold numbers; row {row!r} holds {series[row]!r}"
            )
        return number.to_numpy(dtype=float)

    se = parsed.addition("se")
    if se is not None:
        values["se"] = column(se, "se")
        values["sigma"] = se.get("sigma") in ("TRUE", "T")
        missing[f"se({se.get('se')})"] = np.isnan(values["se"])
    weights = parsed.addition("weights")
    if weights is not None:
        values["weights"] = column(weights, "weights")
        missing[f"weights({weights.get('weights')})"] = np.isnan(values["weights"])
    cens = parsed.addition("cens")
    if cens is not None:
        if cens.get("status") is not None:
            codes = _status_codes(column(cens, "status", numeric=False), cens.get("status"))
            label = f"Surv()'s status {cens.get('status')}"
        else:
            codes = _censoring_codes(column(cens, "cens", numeric=False), cens.get("cens"))
            label = f"cens({cens.get('cens')})"
        missing[label] = np.isnan(codes)
        values["cens"] = codes
        y2 = column(cens, "y2")
        if y2 is not None:
            values["y2"] = y2
            missing[f"cens()'s y2 {cens.get('y2')}"] = (codes == 2) & np.isnan(y2)
        elif np.any(codes == 2):
            row = data.index[int(np.argmax(codes == 2))]
            raise DataError(
                f"row {row!r} is interval-censored in cens({cens.get('cens')}) but cens() has no upper "
                "bound: write y | cens(c, y2) ~ ..., y2 the column of the intervals' upper ends"
            )
    trunc = parsed.addition("trunc")
    if trunc is not None:
        for key, default in (("lb", -np.inf), ("ub", np.inf)):
            given = trunc.get(key)
            if given is None:
                bound = np.full(len(data), default)
            elif given in data.columns:
                bound = column(trunc, key)
                missing[f"trunc()'s {key} {given}"] = np.isnan(bound)
            else:
                try:
                    number = float(given)
                except ValueError:
                    raise missing_column_error(given, "trunc()", data.columns) from None
                bound = np.full(len(data), number)
            values[key] = bound
    return Additions(**values, columns=tuple(dict.fromkeys(columns))), missing


def _censoring_codes(series: pd.Series, name: str) -> np.ndarray:
    """brms's censoring codes: "left", "none", "right", "interval", or -1, 0, 1, 2, or a
    logical (TRUE: right-censored); NaN where missing."""
    if series.dtype == bool:
        return series.to_numpy(dtype=float)
    codes = np.full(len(series), np.nan)
    for position, value in enumerate(series.to_numpy(dtype=object)):
        if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
            continue
        if isinstance(value, (bool, np.bool_)):
            codes[position] = float(value)
        elif isinstance(value, str) and value.strip().lower() in CENSORING:
            codes[position] = CENSORING[value.strip().lower()]
        elif isinstance(value, (int, float, np.integer, np.floating)) and value in (-1, 0, 1, 2):
            codes[position] = float(value)
        else:
            raise DataError(
                f"column '{name}' in cens() holds {value!r} in row {series.index[position]!r}, which is "
                "not a censoring code: write 'left', 'none', 'right' or 'interval', or -1, 0, 1, 2, or TRUE "
                "for right-censored"
            )
    return codes


def _status_codes(series: pd.Series, name: str) -> np.ndarray:
    """Surv()'s event indicator as censoring codes: 0 where the event happened, 1 (right-
    censored) where not. The status is 1/0, TRUE/FALSE, or 2/1 (the survival package's
    other coding: 2 an event)."""
    number = pd.to_numeric(series.astype(object).where(series.notna(), np.nan), errors="coerce")
    bad = number.isna() & series.notna()
    seen = set(number.dropna().unique())
    if bad.any() or not seen <= {0, 1, 2} or seen >= {0, 2}:
        where = series.index[int(np.argmax((bad | ~number.isin([0, 1, 2]) & series.notna()).to_numpy()))]
        raise DataError(
            f"Surv()'s status column '{name}' must be 0/1 (1 an event), TRUE/FALSE or 1/2 (2 an event); "
            f"row {where!r} holds {series[where]!r}"
            + (" and the column mixes 0 and 2" if seen >= {0, 2} else "")
        )
    event = 2.0 if 2 in seen else 1.0
    values = number.to_numpy(dtype=float)
    return np.where(np.isnan(values), np.nan, (values != event).astype(float))


def check_additions(additions: Additions, y: np.ndarray, rows: pd.Index, response: str, formula) -> None:
    """Refuse values that make no likelihood, naming the column, row and value."""

    def refuse(bad: np.ndarray, what: str, value: np.ndarray) -> None:
        if np.any(bad):
            first = int(np.argmax(bad))
            raise DataError(f"{what}: row {rows[first]!r} holds {value[first]:g} ({int(np.sum(bad))} rows)")

    se = formula.addition("se")
    if additions.se is not None:
        name = se.get("se")
        refuse(~np.isfinite(additions.se), f"the standard errors in se({name}) must be finite", additions.se)
        if additions.sigma:
            refuse(additions.se < 0, f"the standard errors in se({name}) must be 0 or more", additions.se)
        else:
            refuse(
                additions.se <= 0,
                f"the standard errors in se({name}) must be positive (a zero SE with no residual SD "
                "makes the row's likelihood a point; se(s, sigma = TRUE) adds a residual SD)",
                additions.se,
            )
    if additions.weights is not None:
        name = formula.addition("weights").get("weights")
        refuse(
            ~np.isfinite(additions.weights),
            f"the weights in weights({name}) must be finite",
            additions.weights,
        )
        refuse(additions.weights < 0, f"the weights in weights({name}) must be 0 or more", additions.weights)
        if not np.any(additions.weights > 0):
            raise DataError(f"every weight in weights({name}) is 0: no row informs the model")
    if additions.y2 is not None:
        interval = additions.cens == 2
        name = formula.addition("cens").get("y2")
        refuse(
            interval & ~(additions.y2 > y),
            f"an interval-censored row's upper end in '{name}' must be above the response '{response}'",
            additions.y2,
        )
    if additions.lb is not None:
        refuse(
            additions.lb >= additions.ub, "trunc()'s lower bound must be below its upper bound", additions.lb
        )
        refuse(
            y < additions.lb,
            f"the response '{response}' is below trunc()'s lower bound (a truncated response cannot be)",
            y,
        )
        above = y > additions.ub
        if additions.y2 is not None:  # an interval's upper end must be inside as well
            above |= (additions.cens == 2) & (additions.y2 > additions.ub)
        refuse(above, f"the response '{response}' is above trunc()'s upper bound", y)


def additions_for_new_data(design, newdata: pd.DataFrame) -> Additions:
    """The addition terms predictions on ``newdata`` read: se() (where its column is there:
    drawing responses of a model whose residual SD is known needs it) and trunc()'s bounds.
    Censoring and weights change the likelihood only, not what a prediction is."""
    given = design.additions
    if given.se is None and given.lb is None:
        return Additions()
    parsed = design.formula
    values: dict[str, object] = {"sigma": given.sigma}
    if given.se is not None:
        name = parsed.addition("se").get("se")
        if name in newdata.columns:
            values["se"] = pd.to_numeric(newdata[name], errors="coerce").to_numpy(dtype=float)
    if given.lb is not None:
        trunc = parsed.addition("trunc")
        for key, default in (("lb", -np.inf), ("ub", np.inf)):
            text = trunc.get(key)
            if text is None:
                values[key] = np.full(len(newdata), default)
            elif text in design.additions.columns:
                if text not in newdata.columns:
                    raise missing_column_error(text, "the new data (trunc()'s bound)", newdata.columns)
                values[key] = pd.to_numeric(newdata[text], errors="coerce").to_numpy(dtype=float)
            else:
                values[key] = np.full(len(newdata), float(text))
    return Additions(**values)
