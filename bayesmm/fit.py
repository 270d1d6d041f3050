"""Sampling with NUTS and the ``Fit`` object that carries the posterior and the design."""

from __future__ import annotations

import importlib.util
import time
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import arviz as az
import pandas as pd

from . import diagnostics, results

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
    for label, value in (("draws", draws), ("tune", tune), ("chains", chains)):
        if not isinstance(value, int) or value < (0 if label == "tune" else 1):
            raise ValueError(f"{label} must be a positive integer, got {value!r}")
    pymc_model = model.pymc_model
    start = time.perf_counter()
    import pymc as pm

    with pymc_model, warnings.catch_warnings():
        # nutpie and PyMC say the same things about BLAS and defaults; keep notebooks quiet.
        warnings.filterwarnings("ignore", message=".*BLAS.*")
        idata = pm.sample(
            draws=draws,
            tune=tune,
            chains=chains,
            cores=cores,
            target_accept=target_accept,
            random_seed=random_seed,
            nuts_sampler=name,
            progressbar=progressbar,
            compute_convergence_checks=False,
        )
    _drop_internal_variables(idata)
    settings = SamplerSettings(name, draws, tune, chains, target_accept, random_seed)
    settings.seconds = time.perf_counter() - start
    fit = Fit(model=model, idata=idata, settings=settings)
    fit.warn_if_unhealthy()
    return fit


def _drop_internal_variables(idata: az.InferenceData) -> None:
    """Remove unconstrained-space copies (``sigma_log__``) and packed Cholesky factors,
    which some samplers store; everything users read is kept under its own name."""
    post = idata.posterior
    internal = [v for v in post.data_vars if str(v).endswith("__") or str(v).startswith("chol_")]
    if internal:
        idata.posterior = post.drop_vars(internal)
        unused = [
            d
            for d in idata.posterior.dims
            if d not in idata.posterior.data_vars
            and not any(d in idata.posterior[v].dims for v in idata.posterior.data_vars)
        ]
        idata.posterior = idata.posterior.drop_dims(unused)


@dataclass
class Fit:
    """A fitted model: ``idata`` (ArviZ InferenceData) plus the model and its design.

    The lme4/brms vocabulary lives here: :meth:`summary`, :meth:`fixef`,
    :meth:`ranef`, :meth:`coef`, :meth:`varcorr`.
    """

    model: Model
    idata: az.InferenceData
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
