"""Simulation-based calibration (Talts et al. 2018; Saeilynoja, Buerkner & Vehtari 2022).

Draw the parameters from the model's priors, simulate a response on the given design from
them, refit, and rank each true value among the posterior draws. When the fitting code
samples the posterior the model defines, every rank is uniform over 0..L; a bug in the
likelihood, a prior the fit does not use, or a sampler that does not reach the posterior
bends the ranks' distribution. The ECDF of the ranks against the uniform's, with a band
that holds all of it at once with probability 1 - alpha, is the test.

The model is compiled once: each refit has the same structure and reads its data from
shared vectors (bayesmm.inference.sampling), so a refit costs about its sampling time.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import pandas as pd
from scipy import stats

from ..design.build import DataError
from ..inference.parallel import run_tasks
from ..results.summaries import summary_draws, summary_draws_from

__all__ = ["sbc", "SBCResult", "ecdf_band"]

# Posterior draws each rank is taken among (thinned evenly from all draws), so ranks run 0..L.
RANKS = 99


def ecdf_band(n_ranks: int, n_values: int, alpha: float = 0.05, n_simulations: int = 2000, seed: int = 0):
    """The simultaneous band of the ECDF of ``n_ranks`` uniform ranks on 0..n_values - 1:
    the pointwise level gamma at which the binomial intervals of the ECDF at every rank hold
    together with probability 1 - alpha (found by simulation, as Saeilynoja et al. 2022), and
    the band's lower and upper ECDF values at each rank. Returns (gamma, lower, upper, z)."""
    rng = np.random.default_rng(seed)
    z = np.arange(1, n_values) / n_values  # the uniform's CDF just after each rank but the last
    simulated = rng.integers(0, n_values, size=(n_simulations, n_ranks))
    counts = np.stack([(simulated < k).sum(axis=1) for k in range(1, n_values)], axis=1)
    tails = _tail_probabilities(counts, n_ranks, z).min(axis=1)
    gamma = float(np.quantile(tails, alpha))
    lower = stats.binom.ppf(gamma / 2, n_ranks, z) / n_ranks
    upper = stats.binom.ppf(1 - gamma / 2, n_ranks, z) / n_ranks
    return gamma, lower, upper, z


def _tail_probabilities(counts: np.ndarray, n: int, z: np.ndarray) -> np.ndarray:
    """Twice the smaller binomial tail probability of each ECDF count, per rank."""
    below = stats.binom.cdf(counts, n, z)
    above = stats.binom.sf(counts - 1, n, z)
    return np.minimum(1.0, 2 * np.minimum(below, above))


@dataclass
class SBCResult:
    """Ranks of the true parameters among the posterior draws, one row per simulation;
    [`sbc`][bayesmm.sbc] returns one. ``uniformity()`` tests the ranks, ``plot_ranks()`` and
    ``plot_ecdf()`` draw them.

    Parameters
    ----------
    ranks
        Simulations x summary parameters, each rank in 0..``n_values - 1``.
    truth
        The parameters drawn from the prior, one row per simulation.
    diagnostics
        Each refit's ``divergences``, ``max_r_hat``, ``min_ess_bulk`` and ``seconds``: a
        calibrated model that mixes badly is a finding too.
    n_values
        How many values a rank can take (posterior draws kept per fit, plus one).
    alpha
        Level of the simultaneous ECDF band.
    settings
        What was run (formula, families, n, sampler settings).

    Examples
    --------
    >>> ranks = pd.DataFrame({"x": [3, 50, 97, 20, 71]})
    >>> bm.SBCResult(ranks, ranks * 0.0, pd.DataFrame()).uniformity()["calibrated"]["x"]
    np.True_
    """

    ranks: pd.DataFrame
    truth: pd.DataFrame
    diagnostics: pd.DataFrame
    n_values: int = RANKS + 1
    alpha: float = 0.05
    settings: dict = field(default_factory=dict)

    def uniformity(self) -> pd.DataFrame:
        """Test each parameter's ranks for uniformity.

        Returns
        -------
        pandas.DataFrame
            Per parameter: ``min_tail``, the smallest pointwise (two-sided binomial) tail
            probability of its rank ECDF; ``gamma``, the pointwise level of the simultaneous
            1 - alpha band; ``calibrated``, False where the ECDF leaves the band
            (``min_tail < gamma``); and ``chi2_p``, a chi-square test of 10 equal bins.

        Examples
        --------
        >>> ranks = pd.DataFrame({"x": [3, 50, 97, 20, 71, 44, 88, 12]})
        >>> result = bm.SBCResult(ranks, ranks * 0.0, pd.DataFrame(), n_values=100)
        >>> result.uniformity()["calibrated"]["x"]
        np.True_
        """
        gamma, *_ = ecdf_band(len(self.ranks), self.n_values, self.alpha)
        z = np.arange(1, self.n_values) / self.n_values
        rows = {}
        for name, ranks in self.ranks.items():
            counts = np.array([(ranks.to_numpy() < k).sum() for k in range(1, self.n_values)])
            smallest = float(_tail_probabilities(counts, len(ranks), z).min())
            bins = np.bincount(ranks.to_numpy() * 10 // self.n_values, minlength=10)
            rows[name] = {"min_tail": smallest, "gamma": gamma, "calibrated": smallest >= gamma,
                          "chi2_p": float(stats.chisquare(bins).pvalue)}  # fmt: skip
        return pd.DataFrame(rows).T.astype(
            {"min_tail": float, "gamma": float, "calibrated": bool, "chi2_p": float}
        )

    def plot_ranks(self, bins: int = 10, axes=None):
        """A rank histogram per parameter, with the 95% range of a uniform bin's count shaded.

        Parameters
        ----------
        bins
            Bins over the ranks 0..L.
        axes
            Matplotlib Axes, one per parameter, or None for a new figure.

        Returns
        -------
        numpy.ndarray of matplotlib.axes.Axes

        Examples
        --------
        >>> ranks = pd.DataFrame({"x": [3, 50, 97, 20, 71, 44, 88, 12]})
        >>> axes = bm.SBCResult(ranks, ranks * 0.0, pd.DataFrame(), n_values=100).plot_ranks(bins=10)
        """

        names = list(self.ranks.columns)
        axes = _panels(len(names)) if axes is None else np.ravel(axes)
        n = len(self.ranks)
        low, high = stats.binom.ppf([0.025, 0.975], n, 1 / bins)
        for ax, name in zip(axes, names, strict=False):
            ax.axhspan(low, high, color="0.9", lw=0)
            ax.hist(self.ranks[name], bins=np.linspace(0, self.n_values, bins + 1), color="C0", alpha=0.8)
            ax.axhline(n / bins, color="0.4", lw=0.8)
            ax.set_title(name, fontsize=9)
        for ax in axes[len(names) :]:
            ax.set_visible(False)
        return axes

    def plot_ecdf(self, axes=None):
        """The ECDF of each parameter's ranks less the uniform's, over the simultaneous
        1 - alpha band (Saeilynoja et al. 2022): a calibrated parameter's line stays inside.

        Parameters
        ----------
        axes
            Matplotlib Axes, one per parameter, or None for a new figure.

        Returns
        -------
        numpy.ndarray of matplotlib.axes.Axes

        Examples
        --------
        >>> ranks = pd.DataFrame({"x": [3, 50, 97, 20, 71, 44, 88, 12]})
        >>> axes = bm.SBCResult(ranks, ranks * 0.0, pd.DataFrame(), n_values=100).plot_ecdf()
        """

        names = list(self.ranks.columns)
        gamma, lower, upper, z = ecdf_band(len(self.ranks), self.n_values, self.alpha)
        axes = _panels(len(names)) if axes is None else np.ravel(axes)
        for ax, name in zip(axes, names, strict=False):
            ranks = self.ranks[name].to_numpy()
            ecdf = np.array([(ranks < k).mean() for k in range(1, self.n_values)])
            ax.fill_between(z, lower - z, upper - z, color="0.85", step="mid", lw=0)
            ax.plot(z, ecdf - z, color="C0", drawstyle="steps-mid")
            ax.axhline(0, color="0.4", lw=0.8)
            ax.set_title(name, fontsize=9)
        for ax in axes[len(names) :]:
            ax.set_visible(False)
        return axes


def _panels(count: int) -> np.ndarray:
    """A grid of up to three panels a row, one per parameter, as a flat array."""
    import matplotlib.pyplot as plt

    columns = min(3, count)
    rows = int(np.ceil(count / columns))
    _, axes = plt.subplots(rows, columns, squeeze=False, figsize=(3.2 * columns, 2.4 * rows))
    return np.ravel(axes)


def _refit(formula, frame, priors, options, fit_settings, seed, truth) -> tuple[dict, dict]:
    """One simulation's refit (a task for bayesmm.inference.parallel): the ranks of the true values and
    the fit's diagnostics."""
    from ..api import Model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = Model(formula, frame, priors=priors, **options)
        start = time.perf_counter()
        fit = model.fit(**fit_settings, random_seed=seed, progressbar=False)
        seconds = time.perf_counter() - start
        table = fit.summary()
    diagnostics = {"divergences": int(fit.diagnose()["divergences"].value),
                   "max_r_hat": float(table["r_hat"].max()), "min_ess_bulk": float(table["ess_bulk"].min()),
                   "seconds": seconds}  # fmt: skip
    return _ranks(fit, truth, RANKS + 1), diagnostics


def _ranks(fit, truth: dict[str, float], n_values: int) -> dict[str, int]:
    draws = summary_draws(fit)
    ranks = {}
    for name, value in truth.items():
        flat = draws[name].reshape(-1)
        kept = flat[np.linspace(0, flat.size - 1, n_values - 1).round().astype(int)]
        ranks[name] = int(np.sum(kept < value))
    return ranks


def sbc(
    formula: str,
    data: pd.DataFrame,
    family="gaussian",
    priors: dict | None = None,
    n: int = 200,
    *,
    link: str | None = None,
    fit_family=None,
    fit_link: str | None = None,
    draws: int = 500,
    tune: int = 500,
    chains: int = 2,
    random_seed: int = 0,
    alpha: float = 0.05,
    progressbar: bool = True,
    processes: int | None = None,
    client=None,
    **model_options,
) -> SBCResult:
    """Simulation-based calibration of a model on a design.

    Parameters
    ----------
    formula
        The model's formula.
    data
        The design: predictors and grouping factors, and the response, whose values set
        the data-scaled default priors (which are then held fixed for every simulation).
    family
        The response family, as for [`Model`][bayesmm.Model].
    priors
        Priors by name or class, as for ``Model``; the rest take their data-scaled defaults,
        computed once from ``data``.
    link
        A non-default link.
    n
        Simulations (each one draw from the prior, one data set and one fit).
    fit_family
        Fit a different family than the one the data are simulated from: a deliberately
        wrong model, whose ranks the check must find non-uniform.
    fit_link
        Fit a different link (the same use).
    draws
        Draws per chain of each refit.
    tune
        Tuning steps per chain of each refit.
    chains
        Chains of each refit.
    random_seed
        Seed for the prior draws and the refits.
    alpha
        Level of the simultaneous ECDF band.
    progressbar
        Show progress over the simulations.
    processes
        Run the refits in this many local processes (each compiles the model once), or None
        to run them here, one after another.
    client
        A ``dask.distributed.Client``: run the refits on its workers (each compiles once),
        a ``LocalCluster``'s or a real cluster's. The results are the same for the same seed
        however the refits run.
    **model_options
        Further options for [`Model`][bayesmm.Model] (``trials=``, ``zi=``, ...).

    Returns
    -------
    SBCResult
        Ranks, true values, each fit's diagnostics, ``uniformity()`` and the plots.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> data = pd.DataFrame({"x": rng.normal(size=100), "g": np.repeat(range(20), 5),
    ...                      "y": rng.normal(size=100)})
    >>> result = bm.sbc("y ~ x + (1 | g)", data, priors={"sigma": bm.Prior("HalfNormal", sigma=1)},
    ...                 n=20, draws=200, progressbar=False)  # one fit per simulation
    >>> result.uniformity()
    """
    import pymc as pm

    from ..api import Model
    from ..inference.parallel import _check

    _check(processes, client)
    if not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an integer of 2 or more simulations, got {n!r}")
    base = Model(formula, data, family=family, priors=priors, link=link, **model_options)
    frozen = {e.parameter: e.prior for e in base.prior_entries}  # data-scaled once, then fixed
    response = base.design.response_name
    if response not in data.columns or base.design.formula.cbind or base.design.trials is not None:
        raise DataError(f"sbc simulates the response '{response}' as one column of the data; give a data "
                        "frame with that column (its values set the default priors)")  # fmt: skip
    logger = logging.getLogger("pymc")
    level = logger.level
    logger.setLevel(logging.WARNING)  # not PyMC's list of the variables it samples
    try:
        prior = pm.sample_prior_predictive(draws=n, model=base.pymc_model, random_seed=random_seed)
    finally:
        logger.setLevel(level)
    namer = SimpleNamespace(model=base, design=base.design)
    true_values = {k: v.reshape(-1) for k, v in summary_draws_from(namer, prior.prior.to_dataset()).items()}
    simulated = prior.prior_predictive[base.design.response_var].values.reshape(n, -1)
    rows = base.design.rows
    fit_options = {
        "family": fit_family or base.family.name,
        "link": fit_link or (None if fit_family else link),
    }
    fit_settings = {"draws": draws, "tune": tune, "chains": chains}
    tasks = []
    for i in range(n):
        frame = data.loc[rows].copy()
        frame[response] = simulated[i]
        truth = {name: float(values[i]) for name, values in true_values.items()}
        options = {**fit_options, **model_options}
        tasks.append((formula, frame, frozen, options, fit_settings, random_seed + 1 + i, truth))
    done = run_tasks(_refit, tasks, processes=processes, client=client, progressbar=progressbar, desc="SBC")
    ranks, diagnostics = [r for r, _ in done], [d for _, d in done]
    truth = pd.DataFrame({name: values for name, values in true_values.items()})
    settings = {"formula": formula, "family": base.family.name, "fit_family": fit_options["family"], "n": n,
                "draws": draws, "chains": chains}  # fmt: skip
    return SBCResult(pd.DataFrame(ranks), truth, pd.DataFrame(diagnostics), RANKS + 1, alpha, settings)
