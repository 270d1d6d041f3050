"""bayesmm: Bayesian generalized linear mixed models with lme4/brms formulas on PyMC.

The names below are imported on first use, so ``import bayesmm`` (and ``bayesmm --help``)
does not load PyMC until a model is built.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # for type checkers and the API docs; at run time names load on first use
    from . import datasets
    from .api import Model
    from .approximate import MethodComparison, compare_methods
    from .calibration import SBCResult, sbc
    from .comparison import compare, kfold
    from .design import DataError
    from .diagnostics import DiagnosticWarning, compare_samplers
    from .families import FAMILIES, Family, get_family
    from .fit import Fit, available_samplers
    from .formula import FormulaSyntaxError, parse_formula
    from .persist import load
    from .power_analysis import PowerResult, power
    from .priors import Prior, PriorError
    from .simulate import simulate

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "Model": "api",
    "Fit": "fit",
    "available_samplers": "fit",
    "Prior": "priors",
    "PriorError": "priors",
    "Family": "families",
    "FAMILIES": "families",
    "get_family": "families",
    "parse_formula": "formula",
    "FormulaSyntaxError": "formula",
    "DataError": "design",
    "compare_samplers": "diagnostics",
    "DiagnosticWarning": "diagnostics",
    "compare": "comparison",
    "kfold": "comparison",
    "simulate": "simulate",
    "sbc": "calibration",
    "SBCResult": "calibration",
    "power": "power_analysis",
    "compare_methods": "approximate",
    "MethodComparison": "approximate",
    "PowerResult": "power_analysis",
    "load": "persist",
}
_SUBMODULES = {"datasets"}
# Modules that do not load ArviZ (the CLI checks formulas, priors and data with them).
_LIGHT = {"formula", "priors", "design"}

__all__ = [
    "Model", "Fit", "available_samplers", "Prior", "PriorError", "Family", "FAMILIES", "get_family",
    "parse_formula", "FormulaSyntaxError", "DataError", "compare_samplers", "DiagnosticWarning", "compare",
    "kfold", "simulate", "sbc", "SBCResult", "power", "PowerResult", "compare_methods", "MethodComparison",
    "load", "datasets", "__version__",
]  # fmt: skip


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'bayesmm' has no attribute {name!r}")
    from .collector import paused  # importing PyMC and its kin sets off full collections

    with paused():
        if module not in _LIGHT:
            # First, from this shallow stack: arviz_base's lazy loads of jax and numpyro call
            # inspect.stack() when those are not installed, whose cost grows with the stack's
            # depth (measured: 170-180 ms when reached through bayesmm.fit's imports, 40 ms
            # from here).
            importlib.import_module("arviz_base")
        value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
