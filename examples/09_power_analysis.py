# %% [markdown]
# # 9. Power analysis by simulation: how many subjects?
#
# The lecture's question before a study: with the design we can afford, how likely is the
# model to detect the effect we expect? lme4 users answer it with simr; here it is one call.
# `bm.power` grows a design from a template, simulates data sets from chosen parameters,
# fits each, and counts how often a decision rule says yes.
#
# The template is sleepstudy's design: subjects measured on days 0 to 9. Suppose the effect
# of sleep deprivation were a third of what Belenky et al. found, 3.5 ms per day instead of
# 10.5, with between-subject spread and noise as large as theirs (lme4's estimates, rounded).
# Would 6, 12 or 24 subjects show that reaction times grow, with posterior probability 0.975?

# %%
import os

import matplotlib.pyplot as plt

import bayesmm as bm

draws = int(os.environ.get("BAYESMM_EXAMPLE_DRAWS", 1000))
nsim = 12 if draws < 1000 else 100  # the documentation build runs a short version: too few to decide
template = bm.datasets.load("sleepstudy")[["Subject", "Days"]]
params = {"Intercept": 251.0, "Days": 3.5, "sd(Intercept|Subject)": 25.0, "sd(Days|Subject)": 6.0,
          "sigma": 26.0}  # fmt: skip

# %%
result = bm.power("Reaction ~ Days + (Days || Subject)", template, params, test="Days > 0", prob=0.975,
                  n_groups=[6, 12, 24], nsim=nsim, draws=draws, tune=draws,
                  progressbar=False)  # fmt: skip
result.table[["n_groups", "n_per_group", "power", "mc_se", "seconds_per_fit", "troubled_fits"]]

# %% [markdown]
# Each point is the share of simulated studies in which P(Days > 0 | data) reached 0.975,
# with a 95% Monte Carlo interval (`mc_se` shrinks with `nsim`; 100 simulations give about
# ±0.1 at a power of 0.5). Power grows with the number of subjects: the slope's standard error
# is dominated by the spread of slopes between subjects, sd(Days) / sqrt(subjects), so more days
# per subject help less than more subjects.

# %%
ax = result.plot()
plt.show()

# %% [markdown]
# Other rules: `test="Days != 0"` (the central interval excludes zero), or a region of
# practical equivalence, `rope=(-1, 1)` with `test="Days"` (the interval lies wholly outside
# ±1 ms per day). `n_per_group=[5, 10]` grows the days per subject instead; `processes=4` or a
# Dask `client=` runs the fits in parallel, each worker compiling the model once.
