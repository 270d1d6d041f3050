"""Whole-process timing: bayesmm against a hand-written PyMC model of the same structure.

Model: lme4's sleepstudy, Reaction ~ Days + (Days | Subject), 4 chains x 1000
draws after 1000 tuning steps. Each variant runs as its own Python process
(import, data, graph construction, compilation, sampling, summary), the
variants alternate, and the report gives median wall times and their ratios to
the hand-written baseline run in the same invocation.

    python benchmarks/sleepstudy.py --repeats 3

Variants:
  bayesmm          bm.Model(...).fit() with its default sampler (nutpie when installed)
  pymc+nutpie      the hand-written model (same priors, non-centred, LKJ-Cholesky), nutpie
  pymc+pymc        the hand-written model with PyMC's own NUTS
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

BAYESMM = """
import bayesmm as bm
fit = bm.Model("Reaction ~ Days + (Days | Subject)", bm.datasets.load("sleepstudy")).fit(
    draws=1000, tune=1000, chains=4, random_seed=1, progressbar=False)
print(fit.summary().loc["Days", "mean"])
"""

HAND_WRITTEN = """
import numpy as np, pymc as pm, arviz as az
import bayesmm.datasets
df = bayesmm.datasets.load("sleepstudy")
y = df.Reaction.to_numpy(float); days = df.Days.to_numpy(float)
codes = df.Subject.cat.codes.to_numpy()
s = 1.4826 * np.median(np.abs(y - np.median(y)))
with pm.Model() as model:
    intercept_c = pm.StudentT("Intercept_c", nu=3.0, mu=float(np.median(y)), sigma=s)
    b = pm.Normal("b", 0.0, 2.5 * y.std() / days.std())
    chol, corr, sds = pm.LKJCholeskyCov("chol", n=2, eta=1.0, compute_corr=True,
                                        sd_dist=pm.HalfStudentT.dist(nu=3.0, sigma=s, shape=2))
    z = pm.Normal("z", 0.0, 1.0, shape=(18, 2))
    r = z @ chol.T
    mu = intercept_c + b * (days - days.mean()) + r[codes, 0] + r[codes, 1] * days
    sigma = pm.HalfStudentT("sigma", nu=3.0, sigma=s)
    pm.Normal("Reaction", mu, sigma, observed=y)
    idata = pm.sample(1000, tune=1000, chains=4, random_seed=1, progressbar=False, nuts_sampler="{sampler}")
print(az.summary(idata, var_names=["b"])["mean"].iloc[0])
"""

VARIANTS = {
    "bayesmm": BAYESMM,
    "pymc+nutpie": HAND_WRITTEN.replace("{sampler}", "nutpie"),
    "pymc+pymc": HAND_WRITTEN.replace("{sampler}", "pymc"),
}


def run_once(code: str) -> float:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args()

    times: dict[str, list[float]] = {name: [] for name in args.variants}
    for repeat in range(args.repeats):
        for name in args.variants:
            seconds = run_once(VARIANTS[name])
            times[name].append(seconds)
            print(f"run {repeat + 1}: {name:12s} {seconds:6.1f} s", flush=True)

    print("\nmedian wall time of the whole process, and ratio to each baseline (lower is faster):")
    baselines = [b for b in ("pymc+nutpie", "pymc+pymc") if b in times]
    header = f"{'variant':12s} {'first':>7s} {'median':>7s}" + "".join(
        f"  {'/ ' + b:>14s}" for b in baselines
    )
    print(header)
    for name, values in times.items():
        median = statistics.median(values)
        ratios = "".join(f"  {median / statistics.median(times[b]):14.2f}" for b in baselines)
        print(f"{name:12s} {values[0]:7.1f} {median:7.1f}{ratios}")


if __name__ == "__main__":
    main()
