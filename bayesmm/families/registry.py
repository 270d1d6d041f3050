"""The registry: every family by name, the other spellings users bring from brms, glmmTMB,
bambi, statsmodels and R, and ``get_family``."""

from __future__ import annotations

import difflib
import functools
import importlib
import pkgutil
import re
from pathlib import Path

from .base import Family


def _declared() -> list[type[Family]]:
    """Every family declared in a module of this package (a class with a ``name`` of its
    own), in file and line order: a new family is a class in a new or existing file here,
    and nothing else."""
    found = []
    for info in sorted(pkgutil.iter_modules([str(Path(__file__).parent)]), key=lambda m: m.name):
        module = importlib.import_module(f"{__package__}.{info.name}")
        # A module's namespace keeps the order of definition (reading each class's line
        # from its source file instead cost 0.1 s of every import).
        for value in vars(module).values():
            if (isinstance(value, type) and issubclass(value, Family) and value.__module__ == module.__name__
                    and "name" in value.__dict__):  # fmt: skip
                found.append(value)
    return found


FAMILIES: dict[str, type[Family]] = {cls.name: cls for cls in _declared()}
# Other spellings users bring from brms, glmmTMB, bambi, statsmodels and R's glm (compared
# after lower-casing and reading '-', ' ' and '.' as '_').
ALIASES: dict[str, str] = {
    "normal": "gaussian",
    "t": "student",
    "student_t": "student",
    "studentt": "student",
    "log_normal": "lognormal",
    "logistic": "bernoulli",
    "binary": "bernoulli",
    "betabinomial": "beta_binomial",
    "negbinomial": "negativebinomial",
    "negative_binomial": "negativebinomial",
    "neg_binomial": "negativebinomial",
    "nbinom2": "negativebinomial",
    "nb": "negativebinomial",
    "nb2": "negativebinomial",
    "negbin": "negativebinomial",
    "negbinomial1": "nbinom1",
    "nb1": "nbinom1",
    "ordinal": "cumulative",
    "ordered": "cumulative",
    "ordered_logistic": "cumulative",
    "multinomial": "categorical",
    "multinomial_logit": "categorical",
    "zip": "zero_inflated_poisson",
    "zinb": "zero_inflated_negbinomial",
    "zero_inflated_negativebinomial": "zero_inflated_negbinomial",
    "zero_inflated_negative_binomial": "zero_inflated_negbinomial",
    "zero_inflated_nbinom2": "zero_inflated_negbinomial",
    "hurdle_negativebinomial": "hurdle_negbinomial",
    "hurdle_negative_binomial": "hurdle_negbinomial",
    "hurdle_nbinom2": "hurdle_negbinomial",
    "truncated_poisson": "hurdle_poisson",
}


def _spelling(name: str) -> str:
    return re.sub(r"[-. ]", "_", name.strip().lower())


def _unknown_family(family: object) -> str:
    if not isinstance(family, str):
        return f"family must be a name such as 'poisson' or a bayesmm.Family, got {type(family).__name__}"
    spelled = _spelling(family)
    if spelled in ("cox", "coxph", "cox_ph", "coxme", "cox_proportional_hazards"):
        return (
            f"bayesmm has no Cox model ({family!r}): its baseline hazard is left unspecified, which a "
            "likelihood cannot be. Write Surv(time, status) ~ x + (1 | g) with family='weibull' "
            "(proportional hazards with a Weibull baseline, brms's weibull()) or family='exponential' "
            "(a constant hazard)"
        )
    scores = {name: difflib.SequenceMatcher(None, spelled, name).ratio() for name in [*FAMILIES, *ALIASES]}
    best = max(scores.values())
    # The closest names only: 'poison' is poisson, not also hurdle_poisson.
    close = [
        name
        for name, score in sorted(scores.items(), key=lambda kv: -kv[1])
        if score >= max(0.6, best - 0.05)
    ]
    suggestions = list(dict.fromkeys(ALIASES.get(c, c) for c in close))[:3]
    if suggestions:
        return f"unknown family {family!r}; did you mean {' or '.join(repr(c) for c in suggestions)}?"
    return (
        f"unknown family {family!r}, and no family of bayesmm is spelled like it; "
        f"bm.FAMILIES lists the {len(set(FAMILIES.values()))} families, bm.families.ALIASES other spellings"
    )


@functools.cache
def family_parameter_names() -> frozenset[str]:
    """Every name a family gives a distributional parameter (``sigma``, ``phi``, ``zi``)."""
    names = set()
    for family in FAMILIES.values():
        names |= {*family.params, *family.parts, *family.formula_params}
    return frozenset(names)


def get_family(family: str | Family, link: str | None = None) -> Family:
    """A Family instance from a name (``"poisson"``) or an instance.

    Parameters
    ----------
    family
        A name among ``FAMILIES``, or one of the other spellings of brms, glmmTMB and bambi
        (``"negbinomial"``, ``"nbinom2"``, ``"negative_binomial"``, ``"t"``, ``"ordinal"``, ...;
        ``ALIASES``), case-insensitive, or a [`Family`][bayesmm.Family] instance.
    link
        A link other than the family's default (``"probit"``, ``"cloglog"``, ...), or None.

    Returns
    -------
    Family

    Raises
    ------
    ValueError
        For an unknown family (suggesting the closest names) or a link the family does not
        allow (listing the choices).

    Examples
    --------
    >>> bm.get_family("binomial", link="probit")
    binomial(link=probit)
    >>> bm.get_family("nbinom2")
    negativebinomial(link=log)
    >>> bm.get_family("poison")
    Traceback (most recent call last):
    ValueError: unknown family 'poison'; did you mean 'poisson'?
    """
    if isinstance(family, Family):
        if link is not None and link != family.link.name:
            raise ValueError("give the link either in the family instance or as link=, not both")
        return family
    if not isinstance(family, str):
        raise ValueError(_unknown_family(family))
    name = _spelling(family)
    name = ALIASES.get(name, name)
    if name not in FAMILIES:
        raise ValueError(_unknown_family(family))
    return FAMILIES[name](link)
