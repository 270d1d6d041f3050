# %% [markdown]
# # 6. Zero-inflated counts: barn owl nestlings
#
# `Owls` (bundled with bayesmm; from glmmTMB, after Roulin and Bersier 2007 and Zuur et
# al. 2009): the number of calls (`SiblingNegotiation`) nestlings made in the 30 seconds
# before a parent arrived at one of 27 nests, with the food treatment of the nest
# (`FoodTreatment`: deprived or satiated), the sex of the arriving parent and its arrival
# time. Larger broods call more, so log(brood size) is an offset: the model is for calls
# per nestling. A quarter of the counts are zero.
#
# Brooks et al. (2017, *R Journal* 9:378) fit this as a zero-inflated negative binomial
# model with glmmTMB. Here is the same model, checked against glmmTMB in bayesmm's tests.

# %%
import os

import matplotlib.pyplot as plt

import bayesmm as bm

draws = int(os.environ.get("BAYESMM_EXAMPLE_DRAWS", 1000))
owls = bm.datasets.load("Owls")
print(f"{(owls['SiblingNegotiation'] == 0).mean():.0%} zeros")
owls.head()

# %% [markdown]
# ## A Poisson model first
#
# Arrival times run from 21.7 to 29.3 hours, so the interaction column
# `ArrivalTime:SexParent` would be nearly a multiple of `SexParent`, their coefficients
# strongly correlated in the posterior, and the sampler slow. Centring arrival time with
# formulaic's `center()` removes that, and makes `SexParent[T.Male]` the effect of the
# parent's sex at the average arrival time. The same formula serves every model below.
#
# The counts have far more zeros and more spread than a Poisson model allows, even with a
# random intercept per nest:

# %%
formula = (
    "SiblingNegotiation ~ (FoodTreatment + center(ArrivalTime)) * SexParent"
    " + offset(log(BroodSize)) + (1 | Nest)"
)
poisson = bm.Model(formula, owls, family="poisson").fit(
    draws=draws, tune=draws, chains=4, random_seed=1, progressbar=False
)
ax = poisson.plot_ppc("rootogram")
plt.show()

# %%
ax = poisson.plot_ppc("zeros")
plt.show()

# %% [markdown]
# ## Zero-inflated negative binomial
#
# Zero inflation mixes a point mass at zero (probability `zi`: a nestling that is
# asleep, say) with a count distribution that can also produce zeros; the negative
# binomial's `alpha` absorbs the extra spread. `zi` has its own formula: here it differs by
# food treatment, on the logit scale, as glmmTMB's `ziformula` and brms's `zi ~`.

# %%
zinb = bm.Model(formula, owls, family="zero_inflated_negbinomial", zi="~ FoodTreatment").fit(
    draws=draws, tune=draws, chains=4, random_seed=1, progressbar=False
)
zinb.summary()

# %% [markdown]
# The rootogram's bars now end near zero everywhere, and the observed number of zeros lies
# inside the distribution of replicated ones:

# %%
ax = zinb.plot_ppc("rootogram")
plt.show()

# %%
ax = zinb.plot_ppc("zeros")
plt.show()

# %% [markdown]
# ## Which check shows overdispersion
#
# The rootogram and the zeros count look at all counts together. Overdispersion *within*
# nests, more spread than the model's variance function allows around each row's
# expected count, is what the dispersion check shows. It compares, draw by draw, the
# Pearson dispersion mean((y - mu)^2 / mu) of the observed counts with that of replicated
# ones. The Poisson fit's points lie far above the diagonal (P = 0.00). The negative
# binomial's `alpha` absorbs that spread, so its points straddle the diagonal.
# (On MASS's epil the two rootograms look alike, and only this check separates them;
# see "When something goes wrong".)

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
poisson.plot_ppc("dispersion", ax=axes[0])
zinb.plot_ppc("dispersion", ax=axes[1])
plt.show()

# %% [markdown]
# ## Reading the zero-inflation part
#
# `zi:Intercept` is the logit of the structural-zero probability for deprived nests;
# `zi:FoodTreatment[T.Satiated]` shifts it for satiated nests. `fit.hypothesis` evaluates
# statements about the parameters on the posterior draws:

# %%
zinb.hypothesis(["zi:FoodTreatment[T.Satiated] > 0", "FoodTreatment[T.Satiated] < 0"])

# %% [markdown]
# And LOO confirms what the checks show, by hundreds of points of elpd (the Poisson
# model's many high Pareto k values are one more sign of its misfit):

# %%
bm.compare({"Poisson": poisson, "ZINB": zinb})
