"""Command line: ``bayesmm demo`` (a random-slopes fit on the bundled sleepstudy data) and
``bayesmm fit DATA.csv "FORMULA"`` (any model on a CSV file)."""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import warnings
from pathlib import Path

DEMO_FORMULA = "Reaction ~ Days + (Days | Subject)"


# The demo's plots: caterpillar, trace, 2-D shrinkage, posterior predictive check.
DEMO_PLOTS = ("ranef_Subject.png", "trace.png", "shrinkage_Subject.png", "ppc.png")

def _save(figure, path: Path, **options) -> None:
    """A PNG written atomically: Ctrl-C or a kill mid-write keeps an earlier file intact."""
    from bayesmm.files import write_atomically

    write_atomically(path, lambda temporary: figure.savefig(temporary, format="png", **options))


def _demo(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import bayesmm as bm
    from bayesmm.results.plots import plot_ranef

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
    _save(axes[0].figure, out / DEMO_PLOTS[0], dpi=110)
    _save(fit.plot_trace(), out / DEMO_PLOTS[1], dpi=90)
    ax = fit.plot_shrinkage("Subject", terms=("Intercept", "Days"))
    _save(ax.figure, out / DEMO_PLOTS[2], dpi=100, bbox_inches="tight")
    ax = fit.plot_ppc()
    _save(ax.figure, out / DEMO_PLOTS[3], dpi=100, bbox_inches="tight")
    plt.close("all")
    print(f"\nwrote {', '.join(str(out / name) for name in DEMO_PLOTS)}")
    return 0


def _check_data_file(name: str, sep: str) -> Path:
    """The data file, checked before anything heavy is imported: it exists, is a file, has a
    header row, and is separated by ``sep`` (a semicolon-separated file is named as such)."""
    path = Path(name)
    if not path.exists():
        raise ValueError(f"no such data file: {path}")
    if path.is_dir():
        raise ValueError(f"{path} is a folder; give the CSV file inside it")
    try:
        with path.open(encoding="utf-8-sig") as handle:
            header = handle.readline()
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a text (CSV) file") from None
    if not header.strip():
        raise ValueError(f"{path} is empty (a CSV file with a header row is needed)")
    if sep not in header:
        for other, label in ((";", "semicolons"), ("\t", "tabs"), ("|", "'|'")):
            if other != sep and other in header:
                raise ValueError(f"{path} looks separated by {label}, not {sep!r}: add --sep {repr(other)}")
    return path


def _fit(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import pandas as pd

    import bayesmm as bm
    from bayesmm.results.persist import write_idata

    path = _check_data_file(args.data, args.sep)
    data = pd.read_csv(path, sep=args.sep)
    parts = {name: getattr(args, name) for name in ("zi", "hu", "dispersion") if getattr(args, name)}
    options = {"family": args.family, "link": args.link, "collapsed": args.collapsed, "trials": args.trials}
    priors = {name: _prior(name, dist, values) for name, dist, values in map(_prior_syntax, args.prior)}
    model = bm.Model(args.formula, data, priors=priors or None, **options, **parts)
    with warnings.catch_warnings():
        # The checks are printed below, once; the fit's own warning would repeat them.
        warnings.simplefilter("ignore", bm.DiagnosticWarning)
        tune = args.draws if args.tune is None else args.tune
        fit = model.fit(draws=args.draws, tune=tune, chains=args.chains, cores=args.cores,
                        sampler=args.sampler, target_accept=args.target_accept, random_seed=args.seed,
                        progressbar=not args.quiet)  # fmt: skip
    print(fit)
    print()
    print(fit.diagnose().details())

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_idata(fit.idata, out / "idata.nc")  # atomic: an interrupted run keeps an earlier file
    written = ["idata.nc"]
    _save(fit.plot_trace(), out / "trace.png", dpi=80)
    written.append("trace.png")
    for group in fit.design.groups:
        ax = fit.plot_shrinkage(group)
        _save(ax.figure, out / f"shrinkage_{group.replace(':', '_')}.png", dpi=100, bbox_inches="tight")
        written.append(f"shrinkage_{group.replace(':', '_')}.png")
    ax = fit.plot_ppc()  # a rootogram for counts
    _save(ax.figure, out / "ppc.png", dpi=100, bbox_inches="tight")
    written.append("ppc.png")
    print(f"\nwrote {', '.join(written)} to {out}")
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

    fit = sub.add_parser(
        "fit",
        help="fit a model to a CSV file and write the summary, the posterior and standard plots",
        description="Fit FORMULA to the CSV file DATA; print the summary and diagnostics; write the "
        "InferenceData (idata.nc), a trace plot, a shrinkage plot per grouping factor and a posterior "
        "predictive check to --out.",
    )
    fit.add_argument("data", help="CSV file with a header row")
    fit.add_argument("formula", help='lme4/brms-style formula, e.g. "y ~ x + (1 + x | g)"')
    fit.add_argument("--family", default="gaussian", help="response family (default gaussian)")
    fit.add_argument("--link", default=None, help="a non-default link, e.g. probit")
    fit.add_argument("--zi", default=None, help='zero-inflation formula, e.g. "~ x + (1 | g)"')
    fit.add_argument("--hu", default=None, help="hurdle formula")
    fit.add_argument("--dispersion", default=None, help="formula for the family's scale parameter")
    collapse = fit.add_mutually_exclusive_group()
    collapse.add_argument(
        "--collapsed", action="store_const", const=True, default="auto",
        help="integrate a Gaussian model's group effects out, drawn afterwards (Model(collapsed=True); "
             "by default a model with one grouping factor is)",
    )  # fmt: skip
    collapse.add_argument(
        "--sampled", dest="collapsed", action="store_const", const=False,
        help="sample every group effect with NUTS (Model(collapsed=False))",
    )  # fmt: skip
    fit.add_argument(
        "--trials", default=None, help="the column of binomial trials (or write cbind(s, f) ~ ...)"
    )
    fit.add_argument(
        "--prior", action="append", default=[], metavar="NAME=DIST(ARGS)",
        help="a prior by parameter or class name, PyMC's parameter order or names, e.g. "
        "--prior 'b=Normal(0, 5)' --prior 'sd(Subject)=HalfStudentT(nu=3, sigma=10)'; repeatable",
    )  # fmt: skip
    fit.add_argument("--sep", default=",", help="the CSV file's column separator (default ',')")
    fit.add_argument("--draws", type=int, default=1000, help="draws per chain (default 1000)")
    fit.add_argument(
        "--tune", type=int, default=None, help="tuning steps per chain (default: as many as --draws)"
    )
    fit.add_argument("--chains", type=int, default=4)
    fit.add_argument(
        "--cores", type=int, default=None, help="processes for PyMC's sampler (default: one per chain)"
    )
    fit.add_argument("--target-accept", type=float, default=None,
                     help="NUTS's target acceptance in (0, 1); raise it (0.95) on divergences (default: "
                          "0.95 when a grouping factor has fewer than 10 levels, else 0.8)")  # fmt: skip
    fit.add_argument("--sampler", default="auto",
                     choices=["auto", "bayesmm", "nutpie", "pymc", "numpyro", "blackjax"])  # fmt: skip
    fit.add_argument("--seed", type=int, default=None)
    fit.add_argument("--out", default="bayesmm-fit", help="folder for idata.nc and the plots")
    fit.add_argument("--quiet", action="store_true", help="no progress bar")
    fit.set_defaults(run=_fit)
    return parser


def _check_numbers(args: argparse.Namespace) -> None:
    """Argument errors answer at once, before PyMC is imported."""
    if args.draws < 1:
        raise ValueError(f"--draws must be 1 or more, got {args.draws}")
    if args.chains < 1:
        raise ValueError(f"--chains must be 1 or more, got {args.chains}")
    if args.seed is not None and args.seed < 0:
        raise ValueError(f"--seed must be 0 or more, got {args.seed}")
    if getattr(args, "tune", None) is not None and args.tune < 0:
        raise ValueError(f"--tune must be 0 or more, got {args.tune}")
    if getattr(args, "cores", None) is not None and args.cores < 1:
        raise ValueError(f"--cores must be 1 or more, got {args.cores}")
    if getattr(args, "target_accept", None) is not None and not 0 < args.target_accept < 1:
        raise ValueError(f"--target-accept must lie between 0 and 1, got {args.target_accept}")
    for text in getattr(args, "prior", []):
        _prior_syntax(text)


_PRIOR = re.compile(r"^\s*(?P<name>[^=]+?)\s*=\s*(?P<dist>[A-Za-z_][A-Za-z0-9_]*)\s*\((?P<args>[^()]*)\)\s*$")
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


def _prior_syntax(text: str) -> tuple[str, str, list[tuple[str | None, float]]]:
    """NAME=DIST(ARGS) read as data: a name, a distribution name and numbers, positional or
    keyword (``Normal(0, 5)``, ``HalfStudentT(nu=3, sigma=10)``); nothing is evaluated."""
    match = _PRIOR.match(text)
    if not match:
        raise ValueError(f"--prior takes NAME=DIST(ARGS), e.g. 'b=Normal(0, 5)'; got {text!r}")
    values = []
    for item in filter(None, (a.strip() for a in match["args"].split(","))):
        key, _, number = item.rpartition("=")
        if not re.fullmatch(_NUMBER, number.strip()) or (key and not key.strip().isidentifier()):
            raise ValueError(f"--prior {text!r}: the arguments of {match['dist']} are numbers, as 0, 5 or "
                             f"sigma=5; got {item!r}")  # fmt: skip
        values.append((key.strip() or None, float(number)))
    named = [k is not None for k, _ in values]
    if True in named and not all(named[named.index(True) :]):
        raise ValueError(f"--prior {text!r}: positional arguments come before keyword ones")
    return match["name"], match["dist"], values


def _prior(name: str, dist: str, values: list[tuple[str | None, float]]):
    """The Prior of a --prior option: the distribution matched to PyMC's name regardless of case
    and underscores (``student_t`` is StudentT), positional numbers in PyMC's parameter order."""
    import inspect

    import pymc as pm

    import bayesmm as bm

    wanted = dist.replace("_", "").lower()
    names = {n.lower(): n for n in dir(pm) if isinstance(getattr(pm, n), type)}
    names["lkj"] = "LKJ"
    pymc_name = names.get(wanted, dist)
    keywords = {k: v for k, v in values if k}
    positional = [v for k, v in values if k is None]
    if positional:
        if pymc_name == "LKJ":
            order = ["eta"]
        else:
            cls = getattr(pm, pymc_name, None)
            if cls is None or not hasattr(cls, "dist"):
                raise ValueError(f"--prior {name}={dist}(...): '{dist}' is not a PyMC distribution")
            order = [p for p in inspect.signature(cls.dist).parameters if p not in ("args", "kwargs", "cls")]
        if len(positional) > len(order):
            raise ValueError(f"--prior {name}={dist}(...): {pymc_name} takes at most {len(order)} numbers")
        keywords = {**dict(zip(order, positional, strict=False)), **keywords}
    return bm.Prior(pymc_name, **keywords)


def _stop_on_ctrl_c() -> None:
    """Ctrl-C ends the command at once with one line and exit status 130, wherever it lands
    (importing, compiling, sampling, plotting). Unwinding a KeyboardInterrupt through
    compiled code can crash the process instead; and nothing half-written survives, since
    idata.nc is written under a temporary name and renamed when complete."""

    def stop(signum, frame):
        sys.stderr.write("bayesmm: interrupted\n")
        sys.stderr.flush()
        os._exit(130)

    try:
        signal.signal(signal.SIGINT, stop)
    except ValueError:  # not the main thread (main() called from a test or a notebook thread)
        pass


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings on the command line are one line each, without Python's source line."""
    print(f"bayesmm: warning: {' '.join(str(message).split())}", file=sys.stderr if file is None else file)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if argv is None:  # run as the bayesmm command, not called from Python
        _stop_on_ctrl_c()
    try:
        _check_numbers(args)
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning  # restored on leaving the block
            return args.run(args)
    except (ValueError, KeyError, TypeError) as err:
        if os.environ.get("BAYESMM_DEBUG"):
            raise
        print(f"bayesmm: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bayesmm: interrupted", file=sys.stderr)
        return 130


def _one_line(err: Exception) -> str:
    """Errors are one line on the command line; a formula error names the column it points at."""
    from .spec.formula import FormulaSyntaxError

    text = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
    if isinstance(err, FormulaSyntaxError):
        return f"{str(err).splitlines()[0]} (at character {err.start + 1} of {err.formula!r})"
    return " ".join(str(text).split())
