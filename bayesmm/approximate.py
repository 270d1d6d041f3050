"""Deterministic and variational approximations of the posterior, beside NUTS: the lecture's
"flexibility and speed vs accuracy".

* ``laplace``: the mode of the joint posterior density in the sampler's unconstrained
  coordinates (log SDs, the standard normals of non-centred effects, ...) and a normal
  distribution there with the inverse of the negative Hessian as covariance, mapped back to
  the parameters. For a collapsed Gaussian model the group effects are integrated out
  exactly first, and this is the Laplace approximation of the marginal posterior lme4
  maximizes; otherwise it is a joint approximation, which is poor where group SDs are large
  and clusters small (binary data above all): the joint density's mode is pulled towards
  small SDs and its curvature there is not the posterior's spread.
* ``advi``: PyMC's mean-field automatic differentiation variational inference.

Both return draws in the shape of a posterior (``chains`` x ``draws``) so that every
post-fit tool (summary, predict, plots) works on them. Pathfinder lives in pymc-extras,
whose releases need a PyMC older than the 6.4 bayesmm runs on; it is not offered.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from .results import interval_names

__all__ = ["METHODS", "laplace_draws", "advi_draws", "compare_methods", "MethodComparison"]

METHODS = ("nuts", "laplace", "advi")


def _point_function(model):
    """Value variables -> every free variable on its own scale and every deterministic."""
    outputs = model.unobserved_value_vars
    return model.compile_fn(outputs, inputs=model.value_vars, on_unused_input="ignore"), [
        o.name for o in outputs
    ]


def _as_posterior(values: dict[str, np.ndarray], model, chains: int, draws: int) -> xr.DataTree:
    """Draws (chains * draws, ...) by variable, as a posterior with the model's dims."""
    variables = {}
    for name, array in values.items():
        array = array.reshape((chains, draws) + array.shape[1:])
        dims = list(model.named_vars_to_dims.get(name, ()))
        dims = dims if len(dims) == array.ndim - 2 else [f"{name}_dim_{k}" for k in range(array.ndim - 2)]
        variables[name] = (["chain", "draw", *dims], array)
    used = {dim for dims, _ in variables.values() for dim in dims}
    coords = {k: np.asarray(v) for k, v in model.coords.items() if v is not None and k in used}
    posterior = xr.Dataset(variables, coords={"chain": np.arange(chains), "draw": np.arange(draws), **coords})
    return xr.DataTree.from_dict({"posterior": posterior})


def _negative_hessian(gradient, x: np.ndarray) -> np.ndarray:
    """The Hessian of the negative log density by central differences of its exact gradient
    (2 n gradients; PyTensor's symbolic Hessian takes tens of seconds to compile)."""
    steps = 1e-5 * np.maximum(np.abs(x), 1.0)
    columns = []
    for j, h in enumerate(steps):
        e = np.zeros_like(x)
        e[j] = h
        columns.append((gradient(x + e) - gradient(x - e)) / (2 * h))
    H = np.column_stack(columns)
    return (H + H.T) / 2


def laplace_draws(model, draws: int, chains: int, random_seed=None) -> tuple[xr.DataTree, dict]:
    """Draws from the Laplace approximation at the mode of the unconstrained posterior, and what
    the optimizer said (``converged``, ``iterations``, the mode's log density)."""
    from pymc.blocking import DictToArrayBijection, RaveledVars
    from scipy import optimize

    value_vars = model.value_vars
    start = model.initial_point(random_seed=random_seed)
    start = {v.name: start[v.name] for v in value_vars}
    x0 = DictToArrayBijection.map(start)
    logp = model.compile_logp(jacobian=True)
    dlogp = model.compile_dlogp(vars=model.free_RVs, jacobian=True)

    def point(x):
        return DictToArrayBijection.rmap(RaveledVars(x, x0.point_map_info))

    def objective(x):
        p = point(x)
        return -float(logp(p)), -np.asarray(dlogp(p), dtype=float)

    result = optimize.minimize(objective, x0.data, jac=True, method="L-BFGS-B", options={"maxiter": 5000})
    precision = _negative_hessian(lambda x: objective(x)[1], result.x)
    values, eigenvectors = np.linalg.eigh(precision)
    if values.min() <= 0:
        raise ValueError(
            "the Laplace approximation needs a mode where the posterior curves down in every direction; "
            f"here {int((values <= 0).sum())} direction(s) are flat or curve up (a group SD at zero?): "
            "use NUTS"
        )
    rng = np.random.default_rng(random_seed)
    z = rng.standard_normal((chains * draws, len(values)))
    samples = result.x + (z / np.sqrt(values)) @ eigenvectors.T
    function, names = _point_function(model)
    outputs = [function(point(x)) for x in samples]
    stacked = {name: np.stack([np.asarray(o[k]) for o in outputs]) for k, name in enumerate(names)}
    info = {
        "converged": bool(result.success),
        "iterations": int(result.nit),
        "log_density": -float(result.fun),
    }
    return _as_posterior(stacked, model, chains, draws), info


def advi_draws(
    model, draws: int, chains: int, random_seed=None, iterations: int = 30000
) -> tuple[xr.DataTree, dict]:
    """Draws from PyMC's mean-field ADVI after ``iterations`` steps, and its final loss."""
    import pymc as pm

    with model, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        approximation = pm.fit(n=iterations, method="advi", random_seed=random_seed, progressbar=False)
    sample = approximation.sample(chains * draws, random_seed=random_seed, return_inferencedata=False)
    values = {name: np.asarray(sample[name]) for name in sample.varnames if not name.endswith("__")}
    info = {"final_loss": float(approximation.hist[-1]), "iterations": iterations}
    return _as_posterior(values, model, chains, draws), info


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
