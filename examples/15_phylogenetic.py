# %% [markdown]
# # 15. Relatives resemble each other: a phylogenetic mixed model
#
# Species are not independent data points: close relatives share much of their history, so
# their traits resemble each other more than distant species' do. A phylogenetic mixed
# model gives each species an effect whose correlation between species is known from the
# tree: effects ~ MVN(0, sd^2 A), A the phylogenetic correlation matrix (for a tree `tree`
# in R, `ape::vcv(tree, corr = TRUE)`). brms writes this `(1 | gr(species, cov = A))` with
# `data2 = list(A = A)`; bayesmm reads the same formula, with `data2={"A": A}`.
#
# Here the tree is simulated, so the truth is known: 40 species on a balanced tree of
# nested clades, 3 measurements each of a trait y that depends on body mass x.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import bayesmm as bm

draws = int(os.environ.get("BAYESMM_EXAMPLE_DRAWS", 1000))
rng = np.random.default_rng(7)

# A balanced tree of depth 1: eight clades of five species, two super-clades of four
# clades. The correlation of two species is the share of the tree's height they share.
species = [f"sp{i:02d}" for i in range(40)]
clade, superclade = np.arange(40) // 5, np.arange(40) // 20
A = np.where(np.arange(40)[:, None] == np.arange(40)[None, :], 1.0,
             np.where(clade[:, None] == clade[None, :], 0.7,
                      np.where(superclade[:, None] == superclade[None, :], 0.3, 0.0)))  # fmt: skip
A = pd.DataFrame(A, index=species, columns=species)

effects = 0.8 * np.linalg.cholesky(A.to_numpy()) @ rng.normal(size=40)
rows = np.repeat(np.arange(40), 3)
mass = rng.normal(size=rows.size)
data = pd.DataFrame({"species": np.array(species)[rows], "mass": mass,
                     "y": 1.0 + 0.5 * mass + effects[rows] + rng.normal(0, 0.5, rows.size)})  # fmt: skip
A.iloc[:7, :7]

# %% [markdown]
# The model, its effects drawn as L_A r0 with A = L_A L_A' factored once (non-centred; the
# tree makes the levels' effects correlated, so nothing is integrated out):

# %%
model = bm.Model("y ~ mass + (1 | gr(species, cov = A))", data, data2={"A": A})
fit = model.fit(draws=draws, tune=draws, chains=4, random_seed=1, progressbar=False)
fit.summary()

# %% [markdown]
# The species' effects against the truth: clades show as blocks of similar effects.

# %%
estimated = fit.ranef()["species"][("mean", "Intercept")]
fig, ax = plt.subplots(figsize=(6, 4))
ax.scatter(effects - effects.mean(), estimated - estimated.mean(), c=clade, cmap="tab10")
ax.axline((0, 0), slope=1, color="0.5", lw=1)
ax.set_xlabel("true species effect (centred)")
ax.set_ylabel("posterior mean (centred)")
plt.show()

# %% [markdown]
# Phylogenetic signal: the share of the trait's variance (beyond mass) that the tree
# explains, Pagel's lambda in its mixed-model form, sd^2 / (sd^2 + sigma^2).

# %%
post = fit.idata.posterior
signal = post["sd_species"].sel(species__term="Intercept") ** 2
share = signal / (signal + post["sigma"] ** 2)
print(f"phylogenetic signal: {float(share.mean()):.2f} "
      f"(95% interval {float(share.quantile(0.025)):.2f} to {float(share.quantile(0.975)):.2f}); truth 0.72")
