"""What went wrong, and what to try: sampler diagnostics and singular fits.

:func:`diagnose` runs every check on a fit and returns a :class:`Diagnosis`: a
list of :class:`Check` records (name, whether it passed, the numbers, the
parameters involved and a message that says what the problem means and what to
try). ``Fit`` runs it once after sampling and warns when something failed.

Thresholds follow Stan's and brms's practice: no divergent transitions; R-hat
at most 1.01; bulk and tail ESS at least 100 per chain; E-BFMI at least 0.3;
under 1% of transitions at the maximum tree depth.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import arviz_stats as az  # not the arviz meta-package, which loads matplotlib
import numpy as np
import pandas as pd

from ..inference.idata import get_group, has_group
from . import summaries as results

if TYPE_CHECKING:  # pragma: no cover
    from .fit import Fit

__all__ = ["Check", "Diagnosis", "diagnose", "DiagnosticWarning", "re_pca", "compare_samplers"]

RHAT_MAX = 1.01
ESS_PER_CHAIN = 100
EBFMI_MIN = 0.3
TREEDEPTH_SHARE = 0.01
# A group-level SD "piles up near zero" when more than SINGULAR_SHARE of its posterior
# lies below SINGULAR_FRACTION of the residual SD (Gaussian) or of the SD prior's scale
# (other families). A posterior bounded away from zero has almost no mass there; one
# whose mode is at zero (no evidence of variation) has a good share of it.
SINGULAR_FRACTION = 0.05
SINGULAR_SHARE = 0.1
# A correlation is "at the boundary" when most of its posterior lies beyond this.
BOUNDARY_COR = 0.9


class DiagnosticWarning(UserWarning):
    """A fit whose sampler or posterior needs attention; the message says what to try.

    ``Model.fit`` issues one when a check of [`Fit.diagnose`][bayesmm.Fit.diagnose] fails (divergences,
    R-hat, ESS, E-BFMI, tree depth, a singular fit); ``loo`` and ``compare`` issue one
    for high Pareto k values. Python's warning filters control it.

    Examples
    --------
    >>> import warnings
    >>> warnings.simplefilter("error", bm.DiagnosticWarning)   # make a failed check an error
    >>> warnings.simplefilter("default", bm.DiagnosticWarning)
    """


@dataclass
class Check:
    """One diagnostic: its name, whether it passed, the numbers, and advice."""

    name: str
    ok: bool
    value: float
    threshold: str
    message: str = ""
    parameters: list[str] = field(default_factory=list)

    def line(self) -> str:
        mark = "ok " if self.ok else "!! "
        return f"{mark}{self.name}: {self.value:.4g} ({self.threshold})" + (
            "" if self.ok else f"\n   {self.message}"
        )


@dataclass
class Diagnosis:
    """The full report of :func:`diagnose`; ``str()`` gives the readable text."""

    checks: list[Check]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def problems(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def __getitem__(self, name: str) -> Check:
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(f"no check named '{name}'; checks: {', '.join(c.name for c in self.checks)}")

    def headline(self) -> str:
        approximation = next((c for c in self.checks if c.name == "approximation"), None)
        if approximation is not None:
            return (f"Approximation: {approximation.threshold} (R-hat and ESS do not measure its error; "
                    "bm.compare_methods sets it beside NUTS)")  # fmt: skip
        if self.ok:
            return (
                "Diagnostics: no problems ("
                + ", ".join(
                    f"{c.name} {c.value:.4g}"
                    for c in self.checks
                    if c.name in ("divergences", "max r_hat", "min ess_bulk")
                )
                + ")"
            )
        return (
            "Diagnostics: "
            + "; ".join(f"{c.name} {c.value:.4g}" for c in self.problems)
            + " (fit.diagnose() says what to try)"
        )

    def details(self) -> str:
        """Every check, one line each, with the advice under each failed one."""
        return "\n".join(c.line() for c in self.checks)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "ok": [c.ok for c in self.checks],
                "value": [c.value for c in self.checks],
                "threshold": [c.threshold for c in self.checks],
                "parameters": [", ".join(c.parameters) for c in self.checks],
                "message": [c.message for c in self.checks],
            },
            index=pd.Index([c.name for c in self.checks], name="check"),
        )

    def __str__(self) -> str:
        return "\n".join([self.headline(), self.details()])

    def _repr_html_(self) -> str:
        return "<pre>" + html.escape(str(self)) + "</pre>"


def _sample_stat(fit: Fit, *names: str) -> np.ndarray | None:
    if not has_group(fit.idata, "sample_stats"):
        return None
    stats = get_group(fit.idata, "sample_stats")
    for name in names:
        if name in stats:
            return stats[name].values
    return None


def _draws_of(fit: Fit, prefix: str) -> dict[str, np.ndarray]:
    """(chain, draw) draws of the summary rows of one kind: ``sd`` or ``cor``."""
    records = results.parameters(fit)
    return {name: values for name, values in _draws_of_all(fit).items() if records[name].kind == prefix}


def _shares(draws: dict[str, np.ndarray], beyond, limit: float) -> dict[str, float]:
    """Parameters whose posterior share satisfying ``beyond`` exceeds ``limit``, with that share."""
    shares = {name: float(np.mean(beyond(values))) for name, values in draws.items()}
    return {name: share for name, share in shares.items() if share > limit}


def _term_of(fit: Fit, sd_name: str):
    """The random-effect term whose SD is ``sd_name`` (None for an SD of a part's term)."""
    for term in fit.design.random:
        if sd_name in term.sd_names:
            return term
    return None


def _term_text(fit: Fit, sd_name: str) -> str:
    term = _term_of(fit, sd_name)
    return sd_name if term is None else term.spec.text


# Divergences "coincide" with small values of an SD when the divergent transitions sit,
# on average, below this percentile of that chain's draws of it, and further below the
# middle than DIVERGENCE_SIGMAS standard errors of a mean percentile (a uniform's SD,
# sqrt(1/12), over the square root of the number of separate episodes of divergence:
# divergences a few draws apart are one episode, not independent evidence).
DIVERGENCE_PERCENTILE = 0.3
DIVERGENCE_SIGMAS = 3.0
EPISODE_GAP = 10
# Two SDs "trade off" when the posterior correlation of their logarithms is below this.
TRADE_OFF = -0.5


def _episodes(diverging: np.ndarray) -> int:
    """Separate episodes of divergence: divergent draws within EPISODE_GAP of the previous
    one in the same chain belong to its episode."""
    count = 0
    for chain in np.atleast_2d(diverging):
        where = np.flatnonzero(chain)
        count += int(where.size > 0) + int(np.sum(np.diff(where) > EPISODE_GAP))
    return count


def _percentiles(draws: np.ndarray) -> np.ndarray:
    """Each draw's percentile within its chain (0 = that chain's smallest value)."""
    order = np.argsort(np.argsort(draws, axis=1), axis=1)
    return (order + 0.5) / draws.shape[1]


def funnel_culprits(fit: Fit, diverging: np.ndarray) -> list[tuple[str, float]]:
    """SDs whose small values coincide with the divergent transitions, with the mean
    percentile of their draws at those transitions (most extreme first)."""
    threshold = min(
        DIVERGENCE_PERCENTILE, 0.5 - DIVERGENCE_SIGMAS * np.sqrt(1 / 12 / max(_episodes(diverging), 1))
    )
    found = []
    for name, draws in _draws_of(fit, "sd").items():
        level = float(_percentiles(draws)[diverging].mean())
        if level < threshold:
            found.append((name, level))
    return sorted(found, key=lambda item: item[1])


def _nesting(fit: Fit, inner: str, outer: str) -> str:
    """'every level of A lies within one level of B' when the design nests A in B."""
    design = fit.design
    pairs = np.unique(np.stack([design.groups[inner][0].codes, design.groups[outer][0].codes]), axis=1)
    if len(np.unique(pairs[0])) < pairs.shape[1]:  # some inner level meets two outer levels
        return ""
    single = int(np.sum(np.bincount(pairs[1]) == 1))
    return (
        f"every level of {inner} lies within one level of {outer}, and {single} of "
        f"{len(design.group_levels(outer))} {outer} levels hold a single {inner}"
    )


def trade_offs(fit: Fit, names: list[str]) -> list[tuple[str, str, str]]:
    """Pairs of SDs, at least one of them in ``names``, that trade off against each other
    (negatively correlated posteriors of their logarithms), each with a sentence saying so,
    and why when one grouping factor nests the other."""
    sds = _draws_of(fit, "sd")
    found, seen = [], set()
    for name in names:
        for other, draws in sds.items():
            if name not in sds or other == name or frozenset((name, other)) in seen:
                continue
            seen.add(frozenset((name, other)))
            r = float(np.corrcoef(np.log(sds[name]).ravel(), np.log(draws).ravel())[0, 1])
            if r < TRADE_OFF:
                why = ""
                a, b = _term_of(fit, name), _term_of(fit, other)
                if a is not None and b is not None and a.group != b.group:
                    why = _nesting(fit, a.group, b.group) or _nesting(fit, b.group, a.group)
                sentence = f"{name} trades off against {other} (posterior correlation of their logs {r:.2f})"
                if why:
                    sentence += f": {why}, so the data barely tell the two apart"
                found.append((name, other, sentence))
    return found


def _boundary_prior(fit: Fit, sd_name: str) -> str:
    """Advice to give ``sd_name`` a boundary-avoiding prior (blme's choice for SDs, Chung et
    al. 2013): Gamma with shape 2 has zero density at zero, which keeps the sampler out of a
    funnel's neck; its mean is the current prior's scale."""
    entry = next((e for e in fit.model.prior_entries if e.parameter == sd_name), None)
    scale = float(np.ravel(entry.prior.params.get("sigma", 1.0))[0]) if entry is not None else 1.0
    prior = f'priors={{"{sd_name}": Prior("Gamma", alpha=2, beta={2 / scale:.3g})}}'
    return f"give {sd_name} a prior that vanishes at zero ({prior})"


def _integrated_out(fit: Fit, sd_name: str) -> bool:
    """Whether the effects ``sd_name`` scales were integrated out (collapsed): not sampled."""
    term = _term_of(fit, sd_name)
    group = getattr(fit.model, "collapsed_group", None)
    return term is not None and not term.part and group is not None and term.group == group


def _term_advice(fit: Fit, sd_name: str) -> str:
    """What to try for a funnel at ``sd_name``, for the kind of term it belongs to."""
    term = _term_of(fit, sd_name)
    text = _term_text(fit, sd_name)
    avoid = _boundary_prior(fit, sd_name)
    other = other_parameterization(fit, sd_name)
    if other is not None and other.endswith("False}"):  # a funnel of centred effects
        avoid = f"sample the effects of {text} non-centred (Model(..., {other})), or {avoid}"
    if term is not None and _collapsible(fit, term):
        # The same model with the funnel gone: nothing to simplify first.
        return (
            f"integrate the effects of {text} out (Model(..., collapsed=True): the same model, "
            f"whose sampler never meets that funnel); or {avoid}"
        )
    if term is not None and term.correlated:
        return f"use || in {text} to drop its correlations, drop a varying term from it, or {avoid}"
    if term is not None and term.n_terms > 1:
        return f"drop a varying term from {text}, or {avoid}"
    return avoid


def _collapsible(fit: Fit, term) -> bool:
    """Whether ``term``'s effects would be integrated out by collapsed=True and are not yet."""
    from ..model.collapsed import collapsed_group, why_not_collapsible

    model = fit.model
    if getattr(model, "collapsed", False) or term.part:
        return False
    if why_not_collapsible(model.design, model.family, model.parts) is not None:
        return False
    return collapsed_group(model.design) == term.group


def other_parameterization(fit: Fit, sd_name: str) -> str | None:
    """``centered={"g": False}`` (or True): the other form of the term whose SD is
    ``sd_name``, when its effects were sampled and the other form is open to it; else None.
    A badly mixing SD is first a sign that the term has the wrong form for its data."""
    term = _term_of(fit, sd_name)
    model = fit.model
    if term is None or term.part or _integrated_out(fit, sd_name):
        return None
    if not term.covariance.centrable or term.level_factor is not None:  # rr() and gr(): non-centred only
        return None
    centred = dict(zip((id(t) for t in fit.design.random), model.centred, strict=True))[id(term)]
    return f'centered={{"{term.group}": {not centred}}}'


def _parameterization_advice(fit: Fit, names: list[str]) -> str:
    """A sentence naming the other form of the terms of the SDs among ``names`` (first
    try Model(..., centered={"ID": False}) ...), or ''."""
    settings = dict.fromkeys(s for s in (other_parameterization(fit, n) for n in names) if s)
    if not settings:
        return ""
    terms = ", ".join(dict.fromkeys(_term_text(fit, n) for n in names if other_parameterization(fit, n)))
    merged = "{" + ", ".join(s[len("centered={"):-1] for s in settings) + "}"
    if all(s.endswith("False}") for s in settings):
        form = "non-centred, the form for levels whose data say little"
    elif all(s.endswith("True}") for s in settings):
        form = "centred, the form for levels whose data pin their effects down"
    else:
        form = "in the other form"
    return f"First sample the group effects of {terms} {form}: Model(..., centered={merged}). "


def _divergences(fit: Fit) -> Check:
    diverging = _sample_stat(fit, "diverging")
    n = int(diverging.sum()) if diverging is not None else 0
    total = diverging.size if diverging is not None else 0
    check = Check("divergences", n == 0, n, "0 expected")
    if n:
        # A funnel between a group-level SD and its group effects: divergences where that
        # SD is small. Named only when the evidence is clear of chance.
        culprits = funnel_culprits(fit, diverging)
        target = min(0.99, max(0.95, fit.settings.target_accept + 0.1))
        advice = f"raise target_accept (fit(target_accept={target:.2f}))"
        where = ""
        if culprits:
            name, level = culprits[0]
            check.parameters = [name]
            where = (f" They happen where {name} is small (on average at the {100 * level:.0f}th percentile "
                     "of its draws)")  # fmt: skip
            if _integrated_out(fit, name):
                # No effects of that term were sampled, so no funnel: the SD's posterior runs
                # into zero, where the step size tuned to the bulk is too long.
                where += (
                    f". The effects of {_term_text(fit, name)} are integrated out, so this is no funnel: "
                    f"the posterior of {name} presses against zero, which the data barely tell it apart from."
                )
                advice += (f"; if some remain, {_boundary_prior(fit, name)}, or compare the model without "
                           "that varying term (fit.loo)")  # fmt: skip
            else:
                where += f": a funnel between that SD and the group effects of {_term_text(fit, name)}."
                advice += f"; if some remain, {_term_advice(fit, name)}"
        check.message = (
            f"{n} of {total} transitions after tuning diverged ({100 * n / total:.1f}%): NUTS could not "
            f"follow the posterior's curvature there, so estimates may be biased.{where} Try: {advice}."
        )
    return check


# A chain is stuck when fewer than this share of its transitions moved (every summary
# parameter kept its value), or more than 1 - this share diverged.
STUCK_SHARE = 0.1


def stuck_chains(fit: Fit) -> list[int]:
    """Chains that barely moved from where they started (all but stuck in one place)."""
    diverging = _sample_stat(fit, "diverging")
    draws = list(_draws_of_all(fit).values())
    stuck = []
    for chain in range(draws[0].shape[0] if draws else 0):
        moved = np.mean([np.mean(np.diff(d[chain]) != 0) for d in draws])
        diverged = 0.0 if diverging is None else float(np.mean(diverging[chain]))
        if moved < STUCK_SHARE or diverged > 1 - STUCK_SHARE:
            stuck.append(chain)
    return stuck


def _draws_of_all(fit: Fit) -> dict[str, np.ndarray]:
    return results.summary_draws(fit)


def _rhat_and_ess(fit: Fit, table: pd.DataFrame) -> list[Check]:
    chains = fit.settings.chains
    worst_rhat = table["r_hat"].max()
    rhat_bad = list(table.index[table["r_hat"] > RHAT_MAX])
    advice = (
        f"{_parameterization_advice(fit, rhat_bad)}"
        f"Sample longer (fit(draws={2 * fit.settings.draws}, tune={2 * fit.settings.tune})); if that does "
        "not help, simplify the random-effect structure or give the SDs tighter priors."
    )
    unidentified = getattr(fit.model, "unidentified", [])
    if unidentified:  # no number of draws identifies these: say so, and what to fit instead
        advice = (
            "The random-effects structure is not identified by the data: "
            + "; ".join(u.message() for u in unidentified)
            + ". Sampling longer will not help; fit the structure bm.maximal() gives, or a simpler one."
        )
    stuck = stuck_chains(fit) if rhat_bad and not unidentified else []
    if stuck and len(stuck) < chains:
        listed = "Chain " + ", ".join(str(c) for c in stuck) + (" is" if len(stuck) == 1 else " are")
        advice = (
            f"{listed} stuck where it started (its draws barely move, or nearly every transition "
            "diverged) while the other chains agree: a start the sampler could not leave. Refit with "
            "another random_seed, and check for a predictor on a very large scale."
        )
    checks = [
        Check(
            "max r_hat",
            not rhat_bad,
            float(worst_rhat),
            f"at most {RHAT_MAX}",
            f"chains disagree for {', '.join(rhat_bad)}: they have not mixed. {advice}",
            rhat_bad,
        )
    ]
    minimum = ESS_PER_CHAIN * chains
    for column in ("ess_bulk", "ess_tail"):
        low = list(table.index[table[column] < minimum])
        what = "centre" if column == "ess_bulk" else "tails (intervals)"
        more = f"Sample longer (fit(draws={max(2 * fit.settings.draws, 2000)}))."
        todo = advice if unidentified else _parameterization_advice(fit, low) + more
        checks.append(
            Check(
                f"min {column}",
                not low,
                float(table[column].min()),
                f"at least {minimum} ({ESS_PER_CHAIN} per chain)",
                f"too few effective draws to describe the {what} of {', '.join(low)}. {todo}",
                low,
            )
        )
    return checks


def _ebfmi(fit: Fit) -> Check:
    if _sample_stat(fit, "energy") is None:
        return Check("min E-BFMI", True, float("nan"), "not recorded by this sampler")
    values = np.atleast_1d(az.bfmi(fit.idata)["energy"].values)
    low = [f"chain {i}" for i, v in enumerate(values) if v < EBFMI_MIN]
    # With one term's effects sampled, that term's form is the first suspect.
    sds = [n for n in _draws_of(fit, "sd") if not _integrated_out(fit, n)]
    one_term = len({id(_term_of(fit, n)) for n in sds}) == 1
    first = _parameterization_advice(fit, sds if one_term else [])
    return Check(
        "min E-BFMI",
        not low,
        float(np.min(values)),
        f"at least {EBFMI_MIN}",
        f"low energy fraction in {', '.join(low)}: the sampler explores the posterior's tails slowly, "
        f"typical of funnels between group-level SDs and group effects. {first}Tighter "
        "priors on the SDs or a simpler random-effect structure help.",
    )


def _predictor_scales(fit: Fit) -> list[str]:
    design = fit.design
    out = []
    for j, name in enumerate(design.fixef_names):
        scale = float(np.std(design.X[:, j]))
        if name != "Intercept" and scale > 0 and (scale > 100 or scale < 0.01):
            out.append(f"{name} (SD {scale:.3g})")
    return out


def _treedepth(fit: Fit) -> Check:
    saturated = _sample_stat(fit, "maxdepth_reached", "reached_max_treedepth")
    if saturated is None:
        return Check("max tree depth", True, float("nan"), "not recorded by this sampler")
    share = float(np.mean(saturated))
    check = Check(
        "max tree depth", share <= TREEDEPTH_SHARE, share, f"share of draws, at most {TREEDEPTH_SHARE}"
    )
    if not check.ok:
        scales = _predictor_scales(fit)
        advice = (
            f"rescale {', '.join(scales)} (e.g. scale(x) in the formula)"
            if scales
            else "simplify the random-effect terms or give the SDs tighter priors"
        )
        check.parameters = scales
        check.message = (
            f"{100 * share:.1f}% of transitions hit the maximum tree depth: the posterior has strongly "
            f"correlated or badly scaled directions, which makes sampling slow. Try: {advice}."
        )
    return check


def _reference_scale(fit: Fit) -> tuple[float, str]:
    family = fit.model.family
    if "sigma" in family.constant_params(getattr(fit.model, "parts", {})) and family.link.name == "identity":
        return float(fit.idata.posterior["sigma"].mean()), "the residual SD"
    return family.response_scale(fit.design), "the SD prior's scale"


def effect_scales(fit: Fit) -> dict[str, float]:
    """For each group-level SD, the spread of its term column: 1 for an intercept, the
    predictor's SD for a slope. An SD times it is the spread that term's variation adds to
    the linear predictor, whatever the predictor's units (age in years, months or decades)."""
    scales = {}
    parts = getattr(fit.model, "parts", {}).values()
    for term in [*fit.design.random, *(t for d in parts for t in d.random)]:
        for j, name in enumerate(term.sd_names):
            spread = float(np.std(term.matrix[:, j]))
            scales[name] = 1.0 if term.columns[j] == "Intercept" or spread == 0 else spread
    return scales


def _singular_sds(fit: Fit) -> Check:
    scale, what = _reference_scale(fit)
    threshold = SINGULAR_FRACTION * scale
    scales = effect_scales(fit)
    # Judged on the linear predictor's scale: a slope's SD times its predictor's spread.
    draws = {name: values * scales.get(name, 1.0) for name, values in _draws_of(fit, "sd").items()}
    near_zero = _shares(draws, lambda d: d < threshold, SINGULAR_SHARE)
    worst = max(near_zero.values(), default=0.0)
    check = Check(
        "SDs near zero",
        not near_zero,
        worst,
        f"share of posterior below {SINGULAR_FRACTION:g} x {what} (a slope's SD times its "
        f"predictor's SD), at most {SINGULAR_SHARE:g}",
    )
    if near_zero:
        listed = ", ".join(
            f"{name} ({100 * share:.0f}% below {threshold:.3g})" for name, share in near_zero.items()
        )
        terms = sorted({_term_text(fit, n) for n in near_zero})
        check.parameters = list(near_zero)
        check.message = (
            f"the posterior piles up near zero for {listed}: the data show little evidence that this effect "
            "varies between levels (the Bayesian analogue of lme4's singular fit). Consider removing that "
            f"varying term from {', '.join(terms)} and comparing the two fits."
        )
    return check


def _boundary_cors(fit: Fit) -> Check:
    at_boundary = _shares(_draws_of(fit, "cor"), lambda d: np.abs(d) > BOUNDARY_COR, 0.5)
    # A reduced-rank term's correlations reach ±1 by design (with one factor, all of them).
    reduced = {n for t in fit.design.random if t.covariance.name == "rr" for n in t.cor_names}
    at_boundary = {name: share for name, share in at_boundary.items() if name not in reduced}
    worst = max(at_boundary.values(), default=0.0)
    check = Check(
        "correlations near ±1",
        not at_boundary,
        worst,
        f"share of posterior beyond ±{BOUNDARY_COR}, at most 0.5",
    )
    if at_boundary:
        terms = sorted({t.spec.text for t in fit.design.random if set(t.cor_names) & set(at_boundary)})
        check.parameters = list(at_boundary)
        check.message = (
            f"the posterior of {', '.join(at_boundary)} piles up near ±1: the term is over-parameterized "
            "(see fit.re_pca()). "
            f"Consider dropping the correlations with || in {', '.join(terms)}."
        )
    return check


def diagnose(fit: Fit, table: pd.DataFrame | None = None) -> Diagnosis:
    """Every check on ``fit``: sampler health first, then singular-fit checks."""
    table = results.summary_table(fit, 0.95) if table is None else table
    checks = [_divergences(fit), *_rhat_and_ess(fit, table), _ebfmi(fit), _treedepth(fit)]
    method = getattr(fit.settings, "sampler", None)
    if method in ("laplace", "advi"):
        # Independent draws from an approximation: R-hat and ESS are fine by construction and
        # say nothing of how far the approximation is from the posterior.
        checks = [Check("approximation", False, 0.0, f"draws from a {method} approximation, not MCMC",
                        "R-hat and ESS say nothing of this approximation's error; bm.compare_methods(model) "
                        "sets it beside NUTS, which is the reference")]  # fmt: skip
    if fit.design.random:
        checks += [_singular_sds(fit), _boundary_cors(fit)]
        _note_trade_offs(fit, checks)
    return Diagnosis(checks)


def _note_trade_offs(fit: Fit, checks: list[Check]) -> None:
    """Say once, in the first failed check that names one of them, which SDs trade off."""
    records = results.parameters(fit)
    named = [p for c in checks if not c.ok for p in c.parameters if p in records and records[p].kind == "sd"]
    for a, b, sentence in trade_offs(fit, list(dict.fromkeys(named))):
        first = next(c for c in checks if not c.ok and {a, b} & set(c.parameters))
        first.message += f" Note: {sentence}."


def re_pca(fit: Fit, prob: float = 0.95) -> dict[str, pd.DataFrame]:
    """Principal components of each grouping factor's random-effect covariance (as lme4's rePCA).

    Per posterior draw, the eigenvalues of the covariance give each component's
    proportion of the variance; the table shows their posterior mean and interval
    and the cumulative proportion. A last component with a proportion near zero
    means the term has more dimensions than the data support.
    """
    lo, hi = results.interval_names(prob)
    out = {}
    for group in fit.design.groups:
        eigenvalues = np.linalg.eigvalsh(results.covariance_draws(fit, group))[:, ::-1]
        proportions = eigenvalues / eigenvalues.sum(axis=1, keepdims=True)
        low, high = np.quantile(proportions, [(1 - prob) / 2, (1 + prob) / 2], axis=0)
        mean = proportions.mean(axis=0)
        out[group] = pd.DataFrame(
            {"proportion": mean, lo: low, hi: high, "cumulative": np.cumsum(mean)},
            index=pd.Index([f"PC{i + 1}" for i in range(len(mean))], name=group),
        )
    return out


def compare_samplers(model, samplers: list[str] | None = None, **fit_kwargs) -> pd.DataFrame:
    """Fit ``model`` with each NUTS implementation and tabulate how the posteriors agree.

    In the spirit of lme4's ``allFit``: when samplers that work differently agree,
    the answer does not hinge on one implementation's adaptation.

    Parameters
    ----------
    model
        The [`Model`][bayesmm.Model] to fit.
    samplers
        Names from [`available_samplers`][bayesmm.available_samplers]; None takes every one installed.
    **fit_kwargs
        Settings for every fit (``draws``, ``chains``, ``random_seed``, ...).

    Returns
    -------
    pandas.DataFrame
        Rows are the summary's parameters; columns each sampler's mean and R-hat
        (``"nutpie mean"``, ``"nutpie r_hat"``, ...) and ``max_diff_sd``, the largest
        difference between two samplers' means in units of the posterior SD (Monte Carlo
        error alone gives about 0.05 at ESS 1000). ``attrs`` hold each sampler's seconds
        and number of divergences.

    Examples
    --------
    >>> table = bm.compare_samplers(model, draws=500, random_seed=1)
    >>> bool(table["max_diff_sd"].max() < 0.3)
    True
    """
    from ..inference.nuts import available_samplers

    samplers = samplers or available_samplers()
    fit_kwargs.setdefault("progressbar", False)
    means, columns, seconds, divergences = {}, {}, {}, {}
    sds = []
    for name in samplers:
        fit = model.fit(sampler=name, **fit_kwargs)
        table = fit.summary()
        means[name] = table["mean"]
        sds.append(table["sd"])
        columns[f"{name} mean"] = table["mean"]
        columns[f"{name} r_hat"] = table["r_hat"]
        seconds[name] = round(fit.settings.seconds, 2)
        divergences[name] = int(fit.diagnose()["divergences"].value)
    frame = pd.DataFrame(columns)
    stacked = pd.DataFrame(means)
    spread = stacked.max(axis=1) - stacked.min(axis=1)
    frame["max_diff_sd"] = spread / pd.concat(sds, axis=1).mean(axis=1)
    frame.attrs["seconds"] = seconds
    frame.attrs["divergences"] = divergences
    return frame
