"""R syntax gets R's meaning (or a clear refusal that says what to write instead)."""

import numpy as np
import pandas as pd
import pytest

import bayesmm as bm
from bayesmm.design.build import build_design
from bayesmm.spec.formula import FormulaSyntaxError
from bayesmm.spec.functions import natural_spline_basis

from .helpers import frame, unchanged


def column(design, name):
    return design.X[:, design.fixef_names.index(name)]


def test_caret_is_power_on_integer_columns_not_xor():
    """lme4's published pixel ~ day + I(day^2) + (day | Dog) + (1 | Dog:Side)."""
    rng = np.random.default_rng(1)
    dogs = pd.DataFrame(
        {
            "day": np.tile([1, 3, 6, 10, 14, 21], 8),  # integers: Python's ^ would be xor
            "Dog": np.repeat([f"d{i}" for i in range(4)], 12),
            "Side": np.tile(np.repeat(["L", "R"], 6), 4),
        }
    )
    dogs["pixel"] = 1000 + 2 * dogs["day"] - 0.05 * dogs["day"] ** 2 + rng.normal(0, 5, len(dogs))
    with unchanged(dogs):
        model = bm.Model("pixel ~ day + I(day^2) + (day | Dog) + (1 | Dog:Side)", dogs)
    assert model.design.fixef_names == ["Intercept", "day", "I(day^2)"]
    np.testing.assert_array_equal(column(model.design, "I(day^2)"), dogs["day"].to_numpy() ** 2.0)
    assert [t.group for t in model.design.random] == ["Dog", "Dog:Side"]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("sqrt(x)", lambda d: np.sqrt(d.x)),
        ("exp(x / 10)", lambda d: np.exp(d.x / 10)),
        ("log(x + 1)", lambda d: np.log(d.x + 1)),
        ("log(x + 1, base = 2)", lambda d: np.log2(d.x + 1)),
        ("log1p(x)", lambda d: np.log1p(d.x)),
        ("log2(x + 1)", lambda d: np.log2(d.x + 1)),
        ("log10(x + 1)", lambda d: np.log10(d.x + 1)),
        ("abs(x - 2)", lambda d: np.abs(d.x - 2)),
        ("sin(x)", lambda d: np.sin(d.x)),
        ("cos(2 * pi * x / 5)", lambda d: np.cos(2 * np.pi * d.x / 5)),
        ("pmax(x, 2)", lambda d: np.maximum(d.x, 2)),
        ("pmin(x, 2, day)", lambda d: np.minimum(np.minimum(d.x, 2), d.day)),
        ("ifelse(x > 1 & x < 4, 1, 0)", lambda d: ((d.x > 1) & (d.x < 4)).astype(float)),
        ("I(x > 1 | day > 2)", lambda d: ((d.x > 1) | (d.day > 2)).astype(float)),
        ('ifelse(f == "a" | !(x >= 2), x, -x)', lambda d: np.where((d.f == "a") | ~(d.x >= 2), d.x, -d.x)),
        ("as.numeric(f)", lambda d: pd.Categorical(d.f).codes + 1.0),
        ("I(x %% 2)", lambda d: d.x % 2),
        ("I(x %/% 2)", lambda d: d.x // 2),
        ("I(x^2 - 3*x)", lambda d: d.x**2 - 3 * d.x),
        ('I(f %in% c("a", "b"))', lambda d: d.f.isin(["a", "b"]).astype(float)),
        ("ave(x, g)", lambda d: d.groupby("g").x.transform("mean")),
        ("scale(x)", lambda d: (d.x - d.x.mean()) / d.x.std(ddof=1)),
        ("scale(x, scale = FALSE)", lambda d: d.x - d.x.mean()),
        ("center(x)", lambda d: d.x - d.x.mean()),
        ("np.log(x + 1)", lambda d: np.log(d.x + 1)),
        ("exp2(x)", lambda d: 2.0**d.x),
        ("standardize(x)", lambda d: (d.x - d.x.mean()) / d.x.std(ddof=1)),
    ],
)
def test_r_functions_compute_what_r_computes(expression, expected):
    data = frame()
    data["x"] = data["x"] + 0.5
    with unchanged(data):
        design = build_design(f"y ~ 0 + {expression}", data)
    assert design.fixef_names[-1].startswith(expression.split("(")[0]) or len(design.fixef_names) == 1
    np.testing.assert_allclose(design.X[:, -1], np.asarray(expected(data), dtype=float), rtol=1e-12)


def test_orthogonal_poly_matches_r():
    """R: poly(1:5, 2) has columns (-2,-1,0,1,2)/sqrt(10) and (2,-1,-2,-1,2)/sqrt(14)."""
    data = pd.DataFrame({"y": [1.0, 3, 2, 5, 4], "x": [1, 2, 3, 4, 5]})
    design = build_design("y ~ poly(x, 2)", data)
    assert design.fixef_names == ["Intercept", "poly(x, 2)[1]", "poly(x, 2)[2]"]
    np.testing.assert_allclose(np.abs(design.X[:, 1]), np.abs([-2, -1, 0, 1, 2]) / np.sqrt(10), atol=1e-12)
    np.testing.assert_allclose(np.abs(design.X[:, 2]), np.abs([2, -1, -2, -1, 2]) / np.sqrt(14), atol=1e-12)
    raw = build_design("y ~ poly(x, 3, raw = TRUE)", data)
    np.testing.assert_array_equal(raw.X[:, 1:], np.column_stack([data.x**k for k in (1, 2, 3)]).astype(float))


def test_natural_spline_is_linear_beyond_the_boundary_and_spans_rs_space():
    """ns(x, df = 4): df columns that span the natural cubic splines on those knots (checked
    against the truncated-power basis of Hastie, Tibshirani and Friedman, eq. 5.4-5.5)."""
    x = np.linspace(0, 10, 101)
    data = pd.DataFrame({"y": np.sin(x), "x": x})
    design = build_design("y ~ ns(x, df = 4)", data)
    basis = design.X[:, 1:]
    assert basis.shape == (101, 4)
    knots = np.concatenate([[0.0], np.quantile(x, [0.25, 0.5, 0.75]), [10.0]])

    def d(k):
        return (np.maximum(x - knots[k], 0) ** 3 - np.maximum(x - knots[-1], 0) ** 3) / (knots[-1] - knots[k])

    reference = np.column_stack(
        [np.ones_like(x), x] + [d(k) - d(len(knots) - 2) for k in range(len(knots) - 2)]
    )
    for target in basis.T:
        coef, *_ = np.linalg.lstsq(reference, target, rcond=None)
        np.testing.assert_allclose(reference @ coef, target, atol=1e-10)
    outside = natural_spline_basis(np.array([-2.0, -1.0, 0.0, 11.0, 12.0]), list(knots[1:-1]), [0.0, 10.0])
    np.testing.assert_allclose(outside[1] - outside[0], outside[2] - outside[1], atol=1e-10)  # linear left
    np.testing.assert_allclose(
        outside[4] - outside[3],
        outside[3] - natural_spline_basis(np.array([10.0]), list(knots[1:-1]), [0.0, 10.0])[0],
        atol=1e-8,
    )


def test_bs_is_a_b_spline_basis():
    x = np.linspace(0, 1, 50)
    design = build_design("y ~ bs(x, df = 5)", pd.DataFrame({"y": x, "x": x}))
    basis = design.X[:, 1:]
    assert basis.shape == (50, 5)
    assert np.all(basis >= -1e-12) and np.all(basis.sum(axis=1) <= 1 + 1e-12)  # intercept column dropped


def test_stateful_transforms_reuse_the_fitted_state_on_new_data():
    data = frame()
    model = bm.Model("y ~ scale(x) + ns(day, df = 2) + (1 | g)", data)
    from bayesmm.design.build import encode_new_data

    new = data.head(7)
    encoded = encode_new_data(model.design, new)
    np.testing.assert_allclose(encoded.X, model.design.X[:7], atol=1e-12)  # not re-standardized on 7 rows


def test_factor_relevel_and_contrasts_keep_r_names():
    data = frame()
    data["YEAR"] = np.tile([95, 96, 97, 95, 96], 6)
    design = build_design('y ~ factor(YEAR) + relevel(f, ref = "b")', data)
    assert design.fixef_names == [
        "Intercept",
        "factor(YEAR)[T.96]",
        "factor(YEAR)[T.97]",
        'relevel(f, ref = "b")[T.a]',
        'relevel(f, ref = "b")[T.c]',
    ]
    np.testing.assert_array_equal(design.X[:, 3], (data.f == "a").to_numpy(dtype=float))
    summed = build_design('y ~ C(f, contr.sum) + C(g, contr.treatment("g3"))', data)
    assert summed.fixef_names[1:3] == ["C(f, contr.sum)[S.a]", "C(f, contr.sum)[S.b]"]
    assert 'C(g, contr.treatment("g3"))[T.g0]' in summed.fixef_names
    np.testing.assert_array_equal(summed.X[data.f.to_numpy() == "c", 1], -1.0)


def test_python_keywords_and_unicode_as_column_names():
    data = frame().rename(columns={"x": "class", "day": "lambda", "g": "组", "y": "温度"})
    with unchanged(data):
        model = bm.Model("温度 ~ class + I(lambda * 2) + log(class + 1) + (1 + class | 组)", data)
    assert model.design.fixef_names == ["Intercept", "class", "I(lambda * 2)", "log(class + 1)"]
    np.testing.assert_array_equal(column(model.design, "I(lambda * 2)"), data["lambda"].to_numpy() * 2.0)
    assert model.design.random[0].group == "组"


def test_formulaic_quoting_and_its_regression_splines():
    data = frame().rename(columns={"x": "a b"})
    design = build_design('y ~ Q("a b") + log(Q("a b") + 1) + cr(day, df = 3)', data)
    assert design.fixef_names[:3] == ["Intercept", "a b", 'log(Q("a b") + 1)']
    np.testing.assert_allclose(design.X[:, 2], np.log(data["a b"] + 1))
    np.testing.assert_allclose(design.X[:, 3:].mean(axis=0), 0.0, atol=1e-12)  # centred, as formulaic's cr()


def test_dotted_r_names_and_backquotes():
    data = frame().rename(columns={"x": "total.fruits", "day": "a b"})
    design = build_design("y ~ total.fruits + `a b` + log(total.fruits + 1)", data)
    assert design.fixef_names == ["Intercept", "total.fruits", "a b", "log(total.fruits + 1)"]


@pytest.mark.parametrize(
    ("formula", "message"),
    [
        ("y ~ s(x):day + (1 | g)", r"a smooth s\(x\) is a term of its own in the mean's formula"),
        ("y ~ s(x, day, g) + (1 | g)", r"a smooth of one column or two different ones is supported"),
        ("y ~ gp(x, day, iso = FALSE) + (1 | g)", r"gp\(\) takes numeric columns .* 'iso = FALSE' is not"),
        ("y ~ te(x, day) + (1 | g)", r"t2\(x, z\) is the tensor smooth for mixed models"),
        (
            "y ~ mo(day):x + (1 | g)",
            r"a monotonic effect mo\(x\) is a term of its own in the mean's formula",
        ),
        ("y ~ x + (1 | gr(g, by = f))", r"gr\(\) takes the grouping factor and cov = .*'by = f'"),
        ("y ~ x + (1 | gr(g, cov = A))", r"needs the matrix 'A': pass it as bm.Model\(\.\.\., data2="),
        ("y ~ x + gr(g)", r"gr\(\) belongs in a random-effect term: \(1 \| gr\(g, cov = A\)\)"),
        ("y ~ x + weights(n)", r"weights\(\) belong to the response: write 'y \| weights\(w\) ~ x'"),
        (
            "y ~ x + (1 | p | g)",
            r"brms's \(1 \| id \| g\), which correlates terms across formulas, is not supported",
        ),
        ("y ~ x + trials(n)", r"trials\(\) belongs to the response: write 'y \| trials\(n\) ~ x'"),
        ("y | weight(n) ~ x + (1 | g)", r"the addition term is weights\(w\), with an s"),
        ("y | se(n / 2) ~ x", r"se\(\)'s se must be a column name, got 'n / 2' \(compute the column"),
        ("y | cens(n) ~ x", r"column 'n' in cens\(\) holds 10 in row 0, which is not a censoring code"),
        ("y | mi() ~ x", r"missing-value imputation mi\(\) is not supported"),
        ("lmer(y ~ x + (1 | g), data = d)", r"this is a call of lmer\(\), not a formula"),
        ("glmer(y ~ x + (1 | g), family = binomial)", r"this is a call of glmer\(\), not a formula"),
        ("y ~ x, random = ~ 1 | g", r"nlme's random = ~ \.\.\. \| g is written inside the formula here"),
        ("the reaction time depends on days", "a formula has exactly one '~'"),
        ("y ~ x + {x**2}", r"unexpected '\{' in the formula; write I\(...\) around arithmetic"),
        ("y ~ I(x ^^ 2)", "cannot read the expression"),
        ("y ~ lag(x)", r"lag\(\) is not supported"),
        ("y ~ sqrt(x, 2)", r"sqrt\(\) takes 1 to 1 arguments, got 2"),
        ("y ~ poly(x, degree = 2, rawx = TRUE)", "poly\\(\\) has no argument 'rawx'"),
        ('y ~ relevel(f, ref = "z")', r"relevel\(\): 'z' is not a level \(levels: a, b, c\)"),
        ("y ~ factorr(f)", r"function 'factorr' is not allowed .*did you mean factor\(\)"),
    ],
)
def test_unsupported_constructs_say_what_to_write(formula, message):
    data = frame()
    with unchanged(data), pytest.raises((FormulaSyntaxError, bm.DataError), match=message):
        bm.Model(formula, data)


def test_brms_trials_addition_term_is_binomial_trials():
    data = frame()
    data["count"] = np.minimum(data["count"], data["n"])
    with_trials = bm.Model("count | trials(n) ~ x + (1 | g)", data, family="binomial")
    with_cbind = bm.Model("cbind(count, n - count) ~ x + (1 | g)", data, family="binomial")
    np.testing.assert_array_equal(with_trials.design.trials, with_cbind.design.trials)
    np.testing.assert_array_equal(with_trials.design.y, with_cbind.design.y)
    with pytest.raises(ValueError, match="family 'poisson' has no number of trials"):
        bm.Model("count | trials(n) ~ x", data, family="poisson")
    with pytest.raises(ValueError, match="trials either as y \\| trials\\(n\\) in the formula or as trials="):
        bm.Model("count | trials(n) ~ x", data, family="binomial", trials="n")


@pytest.mark.slow
def test_saved_fit_keeps_the_columns_that_dot_and_q_read(tmp_path):
    from tests.conftest import quiet_fit

    data = frame()[["y", "x", "day", "g"]].rename(columns={"day": "a b"})
    fit = quiet_fit(bm.Model('y ~ . + log(Q("a b") + 1) + (1 | g)', data), draws=50, tune=50, chains=1)
    assert list(fit.model.model_frame.columns) == ["y", "x", "a b", "g"]
    fit.save(tmp_path / "fit.nc")
    loaded = bm.load(tmp_path / "fit.nc")
    np.testing.assert_array_equal(loaded.design.X, fit.design.X)
    assert loaded.design.fixef_names == ["Intercept", "x", "a b", 'log(Q("a b") + 1)']


@pytest.mark.parametrize("transform", ["cr(x, df = 3)", "standardize(x)", "scale(x)", "ns(x, df = 2)"])
def test_transforms_that_learn_drop_only_the_incomplete_rows(transform):
    """Every transform that learns from the data is probed as its argument when missing
    rows are looked for (cr() and standardize() once made every row 'missing')."""
    data = frame()
    data.loc[3, "x"] = np.nan
    with pytest.warns(UserWarning, match="dropped 1 of 30 rows"):
        design = build_design(f"y ~ {transform}", data)
    assert design.n_obs == 29


def test_a_column_named_random_is_not_taken_for_nlme():
    data = frame().assign(random=lambda d: d["day"])
    design = build_design("y ~ I(random == 1)", data)
    np.testing.assert_array_equal(design.X[:, 1], (data["random"] == 1).to_numpy(dtype=float))


def test_ave_matches_float_ids_of_new_data_to_the_fitted_groups():
    from bayesmm.design.build import encode_new_data

    data = frame().assign(id=lambda d: d["g"].str[1:].astype(int))
    model = bm.Model("y ~ ave(x, id) + (1 | g)", data)
    new = data.head(6).assign(id=lambda d: d["id"].astype(float), x=100.0)  # fitted means, not 100
    np.testing.assert_allclose(encode_new_data(model.design, new).X, model.design.X[:6])
