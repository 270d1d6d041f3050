"""A formula is data, not code: no text in a formula, a part formula, a saved file, the
CLI or a hypothesis runs anything. Each escape route is tried in each place; a marker
file that the code would create must never appear."""

import json
import subprocess
import sys

import pytest
import xarray as xr

import bayesmm as bm
from bayesmm.spec.expressions import compile_expression
from bayesmm.spec.formula import FormulaSyntaxError

from .helpers import frame, unchanged

# Each payload would create the marker file if it were run as Python.
PAYLOADS = [
    ("__import__('pathlib').Path('{m}').touch()", "function '__import__' is not allowed"),
    ("open('{m}', 'w').close()", "function 'open' is not allowed"),
    ("eval(\"open('{m}', 'w')\")", "function 'eval' is not allowed"),
    ("exec(\"open('{m}', 'w')\")", "function 'exec' is not allowed"),
    ("getattr(__builtins__, 'open')('{m}', 'w')", "function 'getattr' is not allowed"),
    (
        "x.__class__.__base__.__subclasses__()",
        r"function 'x.__class__.__base__.__subclasses__' is not allowed",
    ),
    ("(lambda: open('{m}', 'w'))()", "'lambda' is neither a column"),
    ("[open('{m}', 'w') for i in x]", r"subscripts cannot be used|unexpected '\['"),
    ("np.load('{m}')", "function 'np.load' is not allowed"),
    ("pd.read_csv('{m}')", "function 'pd.read_csv' is not allowed"),
    ("os.system('touch {m}')", "function 'os.system' is not allowed"),
    ("log(x).__class__", "__class__' is neither a column"),
    ("globals()['open']('{m}', 'w')", "function 'globals' is not allowed"),
    ("x if open('{m}', 'w') else x", "'if' is neither a column"),
    ("f\"{{open('{m}', 'w')}}\"", "neither a column|cannot|unexpected"),
]

# Where formula text is evaluated: fixed part, inside I(), offset(), response, cbind's
# arguments, a bar term's varying part, and each distributional part.
PLACES = {
    "fixed": lambda p: ("y ~ x + I({p}) + (1 | g)", {}),
    "bare call": lambda p: ("y ~ x + {p} + (1 | g)", {}),
    "offset": lambda p: ("count ~ x + offset({p}) + (1 | g)", {"family": "poisson"}),
    "response": lambda p: ("I({p}) ~ x + (1 | g)", {}),
    "cbind": lambda p: ("cbind(count, {p}) ~ x + (1 | g)", {"family": "binomial"}),
    "varying": lambda p: ("y ~ x + (1 + I({p}) | g)", {}),
    "zi": lambda p: ("count ~ x + (1 | g)", {"family": "zero_inflated_poisson", "zi": "~ I({p})"}),
    "hu": lambda p: ("count ~ x + (1 | g)", {"family": "hurdle_poisson", "hu": "~ x + (1 + I({p}) | g)"}),
    "dispersion": lambda p: ("y ~ x + (1 | g)", {"dispersion": "~ offset({p})"}),
}


@pytest.mark.parametrize("place", PLACES)
@pytest.mark.parametrize(("payload", "message"), PAYLOADS, ids=[p[:24] for p, _ in PAYLOADS])
def test_no_escape_route_runs_anywhere_in_a_formula(tmp_path, place, payload, message):
    marker = tmp_path / "ran"
    formula, options = PLACES[place](payload)
    formula = formula.replace("{p}", payload.replace("{m}", str(marker)))
    options = {k: v.replace("{p}", payload.replace("{m}", str(marker))) for k, v in options.items()}
    data = frame()
    with unchanged(data), pytest.raises(ValueError, match=message):
        bm.Model(formula, data, **options)
    assert not marker.exists()


@pytest.mark.parametrize(("payload", "message"), PAYLOADS, ids=[p[:24] for p, _ in PAYLOADS])
def test_the_expression_layer_refuses_before_computing_anything(tmp_path, payload, message):
    """compile_expression alone (no data values) already refuses every payload."""
    marker = tmp_path / "ran"
    with pytest.raises((FormulaSyntaxError, LookupError)):
        compile_expression(payload.replace("{m}", str(marker)), ["x", "y"], "a test")
    assert not marker.exists()


def test_refusals_are_formula_syntax_errors_naming_the_function():
    with pytest.raises(FormulaSyntaxError, match="function 'system' is not allowed in a formula"):
        bm.Model("y ~ system('ls') + (1 | g)", frame())
    with pytest.raises(FormulaSyntaxError, match="'x.__class__' is neither a column of the data nor allowed"):
        bm.Model("y ~ I(x.__class__) + (1 | g)", frame())
    with pytest.raises(bm.DataError, match="column 'x.real' in the fixed effects is not in the data"):
        bm.Model("y ~ I(x.real) + (1 | g)", frame())  # a dotted name is an R column name, never an attribute


@pytest.fixture(scope="module")
def small_fit():
    from tests.conftest import quiet_fit

    return quiet_fit(bm.Model("y ~ x + (1 | g)", frame()), draws=100, tune=100, chains=1, random_seed=1)


@pytest.mark.slow
@pytest.mark.parametrize(("payload", "_"), PAYLOADS, ids=[p[:24] for p, _ in PAYLOADS])
def test_hypothesis_strings_run_nothing(small_fit, tmp_path, payload, _):
    marker = tmp_path / "ran"
    statement = f"x + {payload.replace('{m}', str(marker))} > 0"
    with pytest.raises(ValueError, match="unknown parameter|may hold only|cannot read"):
        small_fit.hypothesis(statement)
    assert not marker.exists()


@pytest.mark.slow
def test_hypothesis_arithmetic_still_works(small_fit):
    table = small_fit.hypothesis(["x * 2 - x > 0", "x^2 >= 0", "-(x) + 1 = 1 - x"])
    draws = small_fit.idata.posterior["fixef"].sel(fixef_term="x").values.ravel()
    assert table["estimate"].iloc[0] == pytest.approx(draws.mean())
    assert table["estimate"].iloc[1] == pytest.approx((draws**2).mean())
    assert table["estimate"].iloc[2] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize(("payload", "message"), PAYLOADS[:6], ids=[p[:24] for p, _ in PAYLOADS[:6]])
def test_a_saved_file_with_a_crafted_formula_runs_nothing(small_fit, tmp_path, payload, message):
    marker = tmp_path / "ran"
    path = tmp_path / "fit.nc"
    small_fit.save(path)
    tree = xr.open_datatree(path, engine="h5netcdf").load()
    description = json.loads(tree.attrs["bayesmm"])
    description["formula"] = f"y ~ x + I({payload.replace('{m}', str(marker))}) + (1 | g)"
    tree.attrs["bayesmm"] = json.dumps(description)
    crafted = tmp_path / "crafted.nc"
    tree.to_netcdf(crafted, engine="h5netcdf")
    with pytest.raises(ValueError, match=str(crafted)):
        bm.load(crafted)
    assert not marker.exists()


def test_the_cli_formula_runs_nothing(tmp_path):
    marker = tmp_path / "ran"
    data = tmp_path / "d.csv"
    frame().to_csv(data, index=False)
    formula = f"y ~ I(__import__('pathlib').Path('{marker}').touch()) + (1 | g)"
    result = subprocess.run(
        [sys.executable, "-m", "bayesmm", "fit", str(data), formula, "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "function '__import__' is not allowed" in result.stderr
    assert not marker.exists()


@pytest.mark.slow
def test_new_data_cannot_smuggle_code(small_fit, tmp_path):
    """New data are values, never formula text: a string that looks like code is just a level."""
    marker = tmp_path / "ran"
    new = frame().head(2).assign(g=f"__import__('pathlib').Path('{marker}').touch()")
    predictions = small_fit.predict(new, new_levels="sample", random_seed=1)
    assert len(predictions) == 2
    assert not marker.exists()
