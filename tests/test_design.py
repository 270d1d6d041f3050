"""Design matrices against hand-built ones, group codes, Z, missing values and bad input."""

import warnings

import numpy as np
import pandas as pd
import pytest

import bayesmm as bm
from bayesmm.design.build import DataError, build_design


@pytest.fixture
def frame():
    rng = np.random.default_rng(0)
    n = 12
    return pd.DataFrame(
        {
            "y": rng.normal(size=n),
            "x": np.arange(n, dtype=float),
            "z": rng.normal(size=n),
            "f": pd.Categorical(list("abc") * 4),
            "g": ["g1", "g2", "g3", "g4"] * 3,
            "h": [1, 1, 2, 2, 3, 3] * 2,
            "total.fruits": rng.poisson(3, size=n),
            "n": np.full(n, 10),
        }
    )


def test_fixed_matrix_matches_hand_built(frame):
    design = build_design("y ~ x * f", frame)
    a = (frame.f == "b").to_numpy(float)
    c = (frame.f == "c").to_numpy(float)
    x = frame.x.to_numpy()
    expected = np.column_stack([np.ones(12), x, a, c, x * a, x * c])
    assert design.fixef_names == ["Intercept", "x", "f[T.b]", "f[T.c]", "x:f[T.b]", "x:f[T.c]"]
    np.testing.assert_array_equal(design.X, expected)
    np.testing.assert_array_equal(design.y, frame.y.to_numpy())


def test_no_intercept_and_transforms(frame):
    design = build_design("y ~ 0 + x + I(x**2) + log(n)", frame)
    assert design.fixef_names == ["x", "I(x**2)", "log(n)"]
    assert not design.has_intercept
    np.testing.assert_allclose(design.X[:, 1], frame.x**2)
    np.testing.assert_allclose(design.X[:, 2], np.log(10.0))


def test_group_codes_levels_and_term_matrix(frame):
    design = build_design("y ~ x + (1 + x | g)", frame)
    (term,) = design.random
    assert term.group == "g"
    assert term.levels == ["g1", "g2", "g3", "g4"]
    np.testing.assert_array_equal(term.codes, np.tile([0, 1, 2, 3], 3))
    assert term.columns == ["Intercept", "x"]
    np.testing.assert_array_equal(term.matrix, np.column_stack([np.ones(12), frame.x]))
    assert term.correlated
    assert term.sd_names == ["sd(Intercept|g)", "sd(x|g)"]
    assert term.cor_names == ["cor(Intercept,x|g)"]


def test_numeric_group_levels_sort_numerically():
    data = pd.DataFrame({"y": np.arange(6.0), "g": [10, 9, 10, 9, 100, 100]})
    term = build_design("y ~ (1 | g)", data).random[0]
    assert term.levels == ["9", "10", "100"]
    np.testing.assert_array_equal(term.codes, [1, 0, 1, 0, 2, 2])


@pytest.mark.parametrize(
    "values",
    [
        ["b", "a", "B", "é", "a", None, "10", "9"],  # text: code-point order, None missing
        [10, 9, 10, -3, 100],  # whole numbers
        [2.5, 1.0, 2.5, np.nan, 10.0],  # floats, a missing value
        [1, "1b", 2.0, "a", 1],  # mixed: numbers first, then text
        [True, False, True],
        pd.Series(["x", "y", "x"], dtype="string[pyarrow]"),
    ],
    ids=["text", "integers", "floats", "mixed", "logical", "arrow-text"],
)
def test_group_levels_match_sorted_levels_and_labels(values):
    """The vectorized level coding gives sorted_levels' order and level_label's labels, and
    every row's code names its own value's label."""
    from bayesmm.design.build import _level_labels
    from bayesmm.spec.functions import level_label, sorted_levels

    data = pd.DataFrame({"g": values})
    labels, codes = _level_labels(data, ("g",))
    assert labels == [level_label(v) for v in sorted_levels(data["g"])]
    for value, code in zip(data["g"], codes, strict=True):
        assert (code == -1) if pd.isna(value) else labels[code] == level_label(value)


def test_nested_groups_expand_to_interaction_levels(frame):
    design = build_design("y ~ (1 | h/g)", frame)
    outer, inner = design.random
    assert (outer.group, inner.group) == ("h", "h:g")
    assert outer.levels == ["1", "2", "3"]
    # Each (h, g) combination present in the data is one level of h:g.
    combos = sorted({(h, g) for h, g in zip(frame.h, frame.g, strict=True)})
    assert inner.levels == [f"{h}:{g}" for h, g in combos]
    labels = np.array(inner.levels)[inner.codes]
    assert list(labels) == [f"{h}:{g}" for h, g in zip(frame.h, frame.g, strict=True)]


def test_categorical_varying_term(frame):
    term = build_design("y ~ f + (0 + f | g)", frame).random[0]
    assert term.columns == ["f[a]", "f[b]", "f[c]"]
    np.testing.assert_array_equal(term.matrix.sum(axis=1), np.ones(12))


def test_uncorrelated_term(frame):
    term = build_design("y ~ x + (x || g)", frame).random[0]
    assert not term.correlated
    assert term.cor_names == []


def test_Z_matches_hand_built(frame):
    model = bm.Model("y ~ x + (1 + x | g) + (1 | h)", frame)
    Z = model.Z.toarray()
    g_codes = np.tile([0, 1, 2, 3], 3)
    h_codes = np.repeat([0, 1, 2], 2)[np.arange(12) % 6]
    expected = np.zeros((12, 4 * 2 + 3))
    for i in range(12):
        # (1 + x | g): columns ordered level by level, then term (as lme4's Zt rows).
        expected[i, 2 * g_codes[i]] = 1.0
        expected[i, 2 * g_codes[i] + 1] = frame.x[i]
        expected[i, 8 + h_codes[i]] = 1.0
    np.testing.assert_array_equal(Z, expected)


def test_interaction_group(frame):
    term = build_design("y ~ (1 | f:h)", frame).random[0]
    assert term.group == "f:h"
    assert term.levels[0] == "a:1"
    assert len(term.levels) == len({(f, h) for f, h in zip(frame.f, frame.h, strict=True)})


def test_cbind_and_trials(frame):
    frame = frame.assign(s=[1, 2, 3, 4, 5, 6, 0, 1, 2, 3, 4, 5])
    design = build_design("cbind(s, n - s) ~ x", frame)
    np.testing.assert_array_equal(design.y, frame.s)
    np.testing.assert_array_equal(design.trials, frame.n)
    assert design.response_name == "s"
    other = build_design("s ~ x", frame, trials="n")
    np.testing.assert_array_equal(other.trials, frame.n)
    array = build_design("s ~ x", frame, trials=np.full(12, 7))
    np.testing.assert_array_equal(array.trials, 7)


def test_r_habits_dotted_names_factor_and_offset(frame):
    design = build_design("total.fruits ~ factor(h) + offset(log(n)) + (1 | g)", frame)
    assert design.response_name == "total.fruits"
    np.testing.assert_array_equal(design.y, frame["total.fruits"])
    assert design.fixef_names == ["Intercept", "factor(h)[T.2]", "factor(h)[T.3]"]
    np.testing.assert_allclose(design.offset, np.log(10.0))
    quoted = build_design("`total.fruits` ~ 1", frame)
    np.testing.assert_array_equal(quoted.y, frame["total.fruits"])


def test_two_level_factor_response_for_bernoulli():
    data = pd.DataFrame(
        {"resp": pd.Categorical(["N", "Y", "Y", "N"], categories=["N", "Y"]), "x": [1.0, 2, 3, 4]}
    )
    design = build_design("resp ~ x", data, binary_response=True)
    np.testing.assert_array_equal(design.y, [0, 1, 1, 0])
    assert design.response_levels == ("N", "Y")


def test_missing_rows_are_dropped_with_a_warning(frame):
    frame.loc[[1, 5], "x"] = np.nan
    frame.loc[7, "g"] = None
    with pytest.warns(UserWarning, match=r"dropped 3 of 12 rows with missing values \(in x \(2\), g \(1\)\)"):
        design = build_design("y ~ x + (1 | g)", frame)
    assert design.n_obs == 9
    assert design.n_dropped == 3
    assert list(design.rows) == [0, 2, 3, 4, 6, 8, 9, 10, 11]


def test_missing_rows_raise_on_request(frame):
    frame.loc[2, "y"] = np.nan
    with pytest.raises(DataError, match="1 of 12 rows have missing values"):
        build_design("y ~ x", frame, na_action="raise")


def test_all_rows_missing(frame):
    frame["x"] = np.nan
    with pytest.raises(DataError, match="every row has a missing value"):
        build_design("y ~ x", frame)


def test_data_are_not_modified(frame):
    frame.loc[3, "x"] = np.nan
    before = frame.copy(deep=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bm.Model("y ~ x + factor(h) + (1 + x | g)", frame)
        bm.Model("cbind(h, n - h) ~ x + (1 | g)", frame, family="binomial")
    pd.testing.assert_frame_equal(frame, before)


@pytest.mark.parametrize(
    "formula, message",
    [
        ("y ~ xx + (1 | g)", "column 'xx' in the fixed effects is not in the data; did you mean 'x'"),
        ("y ~ x + (1 | gg)", r"column 'gg' in term \(1 \| gg\) is not in the data; did you mean 'g'"),
        ("y ~ x + (zz | g)", r"column 'zz' in term \(zz \| g\) is not in the data; did you mean 'z'"),
        ("yy ~ x", "column 'yy' in the response yy is not in the data; did you mean 'y'"),
        ("y ~ log(xx)", "column 'xx' in the fixed effects"),
        ("g ~ x", "the response 'g' is not numeric"),
        ("y ~ C(g, 'sum')", r"C\(\): C\(\)'s second argument is a contrast: contr.sum"),
    ],
)
def test_bad_input_names_the_culprit(frame, formula, message):
    with pytest.raises(ValueError, match=message):  # DataError or FormulaSyntaxError
        build_design(formula, frame)


def test_one_level_group(frame):
    frame["one"] = "only"
    with pytest.raises(DataError, match=r"grouping factor 'one' in \(1 \| one\) has only one level"):
        build_design("y ~ (1 | one)", frame)


def test_empty_data(frame):
    with pytest.raises(DataError, match="empty"):
        build_design("y ~ x", frame.iloc[:0])


def test_continuous_group_warns():
    rng = np.random.default_rng(1)
    data = pd.DataFrame({"y": rng.normal(size=40), "w": rng.normal(size=40)})
    with pytest.warns(UserWarning, match="grouping factor 'w' .* continuous column with 40 distinct"):
        build_design("y ~ (1 | w)", data)


def test_same_term_twice(frame):
    with pytest.raises(DataError, match="'Intercept' varies by 'g' twice"):
        build_design("y ~ (1 | g) + (1 + x | g)", frame)


def test_family_response_checks(frame):
    frame = frame.assign(s=np.arange(12), count=-np.arange(12), frac=np.linspace(0.1, 0.9, 12))
    with pytest.raises(DataError, match=r"successes exceed trials in 1 rows .*s = 11 > trials = 10"):
        bm.Model("s ~ x", frame, family="binomial", trials="n")
    negative = r"'count' has 11 negative value\(s\), the first -1 in row 1: a Poisson model"
    with pytest.raises(DataError, match=negative):
        bm.Model("count ~ x", frame, family="poisson")
    with pytest.raises(DataError, match="'frac' has .* non-integer value"):
        bm.Model("frac ~ x", frame, family="poisson")
    with pytest.raises(DataError, match="'frac' must be 0/1"):
        bm.Model("frac ~ x", frame, family="bernoulli")
    with pytest.raises(
        DataError,
        match=r"'frac' must lie strictly between 0 and 1 .* 1 values do not \(first: row 11, value 1\)",
    ):
        bm.Model("frac ~ x", frame.assign(frac=frame.frac.where(frame.index < 11, 1.0)), family="beta")
    with pytest.raises(DataError, match="needs the number of trials"):
        bm.Model("s ~ x", frame, family="binomial")
    with pytest.raises(ValueError, match="cbind.* needs family='binomial'"):
        bm.Model("cbind(s, n - s) ~ x", frame)


def test_unknown_family_and_link(frame):
    with pytest.raises(ValueError, match=r"^unknown family 'poison'; did you mean 'poisson'\?$"):
        bm.Model("y ~ x", frame, family="poison")
    with pytest.raises(ValueError, match=r"^unknown family 'Gausian'; did you mean 'gaussian'\?$"):
        bm.Model("y ~ x", frame, family="Gausian")
    with pytest.raises(ValueError, match=r"did you mean 'zero_inflated_negbinomial'"):
        bm.Model("y ~ x", frame, family="zero-inflated-negbin")
    with pytest.raises(
        ValueError, match=r"^unknown family 'gompertz', and no family .* lists the 22 families"
    ):
        bm.Model("y ~ x", frame, family="gompertz")
    with pytest.raises(ValueError, match=r"no Cox model \('coxph'\).*Surv\(time, status\) ~ x \+ \(1 \| g\) "
                       r"with family='weibull'"):  # fmt: skip
        bm.Model("y ~ x", frame, family="coxph")
    # The spellings of brms, glmmTMB and bambi
    for spelling, name in [
        ("negative_binomial", "negativebinomial"),
        ("Negative Binomial", "negativebinomial"),
        ("nbinom2", "negativebinomial"),
        ("beta-binomial", "beta_binomial"),
        ("t", "student"),
        ("ordinal", "cumulative"),
        ("ZIP", "zero_inflated_poisson"),
        ("nb1", "nbinom1"),
    ]:
        assert bm.get_family(spelling).name == name
    with pytest.raises(ValueError, match="link 'log' is not available for family 'bernoulli'"):
        bm.Model("y ~ x", frame, family="bernoulli", link="log")


def test_interaction_inside_the_varying_term(frame):
    term = build_design("y ~ x + (1 + x*z | g)", frame).random[0]
    assert term.columns == ["Intercept", "x", "z", "x:z"]
    np.testing.assert_allclose(term.matrix[:, 3], frame.x * frame.z)
    assert len(term.cor_names) == 6


def test_between_group_covariate_in_its_own_bar_warns(frame):
    frame["group_size"] = frame.g.map({"g1": 1.0, "g2": 5.0, "g3": 2.0, "g4": 7.0})
    with pytest.warns(
        UserWarning, match=r"'group_size' in \(1 \+ group_size \| g\) is constant within each level"
    ):
        build_design("y ~ group_size + (1 + group_size | g)", frame)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_design("y ~ x + (1 + x | g)", frame)  # x varies within g: no warning
