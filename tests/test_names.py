"""Parameter names are records rendered in one place (bayesmm.spec.names); nothing parses them back."""

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayesmm as bm
from bayesmm.spec.names import Parameter

from .conftest import quiet_fit


def test_records_render_the_summary_names():
    assert Parameter("fixef", ("Days",)).name == "Days"
    assert Parameter("fixef", ("x",), part="zi").name == "zi:x"
    assert Parameter("sd", ("Days",), group="Subject").name == "sd(Days|Subject)"
    assert Parameter("sd", ("Intercept",), part="zi", group="site").name == "sd(zi:Intercept|site)"
    cor = Parameter("cor", ("Intercept", "x"), part="zi", group="site")
    assert cor.name == "cor(zi:Intercept,zi:x|site)" and cor.term == "zi:Intercept,zi:x"
    assert Parameter("family", ("sigma",)).name == "sigma"
    assert Parameter("sd", ("x",), group="g").positive and not cor.positive


def test_terms_name_their_parameters_through_records():
    rng = np.random.default_rng(0)
    data = pd.DataFrame(
        {"y": rng.poisson(2, 60), "x": rng.normal(size=60), "site": np.repeat(list("abcdef"), 10)}
    )
    model = bm.Model(
        "y ~ x + (1 + x | site)", data, family="zero_inflated_poisson", zi="~ x + (1 + x | site)"
    )
    (term,) = model.parts["zi"].random
    assert term.sd_names == ["sd(zi:Intercept|site)", "sd(zi:x|site)"]
    assert term.cor_names == ["cor(zi:Intercept,zi:x|site)"]
    # The posterior's correlation coordinate is the record's term label.
    assert model.pymc_model.coords["zi_site__cor"] == ("zi:Intercept,zi:x",)
    assert {"sd(zi:Intercept|site)", "sd(zi:x|site)"} <= set(model.priors.index)


def test_no_module_parses_a_parameter_name():
    package = Path(bm.__file__).parent
    parsing = re.compile(r'startswith\("(sd|cor)\("\)|rsplit\("\|"|index\("\|"\)|len\("(sd|cor)\("\)')
    lines = [
        (p.name, i, line) for p in package.glob("*.py") for i, line in enumerate(p.read_text().splitlines())
    ]
    found = [f"{name}:{i + 1}" for name, i, line in lines if parsing.search(line)]
    assert not found



def _named_like(group: str, family: str) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    levels = np.repeat([f"L{i}" for i in range(6)], 8)
    effects = dict(zip(np.unique(levels), rng.normal(0, 1.0, 6), strict=True))
    data = pd.DataFrame({"x": rng.normal(size=48), group: levels})
    eta = 1.0 + 0.5 * data.x + data[group].map(effects)
    data["y"] = rng.poisson(np.exp(eta)) if family != "gaussian" else eta + rng.normal(0, 0.3, 48)
    return data


@pytest.mark.parametrize(
    ("group", "family", "options"),
    [("b", "gaussian", {}), ("sigma", "gaussian", {}), ("chain", "gaussian", {}),
     ("Intercept_c", "gaussian", {}), ("fixef", "poisson", {}),
     ("zi", "zero_inflated_poisson", {"zi": "~ 1 + (1 | zi)"})],
)  # fmt: skip
def test_a_grouping_column_named_like_a_variable_gets_its_own_dimension(group, family, options):
    # PyMC refuses a dimension named like a variable ("b", "sigma") or the posterior's own
    # ("chain"): such a factor's levels get a renamed dimension.
    model = bm.Model(f"y ~ x + (1 | {group})", _named_like(group, family), family=family, **options)
    coords = model.sampled_model.coords
    assert group not in coords and list(coords[f"{group}__level"]) == [f"L{i}" for i in range(6)]


@pytest.mark.slow
def test_a_factor_named_b_keeps_its_names_in_the_results():
    data = _named_like("b", "gaussian")
    fit = quiet_fit(bm.Model("y ~ x + (1 | b)", data), draws=200, tune=200, chains=2, random_seed=2)
    assert "sd(Intercept|b)" in fit.summary().index
    assert list(fit.ranef()["b"].index.get_level_values(0).unique()) == [f"L{i}" for i in range(6)]
    new = pd.DataFrame({"x": [0.0, 0.0], "b": ["L0", "L5"]})
    assert fit.predict(new).shape[0] == 2
