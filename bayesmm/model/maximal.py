"""Which random-effects structure the design supports: the lecture's "What is the maximal
model?" and lme4's identifiability checks, read from the formula and the data before
anything is sampled.

A fixed-effect term can vary within a grouping factor's levels (each herd is observed in
every period) or not (a plant's genotype is fixed for that plant); only a term that varies
within levels can have a varying slope there (Barr et al. 2013's maximal model: every
within-unit term). It is identified only where each level has more rows than effects: with
one row per subject and type (nlme's ergoStool), ``(Type | Subject)`` gives every subject as
many effects as rows, and the effects cannot be told from the residual (lme4 refuses it:
"number of observations (=36) <= number of random effects (=36)"). Families whose rows carry
no residual of their own (Poisson counts, binomial rows of several trials) need no such
replication: cbpp's ``(period | herd)`` has one row per herd and period, each of many trials.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # pragma: no cover
    from ..design.build import Design
    from ..families.base import Family

__all__ = ["Maximal", "maximal_structure", "unidentified_terms", "few_level_groups", "FEW_LEVELS"]

# Fewer levels than this give a group SD little to stand on (the lecture: 5-6 at least).
FEW_LEVELS = 5


def needs_replication(family: Family, design: Design) -> bool:
    """Whether a level's effects must leave rows over for the residual: families with a
    residual or dispersion parameter, and 0/1 rows (one trial each); not Poisson counts or
    binomial rows of several trials, whose variance the mean fixes."""
    if family.dispersion_param is not None or family.binary_response:
        return True
    return bool(family.needs_trials and design.trials is not None and np.median(design.trials) < 2)


def _effects_per_level(codes: np.ndarray, matrix: np.ndarray, n_levels: int) -> tuple[np.ndarray, np.ndarray]:
    """Each level's rows and the rank of its rows of ``matrix`` (the effects they can tell apart)."""
    rows = np.bincount(codes, minlength=n_levels)
    ranks = np.zeros(n_levels, dtype=int)
    order = np.argsort(codes, kind="stable")
    starts = np.concatenate([[0], np.cumsum(rows)])
    for level in range(n_levels):
        block = matrix[order[starts[level] : starts[level + 1]]]
        ranks[level] = np.linalg.matrix_rank(block) if len(block) else 0
    return rows, ranks


@dataclass
class Unidentified:
    """A random-effect term with as many effects per level as rows (no residual left)."""

    term: str
    group: str
    n_obs: int
    n_effects: int
    levels_without_residual: int
    n_levels: int

    def message(self) -> str:
        return (
            f"{self.term}: number of observations (={self.n_obs}) <= number of random effects "
            f"(={self.n_effects}); {self.levels_without_residual} of the {self.n_levels} levels of "
            f"'{self.group}' have no more rows than effects, so its random-effects parameters and the "
            "residual SD are identified only by their priors (lme4 refuses this model). bm.maximal() "
            "says which structure the design supports"
        )


def unidentified_terms(design: Design, family: Family) -> list[Unidentified]:
    """lme4's check of the number of observations against the number of random effects,
    per term of several columns, for families that need replication: a term is flagged when
    its effects (levels times columns) reach the rows, or when most levels hold no more rows
    than effects. (A one-column term with one row per level has its own warning when the
    model is made: an observation-level intercept.)"""
    if not needs_replication(family, design):
        return []
    found = []
    for term in design.random:
        if term.n_terms < 2:
            continue
        rows, ranks = _effects_per_level(term.codes, term.matrix, term.n_levels)
        n_effects = term.n_levels * term.n_terms
        bare = int(np.sum(rows <= ranks))
        if design.n_obs <= n_effects or bare > term.n_levels / 2:
            found.append(
                Unidentified(term.spec.text, term.group, design.n_obs, n_effects, bare, term.n_levels)
            )
    return found


def few_level_groups(design: Design) -> dict[str, int]:
    """Grouping factors with fewer than FEW_LEVELS levels, and their counts."""
    return {group: len(design.group_levels(group)) for group in design.groups
            if len(design.group_levels(group)) < FEW_LEVELS}  # fmt: skip


@dataclass
class Maximal:
    """The maximal identifiable random-effects structure of a formula's design, as
    [`maximal`][bayesmm.maximal] finds it; ``print()`` explains each decision.

    Parameters
    ----------
    formula
        The formula with, for each grouping factor, every fixed-effect term that varies
        within its levels and is identified there.
    table
        One row per grouping factor and fixed-effect term: ``varies`` (within some levels),
        ``levels_varying`` of ``n_levels``, ``included`` and the ``reason``.

    Examples
    --------
    >>> result = bm.maximal("Reaction ~ Days + (1 | Subject)", sleepstudy)
    >>> result.formula
    'Reaction ~ Days + (Days | Subject)'
    >>> result.table[["group", "term", "included"]].values.tolist()
    [['Subject', 'Days', True]]
    """

    formula: str
    table: pd.DataFrame

    def __str__(self) -> str:
        lines = [f"Maximal identifiable model: {self.formula}", ""]
        for row in self.table.itertuples():
            mark = "+" if row.included else "-"
            lines.append(f" {mark} ({row.term} | {row.group}): {row.reason}")
        lines += ["", "Keep it maximal (Barr et al. 2013) where it is identified; simplify from there "
                  "when a fit is singular (Bates et al. 2015, Matuschek et al. 2017)."]  # fmt: skip
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        table = self.table.to_html(index=False)
        return f"<p>Maximal identifiable model: <code>{self.formula}</code></p>{table}"


def maximal_structure(design: Design, family: Family, fixed_text: str, response_text: str) -> Maximal:
    """The maximal structure for ``design``'s grouping factors; see bayesmm.maximal."""
    terms = _fixed_terms(design)
    replication = needs_replication(family, design)
    rows, parts = [], []
    for group, group_terms in design.groups.items():
        codes, n_levels = group_terms[0].codes, group_terms[0].n_levels
        kept = [np.ones((design.n_obs, 1))]
        chosen = []
        for name, columns in terms:
            block = design.X[:, columns]
            varies = _levels_adding(codes, np.column_stack(kept), block, n_levels)
            if varies < 2:
                if _levels_adding(codes, np.ones((design.n_obs, 1)), block, n_levels) < 2:
                    reason = f"'{name}' is constant within the levels of '{group}' (a between-level term)"
                else:
                    reason = f"within the levels of '{group}', '{name}' adds nothing to the terms before it"
                rows.append((group, name, False, varies, n_levels, False, reason))
                continue
            candidate = np.column_stack([*kept, block])
            level_rows, ranks = _effects_per_level(codes, candidate, n_levels)
            bare = int(np.sum(level_rows <= ranks))
            if replication and bare > n_levels / 2:
                reason = (
                    f"varies within {varies} of {n_levels} levels, but {bare} levels have no more rows "
                    f"than effects with it ({int(np.median(level_rows))} rows for "
                    f"{int(np.median(ranks))} effects in the median level): without replication within "
                    f"{group} x {name} cells its effects cannot be told from the residual"
                )
                rows.append((group, name, True, varies, n_levels, False, reason))
                continue
            kept.append(block)
            chosen.append(name)
            reason = f"varies within {varies} of {n_levels} levels and is identified there"
            rows.append((group, name, True, varies, n_levels, True, reason))
        parts.append(f"({' + '.join(chosen) if chosen else '1'} | {group})")
    fixed = fixed_text.strip() or "1"
    formula = f"{response_text} ~ {fixed} + {' + '.join(parts)}" if parts else f"{response_text} ~ {fixed}"
    table = pd.DataFrame(rows, columns=["group", "term", "varies", "levels_varying", "n_levels", "included",
                                        "reason"])  # fmt: skip
    return Maximal(formula, table)


def _fixed_terms(design: Design) -> list[tuple[str, list[int]]]:
    """The fixed part's terms but the intercept, each with its columns of X, in formula order."""
    spec = design.fixed_spec
    out = []
    for term, columns in spec.term_slices.items():
        name = design.fixed_terms.rename(str(term))
        if name in ("1", "Intercept") or columns.stop == columns.start:
            continue
        out.append((name, list(range(columns.start, columns.stop))))
    return out


def _levels_adding(codes: np.ndarray, kept: np.ndarray, block: np.ndarray, n_levels: int) -> int:
    """In how many levels the term's columns add to the rank of the columns already kept: the
    levels within which the term varies beyond them (age:Sex adds nothing to age within a
    subject, whose sex is fixed)."""
    adding = 0
    for level in range(n_levels):
        rows = codes == level
        if rows.sum() < 2:
            continue
        base = np.linalg.matrix_rank(kept[rows])
        if np.linalg.matrix_rank(np.column_stack([kept[rows], block[rows]])) > base:
            adding += 1
    return adding
