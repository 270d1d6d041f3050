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

import warnings

import numpy as np
import xarray as xr

__all__ = ["METHODS", "laplace_draws", "advi_draws"]

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
