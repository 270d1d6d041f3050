"""The fast tier (-m "not slow") refuses every route to a sampler, naming it (tests/conftest.py):
an unmarked test that samples fails instead of slowing the tier down. These tests are unmarked."""

import numpy as np
import nutpie
import pandas as pd
import pymc as pm
import pytest

import bayesmm as bm
import bayesmm.inference.sampling

from .conftest import SAMPLING_ROUTES


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(1)
    g = np.repeat(np.arange(5), 4)
    return bm.Model("y ~ 1 + (1 | g)", pd.DataFrame({"y": rng.normal(size=g.size), "g": g}))


@pytest.mark.parametrize("options, route", [
    ({}, "bayesmm.inference.sampling.sample_written"),
    ({"sampler": "nutpie"}, "bayesmm.inference.sampling.sample_compiled"),
    ({"sampler": "pymc"}, "pymc.sample"),
    ({"method": "laplace"}, "bayesmm.inference.approximate.laplace_draws"),
    ({"method": "advi"}, "bayesmm.inference.approximate.advi_draws"),
])  # fmt: skip
def test_fitting_in_an_unmarked_test_fails_naming_the_route(model, options, route):
    with pytest.raises(RuntimeError, match=rf"this test samples \({route}\).*mark it @pytest.mark.slow"):
        model.fit(draws=10, tune=10, chains=1, progressbar=False, **options)


@pytest.mark.parametrize("call, route", [(lambda: pm.sample(), "pymc.sample"), (lambda: pm.fit(), "pymc.fit"),
                                         (lambda: nutpie.sample(None), "nutpie.sample")])  # fmt: skip
def test_the_samplers_own_entry_points_fail_too(call, route):
    with pytest.raises(RuntimeError, match=rf"this test samples \({route}\)"):
        call()


def test_every_route_is_guarded():
    assert {f"{m.__name__}.{n}" for m, n in SAMPLING_ROUTES} == {
        "bayesmm.inference.sampling.sample_compiled", "bayesmm.inference.sampling.sample_written",
        "bayesmm.inference.hmc.sample",
        "bayesmm.inference.approximate.laplace_draws",
        "bayesmm.inference.approximate.advi_draws", "pymc.sample", "pymc.fit", "nutpie.sample",
    }  # fmt: skip
    assert all(getattr(m, n).__name__ == "guard" for m, n in SAMPLING_ROUTES)
    assert bayesmm.inference.sampling.sample_compiled.__name__ == "guard"
