# %% [markdown]
# # 13. Survival times with a frailty: kidney catheter infections
#
# `kidney` (R's survival package; McGilchrist and Aisbett 1991): the times in days to the
# recurrence of an infection at the catheter insertion point for 38 kidney patients on
# portable dialysis, two times per patient. A time is censored (`status` 0) when the catheter
# was removed for another reason before an infection. Patients differ in ways the covariates
# (age, sex, disease type) do not record, so their two times are correlated: a random
# intercept per patient, the *frailty* of the survival literature.
#
# R's survival package fits this as `coxph(Surv(time, status) ~ age + sex + disease +
# frailty(id))`. bayesmm has no Cox model (its baseline hazard is left unspecified, which a
# likelihood cannot be); it fits the parametric proportional-hazards model with a Weibull
# baseline, brms's `weibull()` family, and reads the survival packages' `Surv(time, status)`
# as brms's `time | cens(1 - status)`.

# %%
import os
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import bayesmm as bm

draws = int(os.environ.get("BAYESMM_EXAMPLE_DRAWS", 1000))
with warnings.catch_warnings():
    warnings.simplefilter("ignore", bm.datasets.DatasetTypesWarning)  # survival's types are not recorded
    kidney = bm.datasets.load("kidney", package="survival")
kidney["sex"] = pd.Categorical(kidney["sex"].map({1: "male", 2: "female"}), categories=["male", "female"])
kidney["disease"] = pd.Categorical(kidney["disease"], categories=["Other", "GN", "AN", "PKD"])
print(f"{len(kidney)} times of {kidney['id'].nunique()} patients, {(kidney['status'] == 0).sum()} censored")
kidney.head()

# %% [markdown]
# ## The Weibull model
#
# brms's parameterization: the linear predictor models log(mean survival time), and `shape`
# is the Weibull shape k (k = 1: a constant hazard, the exponential model; k > 1 a hazard
# that rises with time). Without the frailty, bayesmm's censored Weibull likelihood is
# R's `survreg(..., dist = "weibull")`: its tests find survreg's maximum, -330.3635, and
# estimates.
#
# Two times per patient inform each frailty weakly, and the frailty SD trades off against
# the shape (a hazard that rises with time looks like a mixture of frail and robust
# patients): the SD mixes more slowly than the rest, about 400 effective draws in 4000, so
# this fit takes at least 2000 draws per chain. It samples in about a second.

# %%
model = bm.Model("Surv(time, status) ~ age + sex + disease + (1 | id)", kidney, family="weibull")
fit = model.fit(draws=max(draws, 2000), tune=max(draws, 1000), chains=4, random_seed=1, target_accept=0.95,
                progressbar=False)  # fmt: skip
fit.summary()

# %% [markdown]
# A coefficient b multiplies the mean survival time by exp(b); under a Weibull model with
# shape k the hazard ratio is exp(-k b). Women's infections recur later, at about a sixth of
# the hazard of men's:

# %%
post = fit.idata.posterior
hazard_ratio = np.exp(-post["shape"] * post["fixef"].sel(fixef_term="sex[T.female]"))
middle, low, high = (float(hazard_ratio.quantile(q)) for q in (0.5, 0.025, 0.975))
print(f"hazard ratio, women against men: {middle:.2f} (95% interval {low:.2f} to {high:.2f})")

# %% [markdown]
# ## Posterior predictive check: Kaplan-Meier
#
# The default check for censored survival times: the observed Kaplan-Meier curve against
# the survival curves of replicated times, drawn without censoring (brms's and bayesplot's
# `km_overlay`).

# %%
ax = fit.plot_ppc()
plt.show()

# %% [markdown]
# ## The frailties
#
# Each patient's frailty on the log-mean scale, with 95% intervals: a patient whose two
# infections came early sits to the left.

# %%
axes = fit.plot_ranef("id")
plt.show()
