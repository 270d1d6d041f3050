# %% [markdown]
# # 2. Random slopes with correlation: sleepstudy
#
# Average reaction times of 18 truck drivers over 10 days of sleep restriction
# (lme4's `sleepstudy`, Belenky et al. 2003). Days 0-1 were training; we keep them, as
# lme4's documentation does. Each subject gets their own intercept (reaction time at day 0)
# and their own slope (milliseconds lost per day), and the two may correlate:
#
#     Reaction ~ Days + (Days | Subject)
#
# brms 2.18 with its default priors gives Intercept 251.2 (7.3), Days 10.45 (1.67),
# sd(Intercept) 27.2 (6.9), sd(Days) 6.57 (1.46), cor 0.08 (0.30), sigma 25.8 (1.58).

# %%
import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import bayesmm as bm

draws = int(os.environ.get("BAYESMM_EXAMPLE_DRAWS", 1000))
sleep = bm.datasets.load("sleepstudy")
model = bm.Model("Reaction ~ Days + (Days | Subject)", sleep)
model

# %%
fit = model.fit(draws=draws, tune=draws, chains=4, random_seed=1, progressbar=False)
fit

# %% [markdown]
# `fit.varcorr()` collects the variance components as lme4's `VarCorr` does, and
# `fit.coef("Subject")` the per-subject intercepts and slopes (fixed plus group effects).

# %%
fit.varcorr()

# %%
fit.coef("Subject")["mean"].round(1).head()

# %% [markdown]
# ## Shrinkage in two dimensions
#
# Each arrow runs from a subject's own least-squares line (no pooling) to its posterior
# mean (partial pooling). The ellipses are contours of the fitted population distribution
# of (intercept, slope). Subjects are pulled toward the population mean, most strongly in
# the direction where the population is narrow.

# %%
ax = fit.plot_shrinkage("Subject", terms=("Intercept", "Days"))
plt.show()

# %% [markdown]
# ## The correlation
#
# 18 subjects say little about the intercept-slope correlation: its posterior spreads over
# most of (-1, 1). lme4's REML estimate is 0.066; a point estimate hides this uncertainty.

# %%
cor = fit.idata.posterior["cor_Subject"].values.ravel()
fig, ax = plt.subplots(figsize=(5, 3))
ax.hist(cor, bins=40, density=True, color="C0", alpha=0.7)
ax.axvline(0.066, color="k", ls="--", label="lme4 (REML)")
ax.set_xlabel("cor(Intercept, Days | Subject)")
ax.legend()
plt.show()
print(f"P(cor > 0) = {np.mean(cor > 0):.2f}")

# %% [markdown]
# ## Predictions for a subject in the data and for a new one
#
# For subject 308 the prediction uses its own group effects. A new subject's effects are
# drawn from the fitted population (`new_levels="sample"`), so its interval is much wider:
# it carries the between-subject variation.

# %%
new = pd.DataFrame({"Days": [0, 9, 0, 9], "Subject": ["308", "308", "new", "new"]})
fit.predict(new, new_levels="sample", random_seed=1).round(1)

# %% [markdown]
# A posterior predictive check of the whole distribution of reaction times:

# %%
ax = fit.plot_ppc("density", num_pp_samples=50)
plt.show()

# %% [markdown]
# Caterpillar plot of the group effects, sorted by their means:

# %%
axes = fit.plot_ranef("Subject")
plt.show()
