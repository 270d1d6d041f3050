"""Command line: ``bayesmm demo`` fits a random-slopes model on the bundled sleepstudy data."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

DEMO_FORMULA = "Reaction ~ Days + (Days | Subject)"


def _demo(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import arviz as az
    import matplotlib.pyplot as plt

    import bayesmm as bm
    from bayesmm.plots import plot_ranef

    data = bm.datasets.load("sleepstudy")
    print(f"bayesmm demo: {DEMO_FORMULA} on lme4's sleepstudy ({len(data)} rows)\n")
    model = bm.Model(DEMO_FORMULA, data)
    print(model, "\n")
    fit = model.fit(
        draws=args.draws,
        tune=args.draws,
        chains=args.chains,
        random_seed=args.seed,
        progressbar=not args.quiet,
    )
    print(fit)
    print("\nCoefficients per subject (posterior means, first 5):")
    print(fit.coef("Subject")["mean"].head().to_string(float_format=lambda v: f"{v:.2f}"))

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    axes = plot_ranef(fit, "Subject")
    axes[0].figure.tight_layout()
    axes[0].figure.savefig(out / "ranef_Subject.png", dpi=110)
    az.plot_trace(fit.idata, var_names=["fixef", "sd_Subject", "cor_Subject", "sigma"], compact=False)
    plt.tight_layout()
    plt.savefig(out / "trace.png", dpi=90)
    print(f"\nwrote {out / 'ranef_Subject.png'} and {out / 'trace.png'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bayesmm", description="Bayesian GLMMs with lme4/brms formulas.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help=f"fit {DEMO_FORMULA} on the bundled sleepstudy data")
    demo.add_argument("--draws", type=int, default=1000, help="draws (and tuning steps) per chain")
    demo.add_argument("--chains", type=int, default=4)
    demo.add_argument("--seed", type=int, default=1)
    demo.add_argument("--out", default="bayesmm-demo", help="folder for the plots")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    demo.set_defaults(run=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, KeyError, TypeError) as err:
        if os.environ.get("BAYESMM_DEBUG"):
            raise
        print(f"bayesmm: error: {err}", file=sys.stderr)
        return 2
