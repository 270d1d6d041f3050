# %% [markdown]
# # 11. Building the random-effects structure: the maximal model, and simplifying it
#
# The lecture's model-building slides ask, in order: what is the *maximal* model the design
# allows (which effects vary within which groups)? Can the data identify it? And if the fit
# is singular or barely informed, which reduction do we take? Barr et al. (2013) keep the
# maximal model unless it is singular; Bates et al. (2015) and Matuschek et al. (2017)
# reduce step by step while the simpler model is not credibly worse. bayesmm turns each
# question into a tool: `bm.maximal`, checks when a model is built, and `fit.simplify()`.

# %%
import os
import warnings

import matplotlib.pyplot as plt

import bayesmm as bm

draws = int(os.environ.get("BAYESMM_EXAMPLE_DRAWS", 1000))

# %% [markdown]
# ## The maximal model from the design
#
# In lme4's `cbpp` every herd is observed in every period, so the period effect can vary
# between herds: `(period | herd)` is maximal. In nlme's `ergoStool` each subject tried
# each stool type once: a type effect per subject could not be told from the residual, so
# only the intercept can vary. `bm.maximal` reads this off the data and says why (the
# formula names the grouping factors; it finds what can vary within each).

# %%
cbpp = bm.datasets.load("cbpp")
print(bm.maximal("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, family="binomial"))

# %%
ergo = bm.datasets.load("ergoStool", package="nlme")
print(bm.maximal("effort ~ Type + (1 | Subject)", ergo))

# %% [markdown]
# Asking for the unidentifiable structure anyway is caught when the model is built, before
# any sampling: as many observations as group effects.

# %%
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    bm.Model("effort ~ Type + (Type | Subject)", ergo)
for warning in caught:
    print(warning.message)

# %% [markdown]
# ## Simplifying a maximal fit
#
# cbpp's maximal model asks 15 herds for four SDs and six correlations. `fit.simplify()`
# fits the lecture's one-step reductions (no correlations, one shared correlation, the
# period slope dropped), compares them by PSIS-LOO and recommends a model under each view.
# Nothing is compiled for the candidates: each samples through bayesmm's engine at once.

# %%
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    maximal = bm.Model("cbind(incidence, size - incidence) ~ period + (period | herd)", cbpp,
                       family="binomial").fit(draws=draws, tune=draws, chains=4, random_seed=1,
                                              progressbar=False)  # fmt: skip
    result = maximal.simplify()
result.table

# %%
print(result)

# %% [markdown]
# The elpd differences with their standard errors: a candidate whose bar reaches zero
# predicts about as well as the best one.

# %%
result.plot()
plt.show()
