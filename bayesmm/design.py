"""Turn a parsed formula and a DataFrame into the numbers a model needs.

One :class:`Design` per model, built once (in the spirit of lme4's ``mkReTrms``):
the response, the fixed-effects matrix with formulaic's column names, offsets,
binomial trials, and for each random-effect term its group codes, level labels,
term columns and term matrix. Later stages (the PyMC model, summaries,
predictions) read this record and never re-parse the formula.
"""

from __future__ import annotations

import copy
import difflib
import re
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp
from formulaic import model_matrix
from formulaic.errors import FactorEvaluationError, FormulaicError

from .formula import ParsedFormula, RandomTermSpec, parse_formula

__all__ = ["Design", "RandomEffectTerm", "build_design", "DataError"]


class DataError(ValueError):
    """The data do not fit the formula or the family; raised before any sampling."""


@dataclass
class RandomEffectTerm:
    """One random-effect term: which level each row belongs to and what varies by level."""

    spec: RandomTermSpec
    levels: list[str]
    codes: np.ndarray  # (n,) integer level index of each row
    columns: list[str]  # names of the varying terms, e.g. ["Intercept", "Days"]
    matrix: np.ndarray  # (n, len(columns)) term model matrix
    model_spec: object = field(repr=False, default=None)  # formulaic ModelSpec for new data
    part: str = ""  # "" for the mean's linear predictor; "zi", "hu" or "dispersion" otherwise

    @property
    def group(self) -> str:
        return self.spec.group

    @property
    def correlated(self) -> bool:
        return self.spec.correlated and len(self.columns) > 1

    @property
    def compound_symmetry(self) -> bool:
        """cs(): one correlation shared by every pair of the term's effects."""
        return self.spec.compound_symmetry and len(self.columns) > 1

    @property
    def n_levels(self) -> int:
        return len(self.levels)

    @property
    def n_terms(self) -> int:
        return len(self.columns)

    @property
    def qualified_columns(self) -> list[str]:
        """Term names as they appear in parameter names: ``x``, or ``zi:x`` in the zi part."""
        return [qualify(self.part, c) for c in self.columns]

    @property
    def sd_names(self) -> list[str]:
        return [f"sd({c}|{self.group})" for c in self.qualified_columns]

    @property
    def cor_pairs(self) -> list[tuple[int, int]]:
        """Index pairs (i, j), i > j, of the lower triangle, row by row."""
        if not self.correlated:
            return []
        return [(i, j) for i in range(self.n_terms) for j in range(i)]

    @property
    def cor_names(self) -> list[str]:
        cols = self.qualified_columns
        return [f"cor({cols[j]},{cols[i]}|{self.group})" for i, j in self.cor_pairs]

    def indicator(self) -> sp.csr_matrix:
        """The n x levels 0/1 matrix of group membership."""
        n = len(self.codes)
        return sp.csr_matrix((np.ones(n), (np.arange(n), self.codes)), shape=(n, self.n_levels))

    def z_block(self) -> sp.csr_matrix:
        """This term's block of Z: the row-wise Khatri-Rao product of the indicator
        matrix with the term matrix, columns ordered level by level (as lme4's Zt rows)."""
        n, p = self.matrix.shape
        rows = np.repeat(np.arange(n), p)
        cols = (self.codes[:, None] * p + np.arange(p)[None, :]).ravel()
        return sp.csr_matrix((self.matrix.ravel(), (rows, cols)), shape=(n, self.n_levels * p))


@dataclass
class Design:
    """Everything numeric about one model, built once from formula and data."""

    formula: ParsedFormula
    response_name: str
    y: np.ndarray
    trials: np.ndarray | None
    X: np.ndarray
    fixef_names: list[str]
    fixed_spec: object = field(repr=False)
    offset: np.ndarray | None
    random: list[RandomEffectTerm]
    rows: pd.Index  # index labels of the data rows used
    n_dropped: int = 0
    response_levels: tuple[str, str] | None = None  # for a two-level factor response
    part: str = ""  # "" for the mean's linear predictor; "zi", "hu" or "dispersion" otherwise

    def qualified(self, name: str) -> str:
        """A parameter name in this part: ``x``, or ``zi:x``."""
        return qualify(self.part, name)

    def var(self, name: str) -> str:
        """A PyMC variable or dimension name in this part: ``fixef``, or ``zi_fixef``."""
        return f"{self.part}_{name}" if self.part else name

    @property
    def n_obs(self) -> int:
        return len(self.y)

    @property
    def has_intercept(self) -> bool:
        return "Intercept" in self.fixef_names

    @property
    def groups(self) -> dict[str, list[RandomEffectTerm]]:
        """Random-effect terms by grouping factor, in formula order."""
        out: dict[str, list[RandomEffectTerm]] = {}
        for term in self.random:
            out.setdefault(term.group, []).append(term)
        return out

    def group_columns(self, group: str) -> list[str]:
        return [c for term in self.groups[group] for c in term.columns]

    def group_levels(self, group: str) -> list[str]:
        return self.groups[group][0].levels

    @property
    def Z(self) -> sp.csr_matrix:
        """The sparse random-effects model matrix (terms concatenated in formula order).

        For teaching and checking only: the likelihood indexes group effects by
        level code and never multiplies by Z.
        """
        if not self.random:
            return sp.csr_matrix((self.n_obs, 0))
        return sp.hstack([t.z_block() for t in self.random], format="csr")


def qualify(part: str, name: str) -> str:
    return f"{part}:{name}" if part else name


# ---------------------------------------------------------------------------
# building


def build_design(
    formula: str | ParsedFormula,
    data: pd.DataFrame,
    *,
    trials: str | np.ndarray | pd.Series | None = None,
    binary_response: bool = False,
    na_action: str = "drop",
    part: str = "",
) -> Design:
    """Build the design of ``formula`` on ``data``.

    Rows with a missing value in any column the model uses are dropped with a
    warning (``na_action="raise"`` makes that an error). ``data`` is not modified.
    ``binary_response`` lets a two-level factor response be coded 0/1.
    """
    parsed = formula if isinstance(formula, ParsedFormula) else parse_formula(formula)
    if na_action not in ("drop", "raise"):
        raise ValueError(f"na_action must be 'drop' or 'raise', got {na_action!r}")
    _check_data(data)
    if parsed.response is None:
        raise DataError(f"the formula {parsed.text!r} has no response on the left of '~'")
    parsed = _quote_dotted_columns(parsed, data.columns)
    _check_group_columns(parsed, data)
    trials_values = _resolve_trials(trials, data)

    keep = _complete_rows(parsed, data, trials_values, na_action)
    n_dropped = int((~keep).sum())
    if n_dropped:
        data = data.loc[keep]
        if trials_values is not None:
            trials_values = trials_values[keep]

    response_name = _response_label(parsed)
    y, trials_from_cbind, response_levels = _response(parsed, data, binary_response)
    if trials_from_cbind is not None:
        if trials_values is not None:
            raise DataError("give binomial trials either through cbind() or trials=, not both")
        trials_values = trials_from_cbind

    X_df = _model_matrix(parsed.fixed, data, "the fixed effects")
    offset = _offset(parsed, data)
    random = [_random_term(spec, data, part) for spec in parsed.random]
    _check_duplicate_terms(random)

    return Design(
        formula=parsed,
        response_name=response_name,
        y=y,
        trials=None if trials_values is None else np.asarray(trials_values, dtype=float),
        X=np.asarray(X_df, dtype=float),
        fixef_names=list(X_df.columns),
        fixed_spec=X_df.model_spec,
        offset=offset,
        random=random,
        rows=data.index,
        n_dropped=n_dropped,
        response_levels=response_levels,
        part=part,
    )


def _check_data(data: object) -> None:
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    if data.shape[0] == 0:
        raise DataError("the data frame is empty: there are no rows to fit")


_IDENTIFIER = re.compile(r"`[^`]*`|'[^']*'|\"[^\"]*\"|[A-Za-z_.][\w.]*")


def _quote_names(text: str, dotted: set[str]) -> str:
    """Backquote bare column names that contain a dot (R's ``total.fruits``)."""

    def replace(match: re.Match) -> str:
        token = match.group(0)
        following = text[match.end() : match.end() + 1]
        if token in dotted and following != "(":
            return f"`{token}`"
        return token

    return _IDENTIFIER.sub(replace, text)


def _quote_dotted_columns(parsed: ParsedFormula, columns: pd.Index) -> ParsedFormula:
    dotted = {str(c) for c in columns if "." in str(c)}
    if not dotted:
        return parsed
    quote = lambda s: _quote_names(s, dotted)  # noqa: E731
    return ParsedFormula(
        text=parsed.text,
        response=quote(parsed.response) if parsed.response else None,
        fixed=quote(parsed.fixed),
        random=tuple(
            RandomTermSpec(
                expr=quote(t.expr),
                group=t.group,
                group_factors=t.group_factors,
                correlated=t.correlated,
                text=t.text,
                compound_symmetry=t.compound_symmetry,
            )
            for t in parsed.random
        ),
        offsets=tuple(quote(o) for o in parsed.offsets),
    )


def _suggest(name: str, columns) -> str:
    close = difflib.get_close_matches(name, [str(c) for c in columns], n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def missing_column_error(name: str, where: str, columns) -> DataError:
    return DataError(f"column '{name}' in {where} is not in the data{_suggest(name, columns)}")


def _check_group_columns(parsed: ParsedFormula, data: pd.DataFrame) -> None:
    for spec in parsed.random:
        for factor in spec.group_factors:
            if factor not in data.columns:
                raise missing_column_error(factor, f"term {spec.text}", data.columns)


def _resolve_trials(trials, data: pd.DataFrame) -> np.ndarray | None:
    if trials is None:
        return None
    if isinstance(trials, str):
        if trials not in data.columns:
            raise missing_column_error(trials, "trials=", data.columns)
        values = data[trials]
    else:
        values = trials
    values = np.asarray(values, dtype=float)
    if values.shape != (len(data),):
        raise DataError(f"trials= has {values.size} values but the data have {len(data)} rows")
    return values


_MISSING_NAME = (
    re.compile(r"`([^`]+)` is not present in the dataset"),
    re.compile(r"name '([^']+)' is not defined"),
)


def _model_matrix(expr: str, data: pd.DataFrame, where: str, na_action: str = "raise"):
    """formulaic's model matrix, with its errors translated into ones that name the term."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=UserWarning)
            return model_matrix(expr, data, na_action=na_action)
    except FactorEvaluationError as err:
        for pattern in _MISSING_NAME:
            match = pattern.search(str(err))
            if match:
                raise missing_column_error(match.group(1), where, data.columns) from None
        raise DataError(f"cannot evaluate {where} '{expr}': {err}") from None
    except FormulaicError as err:
        raise DataError(f"cannot read {where} '{expr}': {err}") from None
    except (IndexError, KeyError, TypeError, ValueError) as err:
        # A transform called with arguments it cannot use, e.g. C(f, 'sum'): formulaic
        # lets the bare error through.
        raise DataError(
            f"cannot evaluate {where} '{expr}' ({type(err).__name__}: {err}); check the arguments "
            "of its transforms (contrasts are written C(f, contr.sum) or C(f, contr.treatment('b')))"
        ) from err


def _evaluate(expr: str, data: pd.DataFrame, where: str, na_action: str = "raise") -> np.ndarray:
    """Evaluate one expression (a column name or arithmetic on columns) to a vector."""
    name = expr.strip("` ")
    if name in data.columns:
        return data[name].to_numpy()
    matrix = _model_matrix(f"0 + I({expr})", data, where, na_action)
    return np.asarray(matrix, dtype=float)[:, 0]


def _response_label(parsed: ParsedFormula) -> str:
    cbind = parsed.cbind
    return (cbind[0] if cbind else parsed.response).strip("` ")


def _complete_rows(parsed, data, trials_values, na_action) -> np.ndarray:
    """Rows with every used value present; warn (or raise) naming what was missing."""
    missing: dict[str, np.ndarray] = {}

    def note(label: str, values) -> None:
        bad = pd.isna(np.asarray(values))
        if bad.ndim > 1:
            bad = bad.any(axis=1)
        if bad.any():
            missing[label] = bad

    where = f"the response {parsed.response}"
    for expr in parsed.cbind or (parsed.response,):
        note(expr.strip("` "), _evaluate(expr, data, where, na_action="ignore"))
    fixed = _model_matrix(parsed.fixed, data, "the fixed effects", na_action="ignore")
    for col in fixed.columns:
        note(col, fixed[col].to_numpy(dtype=float))
    for spec in parsed.random:
        term = _model_matrix(spec.expr, data, f"term {spec.text}", na_action="ignore")
        for col in term.columns:
            note(f"{col} in {spec.text}", term[col].to_numpy(dtype=float))
        for factor in spec.group_factors:
            note(factor, data[factor])
    for expr in parsed.offsets:
        note(f"offset({expr})", _evaluate(expr, data, f"offset({expr})", na_action="ignore"))
    if trials_values is not None:
        note("trials", trials_values)

    if not missing:
        return np.ones(len(data), dtype=bool)
    bad = np.any(np.vstack(list(missing.values())), axis=0)
    n_bad = int(bad.sum())
    names = ", ".join(missing)
    if na_action == "raise":
        raise DataError(f"{n_bad} of {len(data)} rows have missing values (in {names}) and na_action='raise'")
    if n_bad == len(data):
        raise DataError(f"every row has a missing value (in {names}): nothing is left to fit")
    warnings.warn(
        f"dropped {n_bad} of {len(data)} rows with missing values (in {names})",
        UserWarning,
        stacklevel=4,
    )
    return ~bad


def _response(parsed: ParsedFormula, data: pd.DataFrame, binary_response: bool):
    where = f"the response {parsed.response}"
    cbind = parsed.cbind
    if cbind:
        successes = _numeric(_evaluate(cbind[0], data, where), cbind[0])
        failures = _numeric(_evaluate(cbind[1], data, where), cbind[1])
        return successes, successes + failures, None
    raw = _evaluate(parsed.response, data, where)
    name = parsed.response.strip("` ")
    if binary_response and not _is_numeric(raw):
        return _binary_codes(raw, name)
    if binary_response and raw.dtype == bool:
        return raw.astype(float), None, None
    return _numeric(raw, name), None, None


def _is_numeric(values: np.ndarray) -> bool:
    return values.dtype.kind in "biuf"


def _numeric(values: np.ndarray, name: str) -> np.ndarray:
    if not _is_numeric(values):
        raise DataError(
            f"the response '{name}' is not numeric (it holds {pd.Series(values).dtype} values "
            f"such as {values[0]!r})"
        )
    return values.astype(float)


def _binary_codes(values, name: str):
    series = pd.Series(values)
    levels = (
        list(series.cat.categories[series.cat.categories.isin(series.unique())])
        if isinstance(series.dtype, pd.CategoricalDtype)
        else sorted(series.unique(), key=str)
    )
    if len(levels) != 2:
        raise DataError(
            f"the response '{name}' is not numeric and has {len(levels)} distinct values; "
            "a binary response needs exactly two (or 0/1 numbers)"
        )
    codes = (series == levels[1]).to_numpy(dtype=float)
    return codes, None, (str(levels[0]), str(levels[1]))


def _offset(parsed: ParsedFormula, data: pd.DataFrame) -> np.ndarray | None:
    if not parsed.offsets:
        return None
    total = np.zeros(len(data))
    for expr in parsed.offsets:
        values = _evaluate(expr, data, f"offset({expr})")
        if not _is_numeric(values):
            raise DataError(f"offset({expr}) is not numeric")
        total += values.astype(float)
    return total


def _level_labels(data: pd.DataFrame, factors: tuple[str, ...]) -> tuple[list[str], np.ndarray]:
    """Level labels and codes of a (possibly combined, a:b) grouping factor.

    Levels are those present in the data, in category order for categoricals and
    sorted order otherwise; a combined factor's labels read ``"a_level:b_level"``.
    """
    parts = []
    for factor in factors:
        column = data[factor]
        if isinstance(column.dtype, pd.CategoricalDtype):
            cat = column.cat.remove_unused_categories()
        else:
            cat = pd.Categorical(column, categories=sorted(column.unique(), key=_sort_key))
        parts.append(pd.Series(cat, index=data.index))
    if len(parts) == 1:
        cat = parts[0].cat
        return [str(v) for v in cat.categories], cat.codes.to_numpy().astype(np.int64)
    frame = pd.DataFrame({i: p.cat.codes for i, p in enumerate(parts)})
    combos = frame.drop_duplicates().sort_values(list(frame.columns))
    labels = [
        ":".join(str(parts[k].cat.categories[row[k]]) for k in range(len(parts)))
        for row in combos.itertuples(index=False)
    ]
    code_of = {tuple(row): i for i, row in enumerate(combos.itertuples(index=False))}
    codes = np.array([code_of[tuple(row)] for row in frame.itertuples(index=False)], dtype=np.int64)
    return labels, codes


def _sort_key(value):
    return (0, value, "") if isinstance(value, (int, float, np.integer, np.floating)) else (1, 0, str(value))


def _random_term(spec: RandomTermSpec, data: pd.DataFrame, part: str = "") -> RandomEffectTerm:
    levels, codes = _level_labels(data, spec.group_factors)
    if len(levels) < 2:
        raise DataError(
            f"grouping factor '{spec.group}' in {spec.text} has only one level "
            f"({levels[0]!r}); a random effect needs at least two levels"
        )
    _warn_if_continuous(spec, data)
    matrix = _model_matrix(spec.expr, data, f"term {spec.text}")
    if matrix.shape[1] == 0:
        raise DataError(f"term {spec.text} has no varying term left (did you write (0 | g)?)")
    _warn_if_between_group(spec, matrix, codes)
    return RandomEffectTerm(
        spec=spec,
        levels=levels,
        codes=codes,
        columns=list(matrix.columns),
        matrix=np.asarray(matrix, dtype=float),
        model_spec=matrix.model_spec,
        part=part,
    )


def _warn_if_continuous(spec: RandomTermSpec, data: pd.DataFrame) -> None:
    for factor in spec.group_factors:
        column = data[factor]
        if column.dtype.kind == "f" and column.nunique() > 0.5 * len(column) and len(column) > 20:
            warnings.warn(
                f"grouping factor '{factor}' in {spec.text} is a continuous column with "
                f"{column.nunique()} distinct values among {len(column)} rows; "
                "did you mean it as a predictor rather than a group?",
                UserWarning,
                stacklevel=5,
            )


def _warn_if_between_group(spec: RandomTermSpec, matrix: pd.DataFrame, codes: np.ndarray) -> None:
    """A slope on a covariate that is constant within every level cannot vary by level."""
    values = np.asarray(matrix, dtype=float)
    for j, column in enumerate(matrix.columns):
        if np.all(values[:, j] == values[0, j]):
            continue  # the intercept (or a constant column): nothing to compare
        per_level = pd.Series(values[:, j]).groupby(codes)
        if (per_level.max() - per_level.min()).max() == 0:
            warnings.warn(
                f"'{column}' in {spec.text} is constant within each level of '{spec.group}' "
                f"(a between-group covariate), so its effect cannot vary by '{spec.group}' and is not "
                "identified; remove it from the bar term (it can stay a fixed effect)",
                UserWarning,
                stacklevel=5,
            )


def _check_duplicate_terms(random: list[RandomEffectTerm]) -> None:
    seen: dict[tuple[str, str], str] = {}
    for term in random:
        for column in term.columns:
            key = (term.group, column)
            if key in seen:
                raise DataError(
                    f"'{column}' varies by '{term.group}' twice: in {seen[key]} and {term.spec.text}"
                )
            seen[key] = term.spec.text


# ---------------------------------------------------------------------------
# new data, through the stored formulaic specs


@dataclass
class NewData:
    """New rows encoded with the fitted design: same columns, categories and transforms."""

    X: np.ndarray
    offset: np.ndarray | None
    trials: np.ndarray | None
    codes: list[np.ndarray]  # per random term; an unseen level k gets code n_levels + k
    matrices: list[np.ndarray]  # per random term
    new_levels: list[list[str]]  # per random term: the unseen level labels, in order of appearance
    rows: pd.Index


_C_CALL = re.compile(r"^C\(\s*`?([^`,)]+?)`?\s*[,)]")


def _categorical_columns(spec) -> dict[str, list]:
    """Data columns that the spec encodes as categorical, with their training categories."""
    out = {}
    for factor, (kind, state) in spec.encoder_state.items():
        if getattr(kind, "value", kind) != "categorical" or "categories" not in state:
            continue
        name = str(factor).strip("`")
        match = _C_CALL.match(name)
        out[match.group(1) if match else name] = list(state["categories"])
    return out


def _align_categories(spec, newdata: pd.DataFrame, where: str) -> pd.DataFrame:
    """New data with each categorical column typed as in training (a copy; the input is untouched).

    formulaic encodes unseen categories silently as the baseline, and a column that
    arrives as plain numbers where training had a factor gets treated as numeric (it
    even rewrites the stored spec). Both are refused or repaired here, naming the column.
    """
    aligned = newdata
    for column, categories in _categorical_columns(spec).items():
        if column not in newdata.columns:
            continue
        by_label = {str(c): c for c in categories}
        values = newdata[column]
        unseen = sorted({str(v) for v in values.dropna().unique()} - set(by_label))
        if unseen:
            raise DataError(
                f"level(s) {', '.join(repr(u) for u in unseen)} of '{column}' in {where} were not in "
                f"the data the model was fit to (levels: {', '.join(by_label)})"
            )
        if aligned is newdata:
            aligned = newdata.copy()
        labels = [by_label.get(str(v)) if pd.notna(v) else None for v in values]
        aligned[column] = pd.Categorical(labels, categories=categories)
    return aligned


def _materialize(spec, newdata: pd.DataFrame, where: str) -> np.ndarray:
    newdata = _align_categories(spec, newdata, where)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # A copy: formulaic may update a spec's encoder state while materializing.
            matrix = copy.deepcopy(spec).get_model_matrix(newdata, na_action="ignore")
    except FactorEvaluationError as err:
        for pattern in _MISSING_NAME:
            match = pattern.search(str(err))
            if match:
                raise missing_column_error(
                    match.group(1), f"the new data ({where})", newdata.columns
                ) from None
        raise DataError(f"cannot evaluate {where} on the new data: {err}") from None
    values = np.asarray(matrix, dtype=float)
    if np.isnan(values).any():
        bad = [str(c) for c, col in zip(matrix.columns, values.T, strict=True) if np.isnan(col).any()]
        raise DataError(f"the new data have missing values in {', '.join(bad)} ({where})")
    return values


def _new_codes(term: RandomEffectTerm, newdata: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    for factor in term.spec.group_factors:
        if factor not in newdata.columns:
            raise missing_column_error(factor, f"the new data (term {term.spec.text})", newdata.columns)
    labels = newdata[list(term.spec.group_factors)].astype(str).agg(":".join, axis=1)
    index = {level: code for code, level in enumerate(term.levels)}
    unseen = list(dict.fromkeys(label for label in labels if label not in index))
    # Unseen levels are numbered after the fitted ones, in order of appearance.
    index.update({label: term.n_levels + k for k, label in enumerate(unseen)})
    return np.array([index[label] for label in labels], dtype=np.int64), unseen


def encode_new_data(design: Design, newdata: pd.DataFrame, trials=None) -> NewData:
    """Encode ``newdata`` exactly as the fitted data were (never re-parsing or re-learning levels)."""
    if not isinstance(newdata, pd.DataFrame):
        raise TypeError(f"newdata must be a pandas DataFrame, got {type(newdata).__name__}")
    if newdata.shape[0] == 0:
        raise DataError("the new data frame is empty")
    parsed = _quote_dotted_columns(design.formula, newdata.columns)
    X = _materialize(design.fixed_spec, newdata, "the fixed effects")
    offset = None
    if parsed.offsets:
        offset = sum(
            _evaluate(o, newdata, f"offset({o}) in the new data").astype(float) for o in parsed.offsets
        )
    codes, matrices, unseen = [], [], []
    for term in design.random:
        term_codes, term_unseen = _new_codes(term, newdata)
        codes.append(term_codes)
        unseen.append(term_unseen)
        matrices.append(_materialize(term.model_spec, newdata, f"term {term.spec.text}"))
    new_trials = None
    if design.trials is not None:
        if trials is not None:
            new_trials = _resolve_trials(trials, newdata)
        elif parsed.cbind:
            s, f = parsed.cbind
            try:
                new_trials = _evaluate(f"({s}) + ({f})", newdata, "the trials").astype(float)
            except DataError:
                new_trials = None  # predict() explains what is missing if it needs them
    return NewData(X, offset, new_trials, codes, matrices, unseen, newdata.index)
