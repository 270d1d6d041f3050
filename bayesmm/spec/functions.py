"""The function library of formulas: the R functions a formula may call (``log``,
``factor``, ``relevel``, ``scale``, ``poly``, ``ns``, ``ifelse``, ...), with R's meaning,
and the values they compute. Stateful transforms remember what they learnt from the fitted
data in a state dict per call, so new data are transformed exactly as the fitted data were."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["FUNCTIONS", "CONSTANTS", "Value", "UnseenLevel", "unsupported_construct", "categorize",
           "level_label", "sorted_levels"]


class UnseenLevel(ValueError):
    """New data hold a value of a factor that the fitted data did not have."""

    def __init__(self, column: str, levels: list[str], known: list[str]):
        super().__init__(column)
        self.column, self.levels, self.known = column, levels, known


# A stateful function's marker for "nothing learnt yet".
_UNSEEN = object()


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
    "s": "a smooth s(x) is a term of its own in the mean's formula, y ~ s(x) + ...; it cannot enter an "
    "interaction, a transformation or a random-effect term here (ns(x, df = 4) can)",
    "t2": "a tensor smooth t2(x, z) is a term of its own in the mean's formula, y ~ t2(x, z) + ...; it "
    "cannot enter an interaction, a transformation or a random-effect term here",
    "te": "te() tensor smooths are not supported (their penalties do not split into random effects); "
    "t2(x, z) is the tensor smooth for mixed models (brms's and gamm4's)",
    "gp": "a Gaussian process gp(x) is a term of its own in the mean's formula, y ~ gp(x) + ...; it cannot "
    "enter an interaction, a transformation or a random-effect term here",
    "mo": "a monotonic effect mo(x) is a term of its own in the mean's formula, y ~ mo(x) + ..., or varies "
    "by a factor as (mo(x) | g) with mo(x) in the fixed part too; it cannot enter an interaction or a "
    "transformation",
    "me": "measurement-error terms me() are not supported; use the observed values",
    "mi": "missing-value imputation mi() is not supported; incomplete rows are dropped",
    "gr": "gr() belongs in a random-effect term: (1 | gr(g, cov = A)), or (1 | g)",
    "mm": "multi-membership terms mm() are not supported",
    "cs": "category-specific effects cs() are only a covariance structure here: write cs(1 + x | g)",
    "lag": "lag() is not supported; compute lagged columns in the data first",
    "offset": "offset() must stand on its own in the formula, added with '+'",
    "cbind": "cbind(successes, failures) is only allowed as the response, on the left of '~'",
    "trials": "trials() belongs to the response: write 'y | trials(n) ~ x'",
    "weights": "weights() belong to the response: write 'y | weights(w) ~ x'",
}


def unsupported_construct(name: str) -> str | None:
    """What to write instead of the brms/mgcv/nlme function ``name``, or None if it is unknown."""
    return UNSUPPORTED.get(name)
