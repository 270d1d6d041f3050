"""Simulations per minute for simulation workflows: whole processes, one run each variant.

bm.sbc on ``y ~ x + (1 | g)`` (20 groups of 5 rows, 2 chains x 300 draws per refit), run

* naive: a loop that builds the model and compiles it for every simulation (bayesmm's
  compiled-model cache cleared before each fit and bayesmm.inference.native's disk cache moved to an
  empty folder; PyTensor's disk cache left as it is);
* loop: the same loop with bayesmm.inference.native's disk cache, so that each fit loads the
  compiled wrappers instead of compiling them (what a hand-written loop gets now);
* serial: bm.sbc in one process, compiling once and refitting through the compiled code;
* processes: bm.sbc(processes=2), two spawned processes compiling once each;
* dask: bm.sbc(client=Client(LocalCluster(n_workers=2))), the same on Dask workers.

Printed: each variant's simulations, process seconds, simulations per minute, and the ratio of
its rate to the naive loop's measured in the same run.

    python benchmarks/simulations.py --sims 40 --naive-sims 5
"""

from __future__ import annotations

import argparse
import os
import sys

from processes import timed_process

SETUP = r"""
import json, time, warnings
import numpy as np, pandas as pd
import bayesmm as bm
warnings.simplefilter("ignore")
rng = np.random.default_rng(1)
data = pd.DataFrame({"x": rng.normal(size=100), "g": [f"g{i:02d}" for i in np.repeat(range(20), 5)],
                     "y": rng.normal(size=100)})
priors = {"Intercept": bm.Prior("Normal", mu=0, sigma=1), "b": bm.Prior("Normal", mu=0, sigma=1),
          "sd": bm.Prior("HalfNormal", sigma=1), "sigma": bm.Prior("HalfNormal", sigma=1)}
options = dict(priors=priors, draws=300, tune=300, progressbar=False)
"""

VARIANTS = {
    "naive": r"""
from bayesmm.inference import sampling
start = time.perf_counter()
sims = bm.simulate("y ~ x + (1 | g)", data, params={"Intercept": 0.0, "x": 0.5, "sd(Intercept|g)": 0.7,
                   "sigma": 1.0}, seed=2, nsim=N)
import os, tempfile
for k in range(N):
    sampling.clear_compiled()
    if NAIVE_COMPILES:  # a fresh folder for bayesmm.inference.native: nothing kept on disk is found
        os.environ["BAYESMM_CACHE_DIR"] = tempfile.mkdtemp()
    bm.Model("y ~ x + (1 | g)", data.assign(y=sims[f"sim_{k + 1}"]), priors=priors).fit(
        draws=300, tune=300, chains=2, random_seed=k, progressbar=False)
print(json.dumps({"sims": N, "inside": time.perf_counter() - start}))
""",
    "loop": None,  # the naive loop with bayesmm.inference.native's disk cache
    "serial": r"""
start = time.perf_counter()
bm.sbc("y ~ x + (1 | g)", data, n=N, **options)
print(json.dumps({"sims": N, "inside": time.perf_counter() - start}))
""",
    "processes": r"""
if __name__ == "__main__":
    start = time.perf_counter()
    bm.sbc("y ~ x + (1 | g)", data, n=N, processes=2, **options)
    print(json.dumps({"sims": N, "inside": time.perf_counter() - start}))
""",
    "dask": r"""
if __name__ == "__main__":
    from distributed import Client, LocalCluster
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None)
    with cluster, Client(cluster) as c:
        start = time.perf_counter()
        bm.sbc("y ~ x + (1 | g)", data, n=N, client=c, **options)
        print(json.dumps({"sims": N, "inside": time.perf_counter() - start}))
""",
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sims", type=int, default=40, help="simulations per variant")
    parser.add_argument("--naive-sims", type=int, default=5, help="simulations of the naive loop")
    parser.add_argument("--only", nargs="*", default=list(VARIANTS))
    args = parser.parse_args()
    results = {}
    for name in args.only:
        n = args.naive_sims if name == "naive" else args.sims
        body = f"NAIVE_COMPILES = {name == 'naive'}\n" + (VARIANTS[name] or VARIANTS["naive"])
        script = os.path.join(os.path.dirname(__file__), f".simulations_{name}.py")
        with open(script, "w") as handle:  # spawned processes re-import the main script
            handle.write(SETUP + f"N = {n}\n" + body)
        try:
            results[name] = timed_process(name, [sys.executable, script], dict(os.environ))
        finally:
            os.remove(script)
        r = results[name]
        print(
            f"{name:10s} {r['sims']:4d} sims  process {r['process']:7.1f} s  inside {r['inside']:7.1f} s  "
            f"{60 * r['sims'] / r['process']:6.1f} sims/min",
            flush=True,
        )
    if "naive" in results:
        base = results["naive"]["sims"] / results["naive"]["process"]
        for name, r in results.items():
            print(f"{name:10s} rate / naive: {r['sims'] / r['process'] / base:5.1f}")


if __name__ == "__main__":
    main()
