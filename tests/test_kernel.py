"""bayesmm.inference.kernel, the hand-written log-density of the integrated-out Gaussian model: at random
points it gives PyMC's log-density, gradient and trace values for every model it covers, it
declines every model it does not cover, and a fit through it has the known posterior."""

import warnings

import numpy as np
import pandas as pd
import pytest

import bayesmm as bm
from bayesmm.inference import kernel, sampling

from .conftest import quiet_fit


def _data(seed=3, n_levels=7):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, n_levels, 80)
    x, t, u = rng.normal(size=80), rng.normal(2, 3, size=80), rng.normal(size=80)
    effects = rng.normal(0, 1.5, n_levels)[g] + rng.normal(0, 0.8, n_levels)[g] * t
    y = 5 + 2 * x + effects + rng.normal(0, 1, 80)
    labels = [f"g{i}" for i in g]
    return pd.DataFrame({"y": y, "x": x, "t": t, "u": u, "g": labels, "w": rng.uniform(0, 2, 80)})


COVERED = [
    ("y ~ x + (1 + t | g)", {}),
    ("y ~ x + t + (1 + t + u | g)", {}),  # three correlated columns: a vine of three pairs
    ("y ~ x + (1 + t || g)", {}),
    ("y ~ 1 + (1 | g)", {}),
    ("y ~ 0 + x + (1 + t | g)", {}),
    ("y ~ x + offset(w) + (1 | g) + (0 + t + u | g)", {}),  # two terms of one factor
    (
        "y ~ x + (1 + t | g)",
        {  # every family the kernel evaluates, and SD priors of two families
            "b": bm.Prior("StudentT", nu=4, mu=1, sigma=3),
            "Intercept": bm.Prior("Normal", mu=5, sigma=10),
            "sd(Intercept|g)": bm.Prior("HalfNormal", sigma=2),
            "sd(t|g)": bm.Prior("HalfCauchy", beta=1),
            "cor": bm.Prior("LKJ", eta=2.5),
            "sigma": bm.Prior("Exponential", lam=0.5),
        },
    ),
    # slopes' priors of two families (one variable each), one without its location (PyMC's 0)
    ("y ~ x + t + (1 | g)", {"x": bm.Prior("Normal", mu=0, sigma=2), "t": bm.Prior("StudentT", nu=3)}),
]


def _kernel_and_pymc(formula, priors):
    from nutpie.compile_pymc import _make_functions

    model = bm.Model(formula, _data(), priors=priors or None)
    built = sampling.data_model(model.sampled_model, model.design.n_obs)
    program = kernel.program(built.model, model)
    assert program is not None, kernel.why_not(built.model, model)
    n_dim, _, logp, expand, _, shape_info, reparameterized = _make_functions(
        built.model, mode="FAST_COMPILE", compute_grad=True, join_expanded=True,
        pymc_initial_point_fn=lambda seed: {},
    )  # fmt: skip
    return program, n_dim, logp, expand, shape_info, reparameterized


def _c_functions(program):
    """kernel.c's two functions (from the installed extension module) through ctypes:
    (x, grad) -> logp and (x, out) -> None, the latter asserting nutpie's return code."""
    import ctypes

    library = kernel.cfuncs()
    assert library is not None, "the extension module bayesmm.inference._kernel is not installed"
    address = ctypes.c_uint64, ctypes.c_void_p
    logp = ctypes.CFUNCTYPE(ctypes.c_int64, address[0], *[address[1]] * 4)(library[0].address)
    expand = ctypes.CFUNCTYPE(ctypes.c_int64, address[0], address[0], *[address[1]] * 3)(library[1].address)
    pairs = np.array([program.ints.ctypes.data, program.ints.size, program.floats.ctypes.data,
                      program.floats.size], dtype=np.uint64)  # fmt: skip

    def c_logp(ints, floats, x, grad):
        value = np.empty(())
        logp(x.size, x.ctypes.data, grad.ctypes.data, value.ctypes.data, pairs.ctypes.data)
        return float(value)

    def c_expand(ints, floats, x, out):
        assert expand(x.size, out.size, x.ctypes.data, out.ctypes.data, pairs.ctypes.data) == 0

    return c_logp, c_expand


@pytest.mark.parametrize(("formula", "priors"), COVERED)
def test_the_kernel_is_pymcs_log_density(formula, priors):
    program, n_dim, logp, expand, shape_info, reparameterized = _kernel_and_pymc(formula, priors)
    layout = program.layout
    assert layout["n_dim"] == n_dim
    assert layout["names"] == list(shape_info[0])
    assert layout["slices"] == [[s.start, s.stop] for s in shape_info[1]]
    assert [tuple(s) for s in layout["shapes"]] == [tuple(int(n) for n in s) for s in shape_info[2]]
    assert layout["reparameterized"] == list(reparameterized)
    kernel_logp, kernel_expand = _c_functions(program)
    rng = np.random.default_rng(11)
    values = []
    for _ in range(6):
        x = rng.normal(0, 1.5, size=n_dim)
        expected, expected_grad = logp(x)
        grad = np.empty(n_dim)
        value = kernel_logp(program.ints, program.floats, x, grad)
        values.append((value, expected))
        # PyMC folds some of its constants in lower precision (its Beta(1.5, 1.5) density is
        # 3.9e-8 from scipy's); the kernel's are exact, and everything else agrees to 1e-11.
        assert abs(value - expected) < 1e-6
        np.testing.assert_allclose(grad, expected_grad, rtol=1e-9, atol=1e-9 * np.abs(expected_grad).max())
        (expected_trace,) = expand(x)
        trace = np.empty(layout["n_expanded"])
        kernel_expand(program.ints, program.floats, x, trace)
        np.testing.assert_allclose(trace, expected_trace, rtol=1e-12, atol=1e-14)
    (v0, e0), *rest = values
    for v, e in rest:
        np.testing.assert_allclose(v - v0, e - e0, rtol=1e-11, atol=1e-11 * abs(e0))


def test_the_c_header_holds_the_programs_field_numbers():
    """kernel_fields.h is written from kernel.py's _FIELDS: they must not drift apart."""
    from pathlib import Path

    header = (Path(kernel.__file__).parent / "kernel_fields.h").read_text()
    defined = dict(line.split()[1:3] for line in header.splitlines() if line.startswith("#define"))
    expected = {name: str(i) for i, name in enumerate(kernel._FIELDS)}
    assert defined == {**expected, "HEADER": str(kernel.HEADER)}


def test_the_kernel_is_the_installed_extension_and_its_absence_falls_back_once(monkeypatch):
    """No compiler runs and nothing is loaded from a cache folder at run time: the functions
    come from the extension module built at installation. Without it, the covered models
    take PyTensor's graph, with one warning."""
    from pathlib import Path

    from bayesmm.inference import native

    logp, expand = kernel.cfuncs()
    module = Path(logp.module.__file__)
    assert module.parent == Path(kernel.__file__).parent and module.name.startswith("_kernel.")
    assert logp.address != expand.address
    model = bm.Model("y ~ x + (1 + t | g)", _data())
    built = sampling.data_model(model.sampled_model, model.design.n_obs)
    assert native._kernel_program(built.model, model) is not None
    monkeypatch.setattr(kernel, "cfuncs", lambda: None)
    native._say_extension_missing.cache_clear()
    with pytest.warns(RuntimeWarning, match="compiled engine .* is not installed"):
        assert native._kernel_program(built.model, model) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once
        assert native._kernel_program(built.model, model) is None


NOT_COVERED = [
    ("y ~ x + (1 | g)", {"family": "poisson"}, "Gaussian"),
    ("y ~ x + (1 | g) + (1 | u2)", {}, "one grouping factor"),
    ("y ~ x + cs(1 + t | g)", {}, "cs covariance"),
    ("y ~ x + (1 | g)", {"priors": {"sd": bm.Prior("Gamma", alpha=2, beta=1)}}, "Gamma prior"),
    ("y ~ x + (1 | g)", {"collapsed": False}, "integrated out"),
]


@pytest.mark.parametrize(("formula", "options", "reason"), NOT_COVERED)
def test_the_kernel_declines_what_it_does_not_cover(formula, options, reason):
    data = _data().assign(u2=lambda d: np.where(d.u > 0, "a", "b"))
    if options.get("family") == "poisson":
        data = data.assign(y=np.random.default_rng(1).poisson(3, len(data)))
    model = bm.Model(formula, data, **options)
    built = sampling.data_model(model.sampled_model, model.design.n_obs)
    assert kernel.program(built.model, model) is None
    assert reason in kernel.why_not(built.model, model)


def test_the_kernel_reports_a_point_outside_the_support_without_raising():
    program, n_dim, *_ = _kernel_and_pymc("y ~ x + (1 + t | g)", {})
    x = np.zeros(n_dim)
    where = program.layout["names"].index("cpc_g_logodds__")
    x[program.layout["slices"][where][0]] = -800.0  # the partial correlation at -1
    grad = np.empty(n_dim)
    c_logp, _ = _c_functions(program)
    value = c_logp(None, None, x, grad)
    assert not np.isfinite(value) or not np.all(np.isfinite(grad))


@pytest.mark.slow
def test_a_fit_through_the_kernel_matches_the_graphs_posterior(sleepstudy, monkeypatch):
    """The same model sampled through the kernel and through PyTensor's graph: the posterior
    means agree within Monte Carlo error (draws differ: the two compute in another order)."""
    model = bm.Model("Reaction ~ Days + (Days | Subject)", sleepstudy)
    fit = quiet_fit(model, draws=500, random_seed=3)
    assert fit.idata.attrs["compiled_by"] == "kernel"
    monkeypatch.setenv("BAYESMM_KERNEL", "0")
    sampling.clear_compiled()
    graph = quiet_fit(bm.Model("Reaction ~ Days + (Days | Subject)", sleepstudy), draws=500, random_seed=3)
    assert graph.idata.attrs["compiled_by"] == "engine"
    a, b = fit.summary(), graph.summary()
    se = np.hypot(a["mcse_mean"], b["mcse_mean"])
    assert (np.abs(a["mean"] - b["mean"]) < 4 * se).all(), (a["mean"] - b["mean"]) / se
    # lme4's REML fit of sleepstudy: Days 10.467, sd(Intercept) 24.74, sd(Days) 5.92, sigma 25.59.
    assert abs(a.loc["Days", "mean"] - 10.467) < 0.5
    assert 22 < a.loc["sigma", "mean"] < 29


@pytest.mark.slow
def test_a_refit_through_the_kernel_reads_the_new_data(sleepstudy):
    model = bm.Model("Reaction ~ Days + (Days | Subject)", sleepstudy)
    fit = quiet_fit(model, draws=300, random_seed=4)
    shifted = fit.update(data=sleepstudy.assign(Reaction=sleepstudy.Reaction + 100.0), random_seed=4)
    assert shifted.idata.attrs["compiled_model_reused"] == 1
    delta = shifted.summary().loc["Intercept", "mean"] - fit.summary().loc["Intercept", "mean"]
    assert abs(delta - 100.0) < 3.0


FIRST_AND_LATER = """
import json, sys, warnings
warnings.simplefilter("ignore")
import numpy as np, pandas as pd
import bayesmm as bm
rng = np.random.default_rng(2)
g = np.repeat(np.arange(6), 5)
data = pd.DataFrame({"y": rng.normal(size=30) + g, "g": g.astype(str)})
fit = bm.Model("y ~ 1 + (1 | g)", data).fit(draws=100, tune=100, chains=2, random_seed=9, progressbar=False)
print(json.dumps({"by": fit.idata.attrs["compiled_by"],
                  "sigma": fit.idata.posterior["sigma"].values.ravel().tolist()}))
"""


@pytest.mark.slow
def test_a_later_process_draws_what_the_first_did(tmp_path):
    import json
    import os
    import subprocess
    import sys

    runs = []
    for _ in range(2):  # two processes: nothing is compiled, the same draws
        command = [sys.executable, "-c", FIRST_AND_LATER]
        done = subprocess.run(
            command, env=os.environ, capture_output=True, text=True, check=True, cwd=tmp_path
        )
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    assert [r["by"] for r in runs] == ["kernel", "kernel"]
    assert runs[0]["sigma"] == runs[1]["sigma"]
