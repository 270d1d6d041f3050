"""Response families, one declaration each: its parameters, links, support and likelihood
(base.py says what a declaration holds), grouped by the kind of response, and the registry
that finds a family by name. A new family is a class in one of these files (or a new file)
and a line in registry.py."""

from .base import Family, FormulaParameter, Link
from .registry import ALIASES, FAMILIES, family_parameter_names, get_family

__all__ = [
    "ALIASES",
    "FAMILIES",
    "Family",
    "FormulaParameter",
    "Link",
    "family_parameter_names",
    "get_family",
]
