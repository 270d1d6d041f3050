"""How well every summary parameter mixes: the automatic centred / non-centred choice per
term (bayesmm.model.parameterization) against every term non-centred, on the reference models of
the test suite and the gallery, 4 x 1000 draws at default settings; and, for the Gaussian
models, with the largest grouping factor's effects integrated out (collapsed=True; the
default for a Gaussian model with one grouping factor, which is then also fitted with its
effects sampled, collapsed=False).

Each fit runs in a fresh process (import, build, compile, sample, summary), the two
variants alternating per dataset and seed. Printed per fit: min bulk ESS and max R-hat over
the summary's parameters, divergences, leapfrog steps per draw and the process's wall time;
then per dataset the ratio auto / non-centred of the min ESS (medians over seeds) and of
min ESS per second.

    python benchmarks/mixing.py --seeds 1 2          # all datasets
    python benchmarks/mixing.py --only sleepstudy Penicillin --seeds 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

WORKER = r"""
import json, sys, time, warnings
warnings.simplefilter("ignore")
import numpy as np, pandas as pd
import bayesmm as bm
name, seed = sys.argv[1], int(sys.argv[3])
options = {"auto": {}, "noncentred": {"centered": False}, "collapsed": {"collapsed": True},
           "sampled": {"collapsed": False},
           "qr": {"decomp": "QR"}}[sys.argv[2]]

def informative_levels():
    # y ~ x + (1 | g), 100 rows per level: the case issue 14 measured at ESS 5 of 300.
    rng = np.random.default_rng(14)
    g = np.repeat(np.arange(20), 100)
    x = rng.normal(size=g.size)
    y = 1 + 0.5 * x + rng.normal(0, 1.0, 20)[g] + rng.normal(0, 0.5, g.size)
    return pd.DataFrame({"y": y, "x": x, "g": g.astype(str)})

def beta_levels():
    from scipy import special
    rng = np.random.default_rng(505)
    g = np.repeat(np.arange(30), 15)
    x = rng.normal(size=g.size)
    mu = special.expit(-0.4 + 0.8 * x + rng.normal(0, 0.4, 30)[g])
    return pd.DataFrame({"y": rng.beta(mu * 20, (1 - mu) * 20), "x": x, "g": g.astype(str)})

MODELS = {
    "sleepstudy": lambda: ("Reaction ~ Days + (Days | Subject)", bm.datasets.load("sleepstudy"), "gaussian"),
    "Penicillin": lambda: ("diameter ~ 1 + (1 | plate) + (1 | sample)", bm.datasets.load("Penicillin"),
                           "gaussian"),
    "Pastes": lambda: ("strength ~ 1 + (1 | batch/cask)", bm.datasets.load("Pastes"), "gaussian"),
    "cbpp": lambda: ("cbind(incidence, size - incidence) ~ period + (1 | herd)", bm.datasets.load("cbpp"),
                     "binomial"),
    "Arabidopsis": lambda: ("total.fruits ~ nutrient + (1 | gen)", bm.datasets.load("Arabidopsis"),
                            "poisson"),
    "grouseticks": lambda: ("TICKS ~ YEAR + cHEIGHT + (1 | BROOD) + (1 | LOCATION)",
                            bm.datasets.load("grouseticks").assign(YEAR=lambda d: d.YEAR.astype(str)),
                            "poisson"),
    "informative": lambda: ("y ~ x + (1 | g)", informative_levels(), "gaussian"),
    "beta": lambda: ("y ~ x + (1 | g)", beta_levels(), "beta"),
    "wine": lambda: ("rating ~ temp + contact + (1 | judge)", bm.datasets.load("wine", "ordinal"),
                     "cumulative"),
    "Dyestuff2": lambda: ("Yield ~ 1 + (1 | Batch)", bm.datasets.load("Dyestuff2"), "gaussian"),
    "epil": lambda: ("y ~ lbase * trt + lage + V4 + (1 | subject)", bm.datasets.load("epil", "MASS"),
                     "poisson"),
    "epil_nb": lambda: ("y ~ lbase * trt + lage + V4 + (1 | subject)", bm.datasets.load("epil", "MASS"),
                        "negativebinomial"),
    # MASS bacteria (issue 33): 4-5 Bernoulli rows per child.
    "bacteria": lambda: ("y ~ trt + I(week > 2) + (1 | ID)", bm.datasets.load("bacteria", "MASS"),
                         "bernoulli"),
    "Owls": lambda: ("SiblingNegotiation ~ (FoodTreatment + ArrivalTime) * SexParent + offset(log(BroodSize))"
                     " + (1 | Nest)", bm.datasets.load("Owls"), "zero_inflated_negbinomial", {"zi": "~ 1"}),
}
formula, data, family, *extra = MODELS[name]()
options.update(*extra)
start = time.perf_counter()
model = bm.Model(formula, data, family=family, **options)
fit = model.fit(random_seed=seed, progressbar=False)
table = fit.summary()
stats = fit.idata["sample_stats"]
print(json.dumps({
    "fit_seconds": time.perf_counter() - start,
    "centred": [bool(c) for c in model.centred],
    "min_ess": float(table["ess_bulk"].min()), "worst": str(table["ess_bulk"].idxmin()),
    "max_rhat": float(table["r_hat"].max()),
    "divergences": int(stats["diverging"].sum()),
    "steps": float(stats["n_steps"].mean()),
}))
"""

# Gaussian: also fitted with the largest grouping factor's effects integrated out.
COLLAPSIBLE = {"sleepstudy", "Penicillin", "Pastes", "informative", "Dyestuff2"}
# One grouping factor: the defaults integrate it out, so also fitted with it sampled.
ONE_FACTOR_GAUSSIAN = {"sleepstudy", "informative", "Dyestuff2"}
# Correlated fixed-effect columns: also fitted with decomp="QR".
DECOMPOSED = {"Owls"}
DATASETS = [
    "sleepstudy",
    "Penicillin",
    "Pastes",
    "cbpp",
    "Arabidopsis",
    "grouseticks",
    "informative",
    "beta",
    "Owls",
    "wine",
    "Dyestuff2",
    "epil",
    "epil_nb",
    "bacteria",
]


def run(name: str, variant: str, seed: int) -> dict:
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", WORKER, name, variant, str(seed)], capture_output=True, text=True
    )
    if out.returncode != 0:
        raise RuntimeError(f"{name} {variant} failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["process"] = time.perf_counter() - start
    return result


def _ratios(results: dict[str, list[dict]], variant: str = "auto") -> tuple[float, float]:
    """``variant`` / non-centred: the median min ESS, and the median min ESS per process-second."""

    def median(variant, value):
        return statistics.median(value(r) for r in results[variant])

    def ess(r):
        return r["min_ess"]

    def per_second(r):
        return r["min_ess"] / r["process"]

    return (median(variant, ess) / median("noncentred", ess),
            median(variant, per_second) / median("noncentred", per_second))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--only", nargs="+", default=DATASETS, choices=DATASETS)
    parser.add_argument("--defaults-only", action="store_true",
                        help="fit each model at the defaults (auto) only, without the ratios")  # fmt: skip
    args = parser.parse_args()
    print(
        "| dataset | seed | variant | centred | min bulk ESS (parameter) | max R-hat | divergences "
        "| steps/draw | process s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    ratios = {}
    for name in args.only:
        variants = (
            ("noncentred", "auto") + ("sampled",) * (name in ONE_FACTOR_GAUSSIAN)
            + ("collapsed",) * (name in COLLAPSIBLE - ONE_FACTOR_GAUSSIAN) + ("qr",) * (name in DECOMPOSED)
        )  # fmt: skip
        if args.defaults_only:
            variants = ("auto",)
        results = {v: [] for v in variants}
        for seed in args.seeds:
            for variant in variants:
                r = run(name, variant, seed)
                results[variant].append(r)
                print(f"| {name} | {seed} | {variant} | {r['centred']} | {r['min_ess']:.0f} ({r['worst']}) "
                      f"| {r['max_rhat']:.3f} | {r['divergences']} | {r['steps']:.1f} | {r['process']:.1f} |",
                      flush=True)  # fmt: skip

        for variant in variants[1:] if "noncentred" in results else ():
            ratios[(name, variant)] = _ratios(results, variant)
    print("\n| dataset | variant | min ESS / non-centred's | min ESS per process-second / non-centred's |")
    print("|---|---|---|---|")
    for (name, variant), (ess, per_s) in ratios.items():
        print(f"| {name} | {variant} | {ess:.2f} | {per_s:.2f} |")


if __name__ == "__main__":
    main()
