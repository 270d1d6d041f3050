# %% [markdown]
# # 14. A smooth trend with groups (GAMM): chick growth
#
# `ChickWeight` (R's datasets; Crowder and Hand 1990): the weights of 50 chicks on four
# diets, measured every two days from birth to day 21. Growth is not a straight line (it
# speeds up), and chicks differ in their starting weight and their growth rate. A
# generalized additive mixed model puts both in one formula: a smooth of time shared by all
# chicks, diets as shifts, and each chick's own intercept and slope.
#
# bayesmm's `s(Time)` is mgcv's and brms's default thin-plate regression spline (`bs =
# "tp"`, k = 10; `bs = "cr"` gives the cubic regression spline) built as brms builds smooths:
# its straight part is the fixed effect `s(Time)_1`, its wiggles a random effect whose SD
# `sds(s(Time))` sets how wiggly the curve may be (mgcv's smoothing parameter is 1 / sds^2).
# bayesmm's tests check both bases and penalties against mgcv and the fitted curves against
# mgcv's REML fits.

# %%
import os
import warnings

import matplotlib.pyplot as plt

import bayesmm as bm

draws = int(os.environ.get("BAYESMM_EXAMPLE_DRAWS", 1000))
with warnings.catch_warnings():
    warnings.simplefilter("ignore", bm.datasets.DatasetTypesWarning)  # R's datasets: types not recorded
    chicks = bm.datasets.load("ChickWeight", package="datasets")
chicks.head()

# %%
model = bm.Model("weight ~ factor(Diet) + s(Time) + (1 + Time || Chick)", chicks)
fit = model.fit(draws=draws, tune=draws, chains=4, random_seed=1, target_accept=0.95, progressbar=False)
fit.summary()

# %% [markdown]
# The curve of an average chick on the first diet, with its 95% band, over the data: the
# smooth bends upwards, as growth accelerates.

# %%
ax = fit.plot_conditional_effects("Time", points=True)
plt.show()

# %% [markdown]
# The diets as estimated marginal means (emmeans's definition: time at its mean), and
# their pairwise differences: the fourth diet's chicks are heavier.

# %%
means = fit.marginal_means("Diet")
means.table

# %%
means.contrasts()

# %% [markdown]
# Each chick's intercept and slope are taken independent (`||`): time is measured from
# hatching, when chicks weigh about the same, so with `(1 + Time | Chick)` a chick's
# intercept and slope correlate near -1, which bayesmm flags as an over-parameterized term
# (the lecture's singular fit).
