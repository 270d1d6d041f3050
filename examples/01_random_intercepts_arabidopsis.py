# %% [markdown]
# # 1. Random intercepts and shrinkage: Arabidopsis genotypes
#
# Fruit counts of *Arabidopsis thaliana* plants (lme4's `Arabidopsis`, from Banta et al. 2010):
# 625 plants of 24 genotypes (`gen`) from 9 populations (`popu`), grown with two levels of
# nutrients and with or without simulated herbivory (`amd`: apical meristem damage).
#
# A random intercept per genotype says: each genotype has its own mean (log) fruit count,
# and these means come from a common normal distribution whose SD is estimated. The
# estimate for a genotype is a compromise between its own data (*no pooling*) and the
# population mean (*complete pooling*); how far it is pulled depends on how much data
# the genotype has and how far it lies from the rest. That is *partial pooling*, or
# shrinkage.
#
# Run it as a notebook (`jupytext --to notebook`), or as a script; set the environment
# variable `BAYESMM_EXAMPLE_DRAWS` for a quicker run.

# %%
import os

import matplotlib.pyplot as plt

import bayesmm as bm

draws = int(os.environ.get("BAYESMM_EXAMPLE_DRAWS", 1000))
arabidopsis = bm.datasets.load("Arabidopsis")
arabidopsis.head()

# %% [markdown]
# ## A subset: fertilized, undamaged plants
#
# Between 2 and 12 plants per genotype, so the genotypes differ in how much their own data
# can say.

# %%
subset = arabidopsis[(arabidopsis["nutrient"] == 8) & (arabidopsis["amd"] == "unclipped")]
subset["gen"].value_counts().describe()[["min", "50%", "max"]]

# %%
model = bm.Model("total.fruits ~ 1 + (1 | gen)", subset, family="poisson")
model

# %% [markdown]
# `model` lists the priors bayesmm chose. For a Poisson model the intercept prior is
# centred at the log of the mean count; the genotype SD gets a half-Student-t(3, 2.5) on
# the log scale.

# %%
fit = model.fit(draws=draws, tune=draws, chains=4, random_seed=1, progressbar=False)
fit.summary()

# %% [markdown]
# ## The shrinkage plot
#
# Each arrow starts at a genotype's no-pooling estimate (the log of its own mean count,
# from a Poisson GLM of that genotype alone) and ends at its posterior mean under partial
# pooling. The dashed line is the population intercept. Here most arrows are short: with
# counts in the tens, a Poisson likelihood pins each genotype's mean down precisely (too
# precisely, as the next section shows). Genotypes with few plants, such as 5, move most;
# a genotype with no fruits at all would have a no-pooling estimate of minus infinity, and
# partial pooling would still give it a finite one.

# %%
ax = fit.plot_shrinkage("gen")
plt.show()

# %% [markdown]
# The genotype means, as lme4's `coef()` would give them (on the log scale), with their
# 95% intervals:

# %%
fit.coef("gen")["mean"].sort_values("Intercept").head()

# %% [markdown]
# ## Is the Poisson model adequate?
#
# A posterior predictive check compares the data with data sets replicated from the
# fitted model. The hanging rootogram hangs the observed count frequencies (bars) from
# the expected ones (line): bars that end above or below zero show misfit. Here the model
# expects far fewer zeros and large counts than the plants show. The counts are
# *overdispersed* relative to the Poisson.

# %%
ax = fit.plot_ppc("rootogram")
plt.show()

# %%
ax = fit.plot_ppc("zeros")
plt.show()

# %% [markdown]
# ## The full design
#
# All 625 plants, with the treatments and nuisance factors as fixed effects (`rack`,
# `status` for how the plant was germinated), genotypes nested in populations as two
# random intercepts, and a negative binomial family for the overdispersion (its `alpha`
# is the NB2 shape: variance = mu + mu²/alpha).

# %%
full = bm.Model(
    "total.fruits ~ nutrient * amd + rack + status + (1 | popu) + (1 | gen)",
    arabidopsis,
    family="negativebinomial",
)
full_fit = full.fit(draws=draws, tune=draws, chains=4, random_seed=2, progressbar=False)
full_fit.summary()

# %% [markdown]
# Fertilizing multiplies the expected fruit count by about exp(`nutrient[T.8]`); the
# between-genotype SD is now estimated net of the treatments. The rootogram of the
# negative binomial model has its bars near zero:

# %%
ax = full_fit.plot_ppc("rootogram")
plt.show()
