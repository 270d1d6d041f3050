"""Whole processes fitting models whose engine programs bayesmm.inference.template writes
from the design, against the same models translated from their rewritten PyTensor graph
(``BAYESMM_TEMPLATE=0``), interleaved: censored models of the families whose tails need the
incomplete gamma and beta functions' derivatives in their shapes, and a varying monotonic
effect. Prints each process's time, the ratio and the posterior means of the parameters both
report (they should agree to Monte Carlo error).

    python benchmarks/written_vs_translated.py --repeats 2 [--python PYTHON]

Both arms run the same installed bayesmm (``--python``: its interpreter); nothing is cached
on disk between processes, so there is no cold or warm state to name.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

WORKER = r"""
import json, sys, time
start = time.perf_counter()
import numpy as np, pandas as pd
import bayesmm as bm

kind = sys.argv[1]
rng = np.random.default_rng(1)
n, J = 400, 20
g = rng.integers(0, J, n)
x = rng.normal(size=n)
r = rng.normal(0, 0.4, J)[g]
formula = "y | cens(cen) ~ x + (1 | g)"
if kind == "negativebinomial":
    mu = np.exp(1.0 + 0.3 * x + r)
    y, c = rng.negative_binomial(2.0, 2.0 / (2.0 + mu)), rng.integers(2, 8, n)
elif kind == "student":
    y, c = 0.5 + 0.3 * x + r + rng.standard_t(4, n) * 0.7, rng.uniform(0.5, 2.5, n)
elif kind == "beta":
    mu = 1 / (1 + np.exp(-(0.2 + 0.3 * x + r)))
    y, c = rng.beta(mu * 8, (1 - mu) * 8), rng.uniform(0.5, 0.95, n)
elif kind == "gamma":
    y, c = rng.gamma(3.0, np.exp(0.5 + 0.3 * x + r) / 3.0), rng.uniform(0.5, 4.0, n)
if kind == "monotonic":
    k = rng.integers(1, 6, 500)
    groups = rng.integers(0, 25, 500)
    step = np.array([0, 0.1, 0.5, 0.8, 1.0])[k - 1]
    slope = 1.0 + rng.normal(0, 0.5, 25)[groups]
    y = rng.poisson(np.exp(0.2 + slope * step + rng.normal(0, 0.3, 25)[groups]))
    data = pd.DataFrame({"y": y, "k": k, "g": groups.astype(str)})
    formula, family = "y ~ mo(k) + (mo(k) | g)", "poisson"
else:
    data = pd.DataFrame({"y": np.minimum(y, c), "cen": (y > c).astype(int), "x": x, "g": g.astype(str)})
    family = kind
fit = bm.Model(formula, data, family=family).fit(random_seed=1, progressbar=False)
table = fit.summary()
print(json.dumps({
    "seconds": time.perf_counter() - start,
    "compiled_by": fit.idata.attrs.get("compiled_by"),
    "means": {name: float(table.loc[name, "mean"]) for name in table.index[:4]},
    "min_ess": float(table["ess_bulk"].min()),
}))
"""

MODELS = ["gamma", "negativebinomial", "student", "beta", "monotonic"]


def run(python: str, kind: str, written: bool) -> dict:
    env = {**os.environ, "BAYESMM_TEMPLATE": "1" if written else "0"}
    started = time.perf_counter()
    out = subprocess.run([python, "-c", WORKER, kind], capture_output=True, text=True, env=env, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["process"] = time.perf_counter() - started
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--only", nargs="+", default=MODELS, choices=MODELS)
    args = parser.parse_args()
    print(
        "| model | written s | translated s | ratio | min ESS written / translated | largest gap in means |"
    )
    print("|---|---|---|---|---|---|")
    for kind in args.only:
        times = {True: [], False: []}
        results = {}
        for _ in range(args.repeats):
            for written in (True, False):  # interleaved
                results[written] = run(args.python, kind, written)
                times[written].append(results[written]["process"])
        w, t = statistics.median(times[True]), statistics.median(times[False])
        shared = set(results[True]["means"]) & set(results[False]["means"])
        spread = max(abs(results[True]["means"][k] - results[False]["means"][k]) for k in shared)
        print(f"| {kind} | {w:.1f} | {t:.1f} | {w / t:.2f} | {results[True]['min_ess']:.0f} / "
              f"{results[False]['min_ess']:.0f} | {spread:.3f} |")  # fmt: skip


if __name__ == "__main__":
    main()
