# %% [markdown]
# # 12. Meta-analysis with known standard errors: the eight schools
#
# Eight high schools each ran a coaching programme for the SAT-V test; each reported an
# estimated effect `y` with its standard error `sigma` (Rubin 1981; Gelman et al., *Bayesian
# Data Analysis*, section 5.5). Nothing else is known about the students: the data are the
# eight estimates and their standard errors. This is a random-effects meta-analysis, the
# most-taught hierarchical model there is:
#
# y_j ~ N(theta_j, sigma_j^2), theta_j ~ N(mu, tau^2).
#
# brms writes it `y | se(sigma) ~ 1 + (1 | school)`: the residual SD of each row is the known
# `sigma_j`, not a parameter. bayesmm reads the same formula (metafor's `rma(y, sei = sigma)`
# is its classical counterpart).

# %%
import os

import matplotlib.pyplot as plt
import pandas as pd

import bayesmm as bm

draws = int(os.environ.get("BAYESMM_EXAMPLE_DRAWS", 1000))
schools = pd.DataFrame({
    "school": list("ABCDEFGH"),
    "y": [28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0],
    "sigma": [15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0],
})  # fmt: skip
schools

# %% [markdown]
# ## The model and its priors
#
# BDA's priors: mu ~ N(0, 5^2) and a half-Cauchy(0, 5) on tau, the SD between schools. The
# prior table shows there is no `sigma` to estimate.

# %%
priors = {"Intercept": bm.Prior("Normal", mu=0, sigma=5), "sd": bm.Prior("HalfCauchy", beta=5)}
model = bm.Model("y | se(sigma) ~ 1 + (1 | school)", schools, priors=priors)
model.priors

# %% [markdown]
# With eight schools and standard errors larger than the spread of the estimates, the
# posterior of tau reaches down to zero: the funnel that defeats a centred sampler. bayesmm
# samples the school effects non-centred here (the data inform them weakly), and NUTS runs
# without divergences. bayesmm's tests check this fit against the exact posterior (one
# integral over tau; the rest is Gaussian): means within 0.1 posterior SD, SDs within 10%.

# %%
fit = model.fit(draws=draws, tune=draws, chains=4, random_seed=1, progressbar=False)
fit.summary()

# %% [markdown]
# bayesmm's diagnostics say that tau's posterior piles up near zero (about a tenth of it
# below 0.56): eight estimates with standard errors of 9 to 18 points cannot rule out that
# the schools do not differ at all. That is BDA's conclusion too; the posterior of tau is
# what the data say, not a failure of the sampler.

# %% [markdown]
# ## Shrinkage
#
# Each school's estimate alone (open circles: its `y`) against the partial-pooling
# estimates (filled, with 95% intervals): school A's 28 points shrink most of the way to the
# common mean, because its standard error is large and tau is small.

# %%
ax = fit.plot_shrinkage("school")
plt.show()

# %%
fit.coef()["school"]

# %% [markdown]
# ## A new school
#
# The effect to expect in a ninth school is the population distribution's: predictions for
# a new level draw its effect from N(mu, tau^2). Its `sigma` tells how precisely the new
# school would measure it; without it, `kind="mean"` still gives theta itself.

# %%
new = pd.DataFrame({"school": ["new"], "sigma": [10.0]})
pd.concat([fit.predict(new, kind="mean", new_levels="sample", random_seed=1),
           fit.predict(new, kind="response", new_levels="sample", random_seed=1)],
          keys=["theta", "a new estimate"])  # fmt: skip

# %% [markdown]
# ## Posterior predictive check
#
# Replicated estimates from the fitted model, each with its school's known standard error,
# against the eight observed ones:

# %%
ax = fit.plot_ppc("stat", stat="sd")
plt.show()
