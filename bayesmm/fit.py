"""Sampling with NUTS and the ``Fit`` object that carries the posterior and the design."""

from __future__ import annotations

import importlib.util
import time
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import xarray as xr

from . import comparison, diagnostics, persist, plots, predict, results
from .idata import REPARAMETERIZATION, get_group, set_group

if TYPE_CHECKING:  # pragma: no cover
    from .api import Model

__all__ = ["Fit", "sample", "available_samplers", "default_sampler"]

# PyMC's own NUTS always works; nutpie (Rust NUTS on a numba-compiled model) is
# 3-4x faster end to end here, numpyro and blackjax run through JAX.
_EXTERNAL = {"nutpie": "nutpie", "numpyro": "numpyro", "blackjax": "blackjax"}


def available_samplers() -> list[str]:
    """NUTS implementations that can run in this environment, fastest first."""
    found = [name for name, module in _EXTERNAL.items() if importlib.util.find_spec(module)]
    return found + ["pymc"]


def default_sampler() -> str:
    return available_samplers()[0]


@dataclass
class SamplerSettings:
    sampler: str
    draws: int
    tune: int
    chains: int
    target_accept: float
    random_seed: int | None
    seconds: float = 0.0


def sample(
    model: Model,
    *,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    cores: int | None = None,
    target_accept: float = 0.8,
    random_seed: int | None = None,
    sampler: str = "auto",
    progressbar: bool = True,
) -> Fit:
    """Run NUTS on ``model`` and wrap the result in a :class:`Fit`."""
    name = default_sampler() if sampler in (None, "auto") else sampler
    if name not in ("pymc", *_EXTERNAL):
        raise ValueError(f"unknown sampler {sampler!r}; available here: {', '.join(available_samplers())}")
    if name not in available_samplers():
        raise ValueError(
            f"sampler {name!r} is not installed; available here: {', '.join(available_samplers())}"
        )
    options = {"draws": draws, "tune": tune, "chains": chains, "cores": cores,
               "target_accept": target_accept, "random_seed": random_seed}  # fmt: skip
    _check_settings(**options)
    pymc_model = model.pymc_model
    start = time.perf_counter()
    import pymc as pm

    with pymc_model, warnings.catch_warnings():
        # nutpie and PyMC say the same things about BLAS and defaults; keep notebooks quiet.
        warnings.filterwarnings("ignore", message=".*BLAS.*")
        idata = pm.sample(
            **options,
            nuts_sampler=name,
            progressbar=progressbar,
            compute_convergence_checks=False,
            quiet=True,  # bayesmm runs its own checks and says what to do
        )
    _refuse_interrupted(idata, draws, chains)
    idata = _separate_reparameterization(idata, model.reported_variables)
    settings = SamplerSettings(name, draws, tune, chains, target_accept, random_seed)
    settings.seconds = time.perf_counter() - start
    fit = Fit(model=model, idata=idata, settings=settings)
    fit.warn_if_unhealthy()
    return fit


def _is_whole(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _check_settings(*, draws, tune, chains, cores, target_accept, random_seed) -> None:
    """Sampler settings are checked before any compiling, each error naming the argument."""
    for label, value in (("draws", draws), ("tune", tune), ("chains", chains)):
        if not _is_whole(value) or value < (0 if label == "tune" else 1):
            least = "0 or more" if label == "tune" else "1 or more"
            raise ValueError(f"{label} must be a whole number, {least}; got {value!r}")
    if cores is not None and (not _is_whole(cores) or cores < 1):
        raise ValueError(f"cores must be a whole number, 1 or more (or None for all); got {cores!r}")
    if (
        isinstance(target_accept, bool)
        or not isinstance(target_accept, (int, float))
        or not 0 < target_accept < 1
    ):
        raise ValueError(
            f"target_accept must be a number between 0 and 1 (e.g. 0.8 or 0.95); got {target_accept!r}"
        )
    if random_seed is not None and (not _is_whole(random_seed) or random_seed < 0):
        raise ValueError(f"random_seed must be a non-negative whole number or None; got {random_seed!r}")


def _refuse_interrupted(idata: xr.DataTree, draws: int, chains: int) -> None:
    """PyMC and nutpie return what they have when sampling is interrupted (Ctrl-C); a fit
    with fewer draws than asked for would pass for a complete one, so it is refused."""
    posterior = idata["posterior"]
    got_chains, got_draws = posterior.sizes.get("chain", 0), posterior.sizes.get("draw", 0)
    if got_chains < chains or got_draws < draws:
        raise KeyboardInterrupt(
            f"sampling was interrupted: {got_chains} chains x {got_draws} draws of {chains} x {draws}; "
            "no fit is returned (run fit() again to sample in full)"
        )


def _separate_reparameterization(idata: xr.DataTree, reported: list[str]) -> xr.DataTree:
    """Keep in ``posterior`` only the variables the summary reports (fixef, r_, sd_, cor_,
    family parameters); move what the sampler moved instead (standard normals, sheared
    coefficients, Cholesky factors) to the ``reparameterization`` group, and drop
    unconstrained-space copies (``sigma_log__``)."""
    post = get_group(idata, "posterior")
    internal = [v for v in post.data_vars if v not in reported and not str(v).endswith("__")]
    set_group(idata, REPARAMETERIZATION, post[internal])
    set_group(idata, "posterior", post[[v for v in reported if v in post]])
    return idata


@dataclass
class Fit:
    """A fitted model: ``idata`` (ArviZ InferenceData) plus the model and its design.

    The lme4/brms vocabulary lives here: :meth:`summary`, :meth:`fixef`,
    :meth:`ranef`, :meth:`coef`, :meth:`varcorr`.
    """

    model: Model
    idata: xr.DataTree
    settings: SamplerSettings = field(repr=False)
    _diagnosis: diagnostics.Diagnosis | None = field(default=None, repr=False)

    @property
    def design(self):
        return self.model.design

    def summary(self, prob: float = 0.95) -> pd.DataFrame:
        """Posterior summary of fixed effects, group-level SDs and correlations and
        family parameters, indexed by lme4/brms-style names."""
        return results.summary(self, prob=prob)

    def fixef(self, prob: float = 0.95) -> pd.DataFrame:
        """Population-level (fixed) effects: posterior mean, SD and interval."""
        return results.fixef(self, prob=prob)

    def ranef(self, group: str | None = None, prob: float = 0.95):
        """Group-level effects (deviations from the fixed effects) per grouping factor."""
        return results.ranef(self, group=group, prob=prob)

    def coef(self, group: str | None = None, prob: float = 0.95):
        """Per-level coefficients: fixed effects plus that level's group effects."""
        return results.coef(self, group=group, prob=prob)

    def varcorr(self, prob: float = 0.95) -> pd.DataFrame:
        """Group-level SDs and correlations and the residual SD, as lme4's VarCorr."""
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
        """Posterior predictions for the fitted rows or ``newdata``.

        ``kind``: ``"mean"`` (expected response), ``"linear"`` (linear predictor) or
        ``"response"`` (posterior-predictive draws). ``re_form``: ``None`` keeps every
        group effect, ``"~0"`` drops them all, ``"~ (1 | g)"`` keeps g's. ``new_levels``
        for levels the fit has not seen: ``"error"``, ``"sample"`` (draw their effects
        from the fitted population) or ``"population"`` (zero). ``summary=False``
        returns the draws as an xarray DataArray (chain, draw, obs). Binomial
        predictions on new data need ``trials=`` unless the formula's cbind() columns
        are present.
        """
        return predict.predict(self, newdata, kind, re_form, new_levels, summary, prob, random_seed, trials)

    def posterior_predictive(self, random_seed=None) -> xr.DataTree:
        """Add a ``posterior_predictive`` group (one new data set per draw) to ``idata``; returns it."""
        draws = self.predict(kind="response", summary=False, random_seed=random_seed)
        comparison.add_observed_data(self)
        set_group(self.idata, "posterior_predictive", draws.rename(self.design.response_name).to_dataset())
        return self.idata

    def simulate(self, nsim: int = 1, random_seed=None) -> pd.DataFrame:
        """``nsim`` new data sets, each from a random posterior draw (columns sim_1 ...)."""
        draws = self.predict(kind="response", summary=False, random_seed=random_seed)
        flat = draws.values.reshape(-1, draws.sizes["obs"])
        picks = np.random.default_rng(random_seed).choice(flat.shape[0], size=nsim, replace=False)
        return pd.DataFrame({f"sim_{k + 1}": flat[i] for k, i in enumerate(picks)}, index=self.design.rows)

    def loo(self, **kwargs):
        """PSIS-LOO (ArviZ); the pointwise log-likelihood is computed once and stored in ``idata``.
        Warns, with what to do, when Pareto k values are high (see :func:`bayesmm.comparison.loo`)."""
        return comparison.loo(self, **kwargs)

    def kfold(self, K: int = 10, folds=None, random_seed=None, **fit_kwargs):
        """K-fold cross-validation by refitting (see :func:`bayesmm.kfold`); where PSIS-LOO's
        Pareto k values are high."""
        return comparison.kfold(self, K=K, folds=folds, random_seed=random_seed, **fit_kwargs)

    def waic(self) -> pd.Series:
        """WAIC from the pointwise log-likelihood (ArviZ 1 dropped it: prefer :meth:`loo`)."""
        return comparison.waic(self)

    def r2(self, prob: float = 0.95) -> pd.DataFrame:
        """Bayesian R², marginal (fixed effects) and conditional (with group effects)."""
        return comparison.r2(self, prob=prob)

    def hypothesis(self, statements, prob: float = 0.95) -> pd.DataFrame:
        """Posterior of statements such as ``"Days > 5"`` or ``"period[T.2] - period[T.3] = 0"``."""
        return comparison.hypothesis(self, statements, prob=prob)

    def plot_shrinkage(
        self, group: str, term: str = "Intercept", terms=None, prob: float = 0.95, levels="auto", ax=None
    ):
        """No-pooling versus partial-pooling estimates per level (1-D, or 2-D with ``terms=(a, b)``);
        see :func:`bayesmm.plots.plot_shrinkage`."""
        return plots.plot_shrinkage(self, group, term=term, terms=terms, prob=prob, levels=levels, ax=ax)

    def plot_ppc(self, kind: str | None = None, **kwargs):
        """Posterior predictive check: ``density``, ``hist``, ``rootogram``, ``zeros``,
        ``dispersion``, ``stat``, ``pit`` or ``loo_pit``; by default a rootogram for counts, a
        histogram for binary and binomial data, a density otherwise (see
        :func:`bayesmm.plots.plot_ppc`)."""
        return plots.plot_ppc(self, kind=kind, **kwargs)

    def plot_ranef(self, group: str, prob: float = 0.95, levels="auto", axes=None):
        """Caterpillar plot of a grouping factor's effects; see :func:`bayesmm.plots.plot_ranef`."""
        return plots.plot_ranef(self, group, prob=prob, levels=levels, axes=axes)

    def plot_trace(self, **kwargs):
        """Trace plots of the summary's parameters (ArviZ 1's ``plot_trace``)."""
        return plots.plot_trace(self, **kwargs)

    def plot_priors(self, **kwargs):
        """Prior versus posterior densities for the summary's parameters."""
        return plots.plot_priors(self, **kwargs)

    def save(self, path):
        """Save posterior, design and settings to one file; read it back with ``bayesmm.load``."""
        return persist.save(self, path)

    def diagnose(self) -> diagnostics.Diagnosis:
        """Sampler diagnostics (divergences, R-hat, ESS, E-BFMI, tree depth) and singular-fit
        checks (SDs near zero, correlations near ±1), each with advice when it fails."""
        if self._diagnosis is None:
            self._diagnosis = diagnostics.diagnose(self)
        return self._diagnosis

    def warn_if_unhealthy(self) -> None:
        """One warning listing every failed check with its numbers and what to try."""
        diagnosis = self.diagnose()
        if not diagnosis.ok:
            lines = [c.line() for c in diagnosis.problems]
            warnings.warn(
                "the fit needs attention:\n" + "\n".join(lines), diagnostics.DiagnosticWarning, stacklevel=4
            )

    def re_pca(self, prob: float = 0.95) -> dict[str, pd.DataFrame]:
        """Principal components of each grouping factor's random-effect covariance (lme4's rePCA)."""
        return diagnostics.re_pca(self, prob=prob)

    def __str__(self) -> str:
        return results.format_fit(self)

    def _repr_html_(self) -> str:
        return results.format_fit_html(self)
