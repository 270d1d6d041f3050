"""nutpie's C functions kept on disk (bayesmm.inference.native): a model's structure key is the same
in every process (fast), and (slow) the kept wrappers sample exactly what nutpie's own
compiled model samples, a first process on an empty cache has them compiled by a child and
draws what every later process draws, a new process takes them from disk without compiling,
and a damaged cache is compiled anew instead of failing."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayesmm as bm
from bayesmm.inference import cache as cache_folder
from bayesmm.inference import native, sampling

FORMULA = "y ~ x + (1 | g)"


@pytest.fixture(autouse=True)
def _graph_wrappers(monkeypatch):
    """These tests are about the wrappers of PyTensor's graph: the model here is one that
    bayesmm.inference.kernel would otherwise sample (its own tests are in test_kernel.py). The setting
    reaches the tests' child processes through the environment."""
    monkeypatch.setenv("BAYESMM_KERNEL", "0")


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(4)
    g = np.repeat(np.arange(8), 6)
    x = rng.normal(size=g.size)
    y = 1 + 0.5 * x + rng.normal(0, 0.7, 8)[g] + rng.normal(size=g.size)
    return pd.DataFrame({"y": y, "x": x, "g": pd.Categorical(g)})


def _data_model(data):
    model = bm.Model(FORMULA, data)
    built = sampling.data_model(model.sampled_model, model.design.n_obs)
    built.source = model  # what a child process rebuilds and compiles (bayesmm.inference.native)
    return built


KEY_SCRIPT = """
import sys
import numpy as np, pandas as pd
import bayesmm as bm
from bayesmm.inference import sampling
data = pd.read_csv(sys.argv[1]).assign(g=lambda d: pd.Categorical(d.g))
model = bm.Model("y ~ x + (1 | g)", data)
print(sampling.data_model(model.sampled_model, model.design.n_obs).key)
"""


def test_the_structure_key_is_the_same_in_another_process(data, tmp_path):
    # A constant holding None once entered the key as its address, so no process found
    # another's compiled code on disk.
    data.to_csv(tmp_path / "data.csv", index=False)
    (tmp_path / "key.py").write_text(KEY_SCRIPT)
    run = subprocess.run([sys.executable, tmp_path / "key.py", tmp_path / "data.csv"], capture_output=True,
                         text=True, timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == _data_model(pd.read_csv(tmp_path / "data.csv").assign(g=data.g)).key


def _draws(compiled, seed=3):
    import nutpie

    idata = nutpie.sample(compiled, draws=60, tune=60, chains=2, seed=seed, progress_bar=False)
    return {name: idata.posterior[name].to_numpy() for name in idata.posterior.data_vars}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    folder = tmp_path_factory.mktemp("native")
    before = os.environ.get("BAYESMM_CACHE_DIR")
    os.environ["BAYESMM_CACHE_DIR"] = str(folder)
    yield folder
    if before is None:
        del os.environ["BAYESMM_CACHE_DIR"]
    else:  # the caller's own folder (a CI run with its own caches)
        os.environ["BAYESMM_CACHE_DIR"] = before


@pytest.mark.slow
def test_the_kept_wrappers_sample_what_nutpies_own_do(data, cache):
    import nutpie

    model = _data_model(data)
    ours = native.compile_model(model.model, model.key, model.shared, model.source)
    assert ours.compiled_by == "child" and list(cache.glob("structure_*.json"))
    # From the same starting points: bayesmm draws their jitter in NumPy (native._StartingPoints).
    theirs = dataclasses.replace(nutpie.compile_pymc_model(model.model, backend="numba"),
                                 initial_point_func=ours.initial_point_func)  # fmt: skip
    mine, reference = _draws(ours), _draws(theirs)
    assert mine.keys() == reference.keys()
    # The same draws up to the last bits of the compiled code: nutpie compiles its wrappers
    # here, ours come from numba's disk cache (the child's), and with PyTensor's own caches
    # empty the two differ in the last bits (a CI run with empty caches: 1.6e-6 at most
    # after 120 steps). A different model or sampler setting differs by tenths.
    for name in reference:
        np.testing.assert_allclose(mine[name], reference[name], rtol=0, atol=1e-4)
    # New data of the same shapes: the same draws as nutpie's own data update.
    other = _data_model(data.assign(y=data.y + np.random.default_rng(1).normal(0, 0.1, len(data))))
    assert other.key == model.key
    new_ours, new_theirs = _draws(ours.with_data(**other.values)), _draws(theirs.with_data(**other.values))
    # (2.7e-4 apart at most once, from other starting points: the last bits grow over the steps)
    np.testing.assert_allclose(new_ours["fixef"], new_theirs["fixef"], rtol=0, atol=1e-3)
    assert np.abs(new_ours["fixef"] - mine["fixef"]).max() > 1e-3  # the new data were used
    with pytest.raises(ValueError, match="bayesmm_data_float64 has shape"):
        ours.with_data(bayesmm_data_float64=np.zeros(3))
    with pytest.raises(KeyError, match="nothing"):
        ours.with_data(nothing=np.zeros(3))


@pytest.mark.parametrize("set_by_user", [None, "2"])
def test_the_child_compiles_at_llvm_level_1_unless_numba_opt_is_set(data, tmp_path, monkeypatch, set_by_user):
    # Level 1 compiled sleepstudy's first fit in 24.6-29.8 s against 31.6-33.7 s at numba's 3.
    seen = {}

    def run(command, env, **kwargs):
        seen.update(env)
        return subprocess.CompletedProcess(command, 1)

    if set_by_user is None:
        monkeypatch.delenv("NUMBA_OPT", raising=False)
    else:
        monkeypatch.setenv("NUMBA_OPT", set_by_user)
    monkeypatch.setattr(subprocess, "run", run)
    assert not native._compiled_in_child(bm.Model(FORMULA, data), "key", tmp_path)  # the child "failed"
    assert seen["NUMBA_OPT"] == (set_by_user or "1")


def test_starting_points_are_support_points_jittered_and_kept_on_disk(data, tmp_path):
    model = _data_model(data)
    path = tmp_path / "support.json"
    starts = native._StartingPoints(model.model, model.shared, path)
    support = model.model.initial_point()  # PyMC's, unjittered, on the transformed scale
    first, again, other = starts(7), starts(7), starts(8)
    assert set(first) == set(support) and path.exists()
    for name, value in support.items():
        jitter = first[name] - value
        assert jitter.shape == np.shape(value) and np.all(np.abs(jitter) < 1)
        np.testing.assert_array_equal(first[name], again[name])  # a seed gives one start
        assert np.all(first[name] != other[name])
    # Another process (a new object reading the same file) starts where this one did,
    # without compiling PyMC's function for the support points.
    kept = native._StartingPoints(model.model, model.shared, path)
    for name, value in kept(7).items():
        np.testing.assert_array_equal(value, first[name])
    assert kept._function is None
    # New data in the same process (a refit sets the shared variables): their own support
    # points (the default priors are scaled to the data), and both data sets kept.
    shifted = _data_model(data.assign(y=data.y + 100))
    for name, value in shifted.values.items():
        model.shared[name].set_value(value)
    moved = kept.support_points()
    assert kept._function is not None and abs(moved["Intercept_c"] - support["Intercept_c"]) > 50
    assert len(json.loads(path.read_text())) == 2


FIT_SCRIPT = """
import sys, json
import pandas as pd
import bayesmm as bm
import nutpie.compile_pymc
calls = []
original = nutpie.compile_pymc._make_functions
nutpie.compile_pymc._make_functions = lambda *a, **k: calls.append(1) or original(*a, **k)
data = pd.read_csv(sys.argv[1]).assign(g=lambda d: pd.Categorical(d.g))
fit = bm.Model("y ~ x + (1 | g)", data).fit(draws=60, tune=60, chains=2, random_seed=5, progressbar=False)
print(json.dumps({"compiled_by": fit.idata.attrs["compiled_by"], "compiled": len(calls),
                  "b": fit.idata.posterior["fixef"].values.ravel().tolist()}))
"""


@pytest.mark.slow
def test_a_new_process_takes_the_wrappers_from_disk(data, cache, tmp_path):
    data.to_csv(tmp_path / "data.csv", index=False)
    (tmp_path / "fit.py").write_text(FIT_SCRIPT)

    # Empty PyTensor and numba caches too, as on a new machine: code numba compiled in a
    # process and the same code loaded from its cache once gave other draws for a seed.
    env = {**os.environ, "BAYESMM_CACHE_DIR": str(tmp_path / "kept"),
           "NUMBA_CACHE_DIR": str(tmp_path / "numba"),
           "PYTENSOR_FLAGS": f"base_compiledir={tmp_path / 'pytensor'}"}  # fmt: skip

    def process():
        command = [sys.executable, tmp_path / "fit.py", tmp_path / "data.csv"]
        run = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
        assert run.returncode == 0, run.stderr[-3000:]
        return json.loads(run.stdout.strip().splitlines()[-1])

    first, second = process(), process()
    # The first process's child compiled; the process itself compiled nothing, nor the next.
    assert (first["compiled_by"], first["compiled"]) == ("child", 0)
    assert (second["compiled_by"], second["compiled"]) == ("disk", 0)
    assert second["b"] == first["b"]


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["layout", "numba cache"])
def test_a_damaged_cache_is_compiled_anew(data, cache, damage):
    model = _data_model(data)
    native.compile_model(model.model, model.key, model.shared, model.source)  # kept (or found) on disk
    for module in [name for name in sys.modules if name.startswith("bayesmm_native_")]:
        del sys.modules[module]
    if damage == "layout":
        for layout in cache.glob("structure_*.json"):
            layout.write_text("{not json")
    else:  # numba's cache of the wrappers: beside the module, or in $NUMBA_CACHE_DIR
        roots = [cache, *([Path(os.environ["NUMBA_CACHE_DIR"])] if os.environ.get("NUMBA_CACHE_DIR") else [])]
        name = f"structure_{native._native_key(model.key)}.*.nb[ic]"
        kept = [path for root in roots for path in root.rglob(name)]
        assert kept
        for path in kept:
            path.unlink()
    again = native.compile_model(model.model, model.key, model.shared, model.source)
    assert again.compiled_by == "child"
    assert np.isfinite(_draws(again)["fixef"]).all()
    assert json.loads(next(cache.glob("structure_*.json")).read_text())["n_dim"] == again.n_dim


def test_an_unwritable_cache_folder_falls_back_to_a_temporary_one(tmp_path, monkeypatch):
    blocker = tmp_path / "a file"
    blocker.write_text("")
    monkeypatch.setenv("BAYESMM_CACHE_DIR", str(blocker / "cache"))  # below a file: cannot exist
    cache_folder._fallback_dir.cache_clear()
    with pytest.warns(RuntimeWarning, match="cannot keep compiled models in .*a file.*BAYESMM_CACHE_DIR"):
        folder = cache_folder.cache_dir()
    assert folder.is_dir() and folder != blocker / "cache"
    assert cache_folder.cache_dir() == folder  # one folder (and one warning) per process


def test_the_key_holds_the_versions_even_from_a_source_tree(monkeypatch):
    import importlib.metadata

    installed = native._versions()
    assert "numba=" in installed and "nutpie=" in installed and "numba__fastmath" in installed
    real = importlib.metadata.version

    def version(name):
        if name == "bayesmm":
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "version", version)
    from_source = native._versions()
    assert "bayesmm=" in from_source and bm.__file__ in from_source


def test_the_cache_folder_survives_pytensor_cleaning_its_compile_cache(tmp_path, monkeypatch):
    # On a new machine the folder is made inside PyTensor's compile cache before anything
    # is kept in it, and PyTensor's module cache deletes the empty folders it finds there.
    from pytensor.link.c.cmodule import ModuleCache

    compiledir = tmp_path / "compiledir"
    monkeypatch.setenv("BAYESMM_CACHE_DIR", str(compiledir / "bayesmm_nutpie"))
    folder = cache_folder.cache_dir()
    ModuleCache(compiledir).refresh()
    assert folder.is_dir() and folder == compiledir / "bayesmm_nutpie"


def test_a_model_the_child_cannot_take_is_compiled_here(tmp_path):
    # Nothing that pickles: no child starts, nothing is left for a later process to trust.
    assert native._compiled_in_child(lambda: None, "k" * 20, tmp_path) is False
    assert not list(tmp_path.iterdir())


def test_a_child_with_other_settings_leaves_the_compiling_to_the_parent(data, tmp_path, monkeypatch):
    # PyTensor settings changed in this process do not reach the child: its graph's key is
    # another, and it must not compile.
    model = _data_model(data)
    key = native._native_key(model.key)
    monkeypatch.setattr(native, "_versions", lambda: "settings changed in this process")
    assert native._native_key(model.key) != key
    assert native._compiled_in_child(model.source, native._native_key(model.key), tmp_path) is False
    assert not list(tmp_path.glob("structure_*"))


@pytest.mark.parametrize(
    "formula, dataset, family",
    [
        ("Reaction ~ Days + (Days | Subject)", "sleepstudy", "gaussian"),  # LKJ and a CustomDist
        ("strength ~ 1 + (1 | batch/cask)", "Pastes", "gaussian"),  # the parent integrated out
        ("rating ~ temp + contact + (1 | judge)", "wine", "cumulative"),
    ],
)
def test_the_model_a_child_unpickles_has_the_parents_structure(formula, dataset, family):
    import pickle

    data = bm.datasets.load(dataset, "ordinal") if dataset == "wine" else bm.datasets.load(dataset)
    model = bm.Model(formula, data, family=family)
    again = pickle.loads(pickle.dumps(model))
    key = sampling.data_model(model.sampled_model, model.design.n_obs).key
    assert sampling.data_model(again.sampled_model, again.design.n_obs).key == key
