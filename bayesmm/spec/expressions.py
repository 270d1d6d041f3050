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
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .formula import FormulaSyntaxError
from .functions import CONSTANTS, FUNCTIONS, Value, _from_column, unsupported_construct

__all__ = ["Expression", "compile_expression"]


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
