# %% [markdown]
# # Crossed and nested random effects: Penicillin and Pastes
#
# *Penicillin*: 6 penicillin samples each assayed on 24 plates; sample and plate are
# crossed. *Pastes*: 3 casks inside each of 10 batches; casks are nested in batches,
# written `(1 | batch/cask)` = `(1 | batch) + (1 | batch:cask)`.
# lme4's REML estimates are printed beside the posterior for comparison.

# %%
import bayesmm as bm

LME4 = {
    "Penicillin": {
        "Intercept": 22.9722,
        "sd(Intercept|plate)": 0.8467,
        "sd(Intercept|sample)": 1.9316,
        "sigma": 0.5499,
    },
    "Pastes": {
        "Intercept": 60.0533,
        "sd(Intercept|batch)": 1.2907,
        "sd(Intercept|batch:cask)": 2.9041,
        "sigma": 0.8234,
    },
}

for name, formula in [
    ("Penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)"),
    ("Pastes", "strength ~ 1 + (1 | batch/cask)"),
]:
    fit = bm.Model(formula, bm.datasets.load(name)).fit(
        draws=1000, chains=4, random_seed=5, progressbar=False
    )
    table = fit.summary()[["mean", "sd", "q2.5", "q97.5", "r_hat"]]
    table["lme4"] = [LME4[name][p] for p in table.index]
    print(f"\n{name}: {formula}")
    print(table.round(3).to_string())
