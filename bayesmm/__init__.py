"""bayesmm: Bayesian generalized linear mixed models with lme4/brms formulas on PyMC."""

from . import datasets
from .api import Model
from .comparison import compare
from .design import DataError
from .diagnostics import DiagnosticWarning, compare_samplers
from .families import FAMILIES, Family, get_family
from .fit import Fit, available_samplers
from .formula import FormulaSyntaxError, parse_formula
from .persist import load
from .priors import Prior, PriorError
from .simulate import simulate

__version__ = "0.1.0"

__all__ = [
    "Model",
    "Fit",
    "Prior",
    "Family",
    "FAMILIES",
    "get_family",
    "parse_formula",
    "available_samplers",
    "compare_samplers",
    "compare",
    "simulate",
    "load",
    "DiagnosticWarning",
    "datasets",
    "DataError",
    "FormulaSyntaxError",
    "PriorError",
    "__version__",
]
