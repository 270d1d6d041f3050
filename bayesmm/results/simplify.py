"""Guided simplification of a fitted model's random-effects structure: the lecture's
"Simplifying models" and "Simplification strategies" as a tool.

From a fit, the candidates are the lecture's reductions, one step each: drop a term's
correlations (``||``), share one correlation (compound symmetry, ``cs()``), drop a varying
term, drop a grouping factor. Each is fitted with the fit's own settings (a structure fitted
before reuses its compiled code) and all are compared by PSIS-LOO. Two views recommend one:
Barr et al. (2013) keep the maximal model unless it is singular (then the least reduced
candidate that is not); Bates et al. (2015) and Matuschek et al. (2017) take the simplest
model whose expected predictive accuracy is not credibly worse than the best's (an elpd
difference within two of its standard errors).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..spec.formula import _split_top_level
from .comparison import _quiet_loo, rank

if TYPE_CHECKING:  # pragma: no cover
    from .fit import Fit

__all__ = ["Simplification", "simplify", "candidates"]

# A candidate is credibly worse than the best when its elpd is lower by more than this many SEs.
CREDIBLY_WORSE_SE = 2.0


def _terms(expr: str) -> list[str]:
    return [piece.strip() for _, piece in _split_top_level(expr, "+") if piece.strip()]


def _render(lhs: str, parsed, random: list[str]) -> str:
    """A candidate's formula: the fit's fixed part, offsets and special terms (mo(), s(), gp()),
    and the random terms given."""
    offsets = [f"offset({o})" for o in parsed.offsets]
    parts = [parsed.fixed.strip() or "1", *offsets, *parsed.special_terms, *random]
    return f"{lhs} ~ {' + '.join(parts)}"


def candidates(fit: Fit) -> dict[str, str]:
    """The one-step reductions of the fit's random-effects structure: a description of each
    and its formula (the fit's own formula first, as "as fitted")."""
    parsed = fit.design.formula
    lhs = parsed.text[: parsed.text.index("~")].strip()
    specs = list(parsed.random)
    labels = [spec.label for spec in specs]
    out = {"as fitted": parsed.text.strip()}

    def with_term(k: int, replacement: str | None) -> str:
        random = [replacement if i == k else label for i, label in enumerate(labels)]
        return _render(lhs, parsed, [r for r in random if r])

    for k, spec in enumerate(specs):
        varying = _terms(spec.expr)
        slopes = [t for t in varying if t not in ("1", "0", "-1")]
        if spec.structure == "us" and slopes:
            out[f"{spec.label}: drop its correlations"] = with_term(k, f"({spec.expr} || {spec.grouping})")
            out[f"{spec.label}: one shared correlation"] = with_term(k, f"cs({spec.expr} | {spec.grouping})")
        for slope in slopes:
            rest = [t for t in varying if t != slope]
            expr = " + ".join(rest) if rest and rest != ["0"] else "1"
            bar = "|" if spec.correlated else "||"
            if spec.structure == "cs" and len(rest) > 1:
                text = f"cs({expr} | {spec.grouping})"
            else:
                text = f"({expr} {bar} {spec.grouping})"
            out[f"{spec.label}: drop {slope}"] = with_term(k, text)
    groups = list(dict.fromkeys(spec.group for spec in specs))
    if len(groups) > 1:
        for group in groups:
            random = [label for spec, label in zip(specs, labels, strict=True) if spec.group != group]
            out[f"drop grouping factor {group}"] = _render(lhs, parsed, random)
    return _unique(out)


def _unique(formulas: dict[str, str]) -> dict[str, str]:
    """The candidates with the first of each formula (two reductions can give the same model)."""
    seen, out = set(), {}
    for name, formula in formulas.items():
        if formula not in seen:
            seen.add(formula)
            out[name] = formula
    return out


def _singular(fit: Fit) -> str:
    """Why the fit is singular ('' where it is not): a term not identified by the design, SDs
    piled up near zero, correlations near +-1, or a principal component of a grouping factor's
    covariance carrying almost nothing."""
    from .diagnostics import re_pca

    diagnosis = fit.diagnose()
    boundary = ("SDs near zero", "correlations near ±1")
    # A term with as many effects as rows is not identified (lme4 refuses it): its posterior
    # is its prior's, whatever the SDs look like.
    reasons = [f"{term.term} is not identified (no more rows than effects)"
               for term in getattr(fit.model, "unidentified", [])]  # fmt: skip
    reasons += [c.message.split(":")[0] for c in diagnosis.problems if c.name in boundary]
    for group, table in re_pca(fit).items():
        last = float(table["proportion"].iloc[-1]) if len(table) > 1 else 1.0
        if last < 0.01:
            reasons.append(f"a principal component of {group}'s covariance carries {100 * last:.1f}%")
    return "; ".join(reasons)


@dataclass
class Simplification:
    """The candidates of [`Fit.simplify`][bayesmm.Fit.simplify], compared.

    Parameters
    ----------
    table
        One row per candidate: ``formula``, ``singular`` and ``reason``, ``divergences``,
        ``max_rhat``, ``elpd_diff`` and its ``se`` (against the best candidate), the number of
        free parameters ``n_parameters`` (a cs() or ar1() term's correlation counts once),
        ``pareto_k_high`` (rows whose PSIS-LOO is unreliable) and ``criterion``: the elpd
        differences come from PSIS-LOO, or from K-fold cross-validation on the same folds
        for every candidate (``"10-fold CV"``) where some candidate's Pareto k were high.
    recommended
        The two views' choices, ``{"barr": name, "bates": name}``, with ``reasoning``.
    fits
        Each candidate's fit, by name.

    Examples
    --------
    >>> result = fit.simplify()                      # doctest: +SKIP
    >>> result.table[["formula", "singular", "elpd_diff", "se"]]  # doctest: +SKIP
    """

    table: pd.DataFrame
    recommended: dict[str, str]
    reasoning: str
    fits: dict = field(repr=False)

    def __str__(self) -> str:
        shown = self.table[["formula", "singular", "elpd_diff", "se", "n_parameters"]]
        return f"{shown.to_string()}\n\n{self.reasoning}"

    def plot(self, ax=None):
        """The elpd differences with their standard errors (2 SE bars), best first."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(6.5, 0.5 * len(self.table) + 1.2))
        table = self.table.sort_values("elpd_diff", ascending=False)
        y = np.arange(len(table))[::-1]
        ax.errorbar(table["elpd_diff"], y, xerr=CREDIBLY_WORSE_SE * table["se"], fmt="o", capsize=3)
        ax.axvline(0.0, color="0.5", lw=0.8)
        ax.set_yticks(y, list(table.index))
        ax.set_xlabel(f"elpd difference from the best (PSIS-LOO), ±{CREDIBLY_WORSE_SE:g} SE")
        return ax


def _fit_candidate(model, formula: str, settings: dict):
    """One candidate's fit (a task for local processes or Dask workers)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # each candidate's own diagnostics go into the table
        return model.updated(formula=formula).fit(**settings)


def simplify(
    fit: Fit, steps: int = 1, processes: int | None = None, client=None, kfold="auto", **fit_kwargs
) -> Simplification:
    """See [`Fit.simplify`][bayesmm.Fit.simplify]."""
    folds = isinstance(kfold, int) and not isinstance(kfold, bool) and kfold >= 2
    if not (kfold == "auto" or kfold is False or folds):
        raise ValueError(f"kfold must be 'auto', False or a number of folds (2 or more); got {kfold!r}")
    from ..inference.parallel import _check, run_tasks

    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a whole number, 1 or more; got {steps!r}")
    _check(processes, client)
    settings = {"draws": fit.settings.draws, "tune": fit.settings.tune, "chains": fit.settings.chains,
                "random_seed": fit.settings.random_seed, "progressbar": False, **fit_kwargs}  # fmt: skip
    fits: dict[str, Fit] = {"as fitted": fit}
    formulas = {"as fitted": fit.design.formula.text.strip()}
    current, table = fit, None
    for _ in range(steps):
        found = {n: f for n, f in candidates(current).items() if f not in formulas.values()}
        if not found:
            break
        tasks = [(current.model, formula, settings) for formula in found.values()]
        done = run_tasks(_fit_candidate, tasks, processes=processes, client=client, progressbar=False,
                         desc="candidates")  # fmt: skip
        for (name, formula), candidate in zip(found.items(), done, strict=True):
            fits[name], formulas[name] = candidate, formula
        table = _table(fits, formulas, kfold, fit_kwargs)
        choice = _bates(table)
        if choice == "as fitted" or fits[choice] is current:
            break
        current = fits[choice]
    if table is None:  # no candidate was new: only the fit itself
        table = _table(fits, formulas, kfold, fit_kwargs)
    barr, bates = _barr(table), _bates(table)
    if barr != "as fitted":
        why = "the model as fitted is singular; this is the least reduced candidate that is not"
    elif table.loc["as fitted", "singular"]:
        why = "singular, but so is every candidate"
    else:
        why = "the model as fitted is not singular"
    reasoning = (
        f"Barr et al. (2013), keep it maximal: '{barr}' ({why}).\n"
        f"Bates et al. (2015) / Matuschek et al. (2017), the simplest model not credibly worse than the "
        f"best: '{bates}' ({table.loc[bates, 'n_parameters']} parameters, elpd "
        f"{table.loc[bates, 'elpd_diff']:.1f} ± {table.loc[bates, 'se']:.1f} from the best)."
    )
    return Simplification(table, {"barr": barr, "bates": bates}, reasoning, fits)


KFOLD_K = 10


def _kfold_ranked(fits: dict, K: int, fit_kwargs: dict) -> pd.DataFrame:
    """elpd differences and their SEs from K-fold cross-validation, every candidate on the
    same folds (brms's kfold; ArviZ's comparison of PSIS-LOO results, by rows' differences)."""
    from .comparison import kfold

    first = next(iter(fits.values()))
    seed = first.settings.random_seed
    results = {name: kfold(f, K=K, random_seed=seed, **fit_kwargs) for name, f in fits.items()}
    best = max(results, key=lambda name: results[name].elpd)
    rows = {}
    for name, result in results.items():
        difference = result.pointwise - results[best].pointwise
        se = float(np.sqrt(difference.size * difference.var()))
        rows[name] = {"elpd_diff": float(difference.sum()), "dse": se}
    return pd.DataFrame(rows).T


def _table(fits: dict, formulas: dict[str, str], kfold="auto", fit_kwargs=None) -> pd.DataFrame:
    loos = {name: _quiet_loo(f) for name, f in fits.items()}  # high Pareto k are counted in the table
    high = any(np.sum(np.asarray(result.pareto_k) > 0.7) for result in loos.values())
    if kfold is not False and (kfold != "auto" or high):
        K = KFOLD_K if kfold == "auto" else int(kfold)
        ranked, criterion = _kfold_ranked(fits, K, fit_kwargs or {}), f"{K}-fold CV"
    else:
        ranked, criterion = rank(loos), "PSIS-LOO"
    rows = []
    for name, f in fits.items():
        reason = _singular(f)
        stats = f.idata["sample_stats"]
        k = np.asarray(loos[name].pareto_k).ravel()
        rows.append({
            "formula": formulas[name], "singular": bool(reason), "reason": reason,
            "divergences": int(stats["diverging"].sum()) if "diverging" in stats else 0,
            "max_rhat": float(f.summary()["r_hat"].max()),
            "elpd_diff": float(ranked.loc[name, "elpd_diff"]), "se": float(ranked.loc[name, "dse"]),
            "n_parameters": _n_parameters(f), "pareto_k_high": int(np.sum(k > 0.7)), "criterion": criterion,
        })  # fmt: skip
    return pd.DataFrame(rows, index=list(fits))


def _n_parameters(fit) -> int:
    """The fit's free parameters: its summary's rows, with each term's correlations counted
    as the parameters its structure has (one for cs() and ar1(), whose summary lists every
    pair they imply; none for a diagonal one)."""
    from ..spec.covariance import Diagonal, _OneCorrelation

    rows = list(fit.summary().index)
    count = sum(1 for name in rows if not str(name).startswith("cor("))
    parts = getattr(fit.model, "parts", {}) or {}
    for term in [*fit.design.random, *[t for part in parts.values() for t in part.random]]:
        pairs = term.n_terms * (term.n_terms - 1) // 2
        if isinstance(term.covariance, _OneCorrelation):
            count += min(1, pairs)
        elif not isinstance(term.covariance, Diagonal):
            count += pairs
    return count


def _bates(table: pd.DataFrame) -> str:
    """The candidate with the fewest parameters whose elpd is within CREDIBLY_WORSE_SE SEs of
    the best's (ties: the better elpd)."""
    fine = table[-table["elpd_diff"] <= CREDIBLY_WORSE_SE * table["se"]]
    return str(fine.sort_values(["n_parameters", "elpd_diff"], ascending=[True, False]).index[0])


def _barr(table: pd.DataFrame) -> str:
    """The model as fitted unless singular; else the non-singular candidate with the most
    parameters (the least reduced); the as-fitted model if every candidate is singular."""
    if not table.loc["as fitted", "singular"]:
        return "as fitted"
    fine = table[~table["singular"]]
    if fine.empty:
        return "as fitted"
    return str(fine.sort_values(["n_parameters", "elpd_diff"], ascending=[False, False]).index[0])
