"""Parse lme4/brms-style mixed-model formulas.

The text is split into a response, a fixed-effects part (handed to formulaic
later), offsets, and random-effect ("bar") terms such as ``(1 + x | g)``.
formulaic's own parser reads ``|`` as its multi-part operator, so the bar terms
are cut out here with a small scanner that respects parentheses and backquotes.
Nothing in this module looks at data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .covariance import PREFIXES, STRUCTURES, Diagonal, Unstructured

__all__ = ["FormulaSyntaxError", "RandomTermSpec", "ParsedFormula", "parse_formula"]


class FormulaSyntaxError(ValueError):
    """A formula that cannot be parsed; the message points at the offending part.

    Parameters
    ----------
    message
        What is wrong.
    formula
        The formula's text.
    start
        Index of the first offending character.
    end
        Index after the last offending character (default: ``start + 1``).

    Examples
    --------
    >>> try:
    ...     bm.parse_formula("y ~ x + (1 | g")
    ... except bm.FormulaSyntaxError as err:
    ...     print(err.start, err.end)
    8 9
    """

    def __init__(self, message: str, formula: str, start: int, end: int | None = None):
        end = start + 1 if end is None else max(end, start + 1)
        pointer = " " * start + "^" * (end - start)
        super().__init__(f"{message}\n  {formula}\n  {pointer}")
        self.formula = formula
        self.start = start
        self.end = end


@dataclass(frozen=True)
class RandomTermSpec:
    """One random-effect term after expansion, e.g. ``(1 + Days | Subject)``.

    ``expr`` is the varying-term formula (``"1 + Days"``), ``group`` the grouping
    factor as written after expansion (``"batch:cask"`` for ``batch/cask``),
    ``group_factors`` the data columns that make up the group, and ``correlated``
    is False for ``||`` and ``diag()`` terms. ``structure`` names the covariance structure
    (``"us"``, ``"diag"``, ``"cs"``, ``"ar1"``, ``"rr"``; see :mod:`bayesmm.spec.covariance`).
    """

    expr: str
    group: str
    group_factors: tuple[str, ...]
    correlated: bool
    text: str
    structure: str = "us"
    rank: int | None = None  # rr(x | g, d): the number of latent factors d
    cov: str | None = None  # gr(g, cov = A): the name of the levels' known covariance in data2

    @property
    def compound_symmetry(self) -> bool:
        """cs(x | g): one correlation shared by every pair."""
        return self.structure == "cs"

    @property
    def label(self) -> str:
        """The term as its covariance structure writes it: ``(x | g)``, ``cs(x | g)``."""
        return STRUCTURES[self.structure].label(self)

    @property
    def grouping(self) -> str:
        """The grouping factor as the formula writes it: ``g``, or ``gr(g, cov = A)``."""
        return self.group if self.cov is None else f"gr({self.group}, cov = {self.cov})"


@dataclass(frozen=True)
class Addition:
    """One of brms's addition terms after the response: ``se(s, sigma = TRUE)`` is
    ``Addition("se", (("se", "s"), ("sigma", "TRUE")))``. ``Surv(time, status)`` is read as
    ``time | cens(...)`` with ``Addition("cens", (("status", "status"),))``: an event indicator,
    not censoring codes."""

    name: str
    args: tuple[tuple[str, str], ...]

    def get(self, key: str) -> str | None:
        return dict(self.args).get(key)

    @property
    def text(self) -> str:
        return f"{self.name}({', '.join(f'{k} = {v}' for k, v in self.args)})"


@dataclass(frozen=True)
class ParsedFormula:
    """A mixed-model formula cut into the pieces later stages need."""

    text: str
    response: str | None
    fixed: str
    random: tuple[RandomTermSpec, ...]
    offsets: tuple[str, ...]
    trials: str | None = None  # brms's addition term: y | trials(n) ~ ...
    # brms's other addition terms (se, weights, cens, trunc; Surv()'s status as cens): each
    # with its arguments by name, as written (a column name or a number).
    additions: tuple[Addition, ...] = ()
    # brms's monotonic effects y ~ mo(x): the ordered predictors' column names.
    monotonic: tuple[str, ...] = ()
    # Penalized splines y ~ s(x, k = 10): each smooth's column and number of knots.
    smooths: tuple[tuple[tuple[str, ...], int, str | None, str], ...] = ()  # (columns, k, by or None, basis)
    # Tensor-product smooths y ~ t2(x, z, k = 5, bs = "cr"): (columns, k per margin, by or None, basis).
    tensors: tuple[tuple[tuple[str, ...], int, str | None, str], ...] = ()
    # Gaussian processes y ~ gp(x, k = 20, c = 1.25, cov = "exp_quad"), Hilbert-space approximated.
    gps: tuple[tuple[tuple[str, ...], int, float, str, str | None], ...] = ()  # (columns, k, c, kernel, by)

    @property
    def special_terms(self) -> list[str]:
        """The terms of the mean's formula that are not formulaic's (mo(), s(), t2(), gp()), as text."""
        texts = [f"mo({column})" for column in self.monotonic]
        texts += [f's({", ".join(c)}, k = {k}, bs = "{bs}"' + (f", by = {by})" if by else ")")
                  for c, k, by, bs in self.smooths]  # fmt: skip
        texts += [f't2({", ".join(c)}, k = {k}, bs = "{bs}"' + (f", by = {by})" if by else ")")
                  for c, k, by, bs in self.tensors]  # fmt: skip
        texts += [f'gp({", ".join(c)}, k = {k}, c = {cc:g}, cov = "{kernel}"'
                  + (f", by = {by})" if by else ")") for c, k, cc, kernel, by in self.gps]  # fmt: skip
        return texts

    def addition(self, name: str) -> Addition | None:
        """The addition term ``name`` (``"se"``, ``"weights"``, ``"cens"``, ``"trunc"``), or None."""
        return next((a for a in self.additions if a.name == name), None)

    @property
    def cbind(self) -> tuple[str, str] | None:
        """``(successes, failures)`` expressions for a ``cbind(s, f)`` response."""
        if self.response is None:
            return None
        return _split_cbind(self.response)


_OPEN = "("
_CLOSE = ")"


def _scan(text: str):
    """Yield ``(index, char, depth)`` for characters outside backquotes and strings.

    ``depth`` is the parenthesis depth before the character. Raises on unbalanced
    parentheses or an unclosed backquote, pointing at the culprit.
    """
    depth = 0
    opened: list[int] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch in "`'\"":
            close = text.find(ch, i + 1)
            if close < 0:
                what = "backquote" if ch == "`" else "quote"
                raise FormulaSyntaxError(f"unclosed {what} in formula", text, i)
            i = close + 1
            continue
        if ch == _OPEN:
            opened.append(i)
            yield i, ch, depth
            depth += 1
        elif ch == _CLOSE:
            if depth == 0:
                raise FormulaSyntaxError("unbalanced parenthesis: ')' without '('", text, i)
            depth -= 1
            opened.pop()
            yield i, ch, depth
        else:
            yield i, ch, depth
        i += 1
    if depth:
        raise FormulaSyntaxError("unbalanced parenthesis: '(' is never closed", text, opened[-1])


def _top_level_positions(text: str, char: str) -> list[int]:
    return [i for i, ch, depth in _scan(text) if ch == char and depth == 0]


def _split_top_level(text: str, sep: str, base: int = 0) -> list[tuple[int, str]]:
    """Split on ``sep`` outside parentheses, keeping each piece's offset in the full text."""
    pieces, start = [], 0
    for pos in _top_level_positions(text, sep):
        pieces.append((base + start, text[start:pos]))
        start = pos + 1
    pieces.append((base + start, text[start:]))
    return pieces


def _strip_with_offset(offset: int, piece: str) -> tuple[int, str]:
    stripped = piece.lstrip()
    return offset + len(piece) - len(stripped), stripped.rstrip()


_CBIND = re.compile(r"^\s*cbind\s*\((.*)\)\s*$", re.S)


def _split_cbind(response: str) -> tuple[str, str] | None:
    match = _CBIND.match(response)
    if not match:
        return None
    parts = [p.strip() for _, p in _split_top_level(match.group(1), ",")]
    if len(parts) != 2 or not all(parts):
        raise FormulaSyntaxError(
            "cbind() in the response takes exactly two arguments: cbind(successes, failures)",
            response,
            0,
            len(response),
        )
    return parts[0], parts[1]


_NAME = r"(?:`[^`]+`|[^\W\d][\w.]*|\.[^\W\d][\w.]*)"
_GROUP_NAME = re.compile(rf"^{_NAME}$")


def _expand_group(group: str, formula: str, offset: int) -> list[tuple[str, tuple[str, ...]]]:
    """``a/b/c`` -> ``a``, ``a:b``, ``a:b:c``; ``a:b`` stays one group of two factors."""
    nested = [p.strip() for p in group.split("/")]
    expanded = []
    for depth in range(1, len(nested) + 1):
        factors: list[str] = []
        for part in nested[:depth]:
            factors.extend(f.strip() for f in part.split(":"))
        for factor in factors:
            if not _GROUP_NAME.match(factor):
                raise FormulaSyntaxError(
                    f"grouping factor '{factor}' must be a column name "
                    "(combine factors with ':' or nest them with '/')",
                    formula,
                    offset,
                    offset + len(group),
                )
        names = tuple(f.strip("`") for f in factors)
        expanded.append((":".join(names), names))
    return expanded


def _parse_bar_term(inner: str, inner_offset: int, formula: str, prefix: str) -> list[RandomTermSpec]:
    bars = [i for i, ch, depth in _scan(inner) if ch == "|" and depth == 0]
    if not bars:
        raise FormulaSyntaxError("expected a '|' inside this term", formula, inner_offset)
    double = len(bars) == 2 and bars[1] == bars[0] + 1
    if len(bars) > 2 or (len(bars) == 2 and not double):
        raise FormulaSyntaxError(
            "a random-effect term has one '|' (or '||'); brms's (1 | id | g), which correlates terms "
            "across formulas, is not supported: write (1 | g)",
            formula,
            inner_offset + bars[-1],
        )
    left = inner[: bars[0]].strip()
    right = inner[bars[-1] + 1 :].strip()
    if not left:
        raise FormulaSyntaxError(
            "empty varying term before '|'; write (1 | g) for a random intercept",
            formula,
            inner_offset + bars[0],
        )
    if not right:
        raise FormulaSyntaxError("missing grouping factor after '|'", formula, inner_offset + bars[-1])
    if double and prefix:
        raise FormulaSyntaxError(f"{prefix}() takes a single '|'", formula, inner_offset + bars[0])
    chosen = PREFIXES[prefix] if prefix else Unstructured
    correlated = not double and chosen.cor_class is not None
    structure = chosen.name if correlated else Diagonal.name
    right_offset = inner_offset + inner.index(right, bars[-1] + 1)
    rank = None
    if chosen.takes_rank:
        right, rank = _rank(right, formula, right_offset)
    right, cov = _gr(right, formula, right_offset)
    text = formula[inner_offset - 1 - len(prefix) : inner_offset + len(inner) + 1]
    return [
        RandomTermSpec(
            expr=left,
            group=group,
            group_factors=factors,
            correlated=correlated,
            text=text,
            structure=structure,
            rank=rank,
            cov=cov,
        )
        for group, factors in _expand_group(right, formula, right_offset)
    ]


_KEYED = re.compile(r"(?P<key>[A-Za-z_.][\w.]*)\s*=\s*(?P<value>.+)", re.S)


def _arguments(inner: str, offset: int):
    """A call's arguments: (position, offset, text, key, value) each, key None for a positional
    one (``value`` is then the text)."""
    for position, (at, raw) in enumerate(_split_top_level(inner, ",", offset)):
        at, piece = _strip_with_offset(at, raw)
        keyed = _KEYED.fullmatch(piece)
        key, value = (keyed.group("key"), keyed.group("value").strip()) if keyed else (None, piece)
        yield position, at, piece, key, value


_GR = re.compile(r"^gr\s*\((?P<inner>.*)\)$", re.S)


def _spline_arguments(call: str, inner: str, offset: int, formula: str, usage: str):
    """The columns, k, by and bs of an s() or t2() call (k and bs None where not given)."""
    columns, k, by, bs = [], None, None, None
    for position, at, piece, key, value in _arguments(inner, offset):
        if key is None and position == len(columns) and re.fullmatch(_NAME, value):
            columns.append(value.strip("`"))
        elif key == "k" and value.isdigit():
            k = int(value)
        elif key == "bs" and value.strip("'\"") in SMOOTH_BASES:
            bs = value.strip("'\"")
        elif key == "by" and re.fullmatch(_NAME, value):
            by = value.strip("`")
        elif key == "bs":
            raise FormulaSyntaxError(
                f"{call}() takes mgcv's bases bs = \"tp\" (thin-plate regression spline) and bs = \"cr\" "
                f"(cubic regression spline); basis {value} is not supported: leave out bs, or write "
                f"{call}(x{', z' if call == 't2' else ''}, bs = \"cr\")", formula, at, at + len(piece),
            )  # fmt: skip
        else:
            raise FormulaSyntaxError(
                f"{call}() takes {usage}; other arguments are not supported ('{piece}')", formula, at,
                at + len(piece),
            )  # fmt: skip
    return columns, k, by, bs


def _smooth(inner: str, offset: int, formula: str) -> tuple[tuple[str, ...], int, str | None, str]:
    """``s(x)``, ``s(x, k = 5)``, ``s(x, bs = "cr")``, ``s(x, by = f)``, ``s(x, z)``: the columns
    (one, or two for a thin-plate smooth of both), the basis size k (mgcv's defaults: 10 for one
    column, 30 for two), the factor whose levels each get their own smooth (or None) and the
    basis, ``"tp"`` (thin-plate regression spline, mgcv's and brms's default) or ``"cr"``
    (cubic regression spline, one column)."""
    usage = 'one or two columns, k = (basis size), bs = "tp" | "cr" and by = (a factor\'s column)'
    columns, k, by, bs = _spline_arguments("s", inner, offset, formula, usage)
    bs = bs or "tp"
    if not columns:
        raise FormulaSyntaxError("s() takes a numeric column first: y ~ s(x)", formula, offset)
    if len(columns) > 2 or len(set(columns)) < len(columns):
        raise FormulaSyntaxError(
            f"s({inner}): a smooth of one column or two different ones is supported (for columns in "
            "different units, or three, write the tensor smooth t2(x, z, w); or gp(x, z, w))",
            formula, offset,
        )  # fmt: skip
    if len(columns) == 2 and bs != "tp":
        raise FormulaSyntaxError(
            f"s({inner}): the cubic regression spline is of one column; s(x, z) is a thin-plate spline "
            "(leave out bs, or write bs = \"tp\")", formula, offset,
        )  # fmt: skip
    return tuple(columns), k if k is not None else (10 if len(columns) == 1 else 30), by, bs


def _tensor(inner: str, offset: int, formula: str) -> tuple[tuple[str, ...], int, str | None, str]:
    """``t2(x, z)``, ``t2(x, z, w)``, ``t2(x, z, k = 6, bs = "tp", by = f)``: the columns (two or
    three), each margin's basis size k (mgcv's default 5), the by factor (or None) and the
    margins' basis, ``"cr"`` (mgcv's default for t2) or ``"tp"``."""
    usage = ('two or three columns, k = (each margin\'s basis size), bs = "cr" | "tp" and by = (a '
             "factor's column)")
    columns, k, by, bs = _spline_arguments("t2", inner, offset, formula, usage)
    if len(columns) not in (2, 3) or len(set(columns)) < len(columns):
        raise FormulaSyntaxError(
            f"t2({inner}) is a tensor product of two or three different columns (for one, write s(x))",
            formula, offset,
        )  # fmt: skip
    return tuple(columns), 5 if k is None else k, by, bs or "cr"


def _gp(inner: str, offset: int, formula: str) -> tuple[tuple[str, ...], int, float, str, str | None]:
    """``gp(x)``, ``gp(x, z)``, ``gp(x, k = 20, c = 1.25, cov = "matern32")``: the columns, the
    number of basis functions k (per column), the boundary factor c and the kernel (brms's
    names) of a Hilbert-space approximate Gaussian process."""
    columns, k, c, kernel, by = [], 20, 1.25, "exp_quad", None
    for position, at, piece, key, value in _arguments(inner, offset):
        if key is None and position == len(columns) and re.fullmatch(_NAME, value):
            columns.append(value.strip("`"))
        elif key == "k" and value.isdigit() and int(value) >= 2:
            k = int(value)
        elif key == "c" and re.fullmatch(r"\d+(\.\d*)?", value) and float(value) > 1.0:
            c = float(value)
        elif key == "cov" and value.strip("'\"") in GP_KERNELS:
            kernel = value.strip("'\"")
        elif key == "by" and re.fullmatch(_NAME, value):
            by = value.strip("`")
        else:
            raise FormulaSyntaxError(
                "gp() takes numeric columns and k = (basis functions per column, >= 2), c = (boundary "
                f"factor, > 1), cov = {' | '.join(map(repr, GP_KERNELS))} and by = (a factor); '{piece}' "
                "is not supported here (the exact GP neither)", formula, at, at + len(piece),
            )  # fmt: skip
    if not columns:
        raise FormulaSyntaxError("gp() takes a numeric column first: y ~ gp(x)", formula, offset)
    if len(set(columns)) < len(columns):
        raise FormulaSyntaxError(f"gp() names a column twice: gp({inner})", formula, offset)
    return tuple(columns), k, c, kernel, by


def _append_once(terms: list, term: tuple, by_at: int, call: str, text: str, start: int, end: int) -> None:
    """Append an s() or gp() term (a tuple: its columns first, its by factor at ``by_at``),
    refusing one whose columns and by factor an earlier term already has."""
    if any((term[0], term[by_at]) == (other[0], other[by_at]) for other in terms):
        raise FormulaSyntaxError(f"{call}({', '.join(term[0])}) is given twice", text, start, end)
    terms.append(term)


def _gr(right: str, formula: str, offset: int) -> tuple[str, str | None]:
    """brms's ``gr(g, cov = A)``: the grouping factor ``g`` and the name of its levels' known
    covariance matrix (given in ``data2``); ``gr(g)`` alone is ``g``."""
    match = _GR.match(right)
    if not match:
        return right, None
    group, cov = None, None
    for position, at, piece, key, value in _arguments(match.group("inner"), offset + 3):
        if key is None and position == 0:
            group = value
        elif key == "cov" and re.fullmatch(_NAME, value):
            cov = value.strip("`")
        elif key == "cov":
            message = "gr()'s cov names a matrix given in data2, e.g. gr(g, cov = A)"
            raise FormulaSyntaxError(message, formula, at, at + len(piece))
        else:
            raise FormulaSyntaxError(
                f"gr() takes the grouping factor and cov = (a matrix in data2); '{piece}' is not supported "
                "(brms's by =, id = and dist = are not)", formula, at, at + len(piece),
            )  # fmt: skip
    if group is None or not re.fullmatch(_NAME, group):
        raise FormulaSyntaxError("gr() takes a grouping column first: (1 | gr(g, cov = A))", formula, offset,
                                 offset + len(right))  # fmt: skip
    return group, cov


def _rank(right: str, formula: str, offset: int) -> tuple[str, int]:
    """``g, 2`` -> (``g``, 2): the number of latent factors of rr(x | g, d); 2 when left out,
    as in glmmTMB."""
    group, comma, number = right.rpartition(",")
    if not comma:
        return right, 2
    number = number.strip()
    if not number.isdigit() or int(number) < 1:
        raise FormulaSyntaxError(
            f"rr(x | g, d) takes a whole number d >= 1 of latent factors, got {number!r}",
            formula,
            offset + len(group) + 1,
        )
    return group.strip(), int(number)


# A bar term, with the prefix of its covariance structure if it has one (cs(x | g)).
_PREFIX = "|".join(sorted(PREFIXES, key=len, reverse=True))
_BAR_TERM = re.compile(rf"^(?P<prefix>{_PREFIX})?\s*\((?P<inner>.*)\)$", re.S)
_OFFSET = re.compile(r"^offset\s*\((?P<inner>.*)\)$", re.S)
_MONOTONIC = re.compile(r"^mo\s*\((?P<inner>.*)\)$", re.S)
_SMOOTH = re.compile(r"^s\s*\((?P<inner>.*)\)$", re.S)
_TENSOR = re.compile(r"^t2\s*\((?P<inner>.*)\)$", re.S)
_GP = re.compile(r"^gp\s*\((?P<inner>.*)\)$", re.S)
GP_KERNELS = ("exp_quad", "matern32", "matern52")
SMOOTH_BASES = ("tp", "cr")


def _is_bar_group(chunk: str) -> bool:
    match = _BAR_TERM.match(chunk)
    if not match:
        return False
    inner = match.group("inner")
    try:
        positions = list(_scan(inner))
    except FormulaSyntaxError:
        # Unbalanced inside means the parentheses do not wrap the whole chunk: (a) * (b | g).
        return False
    return any(ch == "|" and depth == 0 for _, ch, depth in positions)


def parse_formula(formula: str) -> ParsedFormula:
    """Parse ``"y ~ x + (1 + x | g)"`` (or a one-sided ``"~ x"``) into its pieces.

    Nested (``a/b``) and ``||`` terms are expanded as lme4 does. The text is read as
    data: nothing in it is run as Python.

    Parameters
    ----------
    formula
        The formula's text.

    Returns
    -------
    ParsedFormula
        ``response``, ``fixed`` (the fixed part's text), ``random`` (one
        ``RandomTermSpec`` per term, with its varying expression, grouping factor and
        whether it is correlated), ``offsets`` and ``trials``.

    Raises
    ------
    FormulaSyntaxError
        With a pointer into the text, when the formula cannot be read.

    Examples
    --------
    >>> parsed = bm.parse_formula("y ~ x + (1 | a/b) + (x || g)")
    >>> [(term.expr, term.group, term.correlated) for term in parsed.random]
    [('1', 'a', True), ('1', 'a:b', True), ('x', 'g', False)]
    >>> parsed.fixed
    'x'
    """
    if not isinstance(formula, str):
        raise TypeError(f"formula must be a string, got {type(formula).__name__}")
    text = formula
    if not text.strip():
        raise FormulaSyntaxError("the formula is empty", text, 0)
    _refuse_calls_of_fitting_functions(text)
    list(_scan(text))  # fail early on unbalanced parentheses and quotes

    tildes = _top_level_positions(text, "~")
    if len(tildes) != 1:
        at = tildes[1] if len(tildes) > 1 else 0
        raise FormulaSyntaxError(
            "a formula has exactly one '~' separating the response from the predictors",
            text,
            at,
            at + 1 if tildes else len(text),
        )
    tilde = tildes[0]
    response = text[:tilde].strip() or None
    trials, additions = None, ()
    if response is not None:
        response, trials, additions = _addition_terms(response, text)
        response, additions = _surv_response(response, additions, text)
        _split_cbind(response)  # validate cbind's arguments now
    rhs_offset = tilde + 1
    rhs = text[rhs_offset:]
    if not rhs.strip():
        raise FormulaSyntaxError("nothing after '~'; write '~ 1' for an intercept only", text, tilde)

    fixed_chunks: list[str] = []
    random: list[RandomTermSpec] = []
    offsets: list[str] = []
    monotonic: list[str] = []
    smooths: list[tuple[tuple[str, ...], int, str | None, str]] = []
    tensors: list[tuple[tuple[str, ...], int, str | None, str]] = []
    gps: list[tuple[tuple[str, ...], int, float, str, str | None]] = []
    for chunk_offset, raw in _split_top_level(rhs, "+", rhs_offset):
        offset, chunk = _strip_with_offset(chunk_offset, raw)
        if not chunk:
            # Point at the '+' before the empty piece, or after it for a leading one.
            plus = chunk_offset - 1 if chunk_offset > rhs_offset else chunk_offset + len(raw)
            raise FormulaSyntaxError("'+' with nothing beside it", text, plus)
        if _is_bar_group(chunk):
            match = _BAR_TERM.match(chunk)
            prefix = match.group("prefix") or ""
            inner_offset = offset + match.start("inner")
            random.extend(_parse_bar_term(match.group("inner"), inner_offset, text, prefix))
            continue
        gp_match = _GP.match(chunk)
        if gp_match:
            gp = _gp(gp_match.group("inner"), offset + chunk.index("(") + 1, text)
            _append_once(gps, gp, 4, "gp", text, offset, offset + len(chunk))
            continue
        smooth_match = _SMOOTH.match(chunk)
        if smooth_match:
            smooth = _smooth(smooth_match.group("inner"), offset + chunk.index("(") + 1, text)
            _append_once(smooths, smooth, 2, "s", text, offset, offset + len(chunk))
            continue
        tensor_match = _TENSOR.match(chunk)
        if tensor_match:
            tensor = _tensor(tensor_match.group("inner"), offset + chunk.index("(") + 1, text)
            _append_once(tensors, tensor, 2, "t2", text, offset, offset + len(chunk))
            continue
        monotonic_match = _MONOTONIC.match(chunk)
        if monotonic_match:
            inner = monotonic_match.group("inner").strip()
            if not re.fullmatch(_NAME, inner):
                raise FormulaSyntaxError(
                    "mo() takes the name of an ordered factor or integer column: y ~ mo(x) (compute other "
                    "expressions as a column first)", text, offset, offset + len(chunk),
                )  # fmt: skip
            if inner.strip("`") in monotonic:
                raise FormulaSyntaxError(f"mo({inner}) is given twice", text, offset, offset + len(chunk))
            monotonic.append(inner.strip("`"))
            continue
        offset_match = _OFFSET.match(chunk)
        if offset_match:
            inner = offset_match.group("inner").strip()
            if not inner:
                raise FormulaSyntaxError("offset() needs an expression", text, offset)
            offsets.append(inner)
            continue
        _reject_stray_bars(chunk, offset, text)
        fixed_chunks.append(chunk)

    fixed = " + ".join(fixed_chunks) if fixed_chunks else "1"
    return ParsedFormula(
        text=text,
        response=response,
        fixed=fixed,
        random=tuple(random),
        offsets=tuple(offsets),
        trials=trials,
        additions=additions,
        monotonic=tuple(monotonic),
        smooths=tuple(smooths),
        tensors=tuple(tensors),
        gps=tuple(gps),
    )


_FITTING_CALL = re.compile(
    r"^\s*(lmer|glmer|glmer\.nb|lme|nlme|glmmTMB|brm|lm|glm|gam|gamm|bambi\.Model|coxph|coxme|survreg)\s*\("
)


def _refuse_calls_of_fitting_functions(text: str) -> None:
    """A whole R call pasted in (``lmer(y ~ x + (1|g), data = d)``) or nlme's ``random = ~ 1 | g``."""
    match = _FITTING_CALL.match(text)
    if match:
        raise FormulaSyntaxError(
            f"this is a call of {match.group(1)}(), not a formula: pass only the formula, e.g. "
            "'y ~ x + (1 | g)', and the data and family as arguments",
            text,
            match.start(1),
            match.end(1),
        )
    random = re.search(r"\brandom\s*=\s*~", text)
    if random:
        raise FormulaSyntaxError(
            "nlme's random = ~ ... | g is written inside the formula here: y ~ x + (1 | g)",
            text,
            random.start(),
            random.end(),
        )


_ADDITION = re.compile(r"^(?P<name>[A-Za-z_.][\w.]*)\s*\((?P<inner>.*)\)$", re.S)
_REFUSED_ADDITIONS = {
    "mi": "missing-value imputation mi() is not supported: incomplete rows are dropped",
    "rate": "rate(n) is written here as an offset: y ~ x + offset(log(n))",
    "subset": "subset() is not supported: subset the data instead",
    "thres": "thres() (ordinal thresholds) is not supported",
    "cat": "cat() (categorical thresholds) is not supported",
    "dec": "dec() (decision data) is not supported",
    "vint": "vint() is not supported",
    "vreal": "vreal() is not supported",
    "index": "index() is not supported",
    "weight": "the addition term is weights(w), with an s",
}
# Each addition term's arguments in brms's order; the first is required.
ADDITION_ARGUMENTS = {
    "se": ("se", "sigma"),
    "weights": ("weights",),
    "cens": ("cens", "y2"),
    "trunc": ("lb", "ub"),
}
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?Inf"


def _addition_terms(response: str, formula: str) -> tuple[str, str | None, tuple[Addition, ...]]:
    """brms's ``y | trials(n) + weights(w) + cens(c)`` on the left: the response, the trials
    column and the other addition terms."""
    bars = [i for i, ch, depth in _scan(response) if ch == "|" and depth == 0]
    if not bars:
        return response, None, ()
    left = response[: bars[0]].strip()
    trials = None
    additions: list[Addition] = []
    pieces = _split_top_level(response[bars[-1] + 1 :], "+", bars[-1] + 1)
    for offset, piece in pieces:
        offset, piece = _strip_with_offset(offset, piece)
        match = _ADDITION.match(piece)
        name = match.group("name") if match else piece
        if match and name == "trials":
            trials = match.group("inner").strip().strip("`")
            if not re.fullmatch(_NAME, match.group("inner").strip()):
                raise FormulaSyntaxError("trials() takes a column name: y | trials(n) ~ ...", formula, offset)
            continue
        if match and name in ADDITION_ARGUMENTS:
            if any(a.name == name for a in additions):
                raise FormulaSyntaxError(f"{name}() is given twice", formula, offset, offset + len(piece))
            inner_offset = offset + match.start("inner")
            additions.append(_addition(name, match.group("inner"), inner_offset, formula))
            continue
        message = _REFUSED_ADDITIONS.get(
            name,
            f"'{piece}' is not an addition term bayesmm knows; it reads trials(n), se(s), weights(w), "
            "cens(c) or cens(c, y2), and trunc(lb = , ub = ) after 'y |'",
        )
        raise FormulaSyntaxError(message, formula, offset, offset + len(piece))
    if not left:
        raise FormulaSyntaxError("no response before '|'", formula, 0)
    return left, trials, tuple(additions)


def _addition(name: str, inner: str, inner_offset: int, formula: str) -> Addition:
    """One addition term's arguments by name: positional in brms's order, or ``key = value``;
    each a column name or a number (and TRUE/FALSE for se()'s sigma)."""
    keys = ADDITION_ARGUMENTS[name]
    args: dict[str, str] = {}
    if not inner.strip():
        example = "trunc(lb = 0)" if name == "trunc" else f"{name}({keys[0]})"
        raise FormulaSyntaxError(f"{name}() needs an argument, e.g. {example}", formula, inner_offset)
    for position, offset, piece, key, value in _arguments(inner, inner_offset):
        if key is not None and not value.startswith("="):  # "a == b" is no argument
            if key not in keys:
                raise FormulaSyntaxError(
                    f"{name}() has no argument '{key}'; it takes {', '.join(keys)}", formula, offset,
                    offset + len(key),
                )
        else:
            if position >= len(keys):
                raise FormulaSyntaxError(
                    f"{name}() takes at most {len(keys)} arguments ({', '.join(keys)})", formula, offset,
                    offset + len(piece),
                )
            key, value = keys[position], piece
        if key in args:
            raise FormulaSyntaxError(f"{name}()'s {key} is given twice", formula, offset, offset + len(piece))
        logical = key == "sigma"
        allowed = r"TRUE|FALSE|T|F" if logical else rf"{_NAME}|{_NUMBER}" if name == "trunc" else _NAME
        if not re.fullmatch(allowed, value):
            wanted = ("TRUE or FALSE" if logical else "a column name or a number" if name == "trunc"
                      else "a column name")  # fmt: skip
            raise FormulaSyntaxError(
                f"{name}()'s {key} must be {wanted}, got '{value}'"
                + ("" if logical else " (compute the column in the data first)"),
                formula, offset, offset + len(piece),
            )
        args[key] = value.strip("`")
    if name != "trunc" and keys[0] not in args:
        raise FormulaSyntaxError(f"{name}() needs its {keys[0]} argument", formula, inner_offset)
    if name == "trunc" and not args:
        raise FormulaSyntaxError("trunc() needs lb = or ub =", formula, inner_offset)
    return Addition(name, tuple(args.items()))


_SURV = re.compile(r"^\s*Surv\s*\((?P<inner>.*)\)\s*$", re.S)


def _surv_response(response: str, additions: tuple[Addition, ...], formula: str):
    """The survival packages' ``Surv(time, status)``: the response ``time`` with its
    right-censored rows where ``status`` says no event (brms's ``time | cens(1 - status)``)."""
    match = _SURV.match(response)
    if not match:
        return response, additions
    start = formula.index(response) + match.start("inner")
    pieces = [_strip_with_offset(o, p) for o, p in _split_top_level(match.group("inner"), ",", start)]
    if len(pieces) == 3 or any("type" in p or "time2" in p for _, p in pieces):
        raise FormulaSyntaxError(
            "Surv(start, stop, event) and Surv(..., type =) are not supported: bayesmm reads "
            "Surv(time, status), or time | cens(c, y2) ~ ... for interval censoring",
            formula, start, start + len(match.group("inner")),
        )
    if len(pieces) != 2 or not all(re.fullmatch(_NAME, p) for _, p in pieces):
        raise FormulaSyntaxError(
            "Surv() takes two column names: Surv(time, status), status 1 (or TRUE, or 2 in 1/2 coding) "
            "for an event and 0 for a censored time",
            formula, start, start + len(match.group("inner")),
        )
    if any(a.name == "cens" for a in additions):
        raise FormulaSyntaxError("Surv() censors already; drop cens()", formula, start)
    time, status = (p.strip("`") for _, p in pieces)
    return time, (*additions, Addition("cens", (("status", status),)))


def _reject_stray_bars(chunk: str, offset: int, formula: str) -> None:
    """A '|' in a fixed chunk is a mistake, but for R's 'or' inside a call such as
    I(a | b) or ifelse(a | b, ...): say which one."""
    calls: list[bool] = []  # for each open parenthesis: does it open a call?
    for i, ch, depth in _scan(chunk):
        if ch == "(":
            before = chunk[:i].rstrip()
            calls.append(bool(before) and (before[-1].isalnum() or before[-1] in "._"))
        elif ch == ")":
            calls.pop()
        if ch != "|" or any(calls):
            continue
        if depth == 0:
            raise FormulaSyntaxError(
                "'|' outside parentheses; random-effect terms are written (x | g)",
                formula,
                offset + i,
            )
        raise FormulaSyntaxError(
            "a random-effect term must stand on its own, added with '+', e.g. y ~ x + (1 | g)",
            formula,
            offset,
            offset + len(chunk),
        )
