"""The bridge to formulaic: a formula's right-hand side cut into operands (``x``,
``log(n)``, ``factor(year)``), each computed by the interpreter on the data, and formulaic
given only backquoted column lookups of the computed values (and, for contrasts, a template
bayesmm writes itself), so it never evaluates user text."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..warn import warn_user
from .expressions import Expression, _unknown_name, compile_expression
from .formula import FormulaSyntaxError, _scan
from .functions import UnseenLevel, Value, categorize, level_label, sorted_levels

__all__ = ["Terms", "compile_terms"]


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
