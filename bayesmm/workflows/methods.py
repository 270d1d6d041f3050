"""Estimation methods side by side (the lecture's "flexibility and speed vs accuracy"): one
model fitted by NUTS, Laplace and ADVI, estimates and times in one table and one plot."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..inference.approximate import METHODS
from ..results.summaries import interval_names

__all__ = ["MethodComparison", "compare_methods"]


@dataclass
class MethodComparison:
    """Estimates of every summary parameter by each method; [`compare_methods`][bayesmm.compare_methods]
    returns one.

    Parameters
    ----------
    table
        Parameters x (method, statistic): ``mean``, ``sd`` and the central interval's ends.
    seconds
        Each method's wall time, by method.
    fits
        Each method's Fit, by method.

    Examples
    --------
    >>> table = pd.DataFrame({("nuts", "mean"): [1.0], ("laplace", "mean"): [1.1]}, index=["x"])
    >>> bm.MethodComparison(table, {"nuts": 2.0, "laplace": 0.5}, {}).seconds["laplace"]
    0.5
    """

    table: pd.DataFrame
    seconds: dict
    fits: dict

    def plot(self, ax=None):
        """Each parameter's mean and central interval by method, NUTS first; each parameter is
        shifted and scaled by NUTS's mean and SD, so that all share one axis.

        Parameters
        ----------
        ax
            Matplotlib Axes, or None for a new figure.

        Returns
        -------
        matplotlib.axes.Axes

        Examples
        --------
        >>> stats = ["mean", "sd", "q2.5", "q97.5"]
        >>> columns = pd.MultiIndex.from_product([["nuts", "laplace"], stats])
        >>> table = pd.DataFrame([[1.0, 0.2, 0.6, 1.4, 1.1, 0.1, 0.9, 1.3]], index=["x"], columns=columns)
        >>> ax = bm.MethodComparison(table, {"nuts": 2.0, "laplace": 0.5}, {}).plot()
        """
        import matplotlib.pyplot as plt

        methods = list(dict.fromkeys(self.table.columns.get_level_values(0)))
        names = list(self.table.index)
        if ax is None:
            _, ax = plt.subplots(figsize=(6.5, 0.45 * len(names) * len(methods) + 1))
        reference = methods[0]
        center, scale = (
            self.table[(reference, "mean")],
            self.table[(reference, "sd")].where(lambda s: s > 0, 1.0),
        )
        lo, hi = [c for c in self.table[reference].columns if c.startswith("q")][:2]
        for k, method in enumerate(methods):
            y = np.arange(len(names)) * (len(methods) + 1) + k
            mean = (self.table[(method, "mean")] - center) / scale
            low, high = (
                (self.table[(method, lo)] - center) / scale,
                (self.table[(method, hi)] - center) / scale,
            )
            ax.errorbar(mean, y, xerr=[mean - low, high - mean], fmt="o", color=f"C{k}", capsize=2,
                        label=f"{method} ({self.seconds[method]:.1f} s)")  # fmt: skip
        ax.set_yticks(np.arange(len(names)) * (len(methods) + 1) + (len(methods) - 1) / 2, names)
        ax.invert_yaxis()
        ax.axvline(0, color="0.6", lw=0.8)
        ax.set_xlabel(f"(estimate - {reference} mean) / {reference} SD")
        ax.legend(fontsize=8, frameon=False)
        return ax


def compare_methods(model, methods=METHODS, draws: int = 1000, chains: int = 4, random_seed=None,
                    prob: float = 0.95, **nuts_options) -> MethodComparison:  # fmt: skip
    """Fit ``model`` by each method and tabulate every summary parameter's estimates.

    Parameters
    ----------
    model
        A [`Model`][bayesmm.Model].
    methods
        Among ``"nuts"``, ``"laplace"`` and ``"advi"``; the first is the reference of the plot.
    draws
        Draws per chain (NUTS) or draws from each approximation, per chain.
    chains
        Chains.
    random_seed
        Seed for every method.
    prob
        Probability of the central intervals.
    **nuts_options
        Further settings for NUTS (``tune``, ``target_accept``, ...).

    Returns
    -------
    MethodComparison
        ``table`` (parameters x (method, statistic)), ``seconds``, ``fits`` and ``plot()``.

    Examples
    --------
    >>> comparison = bm.compare_methods(model, methods=["nuts", "laplace"], draws=500, chains=2)  # fit
    >>> comparison.table
    """
    tables, seconds, fits = {}, {}, {}
    for method in methods:
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            options = nuts_options if method == "nuts" else {}
            fit = model.fit(method=method, draws=draws, chains=chains, random_seed=random_seed,
                            progressbar=False, **options)  # fmt: skip
        seconds[method] = time.perf_counter() - start
        fits[method] = fit
        tables[method] = fit.summary(prob=prob)[["mean", "sd", *interval_names(prob)]]
    table = pd.concat(tables, axis=1)
    table.columns.names = ["method", "stat"]
    return MethodComparison(pd.DataFrame(table), seconds, fits)
