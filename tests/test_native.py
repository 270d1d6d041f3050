"""The one route from a model to nutpie (bayesmm.inference.native): a model's structure key is
the same in every process, starting points are support points jittered as nutpie's, the
engine's compiled model samples what nutpie's own compile of the same graph samples (slow),
a model the engine declines is compiled by nutpie through its public API, and two processes
draw the same from a seed, compiling nothing."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import bayesmm as bm
from bayesmm.inference import native, sampling

FORMULA = "y ~ x + (1 | g)"


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(4)
    g = np.repeat(np.arange(8), 6)
    x = rng.normal(size=g.size)
    y = 1 + 0.5 * x + rng.normal(0, 0.7, 8)[g] + rng.normal(size=g.size)
    return pd.DataFrame({"y": y, "x": x, "g": pd.Categorical(g), "count": rng.poisson(np.exp(0.5 + 0.3 * x))})


def _data_model(data, formula=FORMULA, family="gaussian", **options):
    model = bm.Model(formula, data, family=family, collapsed=False, **options)
    return sampling.data_model(model.sampled_model, model.design.n_obs)


KEY_SCRIPT = """
import sys
import numpy as np, pandas as pd
import bayesmm as bm
from bayesmm.inference import sampling
data = pd.read_csv(sys.argv[1]).assign(g=lambda d: pd.Categorical(d.g))
model = bm.Model("y ~ x + (1 | g)", data, collapsed=False)
print(sampling.data_model(model.sampled_model, model.design.n_obs).key)
"""


def test_the_structure_key_is_the_same_in_another_process(data, tmp_path):
    # A constant holding None once entered the key as its address.
    data.to_csv(tmp_path / "data.csv", index=False)
    (tmp_path / "key.py").write_text(KEY_SCRIPT)
    run = subprocess.run([sys.executable, tmp_path / "key.py", tmp_path / "data.csv"], capture_output=True,
                         text=True, timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == _data_model(pd.read_csv(tmp_path / "data.csv").assign(g=data.g)).key


def test_starting_points_are_support_points_jittered_and_follow_new_data(data):
    model = _data_model(data)
    starts = native.StartingPoints(model.model, model.shared)
    support = model.model.initial_point()  # PyMC's, unjittered, on the transformed scale
    names = list(support)
    shapes = [np.shape(support[name]) for name in names]
    bounds = np.cumsum([0] + [int(np.prod(shape)) for shape in shapes])
    flat = starts.flat_function(names, shapes)

    def split(vector):
        pieces = zip(names, bounds[:-1], bounds[1:], shapes, strict=True)
        return {name: vector[a:b].reshape(shape) for name, a, b, shape in pieces}

    first, again, other = split(flat(7)), split(flat(7)), split(flat(8))
    for name, value in support.items():
        jitter = first[name] - value
        assert jitter.shape == np.shape(value) and np.all(np.abs(jitter) < 1)
        np.testing.assert_array_equal(first[name], again[name])  # a seed gives one start
        assert np.all(first[name] != other[name])
    # New data in the same process (a refit sets the shared variables): their own support
    # points (the default priors are scaled to the data).
    shifted = _data_model(data.assign(y=data.y + 100))
    for name, value in shifted.values.items():
        model.shared[name].set_value(value)
    intercept = "Intercept_c_plus_mean_r"  # sheared by the mean group effect (bayesmm.model.builder)
    assert abs(starts.support_points()[intercept] - support[intercept]) > 50


def test_the_engines_model_is_labelled_as_nutpie_labels_its_own(data):
    built = _data_model(data)
    compiled = native.compile_model(built.model, built.shared)
    assert native.compiled_by(compiled) == "engine"
    assert compiled.n_dim == 12  # Intercept, b, sd, the level basis's 8 rows, sigma
    assert list(compiled.coords["g"]) == [str(i) for i in range(8)]
    assert compiled.shapes["r_g"] == (8, 1)
    flat = compiled.initial_point_func(5)
    assert flat.shape == (compiled.n_dim,) and np.all(np.isfinite(flat))


def _draws(compiled, seed=3):
    import nutpie

    model = native.for_nutpie(compiled)
    idata = nutpie.sample(model, draws=60, tune=60, chains=2, seed=seed, progress_bar=False)
    return {name: idata.posterior[name].to_numpy() for name in idata.posterior.data_vars}


@pytest.mark.slow
def test_the_engine_samples_what_nutpies_own_compile_samples(data):
    """The same starting points, the same seed: the draws of the engine and of nutpie's numba
    compile of the same graph agree to rounding over 120 iterations (their arithmetic differs
    in the order of sums, so not bit for bit)."""
    import dataclasses

    import nutpie

    built = _data_model(data)
    ours = native.compile_model(built.model, built.shared)
    theirs = dataclasses.replace(nutpie.compile_pymc_model(built.model, backend="numba"),
                                 initial_point_func=ours.initial_point_func)  # fmt: skip
    a, b = _draws(ours), _draws(theirs)
    for name in ("fixef", "sd_g", "sigma"):
        np.testing.assert_allclose(a[name], b[name], rtol=1e-6, atol=1e-8)


@pytest.mark.slow
def test_a_model_the_engine_declines_is_compiled_by_nutpie(data, monkeypatch):
    # A censored gamma response: the gradient of P(a, x) in its shape a is a ScalarLoop,
    # which the engine is made to decline here (it evaluates them since stop 36).
    from .test_engine import _without_loops

    _without_loops(monkeypatch)
    codes = np.where(np.arange(len(data)) % 4 == 0, "right", "none")
    censored = data.assign(pos=data["count"] + 0.5, c=codes)
    built = _data_model(censored, "pos | cens(c) ~ x + (1 | g)", "gamma")
    compiled = native.compile_model(built.model, built.shared)
    assert native.compiled_by(compiled) == "graph"
    draws = _draws(compiled)
    assert np.all(np.isfinite(draws["fixef"]))


FIT_SCRIPT = """
import sys, json
import numba
import pandas as pd
import bayesmm as bm
def refuse(*a, **k):
    raise AssertionError("numba compiled something")
numba.cfunc = refuse
numba.njit = refuse
data = pd.read_csv(sys.argv[1]).assign(g=lambda d: pd.Categorical(d.g))
fit = bm.Model("count ~ x + (1 | g)", data, family="poisson").fit(draws=60, tune=60, chains=2, random_seed=5,
                                                                  progressbar=False)
collapsed = bm.Model("y ~ x + (1 | g)", data).fit(draws=60, tune=60, chains=2, random_seed=5,
                                                  progressbar=False)
print(json.dumps({"compiled_by": [f.idata.attrs["compiled_by"] for f in (fit, collapsed)],
                  "b": fit.idata.posterior["fixef"].values.ravel().tolist(),
                  "sigma": collapsed.idata.posterior["sigma"].values.ravel().tolist()}))
"""


@pytest.mark.slow
def test_two_processes_draw_the_same_and_compile_nothing(data, tmp_path):
    data.to_csv(tmp_path / "data.csv", index=False)
    (tmp_path / "fit.py").write_text(FIT_SCRIPT)
    runs = []
    for _ in range(2):
        command = [sys.executable, tmp_path / "fit.py", tmp_path / "data.csv"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    # A Poisson model and the integrated-out Gaussian one (bayesmm.inference.woodbury).
    assert [r["compiled_by"] for r in runs] == [["engine", "engine"]] * 2
    assert runs[0]["b"] == runs[1]["b"] and runs[0]["sigma"] == runs[1]["sigma"]


def test_the_engine_is_the_installed_extension_and_its_absence_falls_back_once(data, monkeypatch):
    """No compiler runs and nothing is loaded from a cache folder at run time: the engine's
    functions come from the extension module built at installation. Without it, every model
    takes PyTensor's graph, with one warning."""
    import warnings
    from pathlib import Path

    from bayesmm.inference import engine

    logp, expand = engine.cfuncs()
    module = Path(logp.module.__file__)
    assert module.parent == Path(engine.__file__).parent and module.name.startswith("_engine.")
    assert logp.address != expand.address
    model = bm.Model(FORMULA, data)
    built = sampling.data_model(model.sampled_model, model.design.n_obs)
    starting = native.StartingPoints(built.model, built.shared)
    assert native._engine_run(built.model, starting, model) is not None
    monkeypatch.setattr(engine, "cfuncs", lambda: None)
    native._say_extension_missing.cache_clear()
    with pytest.warns(RuntimeWarning, match="compiled engine .* is not installed"):
        assert native._engine_run(built.model, starting, model) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once
        assert native._engine_run(built.model, starting, model) is None


@pytest.mark.parametrize(
    "formula, dataset, family",
    [
        ("Reaction ~ Days + (Days | Subject)", "sleepstudy", "gaussian"),  # LKJ and a CustomDist
        ("strength ~ 1 + (1 | batch/cask)", "Pastes", "gaussian"),  # the parent integrated out
        ("rating ~ temp + contact + (1 | judge)", "wine", "cumulative"),
    ],
)
def test_a_pickled_model_has_the_same_structure(formula, dataset, family):
    import pickle

    data = bm.datasets.load(dataset, "ordinal") if dataset == "wine" else bm.datasets.load(dataset)
    model = bm.Model(formula, data, family=family)
    again = pickle.loads(pickle.dumps(model))
    key = sampling.data_model(model.sampled_model, model.design.n_obs).key
    assert sampling.data_model(again.sampled_model, again.design.n_obs).key == key
