# %% [markdown]
# # Random intercepts and shrinkage: Arabidopsis genotypes
#
# Fruit counts of *Arabidopsis thaliana* plants from 24 genotypes (lme4's `Arabidopsis`),
# a Poisson model with a random intercept per genotype. The shrinkage plot compares each
# genotype's no-pooling estimate (its own log mean count) with its partial-pooling
# estimate: genotypes with few plants or extreme means are pulled toward the population.
#
# `python examples/shrinkage_arabidopsis.py [OUTDIR]`; set BAYESMM_EXAMPLE_DRAWS for a quicker run.

# %%
import os
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import bayesmm as bm  # noqa: E402

out = Path(sys.argv[1] if len(sys.argv) > 1 else "example-output")
out.mkdir(parents=True, exist_ok=True)
draws = int(os.environ.get("BAYESMM_EXAMPLE_DRAWS", 1000))

# %%
arabidopsis = bm.datasets.load("Arabidopsis")
model = bm.Model("total.fruits ~ 1 + (1 | gen)", arabidopsis, family="poisson")
fit = model.fit(draws=draws, tune=draws, chains=4, random_seed=1, progressbar=False)
print(fit)

# %%
ax = fit.plot_shrinkage("gen")
ax.figure.savefig(out / "arabidopsis_shrinkage.png", dpi=110, bbox_inches="tight")

# %% [markdown]
# The Poisson model is badly overdispersed for these counts: the hanging rootogram
# shows far more zeros and large counts than it expects (a negative binomial family
# is the fix; see the families issue).

# %%
ax = fit.plot_ppc("rootogram")
ax.figure.savefig(out / "arabidopsis_rootogram.png", dpi=110, bbox_inches="tight")

# %% [markdown]
# The zero count makes the same point: no replicated data set has as many zeros as the data.

# %%
ax = fit.plot_ppc("zeros")
ax.figure.savefig(out / "arabidopsis_zeros.png", dpi=110, bbox_inches="tight")
