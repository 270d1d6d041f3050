# %% [markdown]
# # 8. Ordinal ratings: the bitterness of wine
#
# `wine` (from R's ordinal package, Randall 1989): nine judges rated the bitterness of
# white wine on a scale from 1 (least bitter) to 5, for wines made at two temperatures
# (`temp`: cold or warm) with or without contact between the juice and the grape skins
# (`contact`). Each judge rated eight bottles. Ratings are ordered categories: a rating of
# 4 is more than 2, but not twice as much, and the steps between categories need not be
# equal, so neither a Gaussian nor a Poisson model describes them.
#
# The cumulative model (brms's `cumulative()`, `ordinal::clmm`) pictures a latent
# bitterness, eta + e with e logistic, cut into categories at thresholds
# `Intercept[1]` < ... < `Intercept[4]`:
#
#     P(rating <= k) = logistic(Intercept[k] - eta),   eta = temp + contact + judge effect
#
# The thresholds take the intercept's place, and each judge gets a random intercept: some
# judges find every wine more bitter than others do.

# %%
import os

import matplotlib.pyplot as plt

import bayesmm as bm

draws = int(os.environ.get("BAYESMM_EXAMPLE_DRAWS", 1000))
wine = bm.datasets.load("wine", "ordinal")  # rating is an ordered factor with levels 1..5
wine.groupby(["temp", "contact"], observed=True)["rating"].value_counts().unstack()

# %%
model = bm.Model("rating ~ temp + contact + (1 | judge)", wine, family="cumulative")
model.priors

# %%
fit = model.fit(draws=draws, tune=draws, chains=4, random_seed=1, progressbar=False)
fit.summary()

# %% [markdown]
# ## Against `ordinal::clmm`
#
# `clmm`'s Laplace maximum-likelihood estimates (standard errors) for this model are
# temp 3.06 (0.60), contact 1.83 (0.51), thresholds -1.62, 1.51, 4.23, 6.09 (0.68, 0.60,
# 0.81, 0.97) and a judge SD of 1.13. The posterior means are close, within 0.6 standard
# errors: brms's default Student-t(3, 0, 2.5) priors on the thresholds pull the far ones a
# little towards zero, and with nine judges the posterior of their SD is skewed, so its mean
# lies above the maximum-likelihood estimate (bayesmm's tests check all of this). Both
# coefficients are on the latent logit scale: warm wine is rated as if e^3 = 20 times the
# odds of a higher category.

# %% [markdown]
# ## Effects on the rating scale
#
# Coefficients on a latent scale are hard to read. `conditional_effects` gives the expected
# rating (1 to 5) for each temperature, with contact held at its reference level, and
# `by="contact"` one set per level of contact, at the population level (a typical judge):

# %%
ax = fit.plot_conditional_effects("temp", by="contact")
plt.show()
fit.conditional_effects("temp", by="contact")

# %% [markdown]
# The category probabilities themselves come from `predict(kind="probs")`: here for warm
# wine with skin contact, the most bitter of the four kinds, for a new judge drawn from the
# population of judges.

# %%
import pandas as pd  # noqa: E402

new = pd.DataFrame({"temp": ["cold", "warm"], "contact": ["no", "yes"], "judge": ["new", "new"]})
fit.predict(new, kind="probs", new_levels="sample", random_seed=1)["mean"]

# %% [markdown]
# Differences between temperatures on the rating scale, with the probability of their
# direction:

# %%
fit.contrasts("temp", by="contact")

# %% [markdown]
# ## Does the model reproduce the ratings?
#
# The posterior predictive check for ordered categories shows each category's observed count
# against the counts in data sets replicated from the posterior:

# %%
ax = fit.plot_ppc()
plt.show()

# %% [markdown]
# ## How much do the priors matter?
#
# Power-scaling the priors and the likelihood a little (priorsense's diagnostic, computed
# from these draws without refitting) shows how far each estimate would move. With 72
# ratings it flags most of them: the posterior is sensitive to the priors as well as the
# data, the same pull that puts the far thresholds half a standard error inside clmm's.
# Weakly informative priors are a modelling choice here, not a formality; a wider prior on
# the thresholds (`priors={"Intercept": bm.Prior("StudentT", nu=3, mu=0, sigma=10)}`)
# moves the estimates outward, as `fit.update(priors=...)` shows.

# %%
fit.psense()
