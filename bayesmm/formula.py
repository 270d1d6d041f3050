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

__all__ = ["FormulaSyntaxError", "RandomTermSpec", "ParsedFormula", "parse_formula"]


class FormulaSyntaxError(ValueError):
    """A formula that cannot be parsed; the message points at the offending part."""

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
    is False for ``||`` terms.
    """

    expr: str
    group: str
    group_factors: tuple[str, ...]
    correlated: bool
    text: str
    compound_symmetry: bool = False  # cs(x | g): one correlation shared by every pair

    @property
    def label(self) -> str:
        if self.compound_symmetry:
            return f"cs({self.expr} | {self.group})"
        bar = "|" if self.correlated else "||"
        return f"({self.expr} {bar} {self.group})"


@dataclass(frozen=True)
class ParsedFormula:
    """A mixed-model formula cut into the pieces later stages need."""

    text: str
    response: str | None
    fixed: str
    random: tuple[RandomTermSpec, ...]
    offsets: tuple[str, ...]

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


# R habits translated into formulaic: factor(x) and as.factor(x) mean C(x).
_R_FACTOR = re.compile(r"(?<![\w.`])(?:as\.)?factor\s*\(")


def _translate_r_habits(text: str) -> str:
    out, last = [], 0
    for match in _R_FACTOR.finditer(text):
        if _inside_backquotes(text, match.start()):
            continue
        out.append(text[last : match.start()])
        out.append("C(")
        last = match.end()
    out.append(text[last:])
    return "".join(out)


def _inside_backquotes(text: str, index: int) -> bool:
    return text[:index].count("`") % 2 == 1


_NAME = r"(?:`[^`]+`|[A-Za-z_.][\w.]*)"
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
            "a random-effect term has one '|' (or '||')", formula, inner_offset + bars[-1]
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
    correlated = not double and prefix != "diag"
    right_offset = inner_offset + inner.index(right, bars[-1] + 1)
    text = formula[inner_offset - 1 - len(prefix) : inner_offset + len(inner) + 1]
    return [
        RandomTermSpec(
            expr=_translate_r_habits(left),
            group=group,
            group_factors=factors,
            correlated=correlated,
            text=text,
            compound_symmetry=prefix == "cs",
        )
        for group, factors in _expand_group(right, formula, right_offset)
    ]


_BAR_TERM = re.compile(r"^(?P<prefix>diag|cs)?\s*\((?P<inner>.*)\)$", re.S)
_OFFSET = re.compile(r"^offset\s*\((?P<inner>.*)\)$", re.S)


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

    Raises :class:`FormulaSyntaxError` with a pointer into the text when the
    formula cannot be read.
    """
    if not isinstance(formula, str):
        raise TypeError(f"formula must be a string, got {type(formula).__name__}")
    text = formula
    if not text.strip():
        raise FormulaSyntaxError("the formula is empty", text, 0)
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
    if response is not None:
        _split_cbind(response)  # validate cbind's arguments now
    rhs_offset = tilde + 1
    rhs = text[rhs_offset:]
    if not rhs.strip():
        raise FormulaSyntaxError("nothing after '~'; write '~ 1' for an intercept only", text, tilde)

    fixed_chunks: list[str] = []
    random: list[RandomTermSpec] = []
    offsets: list[str] = []
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
        response=_translate_r_habits(response) if response else None,
        fixed=_translate_r_habits(fixed),
        random=tuple(random),
        offsets=tuple(offsets),
    )


def _reject_stray_bars(chunk: str, offset: int, formula: str) -> None:
    """A '|' anywhere in a fixed chunk is a mistake: say which one."""
    for i, ch, depth in _scan(chunk):
        if ch != "|":
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
