"""bayesmm against bambi with nutpie: whole processes, the same machine, the same run.

bambi is not a dependency of bayesmm: give the python of another environment that has it
(bambi 0.21 installs beside PyMC 6 on Python 3.12):

    python3 -m venv /tmp/bambi-venv && /tmp/bambi-venv/bin/pip install bambi==0.21.0 nutpie
    python benchmarks/vs_bambi.py --bambi /tmp/bambi-venv/bin/python --repeats 2

Model: lme4's sleepstudy, 4 chains x 1000 draws after 1000 tuning steps, each package's
default sampler (bayesmm's own NUTS since stop 43; bambi with nutpie).

* ``bayesmm``: ``Reaction ~ Days + (Days | Subject)``, correlated intercepts and slopes, at
  the defaults (since stop 29 the subjects' effects are integrated out and drawn
  afterwards, bayesmm.model.collapsed);
* ``sampled``: the same with ``collapsed=False`` (the effects sampled by NUTS);
* ``bayesmm||``: ``Reaction ~ Days + (Days || Subject)``, the model bambi fits (defaults);
* ``bambi``: bambi's ``Reaction ~ Days + (Days | Subject)``, whose group-specific terms are
  uncorrelated.

Each variant runs in a fresh process with empty PyTensor/numba compile caches (``cold``: a
first fit on a new machine), then in a new process that finds the caches the cold one left
(``warm``: a later process fitting the same structure); the variants alternate. Printed:
the process's wall time, ``first`` (the process less bayesmm's refit: the time to a first
fit's results, which the ratios compare), its import and fit times, the min bulk ESS over the posterior's
variables, and, for bayesmm, a refit on new data of the same shape in the same process
(``fit.update(data=...)``) with the sampling time inside it; then the ratios to bambi.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile

from processes import timed_process

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bayesmm", "data", "sleepstudy.csv")

BAYESMM = r"""
import json, sys, time, warnings
start = time.perf_counter()
import numpy as np
import bayesmm as bm
imported = time.perf_counter()
warnings.simplefilter("ignore")
data = bm.datasets.load("sleepstudy")
fit = bm.Model(sys.argv[1], data, **json.loads(sys.argv[3])).fit(random_seed=1, progressbar=False)
fitted = time.perf_counter()
from arviz_stats import ess as bulk_ess  # loaded by the fit; arviz itself would add matplotlib
ess = min(float(v.min()) for v in bulk_ess(fit.idata.posterior).data_vars.values())
other = data.assign(Reaction=data.Reaction + np.random.default_rng(2).normal(0, 10, len(data)))
refit = fit.update(data=other, random_seed=2, progressbar=False)
updated = time.perf_counter()
print(json.dumps({"import": imported - start, "fit": fitted - imported, "min_ess": ess,
                  "update": updated - fitted,
                  "update_sampling": float(refit.idata.posterior.attrs["sampling_time"]),
                  "days": float(fit.fixef()["mean"]["Days"])}))
"""

BAMBI = r"""
import json, sys, time, warnings
start = time.perf_counter()
import pandas as pd
import arviz as az
import bambi as bmb
imported = time.perf_counter()
warnings.simplefilter("ignore")
data = pd.read_csv(sys.argv[2])
data["Subject"] = data["Subject"].astype(str)
idata = bmb.Model(sys.argv[1], data).fit(draws=1000, tune=1000, chains=4, inference_method="nutpie",
                                         random_seed=1, progressbar=False)
fitted = time.perf_counter()
ess = min(float(v.min()) for v in az.ess(idata.posterior).data_vars.values())
print(json.dumps({"import": imported - start, "fit": fitted - imported, "min_ess": ess,
                  "days": float(idata.posterior["Days"].mean())}))
"""

VARIANTS = {
    "bayesmm": (BAYESMM, "Reaction ~ Days + (Days | Subject)", {}),
    "sampled": (BAYESMM, "Reaction ~ Days + (Days | Subject)", {"collapsed": False}),
    "bayesmm||": (BAYESMM, "Reaction ~ Days + (Days || Subject)", {}),
    "bambi": (BAMBI, "Reaction ~ Days + (Days | Subject)", {}),
}


def run(python: str, variant: str, cache: str) -> dict:
    script, formula, options = VARIANTS[variant]
    env = dict(
        os.environ, PYTENSOR_FLAGS=f"base_compiledir={cache}", NUMBA_CACHE_DIR=os.path.join(cache, "numba")
    )
    # As on a user's machine, Python keeps the bytecode of what it imports (this machine's
    # environment sets PYTHONDONTWRITEBYTECODE, so an editable checkout was compiled from
    # source in every process: 0.15 s of bayesmm's modules; installed packages have theirs).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    command = [python, "-c", script, formula, os.path.abspath(DATA), json.dumps(options)]
    return timed_process(variant, command, env)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bambi", required=True, help="the python of an environment with bambi and nutpie")
    parser.add_argument("--bayesmm", default=sys.executable,
                        help="the python of an environment with bayesmm (default: this one). The README's "
                             "`pip install -e .` is the user's install; the [test] extra adds dask, which "
                             "xarray imports when the fit's results are made (0.3 s)")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    pythons = {v: args.bambi if v == "bambi" else args.bayesmm for v in VARIANTS}
    results: dict = {(v, s): [] for v in VARIANTS for s in ("cold", "warm")}
    for _ in range(args.repeats):
        for variant, python in pythons.items():
            with tempfile.TemporaryDirectory() as cache:
                for state in ("cold", "warm"):
                    results[(variant, state)].append(run(python, variant, cache))
                    print(variant, state, json.dumps(results[(variant, state)][-1]), flush=True)
    for runs in results.values():
        for r in runs:  # the refit is extra work bambi's process does not do
            r["first"] = r["process"] - r.get("update", 0.0)
    keys = ("process", "first", "import", "fit", "min_ess", "update", "update_sampling")
    medians = {}
    print(f"\n{'variant':10} {'cache':5} " + " ".join(f"{k:>15}" for k in keys))
    for (variant, state), runs in results.items():
        medians[(variant, state)] = {
            k: statistics.median(r[k] for r in runs) if k in runs[0] else float("nan") for k in keys
        }
        print(f"{variant:10} {state:5} " + " ".join(f"{medians[(variant, state)][k]:15.1f}" for k in keys))
    print("\nratios to bambi (same cache state): time to the first fit's results (the process less the"
          " refit), min ESS, min ESS per second")  # fmt: skip
    for variant in [v for v in VARIANTS if v != "bambi"]:
        for state in ("cold", "warm"):
            ours, theirs = medians[(variant, state)], medians[("bambi", state)]
            time_ratio = ours["first"] / theirs["first"]
            ess_ratio = ours["min_ess"] / theirs["min_ess"]
            print(f"{variant:10} {state:5} time {time_ratio:.2f}  ESS {ess_ratio:.2f}  "
                  f"ESS/s {ess_ratio / time_ratio:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
