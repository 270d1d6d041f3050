# %% [markdown]
# # 5. Singular and over-parameterized fits
#
# lme4 calls a fit *singular* when an estimated variance is zero or a correlation is ±1:
# the random-effect structure asks for more than the data can give. A Bayesian fit never
# lands exactly on the boundary, but the same problem shows up as posteriors piled against
# zero or ±1, divergences, and slow mixing. bayesmm checks every fit for these signs, warns
# once with the numbers and what to try, and offers `re_pca` (lme4's `rePCA`) and LOO to
# decide what to drop.

# %%
import os
import warnings

import matplotlib.pyplot as plt

import bayesmm as bm

draws = int(os.environ.get("BAYESMM_EXAMPLE_DRAWS", 1000))

# %% [markdown]
# ## A variance that is not there: Dyestuff2
#
# lme4's `Dyestuff2` is simulated so that the batches do not differ; lme4's REML estimate of
# the batch SD is exactly 0 and it reports a singular fit. bayesmm's warning names the
# SD and the term:

# %%
dyestuff2 = bm.datasets.load("Dyestuff2")
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always", bm.DiagnosticWarning)
    dye_fit = bm.Model("Yield ~ 1 + (1 | Batch)", dyestuff2).fit(
        draws=draws, tune=draws, chains=4, random_seed=2, progressbar=False
    )
for warning in caught:
    print(warning.message)

# %% [markdown]
# The posterior of sd(Intercept|Batch) has its mode at zero. That is not an error: it says
# the data are compatible with no batch variation at all, and the model with the term and
# the model without it will predict almost the same.

# %%
sd_batch = dye_fit.idata.posterior["sd_Batch"].values.ravel()
fig, ax = plt.subplots(figsize=(5, 3))
ax.hist(sd_batch, bins=50, density=True, alpha=0.7)
ax.set_xlabel("sd(Intercept|Batch)")
plt.show()

# %% [markdown]
# ## Too many varying terms: quadratic slopes in sleepstudy
#
# A maximal model lets the intercept, the linear and the quadratic effect of `Days` vary
# by subject, with all three correlations. 18 subjects cannot support 6 variance
# parameters.

# %%
sleep = bm.datasets.load("sleepstudy")
sleep["Days2"] = sleep["Days"] ** 2
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always", bm.DiagnosticWarning)
    maximal = bm.Model("Reaction ~ Days + Days2 + (Days + Days2 | Subject)", sleep).fit(
        draws=draws, tune=draws, chains=4, random_seed=1, progressbar=False
    )
for warning in caught:
    print(warning.message)
maximal.varcorr()

# %% [markdown]
# `re_pca` does a principal component analysis of each grouping factor's covariance
# matrix, draw by draw. If the last components carry almost no variance, the covariance
# is close to singular: fewer dimensions would describe the subjects.

# %%
maximal.re_pca()["Subject"]

# %% [markdown]
# ## Simplifying, and comparing with LOO
#
# The next candidates are the linear model with correlated intercepts and slopes, and the
# same with the correlation removed, `(Days || Subject)`. Leave-one-out cross-validation
# (PSIS-LOO, through ArviZ) compares their expected predictive accuracy; a difference of a
# few standard errors is needed to prefer one.

# %%
linear = bm.Model("Reaction ~ Days + (Days | Subject)", sleep).fit(
    draws=draws, tune=draws, chains=4, random_seed=1, progressbar=False
)
uncorrelated = bm.Model("Reaction ~ Days + (Days || Subject)", sleep).fit(
    draws=draws, tune=draws, chains=4, random_seed=1, progressbar=False
)
uncorrelated.varcorr()

# %%
comparison = bm.compare({"quadratic, maximal": maximal, "linear": linear, "linear, ||": uncorrelated})
comparison

# %% [markdown]
# `elpd` is the estimated expected log predictive density by PSIS-LOO (higher is better),
# `elpd_diff` each model's distance from the best, and `dse` the standard error of that
# distance. The maximal quadratic model comes out a few points ahead, but by less than
# about two standard errors of the difference: no reliable gain for three more variance
# parameters, three more correlations and an SD whose posterior piles up at zero.
# The `warning` column flags observations with high Pareto k (influential subjects' data
# points), so the LOO estimates are themselves approximate. The linear models with and
# without the correlation are indistinguishable; `(Days || Subject)` is the simplest
# model the data support. That is the Bayesian counterpart of lme4's advice to simplify
# until the fit is no longer singular.
