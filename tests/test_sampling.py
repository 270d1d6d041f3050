"""The compiled-model cache: which models share a structure key (exact, fast), and (slow)
that a reused compiled model samples exactly what compiling anew would."""


import numpy as np
import pytest

import bayesmm as bm
from bayesmm.inference import sampling

from .conftest import quiet_fit

FORMULA = "Reaction ~ Days + (Days | Subject)"


@pytest.fixture(scope="module")
def noisy(sleepstudy):
    return sleepstudy.assign(Reaction=sleepstudy.Reaction + np.random.default_rng(2).normal(0, 10, 180))


def _key(formula, data, **kwargs):
    model = bm.Model(formula, data, **kwargs)
    return sampling.data_model(model.pymc_model, model.design.n_obs)


def test_data_of_the_same_shape_share_the_structure(sleepstudy, noisy):
    first, second = _key(FORMULA, sleepstudy), _key(FORMULA, noisy)
    assert first.key == second.key
    # The response and the priors scaled to it differ; the structure does not. The values
    # are packed into one vector per dtype, the response a stretch of the float64 one.
    assert set(first.values) == {"bayesmm_data_float64", "bayesmm_data_int64"}
    np.testing.assert_array_equal(first.values["bayesmm_data_int64"], second.values["bayesmm_data_int64"])

    def holds(vector, stretch):
        windows = np.lib.stride_tricks.sliding_window_view(vector, len(stretch))
        return bool(np.any(np.all(windows == stretch, axis=1)))

    floats = first.values["bayesmm_data_float64"], second.values["bayesmm_data_float64"]
    assert holds(floats[0], sleepstudy.Reaction.to_numpy()) and holds(floats[1], noisy.Reaction.to_numpy())
    assert not holds(floats[0], noisy.Reaction.to_numpy())


def test_a_different_structure_is_a_different_key(sleepstudy):
    key = _key(FORMULA, sleepstudy).key
    assert _key("Reaction ~ Days + (Days || Subject)", sleepstudy).key != key
    assert _key(FORMULA, sleepstudy, centered=False).key != key
    assert _key(FORMULA, sleepstudy, family="student").key != key
    # One subject fewer: other shapes and level counts.
    fewer = sleepstudy[sleepstudy.Subject != sleepstudy.Subject.iloc[0]]
    assert _key(FORMULA, fewer.assign(Subject=fewer.Subject.cat.remove_unused_categories())).key != key


def test_the_shared_copy_has_the_same_log_density(sleepstudy):
    model = bm.Model(FORMULA, sleepstudy)
    copy = sampling.data_model(model.pymc_model, model.design.n_obs).model
    point = model.pymc_model.initial_point(random_seed=3)
    original = model.pymc_model.compile_logp()(point)
    # Equal up to rounding: constants fold into other operations, shared values do not.
    assert copy.compile_logp()(point) == pytest.approx(original, rel=1e-9)


@pytest.mark.slow
def test_a_reused_compiled_model_samples_what_a_new_one_would(sleepstudy, noisy):
    # nutpie's route goes through the cache (bayesmm's NUTS samples this model on programs
    # written from the design, with nothing kept).
    settings = dict(draws=200, tune=300, chains=2, random_seed=7, sampler="nutpie")
    sampling.clear_compiled()
    quiet_fit(bm.Model(FORMULA, sleepstudy), **settings)
    # New labels for the subjects: the posterior must carry these, not the compiled model's.
    relabelled = noisy.assign(Subject=noisy.Subject.cat.rename_categories(lambda s: f"s{s}"))
    reused = quiet_fit(bm.Model(FORMULA, relabelled), **settings)
    assert reused.idata.attrs["compiled_model_reused"] == 1
    sampling.clear_compiled()
    fresh = quiet_fit(bm.Model(FORMULA, relabelled), **settings)
    assert fresh.idata.attrs["compiled_model_reused"] == 0
    for name in ("fixef", "sd_Subject", "r_Subject", "sigma"):
        np.testing.assert_array_equal(reused.idata.posterior[name].values, fresh.idata.posterior[name].values)
    subjects = [str(s) for s in sleepstudy.Subject.cat.categories]
    assert list(reused.idata.posterior["Subject"].values) == [f"s{s}" for s in subjects]
    np.testing.assert_array_equal(reused.idata.observed_data["Reaction"].values, noisy.Reaction.to_numpy())
    # update(data=...) goes through the same cache, with the fit's own settings.
    again = reused.update(data=sleepstudy)
    assert again.idata.attrs["compiled_model_reused"] == 1
    assert again.idata.posterior.sizes["draw"] == 200
    assert list(again.idata.posterior["Subject"].values) == subjects


@pytest.mark.slow
def test_the_trace_has_pm_samples_groups_without_the_tuning_draws(sleepstudy):
    # nutpie keeps the tuning draws by default (warmup_posterior, warmup_sample_stats);
    # pm.sample does not, and converting them cost every fit time.
    fit = quiet_fit(bm.Model("Reaction ~ Days + (1 | Subject)", sleepstudy, collapsed=False),
                    draws=30, tune=40, chains=1, random_seed=2)  # fmt: skip
    groups = {node.name for node in fit.idata.children.values()}
    assert {"posterior", "sample_stats", "observed_data"} <= groups
    assert not any(name.startswith("warmup") for name in groups)
    assert fit.idata.posterior.sizes["draw"] == 30
