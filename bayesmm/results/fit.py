"""The ``Fit`` facade: a fitted model's draws with the lme4/brms vocabulary (summary, fixef,
ranef, coef, varcorr, predictions, checks, comparisons, plots), each method delegating to
the results module that does the work."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import xarray as xr

from ..inference.idata import set_group
from ..warn import warn_user
from . import comparison, diagnostics, effects, persist, predict, sensitivity
from . import summaries as results

if TYPE_CHECKING:  # pragma: no cover
    from ..api import Model
    from ..inference.nuts import SamplerSettings

__all__ = ["Fit"]


@dataclass
class Fit:
    """A fitted model: the posterior draws with the model and design they came from.

    ``Model.fit`` returns it; ``bayesmm.load`` reads a saved one back. The lme4/brms
    vocabulary lives here: [`summary`][bayesmm.Fit.summary], [`fixef`][bayesmm.Fit.fixef],
    [`ranef`][bayesmm.Fit.ranef], [`coef`][bayesmm.Fit.coef],
    [`varcorr`][bayesmm.Fit.varcorr], [`predict`][bayesmm.Fit.predict],
    [`hypothesis`][bayesmm.Fit.hypothesis], [`loo`][bayesmm.Fit.loo]; and the plots of a
    mixed-model analysis: [`plot_shrinkage`][bayesmm.Fit.plot_shrinkage],
    [`plot_ppc`][bayesmm.Fit.plot_ppc], [`plot_ranef`][bayesmm.Fit.plot_ranef],
    [`plot_trace`][bayesmm.Fit.plot_trace], [`plot_priors`][bayesmm.Fit.plot_priors].
    Printing a fit shows its summary under the diagnostics' verdict.

    Parameters
    ----------
    model
        The [`Model`][bayesmm.Model] that was sampled.
    idata
        ArviZ 1's DataTree of the draws: ``posterior`` (with lme4/brms-style names in
        its coordinates), ``sample_stats`` and, once computed, ``log_likelihood``,
        ``posterior_predictive`` and ``observed_data``.
    settings
        The sampler settings the draws came from (sampler, draws, tune, chains,
        target_accept, random seed, seconds taken).

    Examples
    --------
    >>> sleepstudy = bm.datasets.load("sleepstudy")
    >>> fit = bm.Model("Reaction ~ Days + (Days | Subject)", sleepstudy).fit(random_seed=1)
    >>> print(fit)                      # diagnostics, then the summary
    >>> fit.idata.posterior["sd_Subject"]
    """

    model: Model
    idata: xr.DataTree
    settings: SamplerSettings = field(repr=False)
    _diagnosis: diagnostics.Diagnosis | None = field(default=None, repr=False)

    @property
    def design(self):
        """The model's design: response, fixed-effect matrix and grouping factors."""
        return self.model.design

    def summary(self, prob: float = 0.95) -> pd.DataFrame:
        """Posterior summary of every reported parameter, as brms's ``summary``.

        Rows, indexed by lme4/brms-style names: fixed effects (``Intercept``, ``Days``),
        group-level SDs and correlations (``sd(Days|Subject)``,
        ``cor(Intercept,Days|Subject)``), then family parameters (``sigma``, ``shape``, ...).
        The table prints under the diagnostics' one-line verdict.

        Parameters
        ----------
        prob
            Probability of the central (equal-tailed) interval, in (0, 1).

        Returns
        -------
        pandas.DataFrame
            Columns ``mean``, ``sd``, the interval's ends (``q2.5``, ``q97.5`` for 0.95),
            ``mcse_mean``, ``ess_bulk``, ``ess_tail`` and ``r_hat``.

        Examples
        --------
        >>> fit.summary()
        >>> fit.summary(prob=0.9).loc["Days", ["q5", "q95"]]
        """
        return results.summary(self, prob=prob)

    def fixef(self, prob: float = 0.95) -> pd.DataFrame:
        """Population-level (fixed) effects, as lme4's and brms's ``fixef``.

        Parameters
        ----------
        prob
            Probability of the central interval, in (0, 1).

        Returns
        -------
        pandas.DataFrame
            One row per coefficient (the names of the formula's columns, e.g.
            ``period[T.2]``), with the summary's columns.

        Examples
        --------
        >>> fit.fixef()["mean"]
        """
        return results.fixef(self, prob=prob)

    def ranef(self, group: str | None = None, prob: float = 0.95):
        """Group-level effects: each level's deviation from the fixed effects (lme4's ``ranef``).

        These are the posterior counterparts of lme4's conditional modes: the effect of
        level j of ``group`` on each varying term, with its posterior SD and interval.

        Parameters
        ----------
        group
            A grouping factor (``"Subject"``; ``"a:b"`` for the inner level of
            ``(1 | a/b)``; ``"zi:site"`` for a part formula's). None gives every factor.
        prob
            Probability of the central interval, in (0, 1).

        Returns
        -------
        pandas.DataFrame or dict of str to pandas.DataFrame
            Levels by (stat, term) columns: ``table["mean"]`` is the levels x terms table
            of posterior means; stats ``mean``, ``sd`` and the interval's ends. With
            ``group=None`` a dict of such tables keyed by grouping factor.

        Examples
        --------
        >>> fit.ranef("Subject")["mean"].head()
        >>> fit.ranef()["Subject"]["sd"]["Days"]
        """
        return results.ranef(self, group=group, prob=prob)

    def coef(self, group: str | None = None, prob: float = 0.95):
        """Per-level coefficients: the fixed effects plus that level's group effects (lme4's ``coef``).

        Coefficients that do not vary by ``group`` are the fixed effects, the same for
        every level. These are the partial-pooling estimates of the shrinkage plot.

        Parameters
        ----------
        group
            A grouping factor, as for [`ranef`][bayesmm.Fit.ranef]; None gives every factor.
        prob
            Probability of the central interval, in (0, 1).

        Returns
        -------
        pandas.DataFrame or dict of str to pandas.DataFrame
            Levels by (stat, coefficient) columns, as [`ranef`][bayesmm.Fit.ranef]; a dict of them with
            ``group=None``.

        Examples
        --------
        >>> fit.coef("Subject")["mean"][["Intercept", "Days"]].head()
        """
        return results.coef(self, group=group, prob=prob)

    def varcorr(self, prob: float = 0.95) -> pd.DataFrame:
        """Group-level SDs and correlations and the residual SD, as lme4's ``VarCorr``.

        Parameters
        ----------
        prob
            Probability of the central interval, in (0, 1).

        Returns
        -------
        pandas.DataFrame
            One row per SD or correlation (``sd(Days|Subject)``, ...) and ``sigma`` where
            the family has one; columns ``group`` (``Residual`` for sigma), ``term``,
            ``mean``, ``sd`` and the interval's ends.

        Examples
        --------
        >>> fit.varcorr()[["group", "term", "mean"]]
        """
        return results.varcorr(self, prob=prob)

    def predict(
        self,
        newdata: pd.DataFrame | None = None,
        kind: str = "mean",
        re_form=None,
        new_levels: str = "error",
        summary: bool = True,
        prob: float = 0.95,
        random_seed=None,
        trials=None,
    ):
        """Posterior predictions for the fitted rows or new data (lme4's ``predict``, brms's
        ``posterior_epred``, ``posterior_linpred`` and ``posterior_predict``).

        Parameters
        ----------
        newdata
            A DataFrame with the formula's predictor and grouping columns (the response
            is not needed), or None for the rows the model was fitted to. Levels of a
            factor that the fit did not see raise an error naming them.
        kind
            ``"mean"``: the expected response (inverse link of the linear predictor,
            times trials for binomial data); ``"linear"``: the linear predictor;
            ``"response"``: new observations, one per posterior draw; ``"probs"`` (ordinal
            models): each category's probability, as brms's ``posterior_epred`` (``"mean"``
            is then the expected category number, 1..K). With ``trunc()`` in the formula
            ``"mean"`` is the truncated distribution's mean and ``"response"`` draws within
            the bounds; with ``cens()`` both are of the distribution without censoring
            (brms's semantics); with ``se()`` new rows need the SE column to draw responses.
        re_form
            Which group effects to include: None keeps all of them, ``"~0"`` (or
            ``"NA"``) drops them all (population-level predictions), a formula of
            random terms such as ``"~ (1 | Subject)"`` keeps those.
        new_levels
            What to do with grouping levels the fit has not seen: ``"error"``,
            ``"sample"`` (draw each new level's effects from the fitted population
            distribution, per posterior draw: brms's ``allow_new_levels=TRUE``) or
            ``"population"`` (effects of zero).
        summary
            True: a table of posterior mean, SD and interval per row. False: the draws.
        prob
            Probability of the central interval, in (0, 1).
        random_seed
            Seed for ``kind="response"`` and ``new_levels="sample"``.
        trials
            Binomial trials of ``newdata``'s rows: a column name or an array. Not needed
            when ``newdata`` has the formula's ``cbind()`` or ``trials()`` columns.

        Returns
        -------
        pandas.DataFrame or xarray.DataArray
            With ``summary=True``, columns ``mean``, ``sd`` and the interval's ends,
            indexed like the rows predicted (for ``"probs"``, columns (stat, category)). With
            ``summary=False``, a DataArray with dims (chain, draw, obs) (and ``category``).

        Examples
        --------
        >>> fit.predict().head()                                  # fitted rows
        >>> new = pd.DataFrame({"Days": [0, 5], "Subject": ["new", "new"]})
        >>> fit.predict(new, new_levels="sample", random_seed=1)  # a new subject
        >>> fit.predict(new, re_form="~0")                        # the population line
        >>> fit.predict(kind="response", summary=False).sizes
        """
        return predict.predict(self, newdata, kind, re_form, new_levels, summary, prob, random_seed, trials)

    def posterior_predictive(self, random_seed=None) -> xr.DataTree:
        """Draw one replicate data set per posterior draw into ``idata`` (ArviZ's
        ``posterior_predictive`` and ``observed_data`` groups), for ArviZ's own checks.

        Parameters
        ----------
        random_seed
            Seed for the replicates, or None.

        Returns
        -------
        xarray.DataTree
            ``self.idata`` with the two groups added (the same object, changed in place).

        Examples
        --------
        >>> idata = fit.posterior_predictive(random_seed=1)
        >>> idata.posterior_predictive["Reaction"].sizes
        """
        draws = self.predict(kind="response", summary=False, random_seed=random_seed)
        comparison.add_observed_data(self)
        set_group(self.idata, "posterior_predictive", draws.rename(self.design.response_var).to_dataset())
        return self.idata

    def simulate(self, nsim: int = 1, random_seed=None) -> pd.DataFrame:
        """New response vectors from the fitted model, as lme4's ``simulate``: each from a
        different posterior draw picked at random, with the fitted group levels' effects.

        Parameters
        ----------
        nsim
            Number of data sets, at most the number of posterior draws.
        random_seed
            Seed for the draws picked and the responses, or None.

        Returns
        -------
        pandas.DataFrame
            Columns ``sim_1`` ... ``sim_<nsim>``, one row per fitted row.

        Examples
        --------
        >>> fit.simulate(nsim=3, random_seed=1).head()
        """
        draws = self.predict(kind="response", summary=False, random_seed=random_seed)
        flat = draws.values.reshape(-1, draws.sizes["obs"])
        picks = np.random.default_rng(random_seed).choice(flat.shape[0], size=nsim, replace=False)
        return pd.DataFrame({f"sim_{k + 1}": flat[i] for k, i in enumerate(picks)}, index=self.design.rows)

    def loo(self, **kwargs):
        """PSIS leave-one-out cross-validation (ArviZ's ``loo``).

        The pointwise log-likelihood is computed once and kept in ``idata``. When Pareto
        k values are high, a [`DiagnosticWarning`][bayesmm.DiagnosticWarning] says how many, what that
        means for this model (an observation-level effect makes most of them high) and
        what to do ([`kfold`][bayesmm.Fit.kfold], or leave that effect out of the comparison).

        Parameters
        ----------
        **kwargs
            Passed to ``arviz.loo`` (e.g. ``pointwise=True``).

        Returns
        -------
        arviz_stats.ELPDData
            ``elpd`` (expected log predictive density), its ``se``, ``p`` (effective
            number of parameters) and the pointwise ``pareto_k``.

        Examples
        --------
        >>> result = fit.loo()
        >>> result.elpd, result.se
        """
        return comparison.loo(self, **kwargs)

    def update(
        self,
        data: pd.DataFrame | None = None,
        *,
        formula: str | None = None,
        priors: dict | None = None,
        family=None,
        trials=None,
        **fit_kwargs,
    ) -> Fit:
        """Refit with changes, as ``update()`` in lme4 and brms: everything not given is kept.

        When only the data change and their shape does not (the same rows, levels and
        columns: a simulated data set, a corrected column), the compiled model is reused
        and the refit costs its sampling; see ``bayesmm.inference.sampling``.

        Parameters
        ----------
        data
            New data (default: the model's data).
        formula
            A new formula (default: the model's).
        priors
            New prior overrides, replacing the model's (default: the model's own).
        family
            A new family (default: the model's, with its link).
        trials
            Binomial trials for new data, when the model's were given as an array.
        **fit_kwargs
            Sampler settings (default: this fit's draws, tune, chains, target_accept,
            sampler and random seed).

        Returns
        -------
        Fit
            The new fit.

        Examples
        --------
        >>> shifted = sleepstudy.assign(Reaction=sleepstudy.Reaction + 10.0)
        >>> refit = fit.update(data=shifted, draws=300, chains=2)     # no recompilation
        >>> simpler = fit.update(formula="Reaction ~ Days + (Days || Subject)", draws=300, chains=2)
        """
        new = self.model.updated(formula=formula, data=data, family=family, priors=priors, trials=trials)
        kept = self.settings
        settings = {"draws": kept.draws, "tune": kept.tune, "chains": kept.chains,
                    "target_accept": kept.target_accept, "sampler": kept.sampler,
                    "random_seed": kept.random_seed, **fit_kwargs}  # fmt: skip
        return new.fit(**settings)

    def simplify(
        self, steps: int = 1, *, processes: int | None = None, client=None, kfold="auto", **fit_kwargs
    ):
        """The lecture's simplification strategies, fitted and compared: from this fit, drop a
        term's correlations (``||``), share one correlation (``cs()``), drop a varying term, drop
        a grouping factor; each candidate fitted with this fit's settings and compared by
        PSIS-LOO, with a recommendation under Barr et al.'s view (keep it maximal unless
        singular) and Bates et al.'s / Matuschek et al.'s (the simplest model not credibly worse).

        Parameters
        ----------
        steps
            Rounds of reductions: after the first, the next starts from the simplest
            candidate that was not credibly worse, and so on.
        processes
            Fit each round's candidates in this many local processes (as
            [`bm.power`][bayesmm.power] does); None fits them one after another here.
        client
            A Dask ``distributed.Client`` whose workers fit the candidates (give
            ``processes`` or ``client``, not both). A seed gives the same draws wherever a
            candidate is fitted, so the table does not depend on where they ran.
        kfold
            ``"auto"``: compare by PSIS-LOO, and by 10-fold cross-validation (every candidate
            refitted on the same folds, [`Fit.kfold`][bayesmm.Fit.kfold]) where some
            candidate's Pareto k exceed 0.7, so that the comparison does not rest on
            unreliable importance weights; a number of folds: always K-fold; ``False``:
            always PSIS-LOO.
        **fit_kwargs
            Settings for the candidates' fits (default: this fit's draws, tune, chains, seed).

        Returns
        -------
        Simplification
            ``.table`` (one row per candidate: formula, singular and why, divergences, max
            R-hat, elpd difference and its SE, number of parameters), ``.recommended``,
            ``.reasoning``, ``.plot()`` and ``.fits``.

        Examples
        --------
        >>> from bayesmm.results.simplify import candidates
        >>> len(candidates(fit)), list(candidates(fit))[1]   # what simplify() fits
        (4, '(Days | Subject): drop its correlations')
        >>> result = fit.simplify(draws=500)             # doctest: +SKIP
        >>> print(result)                               # doctest: +SKIP
        """
        from .simplify import simplify

        return simplify(self, steps=steps, processes=processes, client=client, kfold=kfold, **fit_kwargs)

    def kfold(self, K: int = 10, folds=None, random_seed=None, group: str | None = None, **fit_kwargs):
        """K-fold cross-validation by refitting the model K times (brms's ``kfold``).

        Unlike PSIS-LOO it approximates nothing, so it holds where Pareto k values are
        high; it costs K fits.

        Parameters
        ----------
        K
            Number of folds.
        folds
            None (rows split at random into K folds of nearly equal size), a grouping
            factor's name (whole levels held out: the score of predicting new levels), or
            an array of fold labels, one per row.
        random_seed
            Seed for the fold split and the refits.
        group
            brms's spelling of ``folds=<grouping factor>``: whole levels of ``group`` held
            out together.
        **fit_kwargs
            Settings for each refit (default: this fit's draws, tune, chains and
            target_accept).

        Returns
        -------
        KFold
            ``elpd`` (summed over rows), its ``se``, the ``pointwise`` values and the
            ``folds``.

        Examples
        --------
        >>> fit.kfold(K=2, folds="Subject", draws=200, chains=2, random_seed=1)
        """
        if group is not None:
            if folds is not None:
                raise ValueError("give the folds either as folds= or as group=, not both")
            folds = group
        return comparison.kfold(self, K=K, folds=folds, random_seed=random_seed, **fit_kwargs)

    def waic(self) -> pd.Series:
        """The widely applicable information criterion (ArviZ 1 dropped it: prefer [`loo`][bayesmm.Fit.loo]).

        Returns
        -------
        pandas.Series
            ``elpd_waic``, its ``se``, ``p_waic``, the number of rows and how many rows
            have a pointwise variance of the log-likelihood above 0.4 (``large_p_waic_i``),
            where WAIC is unreliable.

        Examples
        --------
        >>> fit.waic()["elpd_waic"]
        """
        return comparison.waic(self)

    def r2(self, prob: float = 0.95) -> pd.DataFrame:
        """Bayesian R² (Gelman et al. 2019): the variance of the fitted means over that plus
        the residual variance, per posterior draw.

        Parameters
        ----------
        prob
            Probability of the central interval, in (0, 1).

        Returns
        -------
        pandas.DataFrame
            Rows ``marginal`` (fixed effects only) and ``conditional`` (with the group
            effects); columns ``mean``, ``sd`` and the interval's ends.

        Examples
        --------
        >>> fit.r2()
        """
        return comparison.r2(self, prob=prob)

    def conditional_effects(
        self,
        effect: str,
        by: str | None = None,
        scale: str = "response",
        re_form="~0",
        conditions: dict | None = None,
        prob: float = 0.95,
        resolution: int = effects.RESOLUTION,
    ) -> pd.DataFrame:
        """The expected response over one predictor, the others held fixed: brms's
        ``conditional_effects``, bambi's ``plot_predictions``.

        The grid runs the predictor over its range (``resolution`` points) or its levels,
        for each value of ``by`` (a factor's levels; a number's mean and mean +- 1 SD), with
        every other predictor at its mean (a number) or reference level (a factor), as brms
        does, or at the value ``conditions`` gives it. Binomial trials are 1 (the proportion).

        Parameters
        ----------
        effect
            A predictor's column name, ``"x"``, or ``"x:f"`` for x by f.
        by
            A second predictor whose values get one curve each.
        scale
            ``"response"`` (the expected response, brms's default) or ``"linear"`` (the linear
            predictor).
        re_form
            ``"~0"`` (the default, brms's ``re_formula = NA``): population-level predictions;
            None: the group effects included, for a new level of each grouping factor drawn
            from the fitted population (the band then holds the variation between groups).
        conditions
            Values of the other predictors, ``{"z": 1.0}``.
        prob
            Probability of the central interval, in (0, 1).
        resolution
            Points along a numeric predictor's range.

        Returns
        -------
        pandas.DataFrame
            One row per grid point: the predictor (and ``by``), ``estimate`` (posterior
            mean), ``median`` and the interval's ends. ``plot_conditional_effects`` draws it.

        Examples
        --------
        >>> fit.conditional_effects("Days", resolution=5)
        >>> fit.conditional_effects("Days", re_form=None)   # a new subject's curve
        >>> fit.conditional_effects("Days", scale="linear", conditions={}, prob=0.9)

        With a factor f in the model, ``fit.conditional_effects("x:f")`` (or ``by="f"``)
        gives one curve per level.
        """
        return effects.conditional_effects(self, effect, by, scale, re_form, conditions, prob, resolution)

    def plot_conditional_effects(
        self, effect: str, by: str | None = None, points: bool = False, ax=None, **options
    ):
        """Plot ``conditional_effects``: a line with its credible band per value of ``by`` (a
        numeric predictor) or points with intervals (a factor), with the data when ``points``.

        Parameters
        ----------
        effect
            As for ``conditional_effects``: ``"x"`` or ``"x:f"``.
        by
            A second predictor, one curve per value.
        points
            Draw the data too (response scale; binomial data as proportions).
        ax
            Matplotlib Axes to draw on, or None for a new figure.
        **options
            ``scale``, ``re_form``, ``conditions``, ``prob``, ``resolution``, as for
            ``conditional_effects``.

        Returns
        -------
        matplotlib.axes.Axes

        Examples
        --------
        >>> fit.plot_conditional_effects("Days", points=True)
        """
        table = self.conditional_effects(effect, by, **options)
        return effects.plot_conditional_effects(self, table, points=points, ax=ax)

    def contrasts(
        self, factor: str, by: str | None = None, scale: str = "response", re_form="~0", prob: float = 0.95
    ) -> pd.DataFrame:
        """Pairwise differences of a factor's levels in the expected response, in the spirit
        of emmeans's ``pairs()``: each level's prediction with numeric predictors at their
        means and the other factors averaged over their levels (equal weights), per value of
        ``by``; differences taken draw by draw.

        Parameters
        ----------
        factor
            A factor's column name.
        by
            Another predictor: contrasts at each of its levels (a number: its mean +- 1 SD).
        scale
            ``"response"`` (differences of expected responses) or ``"linear"``.
        re_form
            ``"~0"``: population level; None: a new level of each grouping factor.
        prob
            Probability of the central interval, in (0, 1).

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
        >>> cbpp_fit.contrasts("period")     # differences in the proportion of cases
        """
        return effects.contrasts(self, factor, by, scale, re_form, prob)

    def marginal_means(
        self,
        specs,
        by: str | None = None,
        weights: str = "equal",
        scale: str = "response",
        prob: float = 0.95,
    ) -> effects.MarginalMeans:
        """Estimated marginal means of the expected response per level of one or more
        factors (emmeans's ``emmeans(fit, ~ specs | by)``, as brms users call it).

        The reference grid is emmeans's: every combination of the levels of every factor in
        the model, each number at its mean. The population-level linear predictor (group
        effects at zero) is averaged over the factors not in ``specs`` or ``by``, per draw,
        and on the response scale back-transformed by the inverse link afterwards, as
        emmeans's ``type = "response"`` does (for a log link: the geometric mean over the
        averaged cells; for an identity link: the plain average).

        Parameters
        ----------
        specs
            A factor's column name, or a list of them (one mean per combination of levels).
        by
            Another factor: the means, and their contrasts, within each of its levels.
        weights
            ``"equal"``: every cell of the averaged factors counts alike (emmeans's
            default); ``"proportional"``: each combination of them as often as in the data.
        scale
            ``"response"`` or ``"linear"`` (the linear predictor, emmeans's link scale).
        prob
            Probability of the central interval, in (0, 1).

        Returns
        -------
        MarginalMeans
            ``.table`` (per level: ``estimate``, ``sd``, ``median`` and the interval), the
            ``.draws`` and ``.contrasts()`` for the pairwise differences.

        Examples
        --------
        >>> cbpp = bm.datasets.load("cbpp")
        >>> cbpp_fit = bm.Model("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp,
        ...                     family="binomial").fit(draws=300, chains=2, progressbar=False)
        >>> means = cbpp_fit.marginal_means("period")   # the proportion of cases per period
        >>> means.contrasts()
        """
        return effects.marginal_means(self, specs, by, weights, scale, prob)

    def psense(self, threshold: float = 0.05) -> pd.DataFrame:
        """Power-scaling sensitivity of each summary parameter to the prior and to the
        likelihood (R's priorsense, ArviZ's ``psense_summary``), computed by importance
        sampling from these draws, without refitting.

        The prior scaled is that of the model's top-level parameters (brms's ``lprior``).
        A parameter sensitive to the prior and the likelihood both is flagged as a potential
        prior-data conflict; one sensitive to the prior alone, as a strong prior or weak
        likelihood.

        Parameters
        ----------
        threshold
            Sensitivity (cumulative Jensen-Shannon distance per unit log-power) above which a
            parameter is flagged; 0.05 as priorsense.

        Returns
        -------
        pandas.DataFrame
            Per summary parameter: ``prior_sensitivity``, ``likelihood_sensitivity`` and
            ``diagnosis``.

        Examples
        --------
        >>> fit.psense()
        """
        return sensitivity.psense(self, threshold=threshold)

    def hypothesis(self, statements, prob: float = 0.95) -> pd.DataFrame:
        """Posterior of linear statements about the parameters, as brms's ``hypothesis``.

        Names are the summary's row names (``Days``, ``period[T.2]``,
        ``sd(Days|Subject)``), or a factor level's name as lme4 and brms write it
        (``period2`` for ``period[T.2]``, ``x:fv`` for ``x:f[T.v]``). Each statement
        ``left OP right`` (OP one of ``<``, ``>``, ``=``, ``<=``, ``>=``) is evaluated as
        ``left - right`` per draw. Statements are parsed as linear arithmetic of names and
        numbers, never run as Python.

        Parameters
        ----------
        statements
            One statement or a list of them.
        prob
            Probability of the central interval, in (0, 1).

        Returns
        -------
        pandas.DataFrame
            One row per statement: ``estimate`` (posterior mean of left - right), ``sd``,
            the interval's ends and ``post_prob``, the posterior probability that an
            inequality holds (NaN for ``=``).

        Examples
        --------
        >>> fit.hypothesis(["Days > 5", "Days - 10 = 0"])
        """
        return comparison.hypothesis(self, statements, prob=prob)

    def plot_shrinkage(
        self, group: str, term: str = "Intercept", terms=None, prob: float = 0.95, levels="auto", ax=None
    ):
        """Shrinkage plot: each level's no-pooling estimate against its partial-pooling estimate.

        One term (default): levels on the vertical axis sorted by the partial-pooling
        estimate; open circles are no-pooling estimates (that level's data alone), filled
        circles with lines the posterior means and intervals of the level's coefficient
        (fixed + group effect), point area by rows per level, and the fitted population
        distribution above the axis. A level whose no-pooling estimate is infinite (all
        zeros under a log link, all successes under a logit link) is drawn as a triangle
        at the edge of the axis, pointing to the infinity; the axis spans the finite
        estimates only. With ``terms=(a, b)``: arrows from no-pooling to partial-pooling
        estimates in the plane and the population's 50% and 95% covariance ellipses.

        Parameters
        ----------
        group
            The grouping factor whose levels are drawn.
        term
            The varying term of the one-dimensional plot.
        terms
            Two varying terms for the two-dimensional plot, or None.
        prob
            Probability of the partial-pooling intervals.
        levels
            ``"auto"``: every level up to 60, otherwise the 30 lowest and 30 highest
            partial-pooling estimates and a band saying how many are left out; ``"all"``;
            or a list of level names.
        ax
            Matplotlib Axes to draw on, or None for a new figure sized by the number of
            levels (0.2 inch per row, 8-point labels).

        Returns
        -------
        matplotlib.axes.Axes
            The Axes of the levels.

        Examples
        --------
        >>> ax = fit.plot_shrinkage("Subject")
        >>> ax = fit.plot_shrinkage("Subject", terms=("Intercept", "Days"))
        """
        from . import plots  # matplotlib loads on the first plot

        return plots.plot_shrinkage(self, group, term=term, terms=terms, prob=prob, levels=levels, ax=ax)

    def plot_ppc(
        self, kind: str | None = None, num_pp_samples: int = 100, stat="mean", random_seed=0, ax=None
    ):
        """Posterior predictive check: the observed data against data sets drawn from the posterior.

        The default follows the family, not the values: a hanging rootogram for count
        families, a histogram for binary, binomial and category data, a density for
        continuous families (also when their data are whole numbers), and Kaplan-Meier
        curves for right-censored survival times.

        Parameters
        ----------
        kind
            * ``"density"``: observed density against replicated ones (ArviZ's
              ``plot_ppc_dist``);
            * ``"hist"``: observed histogram with the replicates' median count and 95% band
              per bin (one bin per value for integer data);
            * ``"rootogram"``: for counts, bars of sqrt(observed frequency) hang from the
              curve of sqrt(expected frequency), with the replicates' 95% band; bars that
              end away from zero show misfit at that count;
            * ``"zeros"``: the number of zeros in each replicate against the observed one;
            * ``"dispersion"``: for counts and binomial data, the Pearson dispersion
              sum((y - mu)^2 / V(mu)) / n of the observed data against the replicates',
              each with the same draw's means. Points above the diagonal show more
              variation than the model produces within the levels it fits: the check that
              tells a Poisson model of overdispersed counts from a negative binomial one
              when the rootogram cannot;
            * ``"stat"``: a statistic of each replicate against the observed value;
            * ``"km"``: for right-censored times (``Surv(time, status)``), the observed
              Kaplan-Meier curve against the survival curves of replicated times, drawn
              without censoring (bayesplot's ``ppc_km_overlay``);
            * ``"pit"``, ``"loo_pit"``: ECDF of the (LOO-)probability integral transform
              with its simultaneous band (ArviZ's ``plot_ppc_pit``, ``plot_loo_pit``).
        num_pp_samples
            Replicate data sets drawn (density, hist, rootogram, zeros, dispersion, stat).
        stat
            For ``kind="stat"``: ``"mean"``, ``"sd"``, ``"max"``, ``"min"``, ``"median"``
            or a function of one data vector.
        random_seed
            Seed for the replicates.
        ax
            Matplotlib Axes to draw on (ArviZ's kinds draw their own figure).

        Returns
        -------
        matplotlib.axes.Axes or arviz_plots.PlotCollection
            The Axes, or ArviZ's PlotCollection for ``density``, ``pit`` and ``loo_pit``.

        Examples
        --------
        >>> ax = fit.plot_ppc()
        >>> ax = fit.plot_ppc("stat", stat="sd")
        """
        from . import plots  # matplotlib loads on the first plot

        return plots.plot_ppc(
            self, kind=kind, num_pp_samples=num_pp_samples, stat=stat, random_seed=random_seed, ax=ax
        )

    def plot_ranef(self, group: str, prob: float = 0.95, levels="auto", axes=None):
        """Caterpillar plot of a grouping factor's effects (lme4's ``dotplot(ranef(...))``).

        One panel per varying term; levels sorted by the first term's posterior mean, each
        with its interval, against a dashed line at zero.

        Parameters
        ----------
        group
            The grouping factor.
        prob
            Probability of the intervals.
        levels
            ``"auto"``: every level up to 60, otherwise the 30 lowest and 30 highest,
            saying how many are left out; ``"all"``; or a list of level names.
        axes
            A sequence of Axes, one per term, or None for a new figure sized by the
            number of levels.

        Returns
        -------
        numpy.ndarray of matplotlib.axes.Axes
            One Axes per term.

        Examples
        --------
        >>> axes = fit.plot_ranef("Subject")
        """
        from . import plots  # matplotlib loads on the first plot

        return plots.plot_ranef(self, group, prob=prob, levels=levels, axes=axes)

    def plot_trace(self, **kwargs):
        """Trace of every parameter of the summary (ArviZ's ``plot_trace``), each panel titled
        with its summary name (``sd(Days|Subject)``), one colour per chain with a legend.

        The group effects (``r_<group>``, one panel per level and term) are left out unless
        ``var_names`` asks for them by the posterior's variable names.

        Parameters
        ----------
        **kwargs
            Passed to ``arviz.plot_trace``: ``var_names`` takes summary names
            (``["sd(Days|Subject)", "sigma"]``) or the posterior's variables (``["r_Subject"]``).

        Returns
        -------
        arviz_plots.PlotCollection
            ArviZ's collection of the figure and its panels.

        Examples
        --------
        >>> pc = fit.plot_trace()
        >>> pc = fit.plot_trace(var_names=["sigma"])
        >>> pc = fit.plot_trace(var_names=["r_Subject"])
        """
        from . import plots  # matplotlib loads on the first plot

        return plots.plot_trace(self, **kwargs)

    def plot_priors(self, draws: int = 2000, random_seed=0, axes=None):
        """Prior (grey) against posterior (blue) density for every row of the summary, to
        see where the data, not the prior, decided an estimate.

        Only the parameters' priors are drawn, quickly, for every family (not the
        response's prior predictive).

        Parameters
        ----------
        draws
            Prior draws per parameter.
        random_seed
            Seed for the prior draws.
        axes
            An array of Axes with one per summary row, or None for a new figure.

        Returns
        -------
        numpy.ndarray of matplotlib.axes.Axes
            The grid of Axes (unused ones hidden).

        Examples
        --------
        >>> axes = fit.plot_priors()
        """
        from . import plots  # matplotlib loads on the first plot

        return plots.plot_priors(self, draws=draws, random_seed=random_seed, axes=axes)

    def save(self, path):
        """Save the fit to one NetCDF file: draws, the model's description and the data's
        columns the model uses. Written to a temporary file and moved into place, so an
        interrupted save leaves any earlier file intact.

        Parameters
        ----------
        path
            File to write (``.nc`` by convention).

        Returns
        -------
        pathlib.Path
            The path written.

        Examples
        --------
        >>> path = fit.save("sleepstudy_fit.nc")
        >>> bm.load(path).fixef()["mean"]
        """
        return persist.save(self, path)

    def diagnose(self) -> diagnostics.Diagnosis:
        """Sampler diagnostics and singular-fit checks, each with advice when it fails.

        Divergences, R-hat, bulk and tail ESS, E-BFMI and tree depth; SDs near zero and
        correlations near ±1 (lme4's singular fits). A failing check names the parameter
        in trouble and what to try for that term. Computed once per fit.

        Returns
        -------
        bayesmm.results.diagnostics.Diagnosis
            ``ok``, the ``checks`` and the failed ``problems``; printing it lists every
            check, ``headline()`` gives the one-line verdict and ``details()`` the advice.

        Examples
        --------
        >>> diagnosis = fit.diagnose()
        >>> diagnosis.ok
        >>> print(diagnosis)
        """
        if self._diagnosis is None:
            self._diagnosis = diagnostics.diagnose(self)
        return self._diagnosis

    def warn_if_unhealthy(self) -> None:
        """Issue one [`DiagnosticWarning`][bayesmm.DiagnosticWarning] listing every failed check of
        [`diagnose`][bayesmm.Fit.diagnose] with its numbers and what to try; nothing when all pass.
        ``Model.fit`` calls it.

        Returns
        -------
        None

        Examples
        --------
        >>> fit.warn_if_unhealthy()
        """
        diagnosis = self.diagnose()
        if not diagnosis.ok:
            lines = [c.line() for c in diagnosis.problems]
            warn_user(
                "the fit needs attention:\n" + "\n".join(lines), diagnostics.DiagnosticWarning)

    def re_pca(self, prob: float = 0.95) -> dict[str, pd.DataFrame]:
        """Principal components of each grouping factor's random-effect covariance
        (lme4's ``rePCA``): components with almost no variance mean the varying-term
        structure is richer than the data support.

        Parameters
        ----------
        prob
            Probability of the intervals of each component's share of variance.

        Returns
        -------
        dict of str to pandas.DataFrame
            Per grouping factor: rows ``PC1``, ``PC2``,
            ...; columns ``proportion`` (posterior mean share of the variance), its
            interval and ``cumulative``.

        Examples
        --------
        >>> fit.re_pca()["Subject"]
        """
        return diagnostics.re_pca(self, prob=prob)

    def __str__(self) -> str:
        return results.format_fit(self)

    def _repr_html_(self) -> str:
        return results.format_fit_html(self)
