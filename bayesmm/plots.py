"""Figures of a fit (matplotlib; each function returns its Axes or Figure)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np

from . import results

if TYPE_CHECKING:  # pragma: no cover
    from .fit import Fit

__all__ = ["plot_ranef"]


def plot_ranef(fit: Fit, group: str, prob: float = 0.95, axes=None):
    """Caterpillar plot: each level's group effect (posterior mean and interval), one panel per term,
    levels sorted by the first term's mean."""
    table = results.ranef(fit, group=group, prob=prob)
    lo, hi = results.interval_names(prob)
    terms = list(table["mean"].columns)
    if axes is None:
        height = max(3.0, 0.22 * len(table) + 1.2)
        _, axes = plt.subplots(1, len(terms), figsize=(3.6 * len(terms), height), sharey=True, squeeze=False)
        axes = axes[0]
    order = np.argsort(table["mean"][terms[0]].to_numpy())
    positions = np.arange(len(order))
    labels = table.index.to_numpy()[order]
    for ax, term in zip(axes, terms, strict=True):
        mean = table["mean"][term].to_numpy()[order]
        ax.hlines(
            positions,
            table[lo][term].to_numpy()[order],
            table[hi][term].to_numpy()[order],
            color="0.5",
            lw=1.2,
        )
        ax.plot(mean, positions, "o", color="C0", ms=4)
        ax.axvline(0.0, color="C3", lw=0.8, ls="--")
        ax.set_title(f"{term} | {group}")
        ax.set_xlabel(f"group effect ({int(prob * 100)}% interval)")
    axes[0].set_yticks(positions, labels)
    axes[0].set_ylabel(group)
    return axes
