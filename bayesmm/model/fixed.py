"""The fixed part's sampled coordinates: predictors centred at their means, so that the
sampled intercept is the intercept at average predictors, and the map between the sampled
coefficients and the reported ``fixef``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from ..design.build import Design

__all__ = ["fixed_center", "centred_slopes", "sampled_fixed_matrix", "sampled_fixed_coefficients"]


def fixed_center(design: Design) -> np.ndarray:
    """Column means used to centre the fixed-effects matrix (zero for the intercept,
    and zero everywhere for a model without an intercept, where centring would change it)."""
    if not design.has_intercept:
        return np.zeros(design.X.shape[1])
    center = design.X.mean(axis=0)
    center[design.fixef_names.index("Intercept")] = 0.0
    return center


def centred_slopes(design: Design) -> tuple[list[int], np.ndarray]:
    """The slopes' columns among the fixed effects (all but the intercept) and those columns
    centred as the model samples them (X[:, slopes] - fixed_center)."""
    slopes = [j for j, n in enumerate(design.fixef_names) if n != "Intercept"]
    return slopes, design.X[:, slopes] - fixed_center(design)[slopes]


def sampled_fixed_matrix(design: Design) -> np.ndarray:
    """D with X fixef = D theta for the sampled coefficients theta = (intercept at average
    predictors, slopes): a column of ones first when there is an intercept, then the centred
    slope columns."""
    slope_idx, Xc = centred_slopes(design)
    columns = [np.ones(design.n_obs)] if design.has_intercept else []
    return np.column_stack(columns + [Xc]) if columns or slope_idx else np.zeros((design.n_obs, 0))


def sampled_fixed_coefficients(design: Design, fixef: np.ndarray) -> np.ndarray:
    """theta of sampled_fixed_matrix from draws of fixef (..., fixed effects)."""
    slope_idx, _ = centred_slopes(design)
    slopes = fixef[..., slope_idx]
    if not design.has_intercept:
        return slopes
    intercept = fixef[..., design.fixef_names.index("Intercept")]
    intercept_c = intercept + slopes @ fixed_center(design)[slope_idx]
    return np.concatenate([intercept_c[..., None], slopes], axis=-1)
