"""Response families: one declaration per family (its parameters, links, support and
likelihood), and the registry that finds a family by name."""

from .base import ALIASES, FAMILIES, Family, FormulaParameter, Link, get_family

__all__ = ["ALIASES", "FAMILIES", "Family", "FormulaParameter", "Link", "get_family"]
