"""Parsing: exact terms for every supported form, and errors that point at the culprit."""

import pytest

from bayesmm.spec.formula import FormulaSyntaxError, RandomTermSpec, parse_formula


def term(expr, group, correlated=True, factors=None):
    return (expr, group, tuple(factors or group.split(":")), correlated)


def terms_of(formula):
    return [(t.expr, t.group, t.group_factors, t.correlated) for t in parse_formula(formula).random]


@pytest.mark.parametrize(
    "formula, fixed, random",
    [
        ("y ~ 1 + x + (1 + x | g)", "1 + x", [term("1 + x", "g")]),
        ("Reaction ~ Days + (Days | Subject)", "Days", [term("Days", "Subject")]),
        ("y ~ x + (1 | g)", "x", [term("1", "g")]),
        ("y ~ x + (0 + x | g)", "x", [term("0 + x", "g")]),
        ("y ~ f + (0 + f | g)", "f", [term("0 + f", "g")]),
        ("y ~ x + (x || g)", "x", [term("x", "g", correlated=False)]),
        ("y ~ x + diag(1 + x | g)", "x", [term("1 + x", "g", correlated=False)]),
        ("y ~ 1 + (1 | a/b)", "1", [term("1", "a"), term("1", "a:b")]),
        ("y ~ (1 | a/b/c)", "1", [term("1", "a"), term("1", "a:b"), term("1", "a:b:c")]),
        ("y ~ (1 | a:b)", "1", [term("1", "a:b")]),
        ("y ~ (1 | a) + (1 | b)", "1", [term("1", "a"), term("1", "b")]),
        ("y ~ x + (1 + x*z | g)", "x", [term("1 + x*z", "g")]),
        ("y ~ x*z + C(f) + (1 | g)", "x*z + C(f)", [term("1", "g")]),
        ("y ~ 0 + x + (1 | g)", "0 + x", [term("1", "g")]),
        ("y ~ x - 1 + (1 | g)", "x - 1", [term("1", "g")]),
        ("y ~ (1 | g)", "1", [term("1", "g")]),
        ("y ~ x", "x", []),
        ("y ~ poly(x, 2) + scale(z) + I(x**2) + log(w)", "poly(x, 2) + scale(z) + I(x**2) + log(w)", []),
        ("`total.fruits` ~ 1 + (1 | `gen.id`)", "1", [("1", "gen.id", ("gen.id",), True)]),
    ],
)
def test_parse_terms(formula, fixed, random):
    parsed = parse_formula(formula)
    assert parsed.fixed == fixed
    assert terms_of(formula) == random


def test_response_and_offsets():
    parsed = parse_formula("count ~ x + offset(log(exposure)) + (1 | site) + offset(z)")
    assert parsed.response == "count"
    assert parsed.fixed == "x"
    assert parsed.offsets == ("log(exposure)", "z")
    assert parsed.cbind is None


def test_cbind_response():
    parsed = parse_formula("cbind(incidence, size - incidence) ~ period + (1 | herd)")
    assert parsed.cbind == ("incidence", "size - incidence")
    assert parsed.fixed == "period"


def test_r_functions_stay_as_written_for_the_expression_layer():
    parsed = parse_formula("y ~ factor(f) + as.factor(h) + (0 + factor(f) | g)")
    assert parsed.fixed == "factor(f) + as.factor(h)"
    assert parsed.random[0].expr == "0 + factor(f)"


def test_one_sided_formula():
    parsed = parse_formula("~ x + (1 | g)")
    assert parsed.response is None
    assert parsed.fixed == "x"


def test_compound_symmetry_term():
    (spec,) = parse_formula("y ~ x + cs(1 + x + z | g)").random
    assert (spec.expr, spec.group, spec.correlated, spec.compound_symmetry) == ("1 + x + z", "g", True, True)
    assert spec.text == "cs(1 + x + z | g)"
    assert not parse_formula("y ~ (1 + x | g)").random[0].compound_symmetry


def test_term_label_and_text():
    spec = parse_formula("y ~ (x || g)").random[0]
    assert isinstance(spec, RandomTermSpec)
    assert spec.text == "(x || g)"
    assert spec.label == "(x || g)"


@pytest.mark.parametrize(
    "formula, message, start",
    [
        ("y ~ x + (1 | g", "never closed", 8),
        ("y ~ x) + 1", "without", 5),
        ("y ~ x | g", "outside parentheses", 6),
        ("y ~ (| g)", "empty varying term", 5),
        ("y ~ (x | )", "missing grouping factor", 7),
        ("y ~ x + ", "nothing beside it", 6),
        ("y ~ x*(1|g)", "stand on its own", 4),
        ("y ~ (1 | a+b)", "must be a column name", 9),
        ("y ~ (x ||| g)", "one '|'", 9),
        ("y ~ x ~ z", "exactly one '~'", 6),
        ("y ~ ", "nothing after '~'", 2),
        ("y ~ `x + 1", "unclosed backquote", 4),
        ("cbind(a) ~ x", "exactly two arguments", 0),
        ("y ~ cs(x || g)", "takes a single", 9),
    ],
)
def test_syntax_errors_point_at_the_culprit(formula, message, start):
    with pytest.raises(FormulaSyntaxError, match=message) as info:
        parse_formula(formula)
    assert info.value.start == start
    pointer_line = str(info.value).splitlines()[-1]
    assert pointer_line.index("^") - 2 == start


def test_formula_must_be_text():
    with pytest.raises(TypeError, match="string"):
        parse_formula(None)
