# %% [markdown]
# # 7. Priors: defaults, prior predictive checks, and your own
#
# Every parameter of a bayesmm model has a prior. The defaults are weakly informative and
# scaled to the data, as brms and rstanarm do: they rule out absurd values (a reaction
# time of ten thousand seconds) without pulling the estimates. This notebook shows what the
# defaults are, checks what data they imply before seeing the data (a *prior predictive
# check*), and changes them.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

import bayesmm as bm

draws = int(os.environ.get("BAYESMM_EXAMPLE_DRAWS", 1000))
sleep = bm.datasets.load("sleepstudy")
model = bm.Model("Reaction ~ Days + (Days | Subject)", sleep)
model.priors

# %% [markdown]
# Here s = max(2.5, mad(Reaction)) = 59.3 ms, the median absolute deviation of the
# response scaled to a normal SD (R's `mad`), with a floor of 2.5:
#
# * the intercept (at the mean of `Days`) is Student-t(3) centred at the median reaction
#   time, 288.7 ms, with scale s;
# * the slope of `Days` is Normal(0, 2.5 sd(Reaction) / sd(Days)) = Normal(0, 48.9): a change
#   of one SD in `Days` moving the reaction time by more than 2.5 SDs of the response is
#   implausible a priori;
# * group-level SDs and the residual SD are half-Student-t(3, s); the correlation matrix
#   has an LKJ(1) prior, uniform over correlation matrices.
#
# The docs' priors page lists every default for every family.

# %% [markdown]
# ## Prior predictive check
#
# Data sets drawn from the priors alone, before the model sees the data, should cover the
# plausible range of the response without putting much mass on impossible values.

# %%
prior = model.prior_predictive(draws=500, random_seed=1)
simulated = prior.prior_predictive["Reaction"].values.reshape(500, -1)


def plot_prior_predictive(simulated, title, ax):
    """Histogram of the simulated data sets' means and SDs against the observed ones."""
    ax.hist(simulated.mean(axis=1), bins=40, alpha=0.6, label="mean of a simulated data set")
    ax.axvline(sleep["Reaction"].mean(), color="k", ls="--", label="observed mean")
    ax.set_title(title)
    ax.set_xlabel("Reaction (ms)")


fig, ax = plt.subplots(figsize=(6, 3))
plot_prior_predictive(simulated, "default priors", ax)
ax.legend(fontsize=8)
plt.show()
print("middle 95% of simulated reaction times:", np.percentile(simulated, [2.5, 97.5]).round())

# %% [markdown]
# Compare flat-looking "uninformative" priors, Normal(0, 1000) on the coefficients and
# half-normal(1000) on the SDs. They imply data sets with negative and ten-second reaction
# times: not uninformative at all, just informative about the wrong things.

# %%
vague = bm.Model(
    "Reaction ~ Days + (Days | Subject)",
    sleep,
    priors={
        "Intercept": bm.Prior("Normal", mu=0, sigma=1000),
        "b": bm.Prior("Normal", mu=0, sigma=1000),
        "sd": bm.Prior("HalfNormal", sigma=1000),
        "sigma": bm.Prior("HalfNormal", sigma=1000),
    },
)
vague_simulated = vague.prior_predictive(draws=500, random_seed=1).prior_predictive["Reaction"]
vague_simulated = vague_simulated.values.reshape(500, -1)
fig, ax = plt.subplots(figsize=(6, 3))
plot_prior_predictive(vague_simulated, "Normal(0, 1000) priors", ax)
plt.show()
print("middle 95% of simulated reaction times:", np.percentile(vague_simulated, [2.5, 97.5]).round())

# %% [markdown]
# ## Your own priors
#
# Priors are set by parameter name, by class within a grouping factor, or by class, with any
# PyMC distribution. Suppose earlier studies put the daily slowdown near 10 ms (SD 3) and we
# want to shrink the correlation toward 0 with LKJ(2):

# %%
informed = bm.Model(
    "Reaction ~ Days + (Days | Subject)",
    sleep,
    priors={
        "Days": bm.Prior("Normal", mu=10, sigma=3),
        "cor(Subject)": bm.Prior("LKJ", eta=2),
        "sd(Days|Subject)": bm.Prior("HalfStudentT", nu=3, sigma=10),
    },
)
informed.priors

# %%
fit = informed.fit(draws=draws, tune=draws, chains=4, random_seed=1, progressbar=False)
fit.summary().loc[["Days", "sd(Days|Subject)", "cor(Intercept,Days|Subject)"]]

# %% [markdown]
# Prior against posterior for every parameter: where the posterior is much narrower than
# the prior, the data dominate; where the two look alike (the correlation, here), the prior
# matters and should be reported.

# %%
axes = fit.plot_priors()
plt.show()

# %% [markdown]
# A prior name that matches no parameter is an error before anything is compiled, with the
# names that do exist:

# %%
try:
    bm.Model("Reaction ~ Days + (Days | Subject)", sleep, priors={"Dayz": bm.Prior("Normal", mu=0, sigma=1)})
except bm.PriorError as err:
    print(err)
