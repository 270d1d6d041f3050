# %% [markdown]
# # Random intercepts and correlated random slopes: sleepstudy
#
# Reaction times of 18 subjects over 10 days of sleep deprivation. Each subject gets
# an intercept and a slope; the two may correlate. brms 2.18 with its default priors
# gives Intercept 251.2 (7.3), Days 10.45 (1.67), sd(Intercept) 27.2 (6.9),
# sd(Days) 6.57 (1.46), cor 0.08 (0.30), sigma 25.8 (1.58).
#
# Run as a script (`python examples/sleepstudy_random_slopes.py [OUTDIR]`) or open as a
# notebook with jupytext.

# %%
import os
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import bayesmm as bm  # noqa: E402
from bayesmm.plots import plot_ranef  # noqa: E402

out = Path(sys.argv[1] if len(sys.argv) > 1 else "example-output")
out.mkdir(parents=True, exist_ok=True)
draws = int(os.environ.get("BAYESMM_EXAMPLE_DRAWS", 1000))

# %%
sleep = bm.datasets.load("sleepstudy")
model = bm.Model("Reaction ~ Days + (Days | Subject)", sleep)
print(model.priors)

# %%
fit = model.fit(draws=draws, tune=draws, chains=4, random_seed=1, progressbar=False)
print(fit)

# %% [markdown]
# Per-subject coefficients (lme4's `coef`), and the group effects as a caterpillar plot.

# %%
print(fit.coef("Subject")["mean"].round(2))
axes = plot_ranef(fit, "Subject")
axes[0].figure.savefig(out / "sleepstudy_ranef.png", dpi=110, bbox_inches="tight")

# %% [markdown]
# Priors against posteriors: the data dominate every parameter here.

# %%
axes = fit.plot_priors()
axes.ravel()[0].figure.savefig(out / "sleepstudy_priors.png", dpi=110, bbox_inches="tight")
