"""The cost of one log-density gradient: bayesmm's engine against PyTensor's numba graph of
the same rewritten graph, in the same process, at the same point (issue 38's per-gradient
target).

    python benchmarks/gradient.py                 # VerbAgg and a million rows
    python benchmarks/gradient.py --only verbagg

Models: lme4's VerbAgg, ``r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)``
(Bernoulli, 7,584 rows, two crossed factors) and ``y ~ x + (1 | g)`` on a million simulated
rows in 100,000 levels with the level effects sampled (``collapsed=False``; the default
integrates them out). Each runs in a fresh process: the engine's programs as a fit runs them
(written from the design by bayesmm.inference.template where it covers the model, else
translated from the rewritten graph), the translated ones too, then PyTensor compiles
PyMC's graph of the same log-density and gradient with numba, as nutpie's numba backend
does (not timed; numba's cache state does not matter, the compile is not measured).
Printed per model: the best of 5 repeats of N calls each (the same point), the engine's
agreement with numba, and the ratio engine / numba (lower is better).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

from processes import timed_process

WORKER = r"""
import ctypes, json, sys, time, warnings
import numpy as np, pandas as pd
warnings.simplefilter("ignore")
import bayesmm as bm
import pytensor
from bayesmm.inference import engine, sampling, template

which = sys.argv[1]
if which == "million":
    rng = np.random.default_rng(1)
    n = 1_000_000
    g = rng.integers(0, n // 10, n)
    x = rng.normal(size=n)
    y = 1.0 + 0.5 * x + rng.normal(0, 0.5, n // 10)[g] + rng.normal(0, 1.0, n)
    data = pd.DataFrame({"y": y, "x": x, "g": np.char.add("g", g.astype(str))})
    model = bm.Model("y ~ x + (1 | g)", data, collapsed=False)
    calls = 60
else:
    data = bm.datasets.load("VerbAgg", package="lme4")
    data["r2"] = (data["r2"].astype(str) == "Y").astype(int)
    model = bm.Model("r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)", data, family="bernoulli")
    calls = 3000
graphs_model = sampling.data_model(model.sampled_model, model.design.n_obs).model
graphs = engine.graphs(graphs_model)
n_dim = graphs.layout["n_dim"]
point = np.random.default_rng(0).normal(0, 0.1, n_dim)
signature = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_uint64, ctypes.c_void_p, ctypes.c_void_p,
                             ctypes.c_void_p, ctypes.c_void_p)
c_logp = signature(engine.cfuncs()[0].address)

def engine_function(programs):
    # The engine's C log-density and gradient of the programs at the point: (call, grad, logp).
    arrays = [a for program in programs for a in (program.ints, program.floats)]
    user = np.array([v for a in arrays for v in (a.ctypes.data, a.size)], dtype=np.uint64)
    grad, logp = np.zeros(n_dim), np.zeros(1)

    def call():
        c_logp(n_dim, point.ctypes.data, grad.ctypes.data, logp.ctypes.data, user.ctypes.data)

    call.keep = (programs, user)
    return call, grad, logp

# The programs bayesmm.inference.template writes from the design (what a fit of a covered
# model runs), and those the engine translates from the rewritten graph.
written = template.program(graphs_model, model)
translated = engine.program(graphs, point)
engine_call, grad, logp = engine_function(written if written is not None else translated)
translated_call, _, _ = engine_function(translated)

# PyMC's log-density and gradient over the same flat vector, compiled by PyTensor's numba
# mode from PyMC's graph (what nutpie's numba backend compiles), not from the engine's.
import pytensor.tensor as pt
from pymc.pytensorf import compile as compile_pymc
from pytensor.graph import clone_replace
pymc_model = graphs_model
values = [pymc_model.rvs_to_values[rv] for rv in pymc_model.free_RVs]
x = pt.vector("x", dtype="float64")
replacements, start = {}, 0
for value, shape in zip(values, graphs.layout["shapes"], strict=False):
    size = int(np.prod(shape, dtype=int))
    replacements[value] = x[start : start + size].reshape(tuple(shape)).astype(value.dtype)
    start += size
total = pymc_model.logp()
gradient = pt.concatenate([pt.as_tensor(g).ravel() for g in pt.grad(total, values)])
total, gradient = clone_replace([total, gradient], replacements)
with pymc_model:
    numba = compile_pymc([x], [total, gradient], mode="NUMBA")
numba.trust_input = True

def best(call):
    call()
    times = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(calls):
            call()
        times.append((time.perf_counter() - start) / calls)
    return min(times)

engine_s, translated_s, numba_s = best(engine_call), best(translated_call), best(lambda: numba(point))
value, gradient = numba(point)
print(json.dumps({"rows": int(model.design.n_obs), "n_dim": int(n_dim), "engine_us": engine_s * 1e6,
                  "written": written is not None, "translated_us": translated_s * 1e6,
                  "numba_us": numba_s * 1e6, "logp_diff": abs(float(logp[0] - value)),
                  "grad_rel": float(np.max(np.abs(grad - gradient)) / np.max(np.abs(gradient)))}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--only", nargs="*", default=["verbagg", "million"])
    args = parser.parse_args()
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as script:
        script.write(WORKER)
    print("| model | rows | engine us (programs) | translated us | numba us | engine / numba | logp diff | "
          "max grad diff / max |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for name in args.only:
        out = timed_process(name, [args.python, script.name, name], dict(os.environ))
        ratio = out["engine_us"] / out["numba_us"]
        source = "written" if out["written"] else "translated"
        print(f"| {name} | {out['rows']} | {out['engine_us']:.1f} ({source}) | {out['translated_us']:.1f} | "
              f"{out['numba_us']:.1f} | {ratio:.2f} | {out['logp_diff']:.1e} | "
              f"{out['grad_rel']:.1e} |")  # fmt: skip


if __name__ == "__main__":
    main()
