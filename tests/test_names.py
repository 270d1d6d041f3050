"""Parameter names are records rendered in one place (bayesmm.names); nothing parses them back."""

import re
from pathlib import Path

import numpy as np
import pandas as pd

import bayesmm as bm
from bayesmm.names import Parameter


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
