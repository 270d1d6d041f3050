"""What compiling costs, and what reusing compiled code buys: whole processes, two installs.

For each install (the current bayesmm, and baselines given as NAME=PYTHON or
NAME=PYTHON@SOURCE: another environment's python, e.g. the previous version on PyMC 5,
or this environment's python importing bayesmm from another checkout), alternating:

* cold: a fresh process with empty PyTensor/numba compile caches fits sleepstudy
  ``Reaction ~ Days + (Days | Subject)`` (4 x 1000 draws), then fits a second data set of the
  same shape (Reaction plus noise) in the same process;
* warm: the same again in a new process that finds the caches the cold run left.

Printed: whole-process wall time, the first fit's time and the second data set's fit time
(inside the process), medians over repeats, and each as a ratio to the baseline.

    python benchmarks/compile_reuse.py --baseline pymc5=/path/to/old/venv/bin/python --repeats 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile

from processes import timed_process

WORKER = r"""
import json, time, warnings
start = time.perf_counter()
import numpy as np
import bayesmm as bm
imported = time.perf_counter()
warnings.simplefilter("ignore")
data = bm.datasets.load("sleepstudy")
fit = bm.Model("Reaction ~ Days + (Days | Subject)", data).fit(random_seed=1, progressbar=False)
first = time.perf_counter()
other = data.assign(Reaction=data.Reaction + np.random.default_rng(2).normal(0, 10, len(data)))
fit2 = bm.Model("Reaction ~ Days + (Days | Subject)", other).fit(random_seed=1, progressbar=False)
second = time.perf_counter()
print(json.dumps({"import": imported - start, "first_fit": first - imported, "second_data": second - first,
                  "days": float(fit2.fixef()["mean"]["Days"]), "module": bm.__file__}))
"""


def run(install: str, cache: str) -> dict:
    python, _, source = install.partition("@")
    env = dict(
        os.environ, PYTENSOR_FLAGS=f"base_compiledir={cache}", NUMBA_CACHE_DIR=os.path.join(cache, "numba")
    )
    if source:  # import bayesmm from that checkout (PYTHONPATH comes before an editable install)
        env["PYTHONPATH"] = source
    # cwd: the cache folder, so that "-c" does not import bayesmm from the current directory
    return timed_process(install, [python, "-c", WORKER], env, cwd=cache)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", action="append", required=True, help="NAME=PYTHON[@SOURCE]; repeatable")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    installs = {"current": sys.executable, **dict(b.split("=", 1) for b in args.baseline)}
    results = {(name, state): [] for name in installs for state in ("cold", "warm")}
    for _ in range(args.repeats):
        for name, python in installs.items():
            with tempfile.TemporaryDirectory() as cache:
                results[(name, "cold")].append(run(python, cache))
                results[(name, "warm")].append(run(python, cache))
    keys = ("process", "import", "first_fit", "second_data")
    print(f"{'install':12} {'cache':5} " + " ".join(f"{k:>12}" for k in keys))
    medians = {}
    for name in installs:
        print(f"{name}: bayesmm from {results[(name, 'cold')][0]['module']}")
    for (name, state), runs in results.items():
        medians[(name, state)] = {k: statistics.median(r[k] for r in runs) for k in keys}
        print(f"{name:12} {state:5} " + " ".join(f"{medians[(name, state)][k]:11.1f}s" for k in keys))
    for baseline in list(installs)[1:]:
        print(f"\nratios current / {baseline} (same cache state):")
        for state in ("cold", "warm"):
            ratios = [medians[("current", state)][k] / medians[(baseline, state)][k] for k in keys]
            print(f"{state:5} " + " ".join(f"{k}={r:.2f}" for k, r in zip(keys, ratios, strict=True)))


if __name__ == "__main__":
    main()
