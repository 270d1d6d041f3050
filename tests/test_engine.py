"""bayesmm.inference.engine, the one compiled interpreter of every model's log-density: at
random points it gives PyTensor's log-density, gradient and trace values for every family,
link, term structure, parameterization and part bayesmm builds (a generated matrix of
cases); it declines what it does not evaluate, which PyTensor's graph then serves; and fits
through it find the known answers without compiling anything."""

import ctypes
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytensor
import pytensor.tensor as pt
import pytest

import bayesmm as bm
from bayesmm.inference import blocks, engine, native, rewrites, sampling

from .conftest import quiet_fit

_LOGP = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_uint64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                         ctypes.c_void_p)  # fmt: skip
_EXPAND = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_uint64, ctypes.c_uint64, ctypes.c_void_p, ctypes.c_void_p,
                           ctypes.c_void_p)  # fmt: skip


def _user_data(logp, expand):
    """nutpie's user data for the engine: (address, length) of each program's two arrays."""
    arrays = [logp.ints, logp.floats, expand.ints, expand.floats]
    return np.array([v for a in arrays for v in (a.ctypes.data, a.size)], dtype=np.uint64)


def _data(seed=3):
    rng = np.random.default_rng(seed)
    n = 240
    g, h, t = np.repeat(np.arange(20), 12), np.tile(np.arange(12), 20), np.tile(np.arange(4), 60)
    x = rng.normal(size=n)
    eta = 0.3 + 0.5 * x + rng.normal(0, 0.5, 20)[g]
    frame = pd.DataFrame({
        "x": x, "g": [f"g{i}" for i in g], "h": [f"h{i}" for i in h], "t": [f"t{i}" for i in t],
        "w": rng.uniform(0, 1, n), "yg": eta + rng.normal(0, 1, n), "yp": rng.poisson(np.exp(eta)),
        "yb": rng.binomial(1, 1 / (1 + np.exp(-eta))), "k": rng.binomial(8, 1 / (1 + np.exp(-eta))),
        "size": np.full(n, 8), "ypos": np.exp(eta + rng.normal(0, 0.3, n)),
        "ybeta": np.clip(1 / (1 + np.exp(-eta - rng.normal(0, 0.3, n))), 0.01, 0.99),
        "yo": pd.Categorical(np.clip(np.round(eta + 1 + rng.normal(0, 1, n)), 0, 3).astype(int),
                             ordered=True),
        "yc": pd.Categorical([f"c{i}" for i in rng.integers(0, 3, n)]),
    })  # fmt: skip
    frame["yz"] = np.where(rng.uniform(size=n) < 0.3, 0, frame.yp)
    # Censoring codes of every kind, with the intervals' upper ends; counts above zero.
    frame["c"] = rng.choice(["none", "left", "right", "interval"], size=n)
    frame["upper"] = np.where(frame.c == "interval", frame.ypos * 1.5 + 0.2, np.nan)
    frame["yg2"] = np.where(frame.c == "interval", frame.yg + 0.8, np.nan)
    frame["ypp"] = frame.yp + 1
    frame["lvl"] = t  # an ordered predictor 0..3, for mo()
    frame["ypu"] = np.where(frame.c == "interval", frame.yp + 2, np.nan)
    return frame


SAMPLED = {"collapsed": False}
# Every family and link, term structure, parameterization and part the engine evaluates.
CASES = [
    ("yg ~ x + (x | g)", "gaussian", SAMPLED),
    ("yg ~ x + (x | g) + (1 | h)", "gaussian", {}),  # one factor integrated out, one sampled
    ("yg ~ x + (x || g)", "gaussian", SAMPLED),
    ("yg ~ x + w + (x + w | g)", "gaussian", SAMPLED),  # three columns: LKJ's vine of three pairs
    ("cbind(k, size - k) ~ t + (t | g)", "binomial", {}),  # four columns (cbpp's maximal model)
    ("yg ~ x + cs(0 + t | g)", "gaussian", SAMPLED),
    ("yg ~ x + ar1(0 + t | g)", "gaussian", SAMPLED),
    ("yg ~ x + rr(1 + x | g, 1)", "gaussian", SAMPLED),
    ("yg ~ x + offset(w) + (1 | g)", "student", {}),
    ("ypos ~ x + (1 | g)", "lognormal", {}),
    ("ypos ~ x + (1 | g)", "gamma", {}),
    ("ypos ~ x + (1 | g)", "exponential", {}),
    ("ybeta ~ x + (1 | g)", "beta", {}),
    ("yb ~ x + (1 | g)", "bernoulli", {}),
    ("yb ~ x + (1 | g)", "bernoulli", {"link": "probit"}),
    ("yb ~ x + (1 | g)", "bernoulli", {"link": "cloglog"}),
    ("cbind(k, size - k) ~ x + (1 | g)", "binomial", {}),
    ("k | trials(size) ~ x + (1 | g)", "beta_binomial", {}),
    ("yp ~ x + (1 | g) + (1 | h)", "poisson", {}),  # crossed
    ("yp ~ x + (1 | g/h)", "poisson", {}),  # nested, centred around the parent
    ("yp ~ x + (1 | g)", "negativebinomial", {}),
    ("yp ~ x + (1 | g)", "nbinom1", {}),
    ("yz ~ x + (1 | g)", "zero_inflated_poisson", {"zi": "~ x"}),
    ("yz ~ x + (1 | g)", "zero_inflated_negbinomial", {}),
    ("yo ~ x + (1 | g)", "cumulative", {}),
    ("yc ~ x + (1 | g)", "categorical", {}),
    ("yg ~ x + (1 | g)", "gaussian", {"dispersion": "~ x", "collapsed": False}),
    ("yg ~ x + (1 | g)", "gaussian", {"decomp": "QR", "collapsed": False}),
    ("yz ~ x + (1 | g)", "hurdle_poisson", {}),  # the zero-truncated count: GammaIncC
    ("yo ~ x + (1 | g)", "cumulative", {"link": "probit"}),  # the normal's log-CDF: Erfcx
    # brms's addition terms: censoring of every kind, truncation, weights, known SEs.
    ("yg | cens(c, yg2) ~ x + (1 | g)", "gaussian", {}),
    ("ypos | cens(c, upper) ~ x + (1 | g)", "lognormal", {}),
    ("ypos | cens(c, upper) ~ x + (1 | g)", "weibull", {}),
    # The gamma's censoring: P(a, x), whose gradient in a is a ScalarLoop (a series).
    ("ypos | cens(c, upper) ~ x + (1 | g)", "gamma", {}),
    ("ypos | trunc(lb = 0.1, ub = 20) ~ x", "gamma", {}),
    # The incomplete beta function I_x(a, b) (BetaInc) and its gradients in a and b (ScalarLoops).
    ("yp | cens(c, ypu) ~ x", "negativebinomial", {}),
    ("ypp | trunc(lb = 1) ~ x + (1 | g)", "negativebinomial", {}),
    ("yg | cens(c, yg2) ~ x + (1 | g)", "student", {}),
    ("ybeta | cens(c, upper) ~ x", "beta", {}),
    ("ypos | cens(c, upper) + trunc(lb = 0.05, ub = 100) ~ x", "exponential", {}),
    ("ypp | trunc(lb = 1) ~ x + (1 | g)", "poisson", {}),
    ("yp | cens(c, ypu) ~ x", "poisson", {}),
    ("yg | weights(w) ~ x + (x | g)", "gaussian", SAMPLED),
    ("yz | weights(w) ~ x + (1 | g)", "zero_inflated_poisson", {}),
    ("yg | se(w) ~ x + (1 | g)", "gaussian", {}),
    ("yg | se(w, sigma = TRUE) ~ x + (1 | g)", "student", {}),
    # A monotonic effect: a Dirichlet simplex (a transformed variable of one value fewer).
    ("yp ~ x + mo(lvl) + (1 | g)", "poisson", {}),
    # A smooth (its wiggles a random effect) and a Hilbert-space Gaussian process.
    ("yg ~ s(x, k = 6) + (1 | g)", "gaussian", {}),
    ("yg ~ gp(x, k = 8, cov = 'matern32') + (1 | g)", "gaussian", {}),
    # Levels with a known covariance (phylogenetic models): r = L_A r0.
    ("yg ~ x + (1 + x | gr(g, cov = A))", "gaussian", {"data2": {"A": np.exp(-np.abs(np.subtract.outer(
        np.arange(20.0), np.arange(20.0))) / 4)}}),
    (
        "yg ~ x + (1 | g)",
        "gaussian",
        {
            "collapsed": False,
            "priors": {
                "b": bm.Prior("StudentT", nu=4, mu=1, sigma=3),
                "sd": bm.Prior("HalfCauchy", beta=1),
                "sigma": bm.Prior("Gamma", alpha=2, beta=1),
            },
        },
    ),  # fmt: skip
]


def _built(formula, family, options):
    model = bm.Model(formula, _data(), family=family, **options)
    return sampling.data_model(model.sampled_model, model.design.n_obs)


def _reference(fgraph, shared):
    """PyTensor's own function of a rewritten graph (its C-free Python and default linkers)."""
    clone = fgraph.clone()
    givens = list(zip(clone.inputs[1:], shared, strict=True))
    return pytensor.function([clone.inputs[0]], clone.outputs, givens=givens, mode="FAST_COMPILE",
                             on_unused_input="ignore")  # fmt: skip


def _instructions(ints: np.ndarray) -> list[list[int]]:
    """The words of a program's top-level instructions."""
    position, end, words = int(ints[engine.H["H_CODE"]]), int(ints[engine.H["H_END"]]), []
    while position < end:
        words.append([int(w) for w in ints[position + 1 : position + int(ints[position])]])
        position += int(ints[position])
    return words


def _opcodes(ints: np.ndarray) -> list[int]:
    """The opcodes of a program's top-level instructions."""
    return [words[0] for words in _instructions(ints)]


@pytest.mark.parametrize("row_blocks", [False, True], ids=["one-pass", "row-blocks"])
@pytest.mark.parametrize(
    "formula, family, options", CASES, ids=[f"{c[1]}:{c[0]}:{sorted(c[2])}" for c in CASES]
)
def test_the_engine_is_pytensors_log_density_gradient_and_trace(
    formula, family, options, row_blocks, monkeypatch
):
    if row_blocks:
        # Blocks over the 240 rows (and the 20 levels) in chunks of 7: chunks that end in the
        # middle of everything, as a million rows in chunks of 512 do.
        monkeypatch.setattr(blocks, "MIN_ROWS", 16)
        monkeypatch.setattr(blocks, "CHUNK", 7)
    built = _built(formula, family, options)
    graphs = engine.graphs(built.model)
    rng = np.random.default_rng(11)
    n_dim, n_expanded = graphs.layout["n_dim"], graphs.layout["n_expanded"]
    logp_program, expand_program = engine.program(graphs, rng.normal(0, 0.3, n_dim))
    if not row_blocks:
        assert engine.OP["OP_BLOCK"] not in _opcodes(logp_program.ints)
    user = _user_data(logp_program, expand_program)
    c_logp, c_expand = (f(c.address) for f, c in zip((_LOGP, _EXPAND), engine.cfuncs(), strict=True))
    reference = _reference(graphs.fgraph, graphs.shared)
    checked = 0
    for _ in range(8):  # four points checked (the censored gamma's is -inf at about half)
        if checked == 4:
            break
        x = rng.normal(0, 0.7, n_dim)
        value, gradient, expanded = reference(x)
        grad, logp, out = np.zeros(n_dim), np.zeros(1), np.zeros(n_expanded)
        code = c_logp(n_dim, x.ctypes.data, grad.ctypes.data, logp.ctypes.data, user.ctypes.data)
        if not np.isfinite(value):
            assert code == 4  # nutpie's "log-density not finite", not a crash
            continue
        if not np.all(np.isfinite(gradient)):
            assert code == 3  # "gradient not finite", as PyTensor's own
            continue
        assert code == 0
        np.testing.assert_allclose(logp[0], value, rtol=1e-11, atol=1e-9)
        np.testing.assert_allclose(grad, gradient, rtol=1e-9, atol=1e-9)
        assert c_expand(n_dim, n_expanded, x.ctypes.data, out.ctypes.data, user.ctypes.data) == 0
        np.testing.assert_allclose(out, expanded, rtol=1e-11, atol=1e-12)
        checked += 1
    assert checked >= 3


@pytest.mark.parametrize("formula, family", [
    ("yg ~ x + (1 | g)", "gaussian"),
    ("yb ~ x + (1 | g) + (1 | h)", "bernoulli"),
    ("yp ~ x + (x | g)", "poisson"),
])  # fmt: skip
def test_row_blocks_form_and_keep_their_intermediates_a_chunk_long(formula, family, monkeypatch):
    monkeypatch.setattr(blocks, "MIN_ROWS", 16)
    model = bm.Model(formula, _data(), family=family, collapsed=False)
    graphs = engine.graphs(sampling.data_model(model.sampled_model, model.design.n_obs).model)
    program, _ = engine.program(graphs, np.zeros(graphs.layout["n_dim"]))
    assert engine.OP["OP_BLOCK"] in _opcodes(program.ints)
    local = (program.ints >= blocks.LOCAL_BASE) & (program.ints < engine.CONST_BASE)
    assert local.sum() >= 3  # at least one value written and read back within its chunk
    # The workspace holds 240-row values no more for them: smaller than without blocks.
    monkeypatch.setattr(blocks, "MIN_ROWS", 10**9)
    one_pass, _ = engine.program(graphs, np.zeros(graphs.layout["n_dim"]))
    assert program.ints[engine.H["H_WORK"]] <= one_pass.ints[engine.H["H_WORK"]] + blocks.CHUNK * local.sum()


def test_the_level_codes_are_stored_once_and_the_gradients_scatter_joins_the_gather_block(monkeypatch):
    """The gather of the level effects and the scatter of their gradient read one copy of the
    level codes (32-bit integers), in the same row block: the gradient's buffer is not the
    effects' buffer reused, which would keep the scatter out of the block."""
    monkeypatch.setattr(blocks, "MIN_ROWS", 16)
    data = _data()
    model = bm.Model("yg ~ x + (1 | g)", data, collapsed=False)
    graphs = engine.graphs(sampling.data_model(model.sampled_model, model.design.n_obs).model)
    program, _ = engine.program(graphs, np.zeros(graphs.layout["n_dim"]))
    rows_blocks = [blocks._inner(words) for words in _instructions(program.ints)
                   if words[0] == engine.OP["OP_BLOCK"] and words[1] == len(data)]  # fmt: skip
    assert len(rows_blocks) == 1
    inner = rows_blocks[0]
    gathers = [w for w in inner if w[0] == engine.OP["OP_GATHER"]]
    scatters = [w for w in inner if w[0] == engine.OP["OP_SCATTER"]]
    assert len(gathers) == 1 and len(scatters) == 1
    assert gathers[0][4] == scatters[0][4]  # one copy of the codes
    reader = blocks._Reader(engine.OP, program.floats, engine.CONST_BASE)
    codes = pd.factorize(data["g"], sort=True)[0]
    np.testing.assert_array_equal(reader.index(gathers[0][4], len(data)), codes)


@pytest.mark.parametrize("chunk", [7, 16, 64])  # the three loops of engine.c's sum_of_products
@pytest.mark.parametrize("formula, family", [
    ("yg ~ x + (1 | g)", "gaussian"),
    ("yp ~ x + (x | g)", "poisson"),
    ("yg | se(w, sigma = TRUE) ~ x + (1 | g)", "student"),  # products of three, made in place
])  # fmt: skip
def test_a_product_that_only_a_sum_reads_is_made_in_the_sum_to_the_same_bits(
    formula, family, chunk, monkeypatch
):
    """In a row block, a product of rows that nothing else reads is made where it is summed:
    in the reduction right after it (one sum of products), or in the one sum of rows that
    reads it (a + b c). The log-density and gradient are bit for bit those of the separate
    instructions."""
    monkeypatch.setattr(blocks, "MIN_ROWS", 16)
    monkeypatch.setattr(blocks, "CHUNK", chunk)
    model = bm.Model(formula, _data(), family=family, collapsed=False)
    graphs = engine.graphs(sampling.data_model(model.sampled_model, model.design.n_obs).model)
    n_dim = graphs.layout["n_dim"]
    results = {}
    for fused in (True, False):
        if not fused:
            monkeypatch.setattr(blocks, "_sums_of_products", lambda inner, *rest: inner)
            monkeypatch.setattr(blocks, "_products_added", lambda inner, *rest: inner)
        logp_program, expand_program = engine.program(graphs, np.zeros(n_dim))
        inner = [w for words in _instructions(logp_program.ints) if words[0] == engine.OP["OP_BLOCK"]
                 for w in blocks._inner(words)]  # fmt: skip
        fused_words = [w for w in inner if w[:3] == [engine.OP["OP_EW"], engine.EW["addmul"], 3]]
        sums = [w for w in fused_words if w[6] == 0]  # into one number
        if fused:  # sums of z x, z^2, ...; and the linear predictor's x b added to the rest
            assert len(sums) >= 2 and len(fused_words) > len(sums)
        else:
            assert not fused_words
        user = _user_data(logp_program, expand_program)
        c_logp = _LOGP(engine.cfuncs()[0].address)
        rng, values = np.random.default_rng(5), []
        for _ in range(3):
            x = rng.normal(0, 0.7, n_dim)
            grad, logp = np.zeros(n_dim), np.zeros(1)
            assert c_logp(n_dim, x.ctypes.data, grad.ctypes.data, logp.ctypes.data, user.ctypes.data) == 0
            values.append(np.concatenate([logp, grad]))
        results[fused] = np.array(values)
    np.testing.assert_array_equal(results[True], results[False])


def test_the_c_header_holds_the_engines_numbers():
    header = Path(engine.__file__).with_name("engine_fields.h").read_text()
    assert header == engine.fields_header()


def test_the_extension_was_built_from_these_numbers_and_a_stale_build_is_not_run(monkeypatch):
    """The extension reports the digest of the header it was built from: the one engine.py
    writes now (else its opcodes could mean other operations); a build that reports another is
    not run (cfuncs is None, said once), and the models take PyTensor's graph."""
    from bayesmm.inference import _engine

    assert _engine.FIELDS == engine.fields_key()
    engine.cfuncs.cache_clear()
    engine._say_stale_extension.cache_clear()
    monkeypatch.setattr(_engine, "FIELDS", "another")
    with pytest.warns(RuntimeWarning, match="another version of the engine's program format"):
        assert engine.cfuncs() is None
    engine.cfuncs.cache_clear()
    monkeypatch.undo()
    assert engine.cfuncs() is not None


def _without_loops(monkeypatch):
    """The engine as it was before it ran ScalarLoops: what it declines today (nothing of the
    standard models) is declined the same way."""

    def decline(self, *args):
        raise engine.Unsupported("the scalar operation ScalarLoop")

    monkeypatch.setattr(engine._Translator, "_scalar_loop", decline)


def test_the_engine_declines_what_it_does_not_evaluate(monkeypatch):
    _without_loops(monkeypatch)
    graphs = engine.graphs(_built("yp | cens(c, ypu) ~ x", "negativebinomial", {}).model)
    with pytest.raises(engine.Unsupported, match="ScalarLoop"):
        engine.program(graphs, np.zeros(graphs.layout["n_dim"]))
    graphs = engine.graphs(_built("yp | cens(c, ypu) ~ x", "poisson", {}).model)
    engine.program(graphs, np.zeros(graphs.layout["n_dim"]))  # no loop: translated


def test_a_wrong_dimension_is_refused_not_read():
    built = _built("yp ~ x + (1 | g)", "poisson", {})
    graphs = engine.graphs(built.model)
    logp_program, expand_program = engine.program(graphs, np.zeros(graphs.layout["n_dim"]))
    user = _user_data(logp_program, expand_program)
    x, grad, logp = np.zeros(3), np.zeros(3), np.zeros(1)
    c_logp = _LOGP(engine.cfuncs()[0].address)
    assert c_logp(3, x.ctypes.data, grad.ctypes.data, logp.ctypes.data, user.ctypes.data) == -1


@pytest.mark.slow
def test_a_fit_through_the_engine_compiles_nothing_and_finds_lme4s_estimates(monkeypatch):
    """cbpp's binomial model (lme4: Intercept -1.398, sd(herd) 0.642) through the engine:
    nothing reaches numba's compiler (its compile function raises if called)."""
    import numba

    def refuse(*args, **kwargs):
        raise AssertionError("numba compiled something")

    monkeypatch.setattr(numba, "cfunc", refuse)
    sampling.clear_compiled()
    model = bm.Model("cbind(incidence, size - incidence) ~ period + (1 | herd)", bm.datasets.load("cbpp"),
                     family="binomial")  # fmt: skip
    fit = quiet_fit(model, draws=300, tune=400, chains=2, random_seed=3)
    assert fit.idata.attrs["compiled_by"] == "engine"
    table = fit.summary()
    assert abs(table.loc["Intercept", "mean"] - -1.398) < 0.5 * table.loc["Intercept", "sd"]
    assert table.loc["sd(Intercept|herd)", "q2.5"] < 0.642 < table.loc["sd(Intercept|herd)", "q97.5"]


@pytest.mark.slow
def test_a_refit_on_new_data_reuses_the_rewritten_graphs_and_reads_the_new_data():
    data = bm.datasets.load("cbpp")
    sampling.clear_compiled()
    model = bm.Model("cbind(incidence, size - incidence) ~ period + (1 | herd)", data, family="binomial")
    # nutpie's route keeps the compiled model (bayesmm's NUTS writes the programs again).
    first = quiet_fit(model, draws=200, tune=300, chains=2, random_seed=1, sampler="nutpie")
    # every herd's incidence doubled (capped at its size): the intercept must move up
    more = data.assign(incidence=np.minimum(2 * data.incidence, data["size"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        second = first.update(data=more, random_seed=1, progressbar=False)
    assert second.idata.attrs["compiled_model_reused"] == 1
    assert second.idata.attrs["compiled_by"] == "engine"
    assert second.fixef()["mean"]["Intercept"] > first.fixef()["mean"]["Intercept"] + 0.4


def test_the_engine_off_sends_models_to_the_graph(monkeypatch):
    monkeypatch.setenv("BAYESMM_ENGINE", "0")
    built = _built("yp ~ x + (1 | g)", "poisson", {})
    starting = native.StartingPoints(built.model, built.shared)
    assert native._engine_run(built.model, starting) is None
    assert native.compiled_by(native.compile_model(built.model, built.shared)) == "graph"


def _elementwise(function, x: np.ndarray) -> np.ndarray:
    """The engine's values of an elementwise PyTensor function of a vector at ``x``."""
    import pytensor.tensor as pt
    from pytensor.graph import FunctionGraph

    vector = pt.vector("x", dtype="float64", shape=(x.size,))
    ints, floats = engine.translate(FunctionGraph([vector], [function(vector)], clone=False), [], x, [0])
    program = engine.Program(ints, floats)
    out = np.zeros(x.size)
    c_expand = _EXPAND(engine.cfuncs()[1].address)
    user = _user_data(program, program)
    assert c_expand(x.size, x.size, x.ctypes.data, out.ctypes.data, user.ctypes.data) == 0
    return out


def _exact(name: str, x: float) -> float:
    """The function's value rounded from 40 significant digits (Python's decimal module)."""
    import decimal

    with decimal.localcontext(decimal.Context(prec=40, Emin=-99999, Emax=99999)):
        if np.isnan(x):
            return np.nan
        d = decimal.Decimal(float(x))
        if name == "exp":
            return float(d.exp()) if np.isfinite(x) else (np.inf if x > 0 else 0.0)
        if name == "log":
            return np.nan if x < 0 else (-np.inf if x == 0 else (np.inf if np.isinf(x) else float(d.ln())))
        if name == "log1p":
            if x <= -1 or np.isinf(x):
                return np.nan if x < -1 else (-np.inf if x == -1 else np.inf)
            return float(_log1p(d))
        if np.isinf(x):
            return {"sigmoid": 1.0, "softplus": np.inf}[name] if x > 0 else 0.0
        if name == "sigmoid":
            return float(1 / (1 + (-d).exp()))
        return float(_log1p(d.exp()))  # softplus


def _log1p(d):
    """log(1 + d) to the context's precision, by its series where 1 + d would lose d's digits."""
    if abs(d) > 1e-5:
        return (1 + d).ln()
    return sum((-1) ** (j + 1) * d**j / j for j in range(1, 12))


@pytest.mark.parametrize(
    "name, bound", [("exp", 1), ("log", 2), ("log1p", 3), ("sigmoid", 3), ("softplus", 3)]
)
def test_the_engines_exp_and_log_are_within_a_few_ulps_everywhere(name, bound):
    # The engine's own exp, log and log1p (written to vectorise; libm's are calls per value),
    # and sigmoid and softplus built on them, against 40-digit values: random values over the
    # whole range, near the ends of the range, subnormals and the special values.
    import pytensor.tensor as pt
    from pytensor.tensor.math import sigmoid, softplus

    rng = np.random.default_rng(5)
    special = [0.0, -0.0, 1.0, -1.0, 2.0, 0.5, np.inf, -np.inf, np.nan, 5e-324, 1e-310,
               2.2250738585072014e-308, 709.78, 709.79, -708.4, -745.1, -745.2, 1e-300, -1e-300, 1e-17,
               40.0, -40.0]  # fmt: skip
    if name == "exp":
        x = np.concatenate([rng.uniform(-750, 750, 3000), rng.normal(0, 1, 3000), special])
    elif name == "log":
        x = np.concatenate([np.exp(rng.uniform(-744, 709, 3000)), rng.uniform(0.5, 2, 3000), special])
    elif name == "log1p":
        x = np.concatenate([rng.uniform(-1, 2, 3000), np.exp(rng.uniform(-740, 700, 2000)),
                            -np.exp(rng.uniform(-740, 0, 1000)), special])  # fmt: skip
    else:
        x = np.concatenate([rng.uniform(-800, 800, 3000), rng.normal(0, 5, 3000), special])
    functions = {"exp": pt.exp, "log": pt.log, "log1p": pt.log1p, "sigmoid": sigmoid, "softplus": softplus}
    function = functions[name]
    got = _elementwise(function, x)
    exact = np.array([_exact(name, v) for v in x])
    same = (got == exact) | (np.isnan(got) & np.isnan(exact))
    ulp = np.spacing(np.abs(np.where(np.isfinite(exact), exact, 0.0)))
    with np.errstate(invalid="ignore"):
        ulps = np.where(same, 0.0, np.abs(got - exact) / ulp)
    worst = int(np.argmax(ulps))
    assert ulps[worst] <= bound, f"{name}({x[worst]!r}) = {got[worst]!r}, exactly {exact[worst]!r}"


def _engine_and_pytensor(total, z, point: np.ndarray):
    """The engine's and PyTensor's log-density and gradient of ``total`` (a graph of the flat
    vector ``z``) at ``point``, rewritten as the engine's graphs are."""
    from pytensor.compile.mode import Mode

    n = point.size
    mode = Mode(linker="py", optimizer="fast_run").excluding("composite_elemwise_fusion", "inplace")
    function = pytensor.function([z], [total, pytensor.grad(total, z), z], mode=mode)
    graphs = engine.Graphs(function.maker.fgraph, [], {"n_dim": n, "n_expanded": n})
    logp_program, expand_program = engine.program(graphs, point)
    user = _user_data(logp_program, expand_program)
    grad, logp = np.zeros(n), np.zeros(1)
    code = _LOGP(engine.cfuncs()[0].address)(n, point.ctypes.data, grad.ctypes.data, logp.ctypes.data,
                                              user.ctypes.data)  # fmt: skip
    assert code == 0
    value, gradient, _ = function(point)
    return (logp[0], grad), (value, gradient), logp_program


def test_the_incomplete_beta_function_and_its_loops_are_pytensors():
    """I_x(a, b) (BetaInc) and its gradients in a and b (PyTensor's ScalarLoops, run by the
    engine's LOOP instruction) on small, large and lopsided parameters, against PyTensor's
    own functions and SciPy's values."""
    from scipy import special

    rng = np.random.default_rng(5)
    n = 40
    a = np.concatenate([rng.uniform(0.2, 5, 20), rng.uniform(20, 400, 20)])
    b = np.concatenate([rng.uniform(0.2, 5, 10), rng.uniform(20, 400, 10), rng.uniform(0.5, 3, 20)])
    x = np.clip(a / (a + b) + rng.normal(0, 0.1, n), 0.01, 0.99)  # where I_x(a, b) is not 0 or 1
    z = pt.TensorType("float64", shape=(3 * n,))("z")
    total = pt.sum(pt.log(pt.betainc(z[:n], z[n : 2 * n], z[2 * n :])))
    (logp, grad), (value, gradient), program = _engine_and_pytensor(total, z, np.concatenate([a, b, x]))
    assert engine.OP["OP_LOOP"] in _opcodes(program.ints)
    assert logp == pytest.approx(np.sum(np.log(special.betainc(a, b, x))), rel=1e-12)
    assert logp == pytest.approx(value, rel=1e-12)
    np.testing.assert_allclose(grad, gradient, rtol=1e-9, atol=1e-12)


def test_a_logical_or_of_three_conditions_reads_all_three():
    z = pt.TensorType("float64", shape=(8,))("z")
    either = pt.add(z > 1.0, z < -1.0, pt.eq(z, 0.5))  # an addition of booleans: their or
    total = pt.sum(pt.switch(either, z**2, z))
    point = np.array([2.0, -2.0, 0.5, 0.1, -0.3, 1.5, 0.7, -1.2])
    (logp, grad), (value, gradient), _ = _engine_and_pytensor(total, z, point)
    assert logp == pytest.approx(value, rel=1e-14)
    np.testing.assert_allclose(grad, gradient, rtol=1e-14)


def test_the_numbers_of_a_sum_over_rows_are_added_first_and_the_rows_once():
    """x + a + b + c with numbers a, b, c (a linear predictor's intercept and offsets): the
    numbers summed first, then one pass over the rows, equal to PyTensor's up to rounding."""
    import pytensor.tensor as pt
    from pytensor.graph import FunctionGraph

    def total(v):
        return pt.add(v, v[0], 2.5 * v[1], pt.exp(v[2]))

    x = np.random.default_rng(4).normal(size=50)
    vector = pt.vector("x", dtype="float64", shape=(x.size,))
    ints, _ = engine.translate(FunctionGraph([vector], [total(vector)], clone=False), [], x, [0])
    row_adds = [words for words in _instructions(ints) if words[:2] == [engine.OP["OP_EW"], engine.EW["add"]]
                and words[3:5] == [1, x.size]]  # fmt: skip
    assert len(row_adds) == 1
    np.testing.assert_allclose(_elementwise(total, x), x + x[0] + 2.5 * x[1] + np.exp(x[2]), rtol=1e-15)


# In the fast tier: the first case of these families (quick to evaluate in Python: no
# ScalarLoops, no censoring); every other case with the slow tests.
_QUICK = {"gaussian", "bernoulli", "poisson", "negativebinomial", "student", "cumulative", "binomial"}
_FIRST = {family: next(c for c in CASES if c[1] == family) for family in _QUICK}


@pytest.mark.parametrize("formula, family, options", [
    pytest.param(*c, id=f"{c[1]}:{c[0]}:{sorted(c[2])}",
                 marks=() if c in _FIRST.values() else pytest.mark.slow)
    for c in CASES
])  # fmt: skip
def test_the_engines_graph_is_pymcs_log_density_and_gradient(formula, family, options, monkeypatch):
    """The graph the engine translates, after every rewrite (PyTensor's and the split sums
    of bayesmm.inference.rewrites, made here for the 240 rows as for many), against PyMC's
    own log-density and gradient of the model."""
    from pytensor.compile.mode import Mode

    monkeypatch.setattr(blocks, "MIN_ROWS", 16)

    built = _built(formula, family, options)
    graphs = engine.graphs(built.model)
    layout = graphs.layout
    reference = _reference(graphs.fgraph, graphs.shared)
    python = Mode(linker="py", optimizer="fast_compile")
    logp, dlogp = built.model.compile_logp(mode=python), built.model.compile_dlogp(mode=python)
    rng = np.random.default_rng(12)
    checked = 0
    for _ in range(6):
        x = rng.normal(0, 0.7, layout["n_dim"])
        bounds = zip(layout["names"], layout["slices"], layout["shapes"], strict=False)
        point = {name: x[a:b].reshape(shape) for name, (a, b), shape in list(bounds)[: layout["n_free"]]}
        value, gradient, _ = reference(x)
        expected = logp(point)
        if not np.isfinite(expected):
            assert not np.isfinite(value)
            continue
        np.testing.assert_allclose(value, expected, rtol=1e-10, atol=1e-8)
        np.testing.assert_allclose(gradient, dlogp(point), rtol=1e-8, atol=1e-8)
        checked += 1
        if checked == 2:
            break
    assert checked == 2


def test_a_sum_over_rows_passes_over_them_once_for_the_normals_log_density():
    # The normal's -0.5 z^2 - log(sigma) - log(2 pi) / 2 inside a parameter check: one sum of
    # z^2 over the rows, the rest once (before the rewrites, the check's switch, the factor,
    # the constant and log(sigma) were each a pass over the rows).
    import pytensor.tensor as pt
    from pytensor.compile.mode import Mode
    from pytensor.tensor.elemwise import Elemwise

    n = 30
    x = pt.vector("x", dtype="float64", shape=(n + 1,))
    y = np.random.default_rng(1).normal(size=n)
    sigma = pt.exp(x[n])
    z = (pt.as_tensor(y) - x[:n]) / sigma
    total = pt.sum(pt.switch(pt.gt(sigma, 0), -0.5 * z**2 - pt.log(sigma) - 0.9189385332046727, -np.inf))
    point = np.random.default_rng(2).normal(size=n + 1)
    s = np.exp(point[n])
    expected = np.sum(-0.5 * ((y - point[:n]) / s) ** 2 - np.log(s) - 0.9189385332046727)
    mode = Mode(linker="py", optimizer="fast_run").excluding(
        "composite_elemwise_fusion", "local_careduce_fusion", "inplace")  # fmt: skip
    passes = {}
    for name, with_mode in (("pytensor", mode), ("split", rewrites.register(mode))):
        function = pytensor.function([x], total, mode=with_mode)
        nodes = function.maker.fgraph.toposort()
        passes[name] = sum(isinstance(node.op, Elemwise) and node.outputs[0].type.shape == (n,)
                           for node in nodes)  # fmt: skip
        assert function(point) == pytest.approx(expected, rel=1e-13)
    assert passes["split"] <= 3 < 6 <= passes["pytensor"]


def test_a_switch_whose_branches_apply_one_operation_is_one_pass_with_the_same_numbers():
    # A Bernoulli row's log-density switch(y, log p, log(1 - p)) becomes -softplus(+-eta) in
    # both branches, its derivative switch(y, 1 - p, -p): PyTensor computes each branch on
    # every row; pulled out of the switch, each is one pass (softplus(eta s), y - p).
    import pytensor.tensor as pt
    from pytensor.compile.mode import Mode
    from pytensor.tensor.elemwise import Elemwise

    n = 40
    rng = np.random.default_rng(3)
    y = pytensor.shared(rng.integers(0, 2, n), shape=(n,))  # the data, as the model reads it
    eta = pt.vector("eta", dtype="float64", shape=(n,))
    p = pt.sigmoid(eta)
    total = pt.sum(pt.switch(y, pt.log(p), pt.log(1 - p)))
    outputs = [total, pt.grad(total, eta)]
    point = rng.normal(0, 2, n)
    mode = Mode(linker="py", optimizer="fast_run").excluding(
        "composite_elemwise_fusion", "local_careduce_fusion", "inplace")  # fmt: skip
    values, passes = {}, {}
    for name, with_mode in (("pytensor", mode), ("pulled", rewrites.register(mode))):
        function = pytensor.function([eta], outputs, mode=with_mode)
        values[name] = function(point)
        fgraph = function.maker.fgraph
        dynamic = set(fgraph.inputs[:1])  # what depends on eta (the rest is the data's, made once)
        for node in fgraph.toposort():
            if any(v in dynamic for v in node.inputs):
                dynamic.update(node.outputs)
        passes[name] = [type(node.op.scalar_op).__name__ for node in fgraph.toposort()
                        if isinstance(node.op, Elemwise) and node.outputs[0] in dynamic
                        and node.outputs[0].type.shape == (n,)]  # fmt: skip
    assert passes["pytensor"].count("Softplus") == 2 and passes["pulled"].count("Softplus") == 1
    assert passes["pulled"].count("Switch") == 0 < passes["pytensor"].count("Switch")
    assert len(passes["pulled"]) < len(passes["pytensor"])
    for ours, theirs in zip(values["pulled"], values["pytensor"], strict=True):
        np.testing.assert_array_equal(ours, theirs)  # the same numbers, not just close
    y_value = y.get_value()
    np.testing.assert_allclose(values["pulled"][1], y_value - 1 / (1 + np.exp(-point)), rtol=1e-14)


def test_a_bernoulli_models_rows_are_picked_apart_only_without_the_rewrites(monkeypatch):
    """With the rewrites (many rows), the engine evaluates no branch of the Bernoulli switch
    on a subset of the rows; without them (few rows), it does."""
    opcodes = {}
    for name, min_rows in (("many", 16), ("few", 10**9)):
        monkeypatch.setattr(blocks, "MIN_ROWS", min_rows)
        graphs = engine.graphs(_built("yb ~ x + (1 | g) + (1 | h)", "bernoulli", {}).model)
        logp, _ = engine.program(graphs, np.zeros(graphs.layout["n_dim"]))
        opcodes[name] = _opcodes(logp.ints)
    assert engine.OP["OP_PICK"] in opcodes["few"]
    assert engine.OP["OP_PICK"] not in opcodes["many"]


def test_a_program_is_the_same_whatever_an_empty_arrays_memory_held(monkeypatch):
    # PyTensor's AllocEmpty (the y of a Gemv whose beta is 0) evaluates to whatever memory
    # np.empty returns; the program stores zeros there, so that translating a model twice
    # gives the same program, bit for bit, and no NaN of that memory gets into it.
    import pytensor.tensor.basic as ptb

    graphs = engine.graphs(_built("cbind(k, size - k) ~ t + (t | g)", "binomial", {}).model)
    assert any(type(node.op).__name__ == "AllocEmpty" for node in graphs.fgraph.apply_nodes)
    x0 = np.zeros(graphs.layout["n_dim"])
    clean, _ = engine.program(graphs, x0)
    empty = np.empty
    monkeypatch.setattr(ptb.np, "empty", lambda shape, dtype=float, **kw: np.full(shape, np.nan, dtype=dtype))
    dirty, _ = engine.program(graphs, x0)
    monkeypatch.setattr(ptb.np, "empty", empty)
    np.testing.assert_array_equal(dirty.ints, clean.ints)
    np.testing.assert_array_equal(dirty.floats, clean.floats)
    assert not np.isnan(dirty.floats).any()


def test_the_traces_shapes_come_from_the_coordinates_without_compiling(monkeypatch):
    """The deterministic variables' shapes (PyMC's dims leave their lengths out of the types)
    are read from the model's coordinates, equal to what PyTensor evaluates, with nothing
    compiled for them."""
    import pytensor.tensor as pt

    pymc_model = _built("yg ~ x + (x | g) + (1 | h)", "gaussian", {}).model
    n_dim = engine.graphs(pymc_model).layout["n_dim"]
    names = [pymc_model.rvs_to_values[rv].name for rv in pymc_model.free_RVs]
    remaining = [v for v in pymc_model.unobserved_value_vars if v.name not in names]
    assert any(None in v.type.shape for v in remaining)  # some lengths are not in the types
    x = pt.vector("x", dtype="float64", shape=(n_dim,))
    with monkeypatch.context() as patched:
        patched.setattr(pytensor, "function", lambda *a, **k: pytest.fail("a function was compiled"))
        shapes = engine._remaining_shapes(pymc_model, remaining, x, {}, n_dim)
    values = pymc_model.compile_fn(remaining, point_fn=True)(pymc_model.initial_point())
    assert shapes == [np.shape(value) for value in values]
