"""brms's ``(1 | gr(g, cov = A))``: the levels of ``g`` have a known covariance A (a phylogeny's
or a pedigree's), given in ``data2``. The levels' effects of each varying term are then
MVN(0, sd^2 A) instead of independent, and with several terms vec(r) ~ MVN(0, Sigma (x) A).
A is matched to the levels here, checked and factored once: r = L_A r0 with r0's rows
independent (bayesmm.model.builder)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..spec.formula import RandomTermSpec
from ..spec.functions import level_label
from .errors import DataError

__all__ = ["level_covariance"]


def _shown(labels) -> str:
    labels = list(labels)
    return ", ".join(map(repr, labels[:5])) + (f" and {len(labels) - 5} more" if len(labels) > 5 else "")


def level_covariance(spec: RandomTermSpec, levels: list[str], data2) -> np.ndarray:
    """The known covariance of ``spec``'s levels, in ``levels``' order: from a DataFrame
    labelled by level (rows and columns; extra levels are dropped, as the marginal of a
    normal is its submatrix) or an array in the factor's level order; checked symmetric,
    finite and positive definite."""
    where = f"term {spec.text}"
    if data2 is None or spec.cov not in data2:
        given = "no data2" if data2 is None else f"data2 holds {_shown(data2)}"
        raise DataError(
            f"{where} needs the matrix '{spec.cov}': pass it as bm.Model(..., data2={{'{spec.cov}': A}}) "
            f"({given})"
        )
    given = data2[spec.cov]
    if isinstance(given, pd.DataFrame):
        rows = [level_label(v) for v in given.index]
        columns = [level_label(v) for v in given.columns]
        if rows != columns:
            raise DataError(
                f"data2['{spec.cov}'] of {where} must have the same labels, in the same order, on its rows "
                f"and columns (the levels of '{spec.group}'); rows start {_shown(rows[:3])}, columns "
                f"{_shown(columns[:3])}"
            )
        if len(set(rows)) != len(rows):
            raise DataError(f"data2['{spec.cov}'] of {where} labels some level twice")
        missing = [level for level in levels if level not in set(rows)]
        if missing:
            raise DataError(
                f"levels of '{spec.group}' in the data have no row in data2['{spec.cov}'] ({where}): "
                f"{_shown(missing)}; its rows are labelled {_shown(rows[:3])}"
            )
        position = {label: i for i, label in enumerate(rows)}
        order = [position[level] for level in levels]
        values = given.to_numpy(dtype=float)[np.ix_(order, order)]
    else:
        try:
            values = np.asarray(given, dtype=float)
        except (TypeError, ValueError):
            raise DataError(f"data2['{spec.cov}'] of {where} must be a numeric matrix") from None
        if values.shape != (len(levels), len(levels)):
            raise DataError(
                f"data2['{spec.cov}'] of {where} is {values.shape}; as an array it must be "
                f"{len(levels)} x {len(levels)}, the levels of '{spec.group}' in their order "
                "(give a DataFrame labelled by level to match them by name)"
            )
    if not np.all(np.isfinite(values)):
        raise DataError(f"data2['{spec.cov}'] of {where} has missing or infinite entries")
    scale = max(float(np.max(np.abs(values))), 1e-300)
    if not np.allclose(values, values.T, rtol=0.0, atol=1e-8 * scale):
        i, j = np.unravel_index(np.argmax(np.abs(values - values.T)), values.shape)
        raise DataError(
            f"data2['{spec.cov}'] of {where} is not symmetric: entry ({levels[i]!r}, {levels[j]!r}) is "
            f"{values[i, j]:g}, its mirror {values[j, i]:g}"
        )
    values = (values + values.T) / 2
    smallest = float(np.linalg.eigvalsh(values)[0])
    if smallest <= 1e-10 * scale:
        raise DataError(
            f"data2['{spec.cov}'] of {where} is not positive definite (smallest eigenvalue {smallest:.3g}): "
            "a covariance of levels must be; duplicated or identical levels make it singular"
        )
    return values
