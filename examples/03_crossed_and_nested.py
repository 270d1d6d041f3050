# %% [markdown]
# # 3. Crossed and nested random effects: Penicillin and Pastes
#
# Two of lme4's classic designs.
#
# * **Crossed**: in `Penicillin`, 6 penicillin samples were each assayed on each of 24
#   plates (the diameter of the zone where bacteria did not grow). Every sample meets every
#   plate, so plate and sample are *crossed* grouping factors: `(1 | plate) + (1 | sample)`.
# * **Nested**: in `Pastes`, 3 casks were sampled from each of 10 batches of paste, and each
#   cask assayed twice. Cask `a` of batch `A` has nothing to do with cask `a` of batch `B`:
#   casks are *nested* in batches, `(1 | batch/cask)`, which bayesmm expands as lme4 does,
#   into `(1 | batch) + (1 | batch:cask)`.
#
# lme4's REML estimates are shown beside the posteriors.

# %%
import os

import matplotlib.pyplot as plt
import pandas as pd

import bayesmm as bm

draws = int(os.environ.get("BAYESMM_EXAMPLE_DRAWS", 1000))

# %% [markdown]
# ## Crossed: Penicillin

# %%
penicillin = bm.datasets.load("Penicillin")
pd.crosstab(penicillin["plate"], penicillin["sample"]).head()

# %%
pen_fit = bm.Model("diameter ~ 1 + (1 | plate) + (1 | sample)", penicillin).fit(
    draws=draws, tune=draws, chains=4, random_seed=5, progressbar=False
)
table = pen_fit.summary()[["mean", "sd", "q2.5", "q97.5", "r_hat"]]
table["lme4"] = [22.9722, 0.8467, 1.9316, 0.5499]
table.round(3)

# %% [markdown]
# The sample SD rests on 6 levels, so its posterior is wide and skewed to the right: the
# REML estimate sits below the posterior mean but well inside the interval. Plates, 24 of
# them, are pinned down better. Each sample's effect on the diameter:

# %%
axes = pen_fit.plot_ranef("sample")
plt.show()

# %% [markdown]
# ## Nested: Pastes
#
# The two lines below are the same model; the grouping factor `batch:cask` has 30 levels.

# %%
pastes = bm.datasets.load("Pastes")
nested = bm.Model("strength ~ 1 + (1 | batch/cask)", pastes)
explicit = bm.Model("strength ~ 1 + (1 | batch) + (1 | batch:cask)", pastes)
print(list(nested.design.groups), list(explicit.design.groups))
print({g: len(nested.design.group_levels(g)) for g in nested.design.groups})

# %%
pastes_fit = nested.fit(draws=draws, tune=draws, chains=4, random_seed=5, progressbar=False)
table = pastes_fit.summary()[["mean", "sd", "q2.5", "q97.5", "r_hat"]]
table["lme4"] = [60.0533, 1.2907, 2.9041, 0.8234]
table.round(3)

# %% [markdown]
# Most of the variation is between casks within a batch, not between batches; with 10
# batches the batch SD could be anywhere from near zero to about 3. Writing
# `(1 | batch) + (1 | cask)` instead would be wrong: it would treat cask `a` as one level
# shared by all batches (3 levels instead of 30).
