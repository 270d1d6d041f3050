"""A million rows: building the model, sampling it, and memory, in whole processes.

Data: ``y ~ x + (1 | g)``, n rows (default 1,000,000) in n / 10 levels of g (100,000), the
level effects' SD 0.5 and the residual SD 1 (each level's 10 rows are informative: kappa
about 2.5, so the term is centred). Each run is a fresh process; printed: the time to
import bayesmm, to build the model (``bm.Model`` and its PyMC model), to fit it (compile and
sample), the min bulk ESS over the summary's parameters and over the 100,000 level effects,
the recovered SDs and the process's peak resident memory.

    python benchmarks/large.py                       # build and fit, 2 chains x 500 draws
    python benchmarks/large.py --sampled             # the level effects sampled by NUTS
    python benchmarks/large.py --collapsed           # integrated out (the default since stop 29)
    python benchmarks/large.py --build-only --baseline before=$PWD/.venv/bin/python@/path/to/old/checkout

A baseline (NAME=PYTHON or NAME=PYTHON@SOURCE, as in compile_reuse.py) runs the same
process with another install or checkout, alternating, and the ratios are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

from processes import timed_process

WORKER = r"""
import json, resource, sys, time, warnings
start = time.perf_counter()
import numpy as np, pandas as pd
import bayesmm as bm
import bayesmm.api  # bayesmm imports its modules lazily: count them as the import
imported = time.perf_counter()
warnings.simplefilter("ignore")
n, draws, build_only = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
options = json.loads(sys.argv[4])
rng = np.random.default_rng(1)
levels = n // 10
g = rng.integers(0, levels, n)
x = rng.normal(size=n)
y = 1.0 + 0.5 * x + rng.normal(0, 0.5, levels)[g] + rng.normal(0, 1.0, n)
data = pd.DataFrame({"y": y, "x": x, "g": np.char.add("g", g.astype(str))})
made = time.perf_counter()
model = bm.Model("y ~ x + (1 | g)", data, **options)
model.sampled_model
built = time.perf_counter()
out = {"import": imported - start, "build": built - made, "centred": list(model.centred),
       "collapsed": bool(model.collapsed),
       "module": bm.__file__}
if not build_only:
    fit = model.fit(draws=draws, tune=draws, chains=2, cores=2, random_seed=1, progressbar=False)
    fitted = time.perf_counter()
    import arviz as az
    summary = fit.summary()
    out.update(fit=fitted - built, min_ess=float(summary["ess_bulk"].min()),
               max_rhat=float(summary["r_hat"].max()),
               min_ess_levels=float(az.ess(fit.idata.posterior["r_g"]).min()),
               sd_g=float(summary.loc["sd(Intercept|g)", "mean"]), sigma=float(summary.loc["sigma", "mean"]))
out["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def run(install: str, args) -> dict:
    python, _, source = install.partition("@")
    env = dict(os.environ)
    if source:  # import bayesmm from that checkout
        env["PYTHONPATH"] = source
    with tempfile.TemporaryDirectory() as cwd:  # not the checkout: "-c" imports from the cwd
        options = json.dumps({"collapsed": True} if args.collapsed else {"collapsed": False} if args.sampled
                             else {})
        build_only = "1" if args.build_only else "0"
        command = [python, "-c", WORKER, str(args.rows), str(args.draws), build_only, options]
        return timed_process(install, command, env, cwd=cwd)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--draws", type=int, default=500, help="per chain, after as many tuning steps")
    parser.add_argument("--build-only", action="store_true")
    parser.add_argument("--collapsed", action="store_true", help="level effects integrated out")
    parser.add_argument("--sampled", action="store_true", help="level effects sampled (collapsed=False)")
    parser.add_argument("--baseline", action="append", default=[], help="NAME=PYTHON[@SOURCE]; repeatable")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    installs = {"current": sys.executable, **dict(b.split("=", 1) for b in args.baseline)}
    results: dict = {name: [] for name in installs}
    for _ in range(args.repeats):
        for name, install in installs.items():
            results[name].append(run(install, args))
            print(name, json.dumps(results[name][-1]), flush=True)
    for baseline in list(installs)[1:]:
        for key in ("build", "process", "peak_mib"):
            ours = min(r[key] for r in results["current"])
            theirs = min(r[key] for r in results[baseline])
            print(f"{key}: current / {baseline} = {ours / theirs:.3f} ({ours:.2f} against {theirs:.2f})")


if __name__ == "__main__":
    main()
