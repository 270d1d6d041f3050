"""Power analysis by simulation (as R's simr for lme4): for each design size, simulate data
sets from chosen parameters, fit each, apply a decision rule, and count how often it says
yes, with the Monte Carlo error of that proportion.

A design grows from a template data set: the grouping factor ``group`` gets ``n_groups``
levels, each a copy of a template level (taken in turn, so between-group covariates keep
their balance), with ``n_per_group`` rows taken in turn from that level's rows (so a
within-group design, days 0..9 or a treatment per row, keeps its pattern). Other columns,
crossed grouping factors included, come along with the rows. Each design size compiles its
model once; its simulations refit through the compiled code.
"""

from __future__ import annotations

import re
import time
import warnings
from dataclasses import dataclass
from itertools import product

import numpy as np
import pandas as pd

from ..design.build import DataError
from ..inference.parallel import _check, run_tasks
from ..spec.formula import parse_formula

__all__ = ["power", "PowerResult", "grow_design"]


def grow_design(
    template: pd.DataFrame, group: str, n_groups: int | None, n_per_group: int | None
) -> pd.DataFrame:
    """A design with ``n_groups`` levels of ``group`` and ``n_per_group`` rows in each, built
    from the template's levels and rows in turn (None keeps the template's count)."""
    if group not in template.columns:
        raise DataError(f"the grouping factor '{group}' is not a column of the design data")
    levels = list(pd.unique(template[group]))
    n_groups = len(levels) if n_groups is None else int(n_groups)
    pieces = []
    for k in range(n_groups):
        rows = template[template[group] == levels[k % len(levels)]]
        if n_per_group is not None:
            rows = rows.iloc[np.arange(int(n_per_group)) % len(rows)]
        pieces.append(rows.assign(**{group: f"{group}{k + 1}"}))
    return pd.concat(pieces, ignore_index=True)


_RULE = re.compile(r"^(?P<left>.+?)\s*(?P<op>!=|>=|<=|>|<)\s*(?P<right>[^<>=!]+)$")


def _decide(fit, test: str, prob: float, rope) -> bool:
    """Whether one fit passes the decision rule (see ``power``)."""
    if rope is not None:
        lo, hi = sorted(rope)
        row = fit.hypothesis(f"{test} = 0", prob=prob).iloc[0]
        low, high = row.iloc[2], row.iloc[3]
        return bool(low > hi or high < lo)
    match = _RULE.match(test.strip())
    if match["op"] == "!=":
        row = fit.hypothesis(f"{match['left']} = {match['right']}", prob=prob).iloc[0]
        return bool(row.iloc[2] > 0 or row.iloc[3] < 0)
    return bool(fit.hypothesis(test).iloc[0]["post_prob"] >= prob)


def _simulate_and_decide(formula, design, response, family, params, priors, model_options, fit_settings, seed,
                         test, prob, rope) -> tuple[bool, float, bool]:  # fmt: skip
    """One simulation (a task for bayesmm.inference.parallel): simulate, fit, decide; with the fit's
    seconds and whether it had divergences or an R-hat above 1.01."""
    from ..api import Model
    from .simulate import simulate

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        link, trials = model_options.get("link"), model_options.get("trials")
        simulated = simulate(
            formula, design, family=family, params=params, seed=seed, link=link, trials=trials
        )
        frame = design.assign(**{response: simulated["sim_1"].to_numpy()})
        start = time.perf_counter()
        fit = Model(formula, frame, family=family, priors=priors, **model_options).fit(
            **fit_settings, random_seed=seed, progressbar=False
        )
        seconds = time.perf_counter() - start
        decided = _decide(fit, test, prob, rope)
        troubled = fit.diagnose()["divergences"].value > 0 or fit.summary()["r_hat"].max() > 1.01
    return decided, seconds, bool(troubled)


@dataclass
class PowerResult:
    """Power per design size; [`power`][bayesmm.power] returns one.

    Parameters
    ----------
    table
        One row per design size: ``n_groups``, ``n_per_group``, ``rows``, ``power`` (the
        share of simulations the rule accepted), its Monte Carlo SE ``mc_se``, ``nsim``, the
        fits' mean seconds and how many had divergences or an R-hat above 1.01.
    decisions
        Every simulation's decision, by design size.
    settings
        What was run: formula, test, prob, rope, params.

    Examples
    --------
    >>> table = pd.DataFrame({"n_groups": [10, 20], "n_per_group": [5, 5], "rows": [50, 100],
    ...                       "power": [0.4, 0.8], "mc_se": [0.05, 0.04], "nsim": [100, 100]})
    >>> bm.PowerResult(table, pd.DataFrame(), {}).table["power"].tolist()
    [0.4, 0.8]
    """

    table: pd.DataFrame
    decisions: pd.DataFrame
    settings: dict

    def plot(self, ax=None):
        """The power curve: power against the number of groups, one line per group size,
        with 95% Monte Carlo intervals.

        Parameters
        ----------
        ax
            Matplotlib Axes, or None for a new figure.

        Returns
        -------
        matplotlib.axes.Axes

        Examples
        --------
        >>> table = pd.DataFrame({"n_groups": [10, 20], "n_per_group": [5, 5], "rows": [50, 100],
        ...                       "power": [0.4, 0.8], "mc_se": [0.05, 0.04], "nsim": [100, 100]})
        >>> ax = bm.PowerResult(table, pd.DataFrame(), {"test": "x > 0"}).plot()
        """
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(6, 4))
        for k, (size, rows) in enumerate(self.table.groupby("n_per_group", sort=True)):
            ax.errorbar(rows["n_groups"], rows["power"], yerr=1.96 * rows["mc_se"], fmt="o-", capsize=3,
                        color=f"C{k}", label=f"{size} rows per group")  # fmt: skip
        ax.axhline(0.8, color="0.6", lw=0.8, ls="--")
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("number of groups")
        ax.set_ylabel("power")
        ax.set_title(f"P(decide: {self.settings.get('test')}) by design size", fontsize=10)
        ax.legend(fontsize=8, frameon=False)
        return ax


def power(
    formula: str,
    design_data: pd.DataFrame,
    params: dict[str, float],
    test: str,
    *,
    n_groups=None,
    n_per_group=None,
    group: str | None = None,
    nsim: int = 100,
    family="gaussian",
    priors: dict | None = None,
    prob: float = 0.95,
    rope: tuple[float, float] | None = None,
    draws: int = 500,
    tune: int = 500,
    chains: int = 2,
    random_seed: int = 0,
    progressbar: bool = True,
    processes: int | None = None,
    client=None,
    **model_options,
) -> PowerResult:
    """Power of a decision rule by simulation, for each design size.

    Parameters
    ----------
    formula
        The model, with the response to simulate on the left.
    design_data
        The template design: predictors and grouping factors (no response needed).
    params
        The parameters to simulate from, named as in the summary (``Intercept``, ``x``,
        ``sd(Intercept|g)``, ``sigma``); correlations default to 0.
    test
        The decision rule: ``"x > 0"`` or ``"x < 0.5"`` (the posterior probability of the
        statement is at least ``prob``), ``"x != 0"`` (the central ``prob`` interval
        excludes the value), or with ``rope`` the name of a parameter (or a linear statement
        of them).
    n_groups
        Numbers of groups to try (a list; None keeps the template's).
    n_per_group
        Rows per group to try (a list; None keeps the template's).
    group
        The grouping factor to grow; None: the formula's first.
    nsim
        Simulations per design size.
    family
        The response family.
    priors
        Priors for the fits, as for [`Model`][bayesmm.Model] (else the data-scaled defaults).
    prob
        The probability the rule asks for.
    rope
        A region of practical equivalence (lo, hi): the rule accepts when the central
        ``prob`` interval of ``test`` lies wholly outside it (Kruschke's rule).
    draws
        Draws per chain of each fit.
    tune
        Tuning steps per chain of each fit.
    chains
        Chains per fit.
    random_seed
        Seed for the simulations and the fits.
    progressbar
        Show progress over the fits.
    processes
        Run the fits in this many local processes (each compiles once per design size), or
        None to run them here.
    client
        A ``dask.distributed.Client`` whose workers run the fits. The results are the same
        for the same seed however the fits run.
    **model_options
        Further options for ``Model`` (``link=``, ``trials=``, ...).

    Returns
    -------
    PowerResult
        The power table with Monte Carlo errors, each decision, and ``plot()``.

    Examples
    --------
    >>> template = pd.DataFrame({"g": np.repeat(range(10), 5), "x": np.tile(range(5), 10)})
    >>> result = bm.power("y ~ x + (1 | g)", template, {"Intercept": 0, "x": 0.2, "sd(Intercept|g)": 0.5,
    ...                   "sigma": 1}, test="x > 0", n_groups=[5, 10], nsim=10, draws=200,
    ...                   progressbar=False)  # one fit per simulation
    >>> result.table[["n_groups", "power", "mc_se"]]
    """
    _check(processes, client)
    parsed = parse_formula(formula)
    if parsed.response is None:
        raise DataError(f"power needs the response to simulate on the left of '~' in {formula!r}")
    if rope is None and not _RULE.match(test.strip()):
        raise ValueError(f"test takes a statement such as 'x > 0', 'x < 0.5' or 'x != 0'; got {test!r}")
    if group is None:
        if not parsed.random:
            raise DataError("power grows a grouping factor; the formula has none")
        group = parsed.random[0].group_factors[0]
    response = parsed.response.strip("` ")
    sizes = list(product(n_groups or [None], n_per_group or [None]))
    rng = np.random.default_rng(random_seed)
    tasks, designs = [], []
    for groups, per_group in sizes:
        design = grow_design(design_data, group, groups, per_group).drop(columns=response, errors="ignore")
        designs.append(design)
        for seed in rng.integers(0, 2**31, size=nsim):
            settings = {"draws": draws, "tune": tune, "chains": chains}
            task = (formula, design, response, family, params, priors, model_options, settings, int(seed))
            tasks.append((*task, test, prob, rope))
    done = run_tasks(_simulate_and_decide, tasks, processes=processes, client=client,
                     progressbar=progressbar, desc="power")  # fmt: skip
    rows, decisions = [], {}
    for k, design in enumerate(designs):
        results = done[k * nsim : (k + 1) * nsim]
        decided = [d for d, _, _ in results]
        p = float(np.mean(decided))
        levels = design[group].nunique()
        rows.append({"n_groups": levels, "n_per_group": len(design) / levels, "rows": len(design), "power": p,
                     "mc_se": float(np.sqrt(p * (1 - p) / nsim)), "nsim": nsim,
                     "seconds_per_fit": float(np.mean([s for _, s, _ in results])),
                     "troubled_fits": int(sum(t for _, _, t in results))})  # fmt: skip
        decisions[(levels, len(design) / levels)] = decided
    settings = {"formula": formula, "test": test, "prob": prob, "rope": rope, "params": dict(params)}
    return PowerResult(pd.DataFrame(rows), pd.DataFrame(decisions), settings)
