"""What the graph phase costs a whole process: a fit as bayesmm runs it, against the same fit
whose engine programs come ready-made (issue 38's estimate of a program built from the design,
without PyMC's log-density graph, its gradient graph and PyTensor's rewriting).

    python benchmarks/graph_phase.py --repeats 4
    python benchmarks/graph_phase.py --python /tmp/bm-venv/bin/python   # bayesmm as users install it

For each model one process translates the model as a fit does and saves the engine's two
programs and the layout (``native._engine_run``'s result, numbers only); then fresh processes
alternate: ``graph``, the fit as it is, and ``ready``, the same fit with ``native._engine_run``
returning the saved programs, so that everything else (the data, the design, the PyMC model,
the starting points, nutpie's sampling and the draws) is the same: both print the same min
bulk ESS, the same draws. Printed per model: each variant's process times, their medians and
the difference.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile

from processes import timed_process

# name: (formula, family, the columns read as text, as engine_vs_bambi.py reads them)
MODELS = {
    "Penicillin": ("diameter ~ 1 + (1 | plate) + (1 | sample)", "gaussian", ["plate", "sample"]),
    "Arabidopsis": ("total.fruits ~ nutrient + (1 | gen)", "poisson", ["gen", "nutrient"]),
    "cbpp": ("cbind(incidence, size - incidence) ~ period + (1 | herd)", "binomial", ["herd", "period"]),
}

SCRIPT = r"""
import json, pickle, sys, warnings
import bayesmm as bm
warnings.simplefilter("ignore")
name, formula, family, text, mode, path = sys.argv[1:7]
data = bm.datasets.load(name).astype({column: str for column in json.loads(text)})
if mode == "save":
    from bayesmm.inference import native, sampling
    model = bm.Model(formula, data, family=family)
    shared = sampling.data_model(model.sampled_model, model.design.n_obs)
    run = native._engine_run(shared.model, native.StartingPoints(shared.model, shared.shared))
    with open(path, "wb") as file:
        pickle.dump({"layout": run.graphs.layout, "logp": (run.logp.ints, run.logp.floats),
                     "expand": (run.expand.ints, run.expand.floats)}, file)
    print(json.dumps({}))
    sys.exit()
if mode == "ready":
    from bayesmm.inference import engine, native
    with open(path, "rb") as file:
        saved = pickle.load(file)

    def ready(pymc_model, starting):
        layout = saved["layout"]
        logp, expand = (engine.Program(*saved[part], layout) for part in ("logp", "expand"))
        return native.EngineRun(engine.Graphs(None, [], layout), starting, logp, expand)

    native._engine_run = ready
fit = bm.Model(formula, data, family=family).fit(random_seed=1, progressbar=False)
from arviz_stats import ess
print(json.dumps({"min_ess": min(float(v.min()) for v in ess(fit.idata.posterior).data_vars.values()),
                  "by": fit.idata.attrs["compiled_by"]}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--python", default=sys.executable, help="the python of the environment with bayesmm")
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--only", nargs="*", default=list(MODELS))
    args = parser.parse_args()
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    with tempfile.TemporaryDirectory() as folder:
        for name in args.only:
            formula, family, text = MODELS[name]
            path = os.path.join(folder, f"{name}.pickle")

            def run(mode, name=name, formula=formula, family=family, text=text, path=path):
                command = [args.python, "-c", SCRIPT, name, formula, family, json.dumps(text), mode, path]
                return timed_process(f"{name} {mode}", command, env)

            run("save")
            times: dict[str, list[float]] = {"graph": [], "ready": []}
            ess = {}
            for _ in range(args.repeats):
                for mode in times:
                    result = run(mode)
                    times[mode].append(result["process"])
                    ess[mode] = result["min_ess"]
                    assert result["by"] == "engine", result
            medians = {mode: statistics.median(values) for mode, values in times.items()}
            print(json.dumps({"model": name, "times": times, "min_ess": ess}), flush=True)
            print(f"{name:12} graph {medians['graph']:.2f} s  ready {medians['ready']:.2f} s  "
                  f"difference {medians['graph'] - medians['ready']:.2f} s  "
                  f"(min ESS {ess['graph']:.0f} / {ess['ready']:.0f})", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
