"""Every PyMC variable and dimension name bayesmm gives, in one place: the builder, the
collapsed forms, the template, results, predictions and plots ask here.

A linear predictor's variables carry its part's prefix (``zi_fixef``, ``mu3_sd_g``:
``Design.var``); a grouping factor's are ``r_<group>`` (its levels' effects), ``sd_<group>``
and ``cor_<group>``, with a second term of the same factor numbered (``sd_g2_raw``).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ..families.base import Family
from ..families.registry import family_parameter_names

if TYPE_CHECKING:  # pragma: no cover
    from ..design.build import Design, RandomEffectTerm

__all__ = ["OBS_DIM", "level_dim", "term_dim", "cor_dim", "coords", "group_var", "fixef_var", "TermNames",
           "reported_variables", "monotonic_var", "monotonic_dim", "smooth_var", "smooth_dim",
           "gp_var", "gp_dim"]  # fmt: skip

OBS_DIM = "obs"


def fixef_var(design: Design) -> str:
    """The fixed effects' variable: ``fixef`` (``zi_fixef`` in the zi part)."""
    return design.var("fixef")


def group_var(design: Design, kind: str, group: str) -> str:
    """A grouping factor's reported variable: ``kind`` is ``"r"`` (the levels' effects),
    ``"sd"`` or ``"cor"``: ``r_Subject``, ``zi_sd_site``."""
    return design.var(f"{kind}_{group}")


# Dimension names of the posterior that a grouping column must not take over.
RESERVED_DIMS = frozenset({"chain", "draw", "obs", "sample", "__obs__"})
# Names of bayesmm's own variables and dimensions that a grouping column could be called (a
# column "b" or "sigma"): PyMC refuses a dimension named like a variable, so such a factor's
# levels get a renamed dimension too. Each may carry a part's prefix (zi_, mu2_, sigma_).
_OWN_NAME = re.compile(
    r"(\w+_)?(b|b_std|b_plus_mean_r_std|b_coef|fixef|fixef_term|Intercept_c|Intercept_c_plus_mean_r"
    r"|thresholds|collapsed_loglik)"
)


def level_dim(group: str) -> str:
    """The dimension of a grouping factor's levels: its name, unless that is one of the
    posterior's own dimensions (a column named ``chain``, ``draw`` or ``obs``) or the name
    of one of bayesmm's variables (``b``, ``sigma``, ``fixef``)."""
    if group in RESERVED_DIMS or group in family_parameter_names() or _OWN_NAME.fullmatch(group):
        return f"{group}__level"
    return group


def monotonic_var(design: Design, kind: str, term) -> str:
    """A mo(x) term's variable: ``bsp_x`` (its average step) or ``simo_x`` (the steps' shares)."""
    return design.var(f"{kind}_{term.column}")


def monotonic_dim(design: Design, term) -> str:
    return design.var(f"simo_{term.column}__step")


def smooth_var(design: Design, kind: str, smooth) -> str:
    """An s(x) term's variable: ``sds_x`` (its SD), ``zs_x`` (the sampled coordinates,
    Normal(0, sds_x^w), partially centred) or ``s_x`` (the penalized coefficients,
    sds_x^(1 - w) * zs_x)."""
    return design.var(f"{kind}_{smooth.key}")


def smooth_dim(design: Design, smooth) -> str:
    return design.var(f"s_{smooth.key}__basis")


def gp_var(design: Design, kind: str, gp) -> str:
    """A gp(x) term's variable: ``sdgp_x``, ``lscale_x``, ``zgp_x`` (standard normals) or
    ``gp_x`` (the basis functions' coefficients)."""
    return design.var(f"{kind}_{gp.key}")


def gp_dim(design: Design, gp) -> str:
    return design.var(f"gp_{gp.key}__basis")


def term_dim(design: Design, group: str) -> str:
    return design.var(f"{group}__term")


def cor_dim(design: Design, group: str) -> str:
    return design.var(f"{group}__cor")


def term_columns_dim(design: Design, term: RandomEffectTerm) -> str:
    terms = design.groups[term.group]
    if len(terms) == 1:
        return term_dim(design, term.group)
    return f"{term_dim(design, term.group)}{terms.index(term) + 1}"


def coords(design: Design) -> dict[str, list]:
    coords: dict[str, list] = {design.var("fixef_term"): list(design.fixef_names)}
    slopes = [n for n in design.fixef_names if n != "Intercept"]
    if slopes:
        coords[design.var("b_coef")] = slopes
    for term in design.monotonic:
        coords[monotonic_dim(design, term)] = [str(k) for k in range(1, term.n_steps + 1)]
    for smooth in design.smooths:
        coords[smooth_dim(design, smooth)] = [str(k) for k in range(1, smooth.Z.shape[1] + 1)]
    for gp in design.gps:
        coords[gp_dim(design, gp)] = [str(k) for k in range(1, gp.n_basis + 1)]
    for group, terms in design.groups.items():
        coords[level_dim(group)] = list(terms[0].levels)
        coords[term_dim(design, group)] = design.group_columns(group)
        if len(terms) > 1:
            for term in terms:
                coords[term_columns_dim(design, term)] = list(term.columns)
        cor_labels = [p.term for t in terms for p in t.cor_parameters]
        if cor_labels:
            coords[cor_dim(design, group)] = cor_labels
    return coords


# The parameters that move and stretch each location-scale family: the shear needs
# ``b + m`` to have the prior of ``b`` moved by ``m``, and a slope is sampled in units of
# its predictor's SD (the prior stretched by that SD). A coefficient with any other prior
# is sampled as it is.
class TermNames:
    """PyMC names of one term's variables: ``var("sd_raw")`` is ``sd_g_raw`` (``sd_g2_raw`` for
    the grouping factor's second term, ``zi_sd_g_raw`` in the zi part)."""

    def __init__(self, design: Design, term: RandomEffectTerm, k: int):
        self.design, self.stem = design, term.group + ("" if k == 0 else str(k + 1))
        self.columns_dim = term_columns_dim(design, term)

    def __call__(self, kind: str) -> str:
        head, _, tail = kind.partition("_")
        return self.design.var(f"{head}_{self.stem}" + (f"_{tail}" if tail else ""))


def reported_variables(
    design: Design, family: Family, parts: dict[str, Design] | None = None, group_effects: bool = True
) -> list[str]:
    """The PyMC variables behind the summary's rows: each linear predictor's ``fixef``, its
    grouping factors' ``r_`` (unless ``group_effects`` is False), ``sd_`` and ``cor_``, and the
    constant family parameters. Everything else in the model is a reparameterization that
    only the sampler needs."""
    parts = parts or {}
    names = []
    for d in [design, *parts.values()]:
        if d.fixef_names:
            names.append(fixef_var(d))
        names += [monotonic_var(d, kind, t) for t in d.monotonic for kind in ("bsp", "simo")]
        names += [smooth_var(d, kind, s) for s in d.smooths for kind in ("sds", "s")]
        names += [gp_var(d, kind, g) for g in d.gps for kind in ("sdgp", "lscale", "gp")]
        for group, terms in d.groups.items():
            names += [group_var(d, "r", group)] if group_effects else []
            names.append(group_var(d, "sd", group))
            if any(t.cor_names for t in terms):
                names.append(group_var(d, "cor", group))
    return names + family.constant_params(parts)
