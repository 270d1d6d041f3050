"""Model checking and comparison: pointwise log-likelihood, LOO, WAIC, Bayesian R², hypotheses."""

from __future__ import annotations

import ast
import re
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import arviz_stats as az  # not the arviz meta-package, which loads matplotlib
import numpy as np
import pandas as pd
import xarray as xr
from scipy import special

from ..families import additions
from ..inference.idata import REPARAMETERIZATION, get_group, has_group, observed_data, set_group
from ..lazy import pm
from ..model.variables import OBS_DIM
from ..spec.expressions import _BINARY
from ..warn import warn_user
from .diagnostics import DiagnosticWarning
from .predict import family_param_draws, linear_predictor_draws
from .summaries import interval_names, summary_draws

if TYPE_CHECKING:  # pragma: no cover
    from .fit import Fit

__all__ = ["add_log_likelihood", "loo", "kfold", "KFold", "waic", "compare", "r2", "hypothesis"]


def add_observed_data(fit: Fit) -> None:
    """Store the response as the ``observed_data`` group, if it is not there yet (or empty,
    as in a collapsed fit saved before bayesmm filled it: its likelihood is a Potential)."""
    if not has_group(fit.idata, "observed_data") or not fit.idata["observed_data"].data_vars:
        set_group(fit.idata, "observed_data", observed_data(fit.design))


def add_log_likelihood(fit: Fit) -> None:
    """Store the pointwise log-likelihood (``log_likelihood`` group) and the observed data.

    PyMC evaluates it from the model itself (``pm.compute_log_likelihood``), which needs the
    variables the sampler moved: they are in the ``reparameterization`` group.
    """
    if has_group(fit.idata, "log_likelihood"):
        return
    if fit.model.collapsed or fit.design.additions.any:
        # From the drawn group effects (the collapsed PyMC model sampled none), and with the
        # addition terms (weights: the weighted pointwise values, as brms's).
        design = fit.design
        eta, trials, _ = linear_predictor_draws(fit)
        values = additions.log_likelihood(fit.model.family, design.y, eta, family_param_draws(fit), trials,
                                          design.additions)  # fmt: skip
        post = get_group(fit.idata, "posterior")
        shape = (post.sizes["chain"], post.sizes["draw"], design.n_obs)
        loglik = xr.Dataset({design.response_var: (("chain", "draw", OBS_DIM), values.reshape(shape))},
                            coords={"chain": post["chain"].values, "draw": post["draw"].values,
                                    OBS_DIM: np.arange(design.n_obs)})  # fmt: skip
        set_group(fit.idata, "log_likelihood", loglik)
        add_observed_data(fit)
        return
    draws = get_group(fit.idata, "posterior")
    if has_group(fit.idata, REPARAMETERIZATION):
        draws = xr.merge([draws, get_group(fit.idata, REPARAMETERIZATION)], compat="override")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*BLAS.*")
        computed = pm.compute_log_likelihood(
            xr.DataTree.from_dict({"posterior": draws}),
            model=fit.model.pymc_model,
            extend_inferencedata=False,
            progressbar=False,
        )
    loglik = computed.to_dataset() if isinstance(computed, xr.DataTree) else computed
    set_group(fit.idata, "log_likelihood", loglik)
    add_observed_data(fit)


def loo(fit: Fit, **kwargs):
    """PSIS-LOO cross-validation (ArviZ's ``loo``): ArviZ's ELPD result (``elpd``, ``se``,
    ``p``, pointwise ``pareto_k``). When some Pareto k exceed ArviZ's threshold (0.7 for
    the usual number of draws), a :class:`~bayesmm.DiagnosticWarning` says how many, what
    that means for this model and what to do.

    >>> fit.loo().elpd  # doctest: +SKIP
    """
    result = _quiet_loo(fit, **kwargs)
    advice = pareto_k_advice(fit, result)
    if advice:
        warn_user(advice, DiagnosticWarning)
    return result


def _quiet_loo(fit: Fit, **kwargs):
    """ArviZ's loo without its generic warning (bayesmm says what it means for the model)."""
    add_log_likelihood(fit)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Estimated shape parameter of Pareto")
        return az.loo(fit.idata, **kwargs)


@dataclass
class KFold:
    """K-fold cross-validation: ``elpd`` (the expected log predictive density of held-out
    rows, summed), its standard error ``se``, the ``pointwise`` values per row and the
    ``folds`` each row was held out in."""

    elpd: float
    se: float
    pointwise: np.ndarray
    folds: np.ndarray

    def __repr__(self) -> str:
        k = len(np.unique(self.folds))
        return f"KFold(elpd={self.elpd:.2f}, se={self.se:.2f}, K={k}, n={self.pointwise.size})"


def kfold(fit: Fit, K: int = 10, folds=None, random_seed=None, **fit_kwargs) -> KFold:
    """K-fold cross-validation (brms's ``kfold``): refit the model K times, each time without
    one fold of rows, and score the held-out rows by their log predictive density
    log mean_s p(y_i | theta_s). Unlike PSIS-LOO it approximates nothing, so it holds where
    Pareto k values are high (observation-level effects, influential rows); it costs K fits.

    Group levels a training set lacks (an observation-level effect's, or the held-out
    levels) are drawn from the fitted population, as ``predict(new_levels="sample")`` does.

    Parameters
    ----------
    fit
        The fit to cross-validate; its model is refitted to each training set.
    K
        Number of folds (for ``folds=None`` or a grouping factor).
    folds
        None (rows split at random into K folds of nearly equal size), the name of a
        grouping factor (whole levels held out: K folds of levels, the score of predicting
        new levels), or an array of fold labels, one per row.
    random_seed
        Seed for the split and the refits.
    **fit_kwargs
        Settings for each refit (default: the original fit's draws, tune, chains and
        target_accept).

    Returns
    -------
    KFold
        ``elpd`` (summed over rows), its standard error ``se``, the ``pointwise`` values
        and the ``folds`` each row was held out in.

    Examples
    --------
    >>> bm.kfold(fit, K=10, random_seed=1)  # doctest: +SKIP
    KFold(elpd=-650.12, se=18.40, K=10, n=236)
    >>> bm.kfold(fit, K=2, draws=200, chains=2, random_seed=1)     # quick, rough
    """
    model, design = fit.model, fit.design
    n = design.n_obs
    rng = np.random.default_rng(random_seed)
    if folds is None:
        if not 2 <= int(K) <= n:
            raise ValueError(f"K must be between 2 and the number of rows ({n}), got {K}")
        labels = rng.permutation(np.arange(n) % int(K))
    elif isinstance(folds, str):
        if folds not in design.groups:
            raise KeyError(
                f"folds='{folds}' is not a grouping factor; grouping factors: {', '.join(design.groups)}"
            )
        codes = design.groups[folds][0].codes
        levels = rng.permutation(np.arange(codes.max() + 1) % int(K))
        labels = levels[codes]
    else:
        labels = np.asarray(folds)
        if labels.shape != (n,):
            raise ValueError(f"folds must give one label per row ({n}), got shape {labels.shape}")
    _check_fit_arguments(fit, fit_kwargs, "kfold")
    kept = fit.settings
    settings = {"draws": kept.draws, "tune": kept.tune, "chains": kept.chains,
                "target_accept": kept.target_accept, "progressbar": False, "random_seed": random_seed,
                **fit_kwargs}  # fmt: skip
    frame = model.model_frame.loc[design.rows]
    pointwise = np.empty(n)
    for label in np.unique(labels):
        held = labels == label
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # each refit's own diagnostics are not the point here
            # The model frame holds array-given trials in its own column: keep reading it.
            refit = model.updated(data=frame[~held], trials=model.trials_column).fit(**settings)
        new = frame[held]
        eta, trials, _ = linear_predictor_draws(refit, new, None, "sample", random_seed)
        params = family_param_draws(refit, new, None, "sample", random_seed)
        loglik = additions.log_likelihood(model.family, design.y[held], eta, params, trials,
                                          design.additions.take(held))  # fmt: skip
        pointwise[held] = special.logsumexp(loglik, axis=0) - np.log(loglik.shape[0])
    return KFold(float(pointwise.sum()), float(np.sqrt(n * pointwise.var())), pointwise, labels)


def _check_fit_arguments(fit: Fit, fit_kwargs: dict, caller: str) -> None:
    """Refuse, before any refit, keyword arguments that Model.fit does not take."""
    import inspect

    known = inspect.signature(type(fit.model).fit).parameters
    for key in fit_kwargs:
        if key in known:
            continue
        if key == "k":
            raise TypeError(f"{caller} takes K, the number of folds (capital K): {caller}(fit, K=3)")
        raise TypeError(
            f"{caller}() got {key!r}: it passes its other keyword arguments to Model.fit, which takes "
            f"{', '.join(n for n in known if n != 'self')}"
        )


def pareto_k_advice(fit: Fit, result, name: str | None = None) -> str | None:
    """What the Pareto k values of a PSIS-LOO result mean for ``fit``, or None when all are good."""
    k = np.ravel(result.pareto_k.values if hasattr(result.pareto_k, "values") else result.pareto_k)
    good = float(result.good_k)
    bad = int(np.sum(k > good))
    if not bad:
        return None
    label = f"model '{name}'" if name else "PSIS-LOO"
    text = (
        f"{label}: {bad} of {k.size} observations ({100 * bad / k.size:.0f}%) have Pareto k above "
        f"{good:.2f} (largest {k.max():.2f}), so importance sampling cannot stand in for leaving them "
        + (
            "out: the elpd is biased (optimistic), and so is any ranking by it."
            if bad > 0.1 * k.size
            else "out: the elpd may be somewhat optimistic, and so may a close ranking by it."
        )
    )
    per_row = fit.design.observation_level_groups
    if per_row:
        terms = ", ".join(f"(1 | {g})" for g in per_row)
        return text + (
            f" The model has an observation-level effect, {terms}: each row has its own parameter, "
            "whose posterior depends on that row alone, so leaving the row out changes it entirely. "
            "Compare models without it (a negative binomial or beta-binomial family models the same "
            "overdispersion), or use K-fold cross-validation, bm.kfold(fit), which refits instead "
            "of approximating."
        )
    return text + (
        " A few such observations are influential (outliers for this model, or levels with few "
        "rows): check them with plot_ppc(kind='loo_pit') or a more robust family, or use K-fold "
        "cross-validation, bm.kfold(fit), which refits instead of approximating."
    )


def waic(fit: Fit) -> pd.Series:
    """WAIC (Watanabe 2010), from the stored pointwise log-likelihood.

    ArviZ 1 no longer computes WAIC: PSIS-LOO (:meth:`Fit.loo`) estimates the same quantity
    more reliably and says when it cannot be trusted (Pareto k), so prefer it. This is
    the textbook formula, for comparison with older analyses: elpd_waic = lppd - p_waic,
    with p_waic the summed posterior variance of the pointwise log-likelihood.
    """
    add_log_likelihood(fit)
    values = get_group(fit.idata, "log_likelihood")[fit.design.response_var].values
    values = values.reshape(-1, values.shape[-1])
    lppd = special.logsumexp(values, axis=0) - np.log(values.shape[0])
    p_waic = values.var(axis=0, ddof=1)
    pointwise = lppd - p_waic
    return pd.Series(
        {
            "elpd_waic": pointwise.sum(),
            "se": np.sqrt(len(pointwise) * pointwise.var()),
            "p_waic": p_waic.sum(),
            "n_data_points": len(pointwise),
            "large_p_waic_i": int(np.sum(p_waic > 0.4)),
        },
        name="waic",
    )


def compare(fits: dict[str, Fit], **kwargs) -> pd.DataFrame:
    """Rank fits of the same data by PSIS-LOO expected log predictive density (ArviZ's ``compare``).

    When a fit has high Pareto k values, one [`DiagnosticWarning`][bayesmm.DiagnosticWarning] says,
    per fit, how many, what they mean for that model (an observation-level effect makes
    most of them high) and what to do.

    Parameters
    ----------
    fits
        Fits of the same rows, by name: ``{"poisson": fit_p, "negbin": fit_nb}``.
    **kwargs
        Passed to ``arviz.compare`` (e.g. ``method="BB-pseudo-BMA"``).

    Returns
    -------
    pandas.DataFrame
        ArviZ 1's table, best first: ``rank``, ``elpd`` (higher is better),
        ``elpd_diff`` (each fit's distance from the best, negative for worse fits), ``p``
        (effective number of parameters), ``dse`` (the standard error of the distance),
        ``warning``, stacking ``weight`` and ``diag_elpd``.

    Examples
    --------
    >>> slopes = bm.Model("Reaction ~ Days + (Days | Subject)", sleepstudy).fit(random_seed=1)
    >>> intercepts = bm.Model("Reaction ~ Days + (1 | Subject)", sleepstudy).fit(random_seed=1)
    >>> table = bm.compare({"slopes": slopes, "intercepts": intercepts})
    >>> table.index[0]
    'slopes'
    """
    if len(fits) < 2:
        raise ValueError("compare needs at least two fits, given as {'name': fit, ...}")
    if kwargs.pop("ic", "loo") != "loo":
        raise ValueError("compare ranks fits by PSIS-LOO only (ArviZ 1 dropped WAIC); leave out ic=")
    n_obs = {name: fit.design.n_obs for name, fit in fits.items()}
    if len(set(n_obs.values())) > 1:
        raise ValueError(
            f"the fits use different numbers of observations ({n_obs}); compare needs the same data"
        )
    results = {name: _quiet_loo(fit) for name, fit in fits.items()}
    advice = [pareto_k_advice(fit, results[name], name) for name, fit in fits.items()]
    advice = [a for a in advice if a]
    if advice:
        warn_user(
            "the ranking below rests on unreliable PSIS-LOO estimates:\n" + "\n".join(advice),
            DiagnosticWarning,
        )
    return rank(results, **kwargs)


def rank(results: dict, **kwargs) -> pd.DataFrame:
    """ArviZ's comparison table of PSIS-LOO results already computed, by name."""
    kwargs.setdefault("round_to", "none")  # numbers, not ArviZ's rounded display
    return az.compare(results, **kwargs)


def _r2_draws(fit: Fit, re_form) -> np.ndarray:
    eta, trials, _ = linear_predictor_draws(fit, re_form=re_form)
    mu = additions.mean(fit.model.family, eta, family_param_draws(fit), trials, fit.design.additions)
    fitted = mu.var(axis=1, ddof=1)
    residual = (fit.design.y - mu).var(axis=1, ddof=1)
    return fitted / (fitted + residual)


def r2(fit: Fit, prob: float = 0.95) -> pd.DataFrame:
    """Bayesian R² (Gelman, Goodrich, Gabry and Vehtari 2019), residual-based as brms's ``bayes_R2``.

    Per draw, var(fitted) / (var(fitted) + var(residuals)). ``conditional`` uses all
    group effects, ``marginal`` the fixed effects alone.
    """
    lo, hi = interval_names(prob)
    rows = {}
    for name, re_form in (("marginal", "~0"), ("conditional", None)):
        draws = _r2_draws(fit, re_form)
        q = np.quantile(draws, [(1 - prob) / 2, (1 + prob) / 2])
        rows[name] = {"mean": draws.mean(), "sd": draws.std(ddof=1), lo: q[0], hi: q[1]}
    return pd.DataFrame(rows).T


_COMPARISON = re.compile(r"(<=|>=|=|<|>)")


def hypothesis(fit: Fit, statements: str | list[str], prob: float = 0.95) -> pd.DataFrame:
    """Posterior of linear statements about the parameters, e.g. ``"Days > 5"`` or ``"a - b = 0"``.

    Names are the summary's row names (``Days``, ``period[T.2]``, ``sd(Days|Subject)``).
    Each statement ``left OP right`` is turned into ``left - right``; the table gives its
    posterior mean, SD and interval and, for ``<``/``>``, the posterior probability that
    the statement holds.
    """
    statements = [statements] if isinstance(statements, str) else list(statements)
    draws = summary_draws(fit)
    draws.update({alias: draws[name] for alias, name in r_names(draws).items()})
    names = sorted(draws, key=len, reverse=True)  # longest first: 'Days2' before 'Days'
    lo, hi = interval_names(prob)
    rows = {}
    for statement in statements:
        # Names first, then the comparison: a name may hold '=' or '<' (relevel(trt, ref = "a")).
        text, namespace = _substitute_names(statement, draws, names)
        parts = _COMPARISON.split(text)
        if len(parts) != 3:
            raise ValueError(f"a hypothesis has one comparison (<, >, =, <=, >=): {statement!r}")
        left, op, right = parts
        value = _evaluate_linear(f"({left}) - ({right})", namespace, draws, statement)
        q = np.quantile(value, [(1 - prob) / 2, (1 + prob) / 2])
        if op in (">", ">="):
            probability = float(np.mean(value > 0))
        elif op in ("<", "<="):
            probability = float(np.mean(value < 0))
        else:
            probability = np.nan
        rows[statement.strip()] = {
            "estimate": value.mean(),
            "sd": value.std(ddof=1),
            lo: q[0],
            hi: q[1],
            "post_prob": probability,
        }
    return pd.DataFrame(rows).T


def r_names(names) -> dict[str, str]:
    """The names lme4 and brms give treatment-coded levels, ``period2`` for ``period[T.2]``
    and ``x:fv`` for ``x:f[T.v]``, each mapped to the summary's name; only those that are
    no summary name already and stand for one parameter."""
    aliases: dict[str, list[str]] = {}
    for name in names:
        alias = re.sub(r"\[T\.([^\]]*)\]", r"\1", name)
        if alias != name:
            aliases.setdefault(alias, []).append(name)
    return {a: n[0] for a, n in aliases.items() if len(n) == 1 and a not in names}


def _substitute_names(
    statement: str, draws: dict[str, np.ndarray], names: list[str]
) -> tuple[str, dict[str, np.ndarray]]:
    """The statement with each parameter name (longest first) replaced by a placeholder
    ``_p<i>``, and the placeholders' draws."""
    namespace = {}
    text = statement
    for i, name in enumerate(names):
        if name in text:
            key = f"_p{i}"
            text = text.replace(name, key)
            namespace[key] = draws[name].reshape(-1)
    return text, namespace


def _evaluate_linear(
    text: str, namespace: dict[str, np.ndarray], draws: dict[str, np.ndarray], statement: str
) -> np.ndarray:
    if re.search(r"[A-Za-z_][\w.]*", re.sub(r"_p\d+", "", text)):
        leftover = re.findall(r"[A-Za-z_][\w.\[\]():|,]*", re.sub(r"_p\d+", "", text))
        raise ValueError(
            f"unknown parameter(s) {', '.join(repr(x) for x in leftover)} in hypothesis {statement!r}; "
            f"parameters: {', '.join(sorted(draws))}"
        )
    try:
        tree = ast.parse(text.replace("^", "**"), mode="eval")
    except SyntaxError:
        raise ValueError(f"cannot read hypothesis {statement!r}") from None
    value = _linear_value(tree.body, namespace, statement)
    return np.broadcast_to(np.asarray(value, dtype=float), next(iter(draws.values())).reshape(-1).shape)


# The formula interpreter's arithmetic, restricted to what a linear statement needs.
_ARITHMETIC = {op: _BINARY[op] for op in (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow)}


def _linear_value(node: ast.AST, namespace: dict[str, np.ndarray], statement: str):
    """Interpret a hypothesis: numbers, parameter draws and + - * / ^ only (never Python's eval)."""
    if (
        isinstance(node, ast.Constant)
        and isinstance(node.value, (int, float))
        and not isinstance(node.value, bool)
    ):
        return float(node.value)
    if isinstance(node, ast.Name) and node.id in namespace:
        return namespace[node.id]
    if isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
        left = _linear_value(node.left, namespace, statement)
        right = _linear_value(node.right, namespace, statement)
        return _ARITHMETIC[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _linear_value(node.operand, namespace, statement)
        return -value if isinstance(node.op, ast.USub) else value
    raise ValueError(
        f"hypothesis {statement!r} may hold only parameter names, numbers and + - * / ^; "
        f"'{ast.unparse(node)}' is not allowed"
    )
