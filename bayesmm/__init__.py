"""bayesmm: Bayesian generalized linear mixed models with lme4/brms formulas on PyMC.

The names below are imported on first use, so ``import bayesmm`` (and ``bayesmm --help``)
does not load PyMC until a model is built.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # for type checkers and the API docs; at run time names load on first use
    from . import datasets
    from .api import Model, load, maximal
    from .design.build import DataError
    from .families import FAMILIES, Family, get_family
    from .inference.nuts import available_samplers
    from .model.maximal import Maximal
    from .results.comparison import compare, kfold
    from .results.diagnostics import DiagnosticWarning, compare_samplers
    from .results.effects import MarginalMeans
    from .results.fit import Fit
    from .spec.formula import FormulaSyntaxError, parse_formula
    from .spec.priors import Prior, PriorError
    from .workflows.methods import MethodComparison, compare_methods
    from .workflows.power import PowerResult, power
    from .workflows.sbc import SBCResult, sbc
    from .workflows.simulate import simulate

from .version import __version__

# public name -> the module that defines it
_EXPORTS = {
    "Model": "api",
    "Fit": "results.fit",
    "available_samplers": "inference.nuts",
    "Prior": "spec.priors",
    "PriorError": "spec.priors",
    "Family": "families",
    "FAMILIES": "families",
    "get_family": "families",
    "parse_formula": "spec.formula",
    "FormulaSyntaxError": "spec.formula",
    "DataError": "design.build",
    "compare_samplers": "results.diagnostics",
    "DiagnosticWarning": "results.diagnostics",
    "compare": "results.comparison",
    "kfold": "results.comparison",
    "simulate": "workflows.simulate",
    "sbc": "workflows.sbc",
    "SBCResult": "workflows.sbc",
    "power": "workflows.power",
    "compare_methods": "workflows.methods",
    "MethodComparison": "workflows.methods",
    "PowerResult": "workflows.power",
    "load": "api",
    "maximal": "api",
    "Maximal": "model.maximal",
    "MarginalMeans": "results.effects",
}
_SUBMODULES = {"datasets"}
# Modules that do not load ArviZ (the CLI checks formulas, priors and data with them).
_LIGHT = {"spec.formula", "spec.priors", "design.build"}

__all__ = [
    "Model", "Fit", "available_samplers", "Prior", "PriorError", "Family", "FAMILIES", "get_family",
    "parse_formula", "FormulaSyntaxError", "DataError", "compare_samplers", "DiagnosticWarning", "compare",
    "kfold", "simulate", "sbc", "SBCResult", "power", "PowerResult", "compare_methods", "MethodComparison",
    "load", "maximal", "Maximal", "MarginalMeans", "datasets", "__version__",
]  # fmt: skip


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'bayesmm' has no attribute {name!r}")
    if module not in _LIGHT:
        # First, from this shallow stack: arviz_base's lazy loads of jax and numpyro call
        # inspect.stack() when those are not installed, whose cost grows with the stack's
        # depth (measured: 170-180 ms when reached through bayesmm.results.fit's imports, 40 ms
        # from here).
        importlib.import_module("arviz_base")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
