"""What a formula may compute: an allow-listed interpreter for the expressions in formulas.

A formula is data, not code. The expressions inside one (``I(day^2)``, ``log(n)``,
``factor(year)``, ``poly(x, 2)``, ``ifelse(sex == "M", 1, 0)``) are read with R's meaning,
translated to a Python syntax tree and *interpreted* here node by node: a node is a
column of the data, a number or string, an arithmetic, comparison or logical operator,
or a call of a function in :data:`FUNCTIONS`. Nothing else exists: no attribute access,
no subscripts, no lambdas or comprehensions, no builtins, no Python ``eval``. formulaic
then sees only backquoted column lookups of the values computed here (and, for
contrasts, a template bayesmm writes itself), so it never evaluates user text either.

R's meaning: ``^`` is power, ``&``/``|``/``!`` are elementwise logic with R's precedence
(below comparisons), ``%%`` and ``%/%`` are modulo and integer division, ``TRUE``/``FALSE``
are logical constants, ``as.numeric()`` of a factor gives its level codes, ``scale()``
standardizes with the SD (n - 1), ``poly()`` is orthogonal unless ``raw = TRUE``, ``ns()``
is R's natural cubic spline and ``bs()`` a B-spline.

Stateful transforms (``scale``, ``center``, ``poly``, ``bs``, ``ns``, ``ave``, and the
categories of a factor) remember what they learnt from the fitted data in a state dict
per call, so new data are transformed exactly as the fitted data were.
"""

from __future__ import annotations

import ast
import difflib
import keyword
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .formula import FormulaSyntaxError, _scan
from .warn import warn_user

__all__ = ["FUNCTIONS", "Expression", "Value", "compile_expression", "unsupported_construct"]


# ---------------------------------------------------------------------------
# values an expression produces


@dataclass
class Value:
    """An evaluated expression: a numeric vector, a factor, or a basis of several columns.

    ``kind`` is ``"numeric"`` (``data`` a float array), ``"logical"`` (bool array),
    ``"text"`` (object array of strings), ``"factor"`` (a pandas Categorical, with
    ``contrasts`` a formulaic contrast spec or None for treatment) or ``"basis"`` (a
    2-D float array whose columns are named ``name[1]``, ``name[2]``, ...).
    """

    kind: str
    data: object
    contrasts: tuple | None = None  # (kind, base): ("sum", None), ("treatment", "b"), ...

    def numeric(self, what: str) -> np.ndarray:
        if self.kind in ("numeric", "logical"):
            return np.asarray(self.data, dtype=float)
        raise TypeError(f"{what} needs numbers, but it is given a {self.kind}")


def _from_column(column: pd.Series) -> Value:
    """A data column as a Value; pandas' nullable dtypes become their values (NA -> NaN)."""
    dtype = column.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return Value("factor", pd.Categorical(column))
    if pd.api.types.is_bool_dtype(dtype):
        if column.isna().any():  # nullable boolean with missing entries
            return Value("numeric", column.astype("Float64").to_numpy(dtype=float, na_value=np.nan))
        return Value("logical", column.to_numpy(dtype=bool))
    if pd.api.types.is_numeric_dtype(dtype):
        return Value("numeric", column.to_numpy(dtype=float, na_value=np.nan))
    if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        raise TypeError(
            f"column '{column.name}' holds dates or times; use it as a grouping factor, or convert it to "
            "numbers (e.g. days since the start) before using it in a formula"
        )
    values = column.astype(object).where(column.notna(), np.nan).to_numpy(dtype=object)
    return Value("text", values)


# ---------------------------------------------------------------------------
# the functions a formula may call


@dataclass(frozen=True)
class Function:
    """One callable of the formula language: its implementation, arity and keywords.

    ``impl(args, kwargs, state)`` takes Values (and literal keyword values) and returns a
    Value; ``state`` is this call's dict of what it learnt from the fitted data.
    """

    impl: Callable
    min_args: int = 1
    max_args: int | None = 1
    keywords: tuple[str, ...] = ()
    literal_args: tuple[int, ...] | None = ()  # positions kept as literals (None: all of them)
    learns: bool = False  # learns numbers from the fitted data (scale's mean, poly's coefficients)


def _elementwise(ufunc) -> Function:
    def impl(args, kwargs, state):
        return Value("numeric", ufunc(args[0].numeric("this function")))

    return Function(impl)


def _log(args, kwargs, state):
    x = args[0].numeric("log()")
    base = kwargs.get("base", args[1] if len(args) > 1 else None)
    out = np.log(x)
    if base is not None:
        out = out / np.log(_literal_number(base, "log(x, base)"))
    return Value("numeric", out)


def _identity(args, kwargs, state):
    return args[0]


def _pmax_pmin(reduce):
    def impl(args, kwargs, state):
        arrays = np.broadcast_arrays(*(a.numeric("pmax()/pmin()") for a in args))
        return Value("numeric", reduce.reduce(np.vstack(arrays), axis=0))

    return impl


def _ifelse(args, kwargs, state):
    test, yes, no = args
    condition = test.data if test.kind == "logical" else test.numeric("ifelse()'s test") != 0
    if yes.kind in ("text", "factor") or no.kind in ("text", "factor"):
        out = np.where(condition, np.asarray(yes.data, dtype=object), np.asarray(no.data, dtype=object))
        return Value("text", out)
    return Value("numeric", np.where(condition, yes.numeric("ifelse()"), no.numeric("ifelse()")))


def _as_numeric(args, kwargs, state):
    value = args[0]
    if value.kind == "factor":
        # R: the level codes 1, 2, ... of the fitted categories (kept for new data).
        categories = state.setdefault("categories", list(value.data.categories))
        codes = pd.Categorical(value.data, categories=categories).codes.astype(float)
        codes[codes < 0] = np.nan
        return Value("numeric", codes + 1)
    if value.kind == "text":
        numbers = pd.to_numeric(pd.Series(value.data), errors="coerce")
        if not (numbers.isna() & pd.notna(pd.Series(value.data))).any():
            return Value("numeric", numbers.to_numpy(dtype=float))
        # Text of labels: a pandas text column plays the part of an R factor, so its codes.
        return _as_numeric([Value("factor", _factor_categories(value, state))], kwargs, state)
    return Value("numeric", value.numeric("as.numeric()"))


def _factor_categories(value: Value, state: dict, levels=None) -> pd.Categorical:
    """A factor of ``value`` whose categories are learnt once (sorted, as R's factor()) and
    then kept, so new data are coded as the fitted data were."""
    if "categories" not in state:
        if levels is not None:
            categories = list(levels)
        elif value.kind == "factor":
            categories = list(value.data.categories)
        else:
            categories = sorted_levels(_level_values(value))
        state["categories"] = categories
    return categorize(_level_values(value), state["categories"], "")


def sorted_levels(values) -> list:
    """The distinct non-missing values, sorted as R's factor() sorts them (numbers first)."""
    return sorted(pd.unique(pd.Series(values).dropna()), key=level_sort_key)


def find_level(categories, wanted, what: str):
    """The category whose label is ``wanted``'s (``1`` finds the level 1.0); a TypeError
    that lists the levels otherwise."""
    by_label = {level_label(c): c for c in categories}
    if level_label(wanted) not in by_label:
        raise TypeError(f"{what}: {wanted!r} is not a level (levels: {', '.join(by_label)})")
    return by_label[level_label(wanted)]


def categorize(values, categories: list, name: str) -> pd.Categorical:
    """``values`` as a factor with the given categories, matched by label (so 7 and 7.0 agree);
    a value that is no category raises :class:`UnseenLevel`. Missing values stay missing."""
    raw = pd.Series(np.asarray(values, dtype=object))
    by_label = {level_label(c): c for c in categories}
    lookup = {u: by_label.get(level_label(u), _UNSEEN) for u in pd.unique(raw.dropna())}
    unseen = sorted(level_label(u) for u, c in lookup.items() if c is _UNSEEN)
    if unseen:
        raise UnseenLevel(name, unseen, list(by_label))
    return pd.Categorical(raw.map(lookup).to_numpy(dtype=object), categories=categories)


def _level_values(value: Value) -> np.ndarray:
    """A vector's values as factor levels: whole numbers as ints (R's factor(1995) is '1995')."""
    if value.kind == "numeric":
        numbers = np.asarray(value.data, dtype=float)
        out = numbers.astype(object)
        whole = np.isfinite(numbers) & (numbers == np.round(numbers))
        out[whole] = numbers[whole].astype(np.int64)
        out[np.isnan(numbers)] = np.nan
        return out
    return np.asarray(value.data, dtype=object)


def level_label(value) -> str:
    """A value's label as a level: whole numbers without '.0' (so 7 and 7.0 are one level),
    dates without a midnight time, text as it is. Fitted and new data use the same labels."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    if isinstance(value, (pd.Timestamp, np.datetime64)):
        stamp = pd.Timestamp(value)
        return stamp.strftime("%Y-%m-%d") if stamp == stamp.normalize() else str(stamp)
    return str(value)


def level_sort_key(value):
    """Numbers (and logicals) in numeric order, then dates, then text in text order."""
    if isinstance(value, (bool, np.bool_, int, float, np.integer, np.floating)):
        return (0, float(value), "")
    if isinstance(value, (pd.Timestamp, np.datetime64)):
        return (1, float(pd.Timestamp(value).value), "")
    return (2, 0.0, str(value))


def _factor(args, kwargs, state):
    levels = kwargs.get("levels")
    if levels is not None and not isinstance(levels, list):
        levels = [levels]
    return Value("factor", _factor_categories(args[0], state, levels))


def _relevel(args, kwargs, state):
    ref = kwargs.get("ref", args[1] if len(args) > 1 else None)
    if ref is None:
        raise TypeError('relevel() needs the reference level: relevel(f, ref = "b")')
    factor = _factor_categories(args[0], state)
    base = find_level(factor.categories, _literal(ref, "relevel()'s ref"), "relevel()")
    categories = [base] + [c for c in factor.categories if c != base]
    return Value("factor", factor.reorder_categories(categories))


def _contrast_factor(args, kwargs, state):
    """C(f, contr.sum) / C(f, contr.treatment("b")): a factor and the contrasts to code it with."""
    factor = _factor_categories(args[0], state)
    spec = kwargs.get("contr", args[1] if len(args) > 1 else None)
    if spec is None:
        return Value("factor", factor)
    if not isinstance(spec, tuple) or spec[0] != "contrasts":
        raise TypeError(
            "C()'s second argument is a contrast: contr.sum, contr.helmert, contr.poly, contr.SAS or "
            'contr.treatment("b") for reference level "b"'
        )
    _, kind, base = spec
    if kind == "sas":
        kind, base = "treatment", factor.categories[-1]
    if base is not None:
        base = find_level(factor.categories, base, "contr.treatment()")
    return Value("factor", factor, contrasts=(kind, base))


def _contrast_spec(kind: str):
    def impl(args, kwargs, state):
        base = kwargs.get("base", args[0] if args else None)
        if base is not None and kind != "treatment":
            raise TypeError(f"contr.{kind} takes no reference level")
        return ("contrasts", kind, None if base is None else _literal(base, "the reference level"))

    return impl


def _c(args, kwargs, state):
    return [_literal(a, "c()") for a in args]


def _scale(args, kwargs, state):
    x = args[0].numeric("scale()")
    do_center = bool(kwargs.get("center", True))
    do_scale = bool(kwargs.get("scale", True))
    if "center" not in state:
        state["center"] = float(np.nanmean(x)) if do_center else 0.0
        spread = float(np.nanstd(x, ddof=1)) if do_scale else 1.0
        if do_scale and not spread > 0:
            raise TypeError("scale() of a constant: its standard deviation is 0")
        state["scale"] = spread
    return Value("numeric", (x - state["center"]) / state["scale"])


def _center(args, kwargs, state):
    return _scale(args, {"center": True, "scale": False}, state)


def _poly(args, kwargs, state):
    from formulaic.transforms import poly

    x = args[0].numeric("poly()")
    degree = int(_literal_number(kwargs.get("degree", args[1] if len(args) > 1 else 1), "poly()'s degree"))
    raw = bool(kwargs.get("raw", False))
    if degree < 1:
        raise TypeError("poly()'s degree must be 1 or more")
    if raw:
        return Value("basis", np.column_stack([x**k for k in range(1, degree + 1)]))
    if "poly" not in state:
        if len(np.unique(x[~np.isnan(x)])) <= degree:
            raise TypeError(f"poly(x, {degree}) needs more than {degree} distinct values of x")
        state["poly"] = {}
    return Value("basis", np.asarray(poly(x, degree=degree, _state=state["poly"]), dtype=float))


def _bs(args, kwargs, state):
    from formulaic.transforms import basis_spline

    x = args[0].numeric("bs()")
    options = {k: kwargs[k] for k in ("df", "knots", "degree") if k in kwargs}
    if len(args) > 1:
        options["df"] = _literal_number(args[1], "bs()'s df")
    if "df" in options:
        options["df"] = int(options["df"])
    if "degree" in options:
        options["degree"] = int(options["degree"])
    values = basis_spline(x, **options, extrapolation="extend", _state=state.setdefault("bs", {}))
    return _basis(values)


def _basis(values) -> Value:
    """A formulaic spline (a dict of columns) as a basis Value."""
    return Value("basis", np.column_stack([np.asarray(v, dtype=float) for v in values.values()]))


def _ns(args, kwargs, state):
    x = args[0].numeric("ns()")
    if "knots" not in state:
        df = kwargs.get("df", args[1] if len(args) > 1 else None)
        inner = kwargs.get("knots")
        finite = x[np.isfinite(x)]
        if inner is None:
            df = int(_literal_number(df if df is not None else 1, "ns()'s df"))
            if df < 1:
                raise TypeError("ns()'s df must be 1 or more")
            probs = np.linspace(0, 1, df + 1)[1:-1]
            inner = list(np.quantile(finite, probs)) if len(probs) else []
        state["knots"] = [float(k) for k in (inner if isinstance(inner, list) else [inner])]
        state["boundary"] = [float(finite.min()), float(finite.max())]
    return Value("basis", natural_spline_basis(x, state["knots"], state["boundary"]))


def natural_spline_basis(x: np.ndarray, knots: list[float], boundary: list[float]) -> np.ndarray:
    """R's ``ns(x, knots = knots, Boundary.knots = boundary)`` (no intercept column).

    A cubic B-spline basis on the boundary and interior knots, projected onto the
    functions whose second derivative is zero at both boundary knots (R's ``splines::ns``
    construction through the QR decomposition of the boundary constraints); beyond the
    boundary knots the basis continues linearly.
    """
    from scipy.interpolate import BSpline

    lower, upper = boundary
    order = 4
    all_knots = np.concatenate([[lower] * order, sorted(knots), [upper] * order])
    n_basis = len(all_knots) - order
    # Evaluated inside [lower, upper] only, where extrapolate=True gives each end the limit
    # from inside (the right end belongs to the last B-spline).
    splines = [BSpline(all_knots, np.eye(n_basis)[j], order - 1, extrapolate=True) for j in range(n_basis)]

    def design(points, nu=0):
        return np.column_stack([spline(points, nu=nu) for spline in splines])

    basis = design(np.clip(np.nan_to_num(x, nan=lower), lower, upper))
    for edge, mask in ((lower, x < lower), (upper, x > upper)):
        if mask.any():  # linear continuation beyond the boundary knots, as R does
            at = np.array([edge])
            basis[mask] = design(at)[0] + np.outer(x[mask] - edge, design(at, nu=1)[0])
    constraint = design(np.array([lower, upper]), nu=2)
    basis, constraint = basis[:, 1:], constraint[:, 1:]  # no intercept column
    q, _ = np.linalg.qr(constraint.T, mode="complete")
    out = basis @ q[:, 2:]
    out[np.isnan(x)] = np.nan
    return out


def _cr(args, kwargs, state):
    """formulaic's (mgcv's) cubic regression spline, centred, with its knots kept for new data."""
    from formulaic.transforms import TRANSFORMS

    x = args[0].numeric("cr()")
    options = {"df": int(_literal_number(kwargs.get("df", args[1] if len(args) > 1 else 4), "cr()'s df"))}
    if "knots" in kwargs:
        options["knots"] = kwargs["knots"] if isinstance(kwargs["knots"], list) else [kwargs["knots"]]
    return _basis(TRANSFORMS["cr"](x, **options, constraints="center", _state=state.setdefault("cr", {})))


def _ave(args, kwargs, state):
    """R's ave(x, g): the mean of x within each level of g (the fitted data's means for new data)."""
    x = args[0].numeric("ave()")
    if len(args) < 2:
        return Value("numeric", np.full_like(x, state.setdefault("mean", float(np.nanmean(x)))))
    keys = pd.Series(np.asarray(args[1].data, dtype=object))
    keys = keys.map({v: level_label(v) for v in pd.unique(keys)})  # 7 and 7.0: one group
    if "means" not in state:
        state["means"] = pd.Series(x).groupby(keys.to_numpy()).mean().to_dict()
    known = keys.map(state["means"]).to_numpy(dtype=float)
    # Levels the fitted data did not have: their own mean in the new data.
    fresh = pd.Series(x).groupby(keys.to_numpy()).transform("mean").to_numpy(dtype=float)
    return Value("numeric", np.where(np.isnan(known), fresh, known))


def _literal(value, what: str):
    if isinstance(value, Value):
        raise TypeError(f"{what} must be a number or a string written in the formula, not a column")
    return value


def _literal_number(value, what: str) -> float:
    value = _literal(value, what)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number, got {value!r}")
    return value


FUNCTIONS: dict[str, Function] = {
    # protection and R's type conversions
    "I": Function(_identity),
    "as.numeric": Function(_as_numeric),
    "as.integer": Function(_as_numeric),
    "as.double": Function(_as_numeric),
    "factor": Function(_factor, keywords=("levels",)),
    "as.factor": Function(_factor),
    "C": Function(_contrast_factor, max_args=2, keywords=("contr",), literal_args=(1,)),
    "relevel": Function(_relevel, max_args=2, keywords=("ref",), literal_args=(1,)),
    "contr.treatment": Function(
        _contrast_spec("treatment"), min_args=0, keywords=("base",), literal_args=(0,)
    ),
    "contr.sum": Function(_contrast_spec("sum"), min_args=0, max_args=0),
    "contr.helmert": Function(_contrast_spec("helmert"), min_args=0, max_args=0),
    "contr.poly": Function(_contrast_spec("poly"), min_args=0, max_args=0),
    "contr.SAS": Function(_contrast_spec("sas"), min_args=0, max_args=0),
    "c": Function(_c, min_args=1, max_args=None, literal_args=None),
    # elementwise maths
    "log": Function(_log, max_args=2, keywords=("base",), literal_args=(1,)),
    "exp": _elementwise(np.exp),
    "sqrt": _elementwise(np.sqrt),
    "log1p": _elementwise(np.log1p),
    "expm1": _elementwise(np.expm1),
    "log2": _elementwise(np.log2),
    "log10": _elementwise(np.log10),
    "abs": _elementwise(np.abs),
    "sin": _elementwise(np.sin),
    "cos": _elementwise(np.cos),
    "tan": _elementwise(np.tan),
    "asin": _elementwise(np.arcsin),
    "acos": _elementwise(np.arccos),
    "atan": _elementwise(np.arctan),
    "sinh": _elementwise(np.sinh),
    "cosh": _elementwise(np.cosh),
    "tanh": _elementwise(np.tanh),
    "floor": _elementwise(np.floor),
    "ceiling": _elementwise(np.ceil),
    "trunc": _elementwise(np.trunc),
    "sign": _elementwise(np.sign),
    "round": Function(
        lambda a, k, s: Value("numeric", np.round(a[0].numeric("round()"), int(k.get("digits", 0)))),
        keywords=("digits",),
    ),
    "pmax": Function(_pmax_pmin(np.fmax), min_args=2, max_args=None),
    "pmin": Function(_pmax_pmin(np.fmin), min_args=2, max_args=None),
    "ifelse": Function(_ifelse, min_args=3, max_args=3),
    # stateful transforms: what they learn from the fitted data is kept for new data
    "scale": Function(_scale, keywords=("center", "scale"), learns=True),
    "center": Function(_center, learns=True),
    "standardize": Function(_scale, keywords=("center", "scale"), learns=True),
    "cr": Function(_cr, max_args=2, keywords=("df", "knots"), literal_args=(1,), learns=True),
    "poly": Function(_poly, max_args=2, keywords=("degree", "raw"), literal_args=(1,), learns=True),
    "bs": Function(_bs, max_args=2, keywords=("df", "knots", "degree"), literal_args=(1,), learns=True),
    "ns": Function(_ns, max_args=2, keywords=("df", "knots"), literal_args=(1,), learns=True),
    "ave": Function(_ave, max_args=2, learns=True),
}
# numpy spellings that formulaic users write
for _name in (
    "log",
    "exp",
    "sqrt",
    "log1p",
    "expm1",
    "log2",
    "log10",
    "abs",
    "sin",
    "cos",
    "tan",
    "floor",
    "trunc",
    "sign",
):
    FUNCTIONS[f"np.{_name}"] = FUNCTIONS[_name]
FUNCTIONS["np.ceil"] = FUNCTIONS["ceiling"]
FUNCTIONS["exp2"] = FUNCTIONS["np.exp2"] = _elementwise(np.exp2)
FUNCTIONS["exp10"] = _elementwise(lambda x: np.power(10.0, x))
FUNCTIONS["np.maximum"] = FUNCTIONS["pmax"]
FUNCTIONS["np.minimum"] = FUNCTIONS["pmin"]
FUNCTIONS["np.where"] = FUNCTIONS["ifelse"]

CONSTANTS = {"pi": np.pi, "TRUE": True, "FALSE": False, "T": True, "F": False, "Inf": np.inf}

# Constructs of brms, mgcv and nlme that bayesmm does not have, with what to write instead.
UNSUPPORTED = {
    "s": "smooth terms s() (mgcv/brms) are not supported; write a spline basis such as ns(x, df = 4) "
    "or bs(x, df = 5), or a polynomial poly(x, 2)",
    "t2": "tensor smooths t2() are not supported; use ns(x, df = 4) * ns(z, df = 4) or a polynomial",
    "te": "tensor smooths te() are not supported; use ns(x, df = 4) * ns(z, df = 4) or a polynomial",
    "gp": "Gaussian processes gp() are not supported; use a spline basis such as ns(x, df = 4)",
    "mo": "monotonic effects mo() are not supported; use the predictor as a number, or factor(x)",
    "me": "measurement-error terms me() are not supported; use the observed values",
    "mi": "missing-value imputation mi() is not supported; incomplete rows are dropped",
    "gr": "gr() is not supported; write the grouping term as (1 | g)",
    "mm": "multi-membership terms mm() are not supported",
    "cs": "category-specific effects cs() are only a covariance structure here: write cs(1 + x | g)",
    "lag": "lag() is not supported; compute lagged columns in the data first",
    "offset": "offset() must stand on its own in the formula, added with '+'",
    "cbind": "cbind(successes, failures) is only allowed as the response, on the left of '~'",
    "trials": "trials() belongs to the response: write 'y | trials(n) ~ x'",
    "weights": "weights() are not supported yet; bayesmm fits unweighted likelihoods",
}


def unsupported_construct(name: str) -> str | None:
    """What to write instead of the brms/mgcv/nlme function ``name``, or None if it is unknown."""
    return UNSUPPORTED.get(name)


# ---------------------------------------------------------------------------
# R text -> a Python syntax tree with placeholders


_TOKEN = re.compile(
    r"""(?P<backquoted>`[^`]*`)
      | (?P<string>"[^"\\]*(?:\\.[^"\\]*)*"|'[^'\\]*(?:\\.[^'\\]*)*')
      | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?L?)
      | (?P<name>[^\W\d][\w.]*|\.[^\W\d][\w.]*)
      | (?P<op>%in%|%%|%/%|&&|\|\||\*\*|==|!=|<=|>=|<-|[-+*/^(),=<>!&|~:\[\]{}@$;])
      | (?P<space>\s+)
      | (?P<other>.)""",
    re.X,
)

_R_OPERATORS = {
    "^": "**",
    "%%": "%",
    "%/%": "//",
    "&&": " and ",
    "&": " and ",
    "||": " or ",
    "|": " or ",
    "!": " not ",
    "%in%": " in ",
}


@dataclass
class _Translation:
    python: str
    names: dict[str, str]  # placeholder -> data column
    functions: dict[str, str]  # placeholder -> function name


def _translate(text: str, columns: set[str], where: str) -> _Translation:
    """R expression text -> Python text in which every column and function is a placeholder.

    Every identifier must be a data column, a function of :data:`FUNCTIONS` (when called),
    or a constant (``pi``, ``TRUE``, ...); anything else is refused here, before any value
    is computed.
    """
    out: list[str] = []
    names: dict[str, str] = {}
    functions: dict[str, str] = {}

    def column(name: str) -> str:
        key = f"_col{len(names)}"
        names[key] = name
        return key

    def function(name: str) -> str:
        key = f"_fn{len(functions)}"
        functions[key] = name
        return key

    tokens = _merge_quoted_columns([(m.lastgroup, m.group(), m.start()) for m in _TOKEN.finditer(text)])
    for i, (kind, token, start) in enumerate(tokens):
        following = _neighbour(tokens, i, 1)
        if kind == "backquoted":
            out.append(column(token[1:-1]))
        elif kind == "name":
            if following == "(":
                if token not in FUNCTIONS:
                    raise _unknown_function(token, text, start)
                out.append(function(token))
            elif token in columns:
                out.append(column(token))
            elif token in CONSTANTS:
                out.append(f"_const_{token}")
            elif following == "=":  # a named argument such as raw = TRUE
                if token.startswith("_") or not token.isidentifier() or keyword.iskeyword(token):
                    raise FormulaSyntaxError(
                        f"'{token}' is not an argument name", text, start, start + len(token)
                    )
                out.append(token)
            elif token in FUNCTIONS:
                if token.startswith("contr."):  # C(f, contr.sum): a contrast named without ()
                    out.append(f"{function(token)}()")
                else:
                    raise FormulaSyntaxError(
                        f"{token} is a function; call it, e.g. {token}(x)", text, start, start + len(token)
                    )
            else:
                raise _unknown_name(token, where)
        elif kind == "number":
            out.append(token.rstrip("L"))
        elif kind == "string":
            out.append(token)
        elif kind == "op":
            if token in _REFUSED_OPERATORS:
                raise FormulaSyntaxError(
                    f"{_REFUSED_OPERATORS[token]} cannot be used in a formula expression", text, start
                )
            preceding = tokens[next(_solid(tokens, i - 1, -1), i)][0]
            if token == "=" and preceding != "name":
                raise FormulaSyntaxError("'=' is only for named arguments; compare with '=='", text, start)
            out.append(_R_OPERATORS.get(token, token))
        elif kind == "space":
            out.append(" ")
        else:
            raise FormulaSyntaxError(f"unexpected character {token!r}", text, start)
    return _Translation("".join(out), names, functions)


_REFUSED_OPERATORS = {
    "[": "subscripts",
    "]": "subscripts",
    "{": "braces",
    "}": "braces",
    "@": "'@'",
    "$": "'$' (write the column name)",
    ";": "';'",
    "~": "'~' inside a term",
    "<-": "assignment",
    ":": "':' inside an expression",
}


def _solid(tokens, start: int, step: int):
    """Indices of the non-space tokens from ``start`` in direction ``step``."""
    i = start
    while 0 <= i < len(tokens):
        if tokens[i][0] != "space":
            yield i
        i += step


def _neighbour(tokens, i: int, step: int) -> str:
    """The text of the next non-space token after (step 1) or before (step -1) token ``i``."""
    j = next(_solid(tokens, i + step, step), None)
    return "" if j is None else tokens[j][1]


def _merge_quoted_columns(tokens: list) -> list:
    """formulaic's ``Q("a b")`` (a quoted column name) as one backquoted-name token."""
    out, i = [], 0
    while i < len(tokens):
        kind, token, start = tokens[i]
        following = list(_solid(tokens, i + 1, 1))[:3]
        if (kind, token) == ("name", "Q") and len(following) == 3:
            opening, name, closing = (tokens[j] for j in following)
            if opening[1] == "(" and name[0] == "string" and closing[1] == ")":
                out.append(("backquoted", f"`{name[1][1:-1]}`", start))
                i = following[2] + 1
                continue
        out.append(tokens[i])
        i += 1
    return out


def _unknown_function(name: str, text: str, start: int) -> FormulaSyntaxError:
    hint = unsupported_construct(name)
    if hint:
        return FormulaSyntaxError(hint, text, start, start + len(name))
    close = difflib.get_close_matches(name, [f for f in FUNCTIONS if not f.startswith("np.")], n=1)
    suggestion = f"; did you mean {close[0]}()?" if close else ""
    return FormulaSyntaxError(
        f"function '{name}' is not allowed in a formula (a formula may call only transforms such as "
        f"log, sqrt, exp, I, factor, scale, poly, ns, bs, ifelse, pmax){suggestion}",
        text,
        start,
        start + len(name),
    )


class UnknownColumn(LookupError):
    """A name in an expression that is neither a column nor a constant."""

    def __init__(self, name: str, where: str):
        super().__init__(name)
        self.name = name
        self.where = where


def _unknown_name(name: str, where: str) -> Exception:
    if keyword.iskeyword(name) or "__" in name or name in ("eval", "exec", "getattr", "open", "globals"):
        return FormulaSyntaxError(
            f"'{name}' is neither a column of the data nor allowed in a formula", name, 0, len(name)
        )
    return UnknownColumn(name, where)


# ---------------------------------------------------------------------------
# the interpreter

_BINARY = {
    ast.Add: np.add,
    ast.Sub: np.subtract,
    ast.Mult: np.multiply,
    ast.Div: np.true_divide,
    ast.FloorDiv: np.floor_divide,
    ast.Mod: np.mod,
    ast.Pow: np.power,
}
_COMPARE = {
    ast.Eq: np.equal,
    ast.NotEq: np.not_equal,
    ast.Lt: np.less,
    ast.LtE: np.less_equal,
    ast.Gt: np.greater,
    ast.GtE: np.greater_equal,
}


@dataclass
class Expression:
    """One checked expression: its R text, its syntax tree and the state of its transforms."""

    text: str
    tree: ast.Expression
    names: dict[str, str]
    functions: dict[str, str]
    states: dict[int, dict] = field(default_factory=dict)  # per call node (by position)

    @property
    def columns(self) -> list[str]:
        """The data columns the expression reads."""
        return list(dict.fromkeys(self.names.values()))

    @property
    def column_name(self) -> str | None:
        """The column, when the expression is nothing but a column name."""
        body = self.tree.body
        if isinstance(body, ast.Name) and body.id in self.names:
            return self.names[body.id]
        return None

    def evaluate(self, data: pd.DataFrame, probe: bool = False) -> Value:
        """The expression's value on ``data``.

        ``probe`` evaluates stateful transforms as their first argument, without learning
        anything: used to find the rows with missing values before the model frame exists.
        """
        with np.errstate(all="ignore"):
            return _Interpreter(self, data, probe).visit(self.tree.body)


class _Interpreter:
    def __init__(self, expression: Expression, data: pd.DataFrame, probe: bool):
        self.expression = expression
        self.data = data
        self.probe = probe

    def fail(self, message: str) -> FormulaSyntaxError:
        return FormulaSyntaxError(message, self.expression.text, 0, len(self.expression.text))

    def visit(self, node: ast.AST):
        method = getattr(self, f"visit_{type(node).__name__}", None)
        if method is None:
            raise self.fail(f"{_describe(node)} cannot be used in a formula expression")
        return method(node)

    def visit_Constant(self, node: ast.Constant):
        if isinstance(node.value, bool):
            return Value("logical", np.full(len(self.data), node.value))
        if isinstance(node.value, (int, float)):
            return Value("numeric", np.full(len(self.data), float(node.value)))
        if isinstance(node.value, str):
            return Value("text", np.full(len(self.data), node.value, dtype=object))
        raise self.fail(f"the constant {node.value!r} cannot be used in a formula")

    def visit_Name(self, node: ast.Name):
        if node.id in self.expression.names:
            column = self.expression.names[node.id]
            if column not in self.data.columns:
                raise UnknownColumn(column, "")
            return _from_column(self.data[column])
        if node.id.startswith("_const_"):
            value = CONSTANTS[node.id[len("_const_") :]]
            kind = "logical" if isinstance(value, bool) else "numeric"
            return Value(kind, np.full(len(self.data), value, dtype=bool if kind == "logical" else float))
        raise self.fail(f"'{node.id}' is not a column of the data")

    def visit_BinOp(self, node: ast.BinOp):
        op = _BINARY.get(type(node.op))
        if op is None:
            raise self.fail(f"the operator {_describe(node.op)} cannot be used in a formula")
        left, right = self.visit(node.left), self.visit(node.right)
        symbol = _symbol(node.op)
        return Value("numeric", op(self._number(left, symbol), self._number(right, symbol)))

    def visit_UnaryOp(self, node: ast.UnaryOp):
        value = self.visit(node.operand)
        if isinstance(node.op, ast.Not):
            return Value("logical", ~self._logical(value))
        if isinstance(node.op, ast.USub):
            return Value("numeric", -self._number(value, "-"))
        if isinstance(node.op, ast.UAdd):
            return Value("numeric", self._number(value, "+"))
        raise self.fail(f"the operator {_describe(node.op)} cannot be used in a formula")

    def visit_BoolOp(self, node: ast.BoolOp):
        values = [self._logical(self.visit(v)) for v in node.values]
        reduce = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
        return Value("logical", reduce.reduce(np.vstack(values), axis=0))

    def visit_Compare(self, node: ast.Compare):
        left = self.visit(node.left)
        result = np.ones(len(self.data), dtype=bool)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, (ast.In, ast.NotIn)):
                if not isinstance(right_node, ast.Call):
                    raise self.fail("%in% compares with a vector written c(...)")
                options = self.visit(right_node)
                inside = pd.Series(np.asarray(left.data, dtype=object)).isin(
                    options if isinstance(options, list) else [options]
                )
                result &= inside.to_numpy() if isinstance(op, ast.In) else ~inside.to_numpy()
                continue
            right = self.visit(right_node)
            compare = _COMPARE.get(type(op))
            if compare is None:
                raise self.fail(f"the comparison {_describe(op)} cannot be used in a formula")
            result &= _compare(compare, left, right)
            left = right
        return Value("logical", result)

    def visit_Call(self, node: ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in self.expression.functions:
            raise self.fail(f"{_describe(node.func)} cannot be called in a formula")
        name = self.expression.functions[node.func.id]
        function = FUNCTIONS[name]
        if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
            raise self.fail(f"{name}() takes plain arguments (no * or **)")
        n = len(node.args)
        if n < function.min_args or (function.max_args is not None and n > function.max_args):
            most = "any number of" if function.max_args is None else function.max_args
            raise self.fail(f"{name}() takes {function.min_args} to {most} arguments, got {n}")
        unknown = [k.arg for k in node.keywords if k.arg not in function.keywords]
        if unknown:
            allowed = ", ".join(function.keywords) or "none"
            raise self.fail(f"{name}() has no argument '{unknown[0]}' (named arguments: {allowed})")
        literal = function.literal_args
        args = [
            self._argument(a) if literal is None or i in literal else self._value(a)
            for i, a in enumerate(node.args)
        ]
        kwargs = {k.arg: self._argument(k.value) for k in node.keywords}
        if self.probe and function.learns:
            return args[0]  # missing exactly where its argument is; learns nothing
        state = self.expression.states.setdefault(node.col_offset, {}) if not self.probe else {}
        try:
            return function.impl(args, kwargs, state)
        except TypeError as err:
            raise self.fail(f"{name}(): {err}") from None

    def _argument(self, node: ast.AST):
        """Literal numbers, strings and TRUE/FALSE stay Python values (degrees, levels,
        options); anything else is evaluated to a Value."""
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str, bool)):
            return node.value
        if (
            isinstance(node, ast.UnaryOp)
            and isinstance(node.op, ast.USub)
            and isinstance(node.operand, ast.Constant)
        ):
            return -node.operand.value
        if isinstance(node, ast.Name) and node.id.startswith("_const_"):
            return CONSTANTS[node.id[len("_const_") :]]
        return self.visit(node)

    def _value(self, node: ast.AST) -> Value:
        """A positional argument that is data: a literal number or string becomes a constant vector."""
        value = self.visit(node)
        if not isinstance(value, Value):
            raise self.fail(f"{ast.unparse(node)} cannot be used as data here")
        return value

    def _number(self, value, symbol: str) -> np.ndarray:
        if not isinstance(value, Value):
            raise self.fail(f"'{symbol}' needs numbers")
        if value.kind in ("numeric", "logical"):
            return np.asarray(value.data, dtype=float)
        raise self.fail(f"'{symbol}' needs numbers, but one side is a {value.kind} (text or factor) column")

    def _logical(self, value) -> np.ndarray:
        if value.kind == "logical":
            return np.asarray(value.data, dtype=bool)
        if value.kind == "numeric":
            return np.asarray(value.data) != 0
        raise self.fail("'&', '|' and '!' need logical values (comparisons) or numbers")


def _compare(op, left: Value, right: Value) -> np.ndarray:
    if left.kind in ("text", "factor") or right.kind in ("text", "factor"):
        a = np.asarray(left.data, dtype=object).astype(str)
        b = np.asarray(right.data, dtype=object).astype(str)
        return op(a, b)
    return op(np.asarray(left.data, dtype=float), np.asarray(right.data, dtype=float))


def _symbol(op: ast.AST) -> str:
    return {
        ast.Add: "+",
        ast.Sub: "-",
        ast.Mult: "*",
        ast.Div: "/",
        ast.FloorDiv: "%/%",
        ast.Mod: "%%",
        ast.Pow: "^",
    }.get(type(op), type(op).__name__)


def _describe(node: ast.AST) -> str:
    names = {
        "Attribute": "attribute access (a.b)",
        "Subscript": "subscripts (a[b])",
        "Lambda": "lambda",
        "ListComp": "a comprehension",
        "SetComp": "a comprehension",
        "DictComp": "a comprehension",
        "GeneratorExp": "a comprehension",
        "IfExp": "if/else (write ifelse(test, yes, no))",
        "NamedExpr": "assignment (:=)",
        "JoinedStr": "an f-string",
        "Starred": "*",
        "Await": "await",
        "Yield": "yield",
        "Dict": "a dict",
        "Set": "a set",
        "List": "a list (write c(...))",
        "Tuple": "a tuple",
        "BitXor": "xor",
        "BitAnd": "'&'",
        "BitOr": "'|'",
        "MatMult": "'@'",
        "LShift": "'<<'",
        "RShift": "'>>'",
        "Invert": "'~'",
        "Is": "'is'",
        "IsNot": "'is not'",
    }
    return names.get(type(node).__name__, type(node).__name__)


def compile_expression(text: str, columns, where: str) -> Expression:
    """Check ``text`` (an R expression) against the allow-list and return it compiled.

    Raises :class:`FormulaSyntaxError` naming the construct or function that is not
    allowed, and :class:`UnknownColumn` for a name that is no column.
    """
    translation = _translate(text, {str(c) for c in columns}, where)
    try:
        tree = ast.parse(translation.python.strip(), mode="eval")
    except SyntaxError as err:
        raise FormulaSyntaxError(
            f"cannot read the expression in {where} ({err.msg})", text, 0, len(text)
        ) from None
    for node in ast.walk(tree):
        # Everything evaluated must be a node type the interpreter knows; check the whole
        # tree now so that a refused construct fails before any value is computed.
        if isinstance(
            node,
            (
                ast.Attribute,
                ast.Subscript,
                ast.Lambda,
                ast.ListComp,
                ast.SetComp,
                ast.DictComp,
                ast.GeneratorExp,
                ast.IfExp,
                ast.NamedExpr,
                ast.JoinedStr,
                ast.Starred,
                ast.Dict,
                ast.Set,
                ast.List,
                ast.Tuple,
                ast.Await,
                ast.Yield,
            ),
        ):
            raise FormulaSyntaxError(
                f"{_describe(node)} cannot be used in a formula expression", text, 0, len(text)
            )
        if isinstance(node, ast.Name) and not (
            node.id in translation.names or node.id in translation.functions or node.id.startswith("_const_")
        ):
            raise FormulaSyntaxError(f"'{node.id}' is not a column of the data", text, 0, len(text))
        if isinstance(node, ast.keyword) and (node.arg is None or node.arg.startswith("_")):
            raise FormulaSyntaxError("'**' cannot be used in a formula expression", text, 0, len(text))
    return Expression(text=text, tree=tree, names=translation.names, functions=translation.functions)


# ---------------------------------------------------------------------------
# a formula's right-hand side -> formulaic text over computed columns

_FORMULA_TOKEN = re.compile(
    r"""(?P<backquoted>`[^`]*`)
      | (?P<call>[^\W\d][\w.]*\s*\()
      | (?P<number>\d+(?:\.\d*)?)
      | (?P<name>[^\W\d][\w.]*|\.[^\W\d][\w.]*)
      | (?P<dot>\.)
      | (?P<op>%in%|\*\*|[-+*/:^()])
      | (?P<space>\s+)
      | (?P<other>.)""",
    re.X,
)


class NotNumeric(ValueError):
    """New data hold text where the fitted model has a number."""

    def __init__(self, operand: str, value, row: int):
        super().__init__(operand)
        self.operand, self.value, self.row = operand, value, row


def _as_numbers(operand: str, data) -> np.ndarray:
    try:
        return np.asarray(data, dtype=float)
    except (TypeError, ValueError):
        values = np.asarray(data, dtype=object).reshape(-1)
        row = next(i for i, v in enumerate(values) if not _is_number(v))
        raise NotNumeric(operand, values[row], row) from None


def _is_number(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


class UnseenLevel(ValueError):
    """New data hold a value of a factor that the fitted data did not have."""

    def __init__(self, column: str, levels: list[str], known: list[str]):
        super().__init__(column)
        self.column, self.levels, self.known = column, levels, known


@dataclass
class Operand:
    """One term operand of a formula (``x``, ``log(n)``, ``factor(year)``, ``poly(x, 2)``)."""

    name: str  # the column name formulaic sees, the user's text with spaces tidied
    expression: Expression
    kind: str | None = None  # set when first evaluated on the fitted data
    categories: list | None = None
    contrasts: tuple | None = None
    n_columns: int = 1

    def lookup(self) -> str:
        """How formulaic refers to this operand's computed column(s)."""
        if self.kind == "basis":
            return "(" + " + ".join(f"`{self.name}[{k}]`" for k in range(1, self.n_columns + 1)) + ")"
        if self.contrasts is not None:
            kind, base = self.contrasts
            spec = {"sum": "contr.sum", "helmert": "contr.helmert", "poly": "contr.poly"}.get(kind)
            if spec is None:  # treatment with a chosen reference level (a literal, repr'd by us)
                spec = f"contr.treatment(base={_categories_literal(base)})"
            return f"C(`{self.name}`, {spec})"
        return f"`{self.name}`"

    @property
    def template(self) -> str | None:
        """The formulaic factor name that stands for ``name`` (contrast templates only)."""
        return self.lookup() if self.contrasts is not None else None


def _categories_literal(value) -> str:
    if isinstance(value, (bool, np.bool_)):
        return repr(bool(value))
    if isinstance(value, (int, np.integer)):
        return repr(int(value))
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    return repr(str(value))


def tidy(text: str) -> str:
    """An expression's display name: the user's text with runs of spaces made single."""
    return re.sub(r"\s+", " ", text.strip())


@dataclass
class Terms:
    """A formula's right-hand side (the fixed part or a bar term's varying part), checked.

    ``text`` is the user's text; ``skeleton`` the same formula with each operand replaced
    by a placeholder ``{k}``. :meth:`frame` computes the operands' columns and
    :meth:`formulaic` writes the text formulaic reads: lookups of those columns joined
    by the user's own formula operators.
    """

    text: str
    skeleton: str
    operands: list[Operand]

    @property
    def columns(self) -> list[str]:
        """The data columns the terms read."""
        return list(dict.fromkeys(c for o in self.operands for c in o.expression.columns))

    def formulaic(self) -> str:
        return self.skeleton.format(*(o.lookup() for o in self.operands))

    def rename(self, name: str) -> str:
        """formulaic's column name -> the user's (contrast templates back to the user's text)."""
        for operand in self.operands:
            template = operand.template
            if template and template in name:
                name = name.replace(template, operand.name)
        return name

    def missing(self, data: pd.DataFrame) -> dict[str, np.ndarray]:
        """Per operand, which rows have a missing value (without learning any state)."""
        out = {}
        for operand in self.operands:
            value = operand.expression.evaluate(data, probe=True)
            out[operand.name] = _missing(value)
        return out

    def frame(self, data: pd.DataFrame) -> pd.DataFrame:
        """The operands' columns on ``data``; the first call (on the fitted rows) learns the
        categories and transforms that later calls (new data) reuse."""
        columns: dict[str, object] = {}
        for operand in self.operands:
            try:
                value = operand.expression.evaluate(data)
            except UnseenLevel as err:
                err.column = err.column or operand.name
                raise
            if operand.kind is None:
                _learn(operand, value)
            _store(operand, value, columns)
        return pd.DataFrame(columns, index=data.index)


def _missing(value: Value) -> np.ndarray:
    data = value.data
    if value.kind == "basis":
        return np.isnan(np.asarray(data, dtype=float)).any(axis=1)
    return np.asarray(pd.isna(pd.Series(np.asarray(data, dtype=object) if value.kind != "factor" else data)))


def _learn(operand: Operand, value: Value) -> None:
    kind = value.kind
    if kind == "text":
        kind = "factor"
        operand.categories = sorted_levels(value.data)
    elif kind == "factor":
        present = set(pd.Series(value.data).dropna().unique())
        operand.categories = [c for c in value.data.categories if c in present]
        operand.contrasts = value.contrasts
        empty = [level_label(c) for c in value.data.categories if c not in present]
        if empty:
            warn_user(
                f"level(s) {', '.join(repr(e) for e in empty)} of '{operand.name}' have no rows in the data "
                "and are left out of the model (a coefficient with no data would be its prior alone)",
                UserWarning,
            )
    elif kind == "basis":
        operand.n_columns = np.asarray(value.data).shape[1]
    operand.kind = kind


def _store(operand: Operand, value: Value, columns: dict) -> None:
    if operand.kind == "basis":
        matrix = _as_numbers(operand.name, value.data)
        for k in range(operand.n_columns):
            columns[f"{operand.name}[{k + 1}]"] = matrix[:, k]
        return
    if operand.kind == "factor":
        columns[operand.name] = categorize(value.data, operand.categories, operand.name)
        return
    if operand.kind == "logical":
        columns[operand.name] = np.asarray(value.data, dtype=bool)
        return
    columns[operand.name] = _as_numbers(operand.name, value.data)


_UNSEEN = object()


def compile_terms(text: str, columns, where: str, dot_columns: list[str] | None = None) -> Terms:
    """Check a right-hand side such as ``x * factor(year) + I(x^2)`` and cut it into operands.

    ``dot_columns`` is what R's ``.`` stands for (all columns but the response and the
    grouping factors); without it a ``.`` is refused.
    """
    names = {str(c) for c in columns}
    skeleton: list[str] = []
    operands: list[Operand] = []
    pos = 0
    while pos < len(text):
        match = _FORMULA_TOKEN.match(text, pos)
        kind, token = match.lastgroup, match.group()
        end = match.end()
        if kind == "call":
            end = _closing_paren(text, end - 1) + 1
            token = text[pos:end]
        if kind in ("call", "name", "backquoted"):
            if kind == "name" and token not in names:
                raise _unknown_name(token, where)
            expression = compile_expression(token, names, where)
            name = expression.column_name or tidy(token).replace("`", "")
            existing = next((o for o in operands if o.name == name), None)
            if existing is None:
                operands.append(Operand(name, expression))
                skeleton.append(f"{{{len(operands) - 1}}}")
            else:
                skeleton.append(f"{{{operands.index(existing)}}}")
        elif kind == "dot":
            if dot_columns is None:
                raise FormulaSyntaxError(
                    "'.' (all other columns) is only allowed in the fixed part", text, pos
                )
            pieces = []
            for column in dot_columns:
                operands.append(Operand(column, compile_expression(f"`{column}`", names, where)))
                pieces.append(f"{{{len(operands) - 1}}}")
            skeleton.append("(" + " + ".join(pieces) + ")" if pieces else "1")
        elif kind in ("number", "op", "space"):
            skeleton.append(token.replace("{", "{{").replace("}", "}}"))
        else:
            hint = "; write I(...) around arithmetic" if token in "{}[]" else ""
            raise FormulaSyntaxError(f"unexpected {token!r} in the formula{hint}", text, pos)
        pos = end
    return Terms(text=text, skeleton="".join(skeleton), operands=operands)


def _closing_paren(text: str, open_at: int) -> int:
    """Where the parenthesis opened at ``open_at`` closes (quotes and backquotes skipped)."""
    for i, ch, depth in _scan(text[open_at:]):
        if ch == ")" and depth == 0:
            return open_at + i
    raise FormulaSyntaxError("unbalanced parenthesis: '(' is never closed", text, open_at)
