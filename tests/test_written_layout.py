"""A model the template writes is laid out from its design (bayesmm.inference.layout), with no
PyMC model: its trace's names, shapes and dims, its coordinates and its starting points are
those of bayesmm.model.builder's PyMC model, and its programs give the values of the
programs laid out as PyMC's model is, variable by variable."""

import numpy as np
import pytest

import bayesmm as bm
from bayesmm.inference import engine, native, template

from .test_template import CASES, _data, _model, _run

pytestmark = pytest.mark.skipif(engine.cfuncs() is None, reason="the extension module is not built")


def _by_name(layout: dict, values: np.ndarray, free: bool = False) -> dict[str, np.ndarray]:
    names = layout["names"][: layout["n_free"]] if free else layout["names"]
    return {name: values[slice(*bounds)] for name, bounds in zip(names, layout["slices"], strict=False)}


@pytest.mark.parametrize(("formula", "family", "options"), CASES)
def test_the_design_lays_the_trace_out_as_pymcs_model_does(formula, family, options):
    model, pymc_model = _model(formula, family, options)
    logp, expand = template.program(pymc_model, model)  # laid out as PyMC's model is
    written = template.written(model)
    assert written is not None
    theirs, ours = logp.layout, written.logp.layout
    shapes = dict(zip(theirs["names"], map(tuple, theirs["shapes"]), strict=True))
    assert dict(zip(ours["names"], map(tuple, ours["shapes"]), strict=True)) == shapes
    assert ours["n_free"] == theirs["n_free"] and ours["n_dim"] == theirs["n_dim"]
    assert sorted(ours["reparameterized"]) == sorted(theirs["reparameterized"])
    names, moved = theirs["names"], theirs["reparameterized"]
    dims, _ = native._dims_and_coords(pymc_model, names, list(shapes.values()), moved)
    assert {n: tuple(written.dims.get(n, ())) for n in names} == {n: tuple(dims.get(n) or ()) for n in names}
    coords = {k: list(v) for k, v in pymc_model.coords.items()}
    assert {k: list(v) for k, v in written.coords.items()} == coords
    # PyMC's support points (a Gamma's are float32 in PyMC: 6e-8 relative).
    support = native.StartingPoints(pymc_model, {})._evaluate()
    assert set(written.support) == set(support)
    for name, value in support.items():
        np.testing.assert_allclose(np.ravel(written.support[name]), np.ravel(value), rtol=1e-6, atol=1e-12)
    # The same log-density, gradient and trace at random points, variable by variable.
    rng = np.random.default_rng(11)
    for _ in range(3):
        x = rng.normal(0.0, 0.3, theirs["n_dim"])
        pieces = _by_name(theirs, x, free=True)
        y = np.concatenate([pieces[n] for n in ours["names"][: ours["n_free"]]]) if pieces else x
        value, gradient, trace = _run(logp, expand, x)
        value2, gradient2, trace2 = _run(written.logp, written.expand, y)
        assert value2 == pytest.approx(value, rel=1e-12, abs=1e-12)
        ours_gradient = _by_name(ours, gradient2, free=True)
        for name, part in _by_name(theirs, gradient, free=True).items():
            np.testing.assert_allclose(ours_gradient[name], part, rtol=1e-12, atol=1e-12)
        for name, part in _by_name(theirs, trace).items():
            np.testing.assert_array_equal(_by_name(ours, trace2)[name], part)


@pytest.mark.parametrize(
    ("formula", "family", "options"),
    [
        ("count ~ mo(k1) + (mo(k1) | g)", "poisson", {"centered": True}),
        ("count ~ x + (1 | g)", "poisson", {"priors": {"b": bm.Prior("SkewNormal", alpha=2.0)}}),
        ("y ~ x + hx + (x | g) + (1 | h)", "gaussian", {"collapsed": True, "centered": True}),
    ],
)
def test_a_model_the_template_does_not_cover_is_left_to_pymcs_model(formula, family, options):
    model = bm.Model(formula, _data(), family=family, **options)
    assert template.written(model) is None
    assert native.written_model(model) is None


@pytest.mark.slow
@pytest.mark.parametrize("sampler", ["bayesmm", "nutpie"])
def test_every_route_stores_the_response_as_bayesmm_codes_it(sampler):
    """An ordinal response's categories count from 1 in observed_data, as in the data and the
    posterior predictive draws (PyMC's model observes them from 0: nutpie's route stored
    those until stop 44)."""
    from .conftest import quiet_fit

    data = _data()
    fit = quiet_fit(bm.Model("k1 ~ x + (1 | g)", data, family="cumulative"), draws=50, tune=50, chains=1,
                    random_seed=1, sampler=sampler)  # fmt: skip
    np.testing.assert_array_equal(fit.idata.observed_data["k1"].values, data["k1"].to_numpy())
    replicated = fit.posterior_predictive(random_seed=1)["posterior_predictive"]["k1"].values
    assert set(np.unique(replicated)) <= {1, 2, 3, 4}
