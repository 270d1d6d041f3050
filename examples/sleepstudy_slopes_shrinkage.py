# %% [markdown]
# # Random slopes: two-dimensional shrinkage, the correlation, a new subject
#
# `python examples/sleepstudy_slopes_shrinkage.py [OUTDIR]`; set BAYESMM_EXAMPLE_DRAWS for a quicker run.

# %%
import os
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import pandas as pd  # noqa: E402

import bayesmm as bm  # noqa: E402

out = Path(sys.argv[1] if len(sys.argv) > 1 else "example-output")
out.mkdir(parents=True, exist_ok=True)
draws = int(os.environ.get("BAYESMM_EXAMPLE_DRAWS", 1000))

# %%
sleep = bm.datasets.load("sleepstudy")
fit = bm.Model("Reaction ~ Days + (Days | Subject)", sleep).fit(
    draws=draws, tune=draws, chains=4, random_seed=1, progressbar=False
)
ax = fit.plot_shrinkage("Subject", terms=("Intercept", "Days"))
ax.figure.savefig(out / "sleepstudy_shrinkage_2d.png", dpi=110, bbox_inches="tight")

# %% [markdown]
# The intercept-slope correlation is barely identified by 18 subjects:

# %%
print(fit.summary().loc[["cor(Intercept,Days|Subject)"], ["mean", "q2.5", "q97.5"]])

# %% [markdown]
# A new subject: its group effects are drawn from the fitted population, so the
# prediction is much wider than for a subject in the data.

# %%
new = pd.DataFrame({"Days": [0, 9, 0, 9], "Subject": ["new", "new", "308", "308"]})
print(fit.predict(new, new_levels="sample", random_seed=1).round(1))
ax = fit.plot_ppc("density", num_pp_samples=50)
ax.figure.savefig(out / "sleepstudy_ppc.png", dpi=110, bbox_inches="tight")
