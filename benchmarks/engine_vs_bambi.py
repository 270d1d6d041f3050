"""bayesmm's engine against bambi with nutpie on the GLMMs of issue 38: whole processes, the
same machine, the same run, interleaved.

bambi is not a dependency of bayesmm: give the python of another environment that has it
(bambi 0.21 installs beside PyMC 6 on Python 3.12; run from the repository so that
``python3`` is 3.12):

    python3 -m venv /tmp/bambi-venv && /tmp/bambi-venv/bin/pip install bambi==0.21.0 nutpie
    python benchmarks/engine_vs_bambi.py --bambi /tmp/bambi-venv/bin/python --repeats 2

Each model is fitted by both, 4 chains x 1000 draws after 1000 tuning steps, at each
package's defaults (bayesmm's own NUTS since stop 43; bambi with nutpie), from the same CSV
file (bayesmm's copy of the R dataset, grouping columns as text, VerbAgg's response as 0/1,
Arabidopsis's ``total.fruits`` renamed ``total_fruits``). Each fit runs in a fresh process
with empty PyTensor and numba caches (``cold``: a first fit on a new machine), then in a new
process that finds the caches the cold one left (``warm``). Printed per model: the median
process time of each, the min bulk ESS over every posterior variable (group effects
included) and the ratios: time (bayesmm / bambi; lower is better), ESS and ESS per second
(higher is better).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile

from processes import timed_process

# name: (bayesmm formula, bambi formula, family)
MODELS = {
    "cbpp": (
        "cbind(incidence, size - incidence) ~ period + (1 | herd)",
        "p(incidence, size) ~ period + (1|herd)",
        "binomial",
    ),
    "grouseticks": (
        "TICKS ~ YEAR + HEIGHT + (1 | BROOD) + (1 | LOCATION)",
        "TICKS ~ YEAR + HEIGHT + (1|BROOD) + (1|LOCATION)",
        "poisson",
    ),
    "Penicillin": (
        "diameter ~ 1 + (1 | plate) + (1 | sample)",
        "diameter ~ 1 + (1|plate) + (1|sample)",
        "gaussian",
    ),
    "Arabidopsis": ("total_fruits ~ nutrient + (1 | gen)", "total_fruits ~ nutrient + (1|gen)", "poisson"),
    "VerbAgg": (
        "r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)",
        "r2 ~ Anger + Gender + btype + situ + (1|id) + (1|item)",
        "bernoulli",
    ),
}
TEXT = {
    "cbpp": ["herd", "period"],
    "grouseticks": ["BROOD", "LOCATION", "YEAR"],
    "Penicillin": ["plate", "sample"],
    "Arabidopsis": ["gen", "nutrient"],
    "VerbAgg": ["id", "item", "Gender", "btype", "situ"],
}

BAYESMM = r"""
import json, sys, time, warnings
start = time.perf_counter()
import pandas as pd
import bayesmm as bm
imported = time.perf_counter()
warnings.simplefilter("ignore")
formula, path, family = sys.argv[1], sys.argv[2], sys.argv[3]
data = pd.read_csv(path, dtype={c: str for c in json.loads(sys.argv[4])})
fit = bm.Model(formula, data, family=family).fit(random_seed=int(sys.argv[5]), progressbar=False)
fitted = time.perf_counter()
from arviz_stats import ess as bulk_ess
ess = min(float(v.min()) for v in bulk_ess(fit.idata.posterior).data_vars.values())
print(json.dumps({"import": imported - start, "fit": fitted - imported, "min_ess": ess,
                  "by": fit.idata.attrs.get("compiled_by")}))
"""

BAMBI = r"""
import json, sys, time, warnings
start = time.perf_counter()
import pandas as pd
import arviz as az
import bambi as bmb
imported = time.perf_counter()
warnings.simplefilter("ignore")
formula, path, family = sys.argv[1], sys.argv[2], sys.argv[3]
data = pd.read_csv(path, dtype={c: str for c in json.loads(sys.argv[4])})
model = bmb.Model(formula, data, family=family)
idata = model.fit(draws=1000, tune=1000, chains=4, inference_method="nutpie", random_seed=int(sys.argv[5]),
                  progressbar=False)
fitted = time.perf_counter()
ess = min(float(v.min()) for v in az.ess(idata.posterior).data_vars.values())
print(json.dumps({"import": imported - start, "fit": fitted - imported, "min_ess": ess}))
"""


# What a fit process imports before it builds anything (since stop 43 a bayesmm fit on the
# engine no longer imports nutpie, since stop 44 a fit the template writes no PyMC; ESS needs
# arviz_stats in both, and bayesmm's design scipy.stats).
FLOOR = {
    "bayesmm": "import json, pandas, formulaic, scipy.stats, arviz_stats; print(json.dumps({}))",
    "bambi": "import json, pandas, arviz, bambi, nutpie; print(json.dumps({}))",
}


def write_data(folder: str) -> dict[str, str]:
    """Each model's CSV file, from bayesmm's copies of the R datasets."""
    import bayesmm as bm

    paths = {}
    for name in MODELS:
        data = bm.datasets.load(name).copy()
        if name == "VerbAgg":
            data["r2"] = (data["r2"].astype(str) == "Y").astype(int)
        if name == "Arabidopsis":
            data = data.rename(columns={"total.fruits": "total_fruits"})
        for column in TEXT[name]:
            data[column] = data[column].astype(str)
        paths[name] = os.path.join(folder, f"{name}.csv")
        data.to_csv(paths[name], index=False)
    return paths


def run(python: str, script: str, formula: str, path: str, family: str, text: list, cache: str,
        seed: int = 1) -> dict:
    env = dict(
        os.environ, PYTENSOR_FLAGS=f"base_compiledir={cache}", NUMBA_CACHE_DIR=os.path.join(cache, "numba")
    )
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as on a user's machine (see vs_bambi.py)
    arguments = [formula, path, family, json.dumps(text), str(seed)]
    return timed_process(formula, [python, "-c", script, *arguments], env)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bambi", required=True, help="the python of an environment with bambi and nutpie")
    parser.add_argument("--bayesmm", default=sys.executable)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--only", nargs="*", default=list(MODELS))
    parser.add_argument("--seed", type=int, default=1, help="both packages' random_seed")
    args = parser.parse_args()
    results: dict = {}
    with tempfile.TemporaryDirectory() as folder:
        paths = write_data(folder)
        for _ in range(args.repeats):
            for who, python in (("bayesmm", args.bayesmm), ("bambi", args.bambi)):
                r = timed_process(f"{who} floor", [python, "-c", FLOOR[who]], dict(os.environ))
                results.setdefault(("floor", who), []).append(r["process"])
                print("floor", who, json.dumps(r), flush=True)
            for name in args.only:
                ours, theirs, family = MODELS[name]
                for who, python, script, formula in (
                    ("bayesmm", args.bayesmm, BAYESMM, ours),
                    ("bambi", args.bambi, BAMBI, theirs),
                ):
                    with tempfile.TemporaryDirectory() as cache:
                        for state in ("cold", "warm"):
                            r = run(python, script, formula, paths[name], family, TEXT[name], cache,
                                    args.seed)
                            results.setdefault((name, who, state), []).append(r)
                            print(name, who, state, json.dumps(r), flush=True)
    print(
        f"\n{'model':12} {'cache':5} {'bayesmm s':>10} {'bambi s':>9} {'time':>6} {'ESS ours':>9} "
        f"{'ESS bambi':>9} {'ESS':>6} {'ESS/s':>6}"
    )
    for name in args.only:
        for state in ("cold", "warm"):
            ours = {
                k: statistics.median(r[k] for r in results[(name, "bayesmm", state)])
                for k in ("process", "min_ess")
            }
            theirs = {
                k: statistics.median(r[k] for r in results[(name, "bambi", state)])
                for k in ("process", "min_ess")
            }
            time_ratio = ours["process"] / theirs["process"]
            ess_ratio = ours["min_ess"] / theirs["min_ess"]
            print(
                f"{name:12} {state:5} {ours['process']:10.1f} {theirs['process']:9.1f} {time_ratio:6.2f} "
                f"{ours['min_ess']:9.0f} {theirs['min_ess']:9.0f} {ess_ratio:6.2f} "
                f"{ess_ratio / time_ratio:6.2f}"
            )
    floor = {who: statistics.median(results[("floor", who)]) for who in ("bayesmm", "bambi")}
    print(
        f"\nfloor (imports and exit, nothing built): bayesmm {floor['bayesmm']:.2f} s, "
        f"bambi {floor['bambi']:.2f} s"
    )
    for name in args.only:
        warm = statistics.median(r["process"] for r in results[(name, "bambi", "warm")])
        print(
            f"{name:12} 0.3 x bambi's warm process: {0.3 * warm:.2f} s (bayesmm's floor / it: "
            f"{floor['bayesmm'] / (0.3 * warm):.2f})"
        )


if __name__ == "__main__":
    main()
