# %% [markdown]
# # 10. Estimation methods: Laplace, ADVI and NUTS side by side
#
# The lecture contrasts deterministic approximations (Laplace, quadrature, PQL) with MCMC:
# "flexibility and speed vs accuracy", and "more care needed for large variance, small
# clusters (e.g. binary data)". `bm.compare_methods` fits one model by each method and
# tabulates every parameter's estimate, interval and time; NUTS is the reference.
#
# * `"laplace"`: a normal distribution at the posterior's mode. For a Gaussian model with one
#   grouping factor bayesmm integrates the group effects out exactly first, which is what
#   lme4 maximizes; otherwise the approximation is joint, over the group effects too.
# * `"advi"`: PyMC's mean-field variational inference.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy import special

import bayesmm as bm

draws = int(os.environ.get("BAYESMM_EXAMPLE_DRAWS", 1000))

# %% [markdown]
# ## A well-identified Gaussian model
#
# sleepstudy's random slopes: 18 subjects with 10 days each.

# %%
sleep = bm.Model("Reaction ~ Days + (Days | Subject)", bm.datasets.load("sleepstudy"))
gaussian = bm.compare_methods(sleep, draws=draws, chains=2, random_seed=1)
ax = gaussian.plot()
plt.show()
gaussian.table.round(2)

# %% [markdown]
# Laplace, on the collapsed likelihood, agrees with NUTS in the fixed effects, the correlation
# and sigma, in a fraction of the time; its group SDs sit a little lower (the mode of a skewed
# posterior lies below its mean, as lme4's estimates lie below brms's posterior means).
# Mean-field ADVI does not agree: it treats the parameters as independent, and after its
# default 30,000 steps its estimates of the fixed effects are still off.
#
# ## Binary data, small clusters, a large group SD
#
# 60 groups of 3 binary observations, with a group SD of 2 on the logit scale:

# %%
rng = np.random.default_rng(2)
g = np.repeat(np.arange(60), 3)
x = rng.normal(size=g.size)
y = rng.binomial(1, special.expit(-0.5 + 0.5 * x + rng.normal(0, 2.0, 60)[g]))
data = pd.DataFrame({"y": y, "x": x, "g": [f"g{i}" for i in g]})
binary = bm.compare_methods(bm.Model("y ~ x + (1 | g)", data, family="bernoulli"), draws=draws, chains=2,
                            random_seed=1)  # fmt: skip
ax = binary.plot()
plt.show()
binary.table.round(2)

# %% [markdown]
# Here the joint Laplace approximation fails: three rows per group say little about each
# group's effect, the joint density's mode sits at a small group SD, and the curvature there
# says nothing of the posterior's spread, so sd(Intercept|g) comes out several times too large
# and its interval far too wide. ADVI errs the other way, the usual mean-field
# underestimate: the SD too small, its interval too narrow. NUTS needs no such assumptions;
# it is the method to trust for small clusters, and the one bayesmm uses by default.
