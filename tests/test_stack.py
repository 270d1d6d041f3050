"""What the move to PyMC 6 / ArviZ 1 promises: a clean posterior, PyMC's log-likelihood,
ArviZ 1's checks, and a save format that runs no code and survives interruption."""

import json
import os
import pickle
import subprocess
import sys

import arviz as az
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import bayesmm as bm
from bayesmm.results import persist
from bayesmm.results.predict import family_param_draws, linear_predictor_draws


@pytest.mark.slow
@pytest.mark.parametrize("which", ["sleepstudy_fit", "sleepstudy_sampled_fit"])
def test_posterior_holds_only_the_summary_parameters(which, request):
    fit = request.getfixturevalue(which)
    assert isinstance(fit.idata, xr.DataTree)
    post = fit.idata.posterior
    assert sorted(post.data_vars) == ["cor_Subject", "fixef", "r_Subject", "sd_Subject", "sigma"]
    # The sampler's own variables are kept apart, where PyMC can find them for the log-likelihood.
    internal = set(fit.idata["reparameterization"].data_vars)
    assert {"cpc_Subject", "sd_Subject_raw"} <= internal  # the LKJ factor's partial correlations, the SDs
    # Sampled, the subjects' effects are there too; integrated out, they were never sampled.
    assert ({"z_Subject", "Intercept_c_plus_mean_r"} <= internal) == (not fit.model.collapsed)
    assert fit.model.collapsed == (which == "sleepstudy_fit")
    rows = az.summary(fit.idata).index
    assert not [r for r in rows if r.startswith(("z_", "b", "Intercept_c", "cpc")) or "_raw" in r]
    assert "sd_Subject[Days]" in rows and "cor_Subject[Intercept,Days]" in rows
    # The response, also where the sampler saw it only inside a Potential.
    np.testing.assert_array_equal(fit.idata.observed_data["Reaction"].values, fit.design.y)


@pytest.mark.slow
def test_pymc_log_likelihood_equals_the_family_density(sleepstudy_sampled_fit):
    fit = sleepstudy_sampled_fit
    fit.loo()
    pymc_values = fit.idata.log_likelihood["Reaction"].values.reshape(-1, 180)
    eta, trials, _ = linear_predictor_draws(fit)
    by_hand = fit.model.family.log_likelihood(fit.design.y, eta, family_param_draws(fit), trials)
    np.testing.assert_allclose(pymc_values, by_hand, rtol=1e-8)


@pytest.mark.slow
def test_waic_by_its_formula(sleepstudy_fit):
    waic = sleepstudy_fit.waic()
    values = sleepstudy_fit.idata.log_likelihood["Reaction"].values.reshape(-1, 180)
    lppd = np.log(np.exp(values).mean(axis=0))
    p_waic = values.var(axis=0, ddof=1)
    assert waic["elpd_waic"] == pytest.approx((lppd - p_waic).sum())
    assert waic["p_waic"] == pytest.approx(p_waic.sum())
    # WAIC and PSIS-LOO estimate the same quantity; here they agree within a few points.
    assert abs(waic["elpd_waic"] - sleepstudy_fit.loo().elpd) < 5
    with pytest.raises(ValueError, match="PSIS-LOO only"):
        bm.compare({"a": sleepstudy_fit, "b": sleepstudy_fit}, ic="waic")


@pytest.mark.slow
def test_trace_plot_shows_the_summary_parameters(sleepstudy_fit):
    collection = sleepstudy_fit.plot_trace()
    # The summary's names, not the PyMC variables' (issue 33: sd_Subject / Intercept leaked)
    assert list(collection.viz["plot"].data_vars) == list(sleepstudy_fit.summary().index)
    plots = collection.viz["plot"]
    titles = [plots[name].item().get_title() for name in plots.data_vars]
    assert "sd(Days|Subject)" in titles and not any("_" in t for t in titles)
    legend = collection.viz["plot"]["sigma"].item().figure.legends[0]
    assert legend.get_title().get_text() == "chain" and len(legend.get_texts()) == 4
    assert "r_Subject" in sleepstudy_fit.plot_trace(var_names=["r_Subject"]).viz["plot"].data_vars


def test_plot_priors_draws_no_responses():
    """Under wide priors a negative binomial's prior predictive overflows; the parameters' priors do not."""
    rng = np.random.default_rng(2)
    g = np.repeat(np.arange(10), 10)
    data = pd.DataFrame({"y": rng.negative_binomial(2, 0.3, g.size), "g": g})
    model = bm.Model("y ~ 1 + (1 | g)", data, family="negbinomial")
    prior = model.prior_draws(draws=300, random_seed=1)
    assert "y" not in prior and set(prior.data_vars) == {"fixef", "r_g", "sd_g", "alpha"}
    assert prior.sizes["draw"] == 300


@pytest.fixture
def saved(sleepstudy_fit, tmp_path):
    return sleepstudy_fit.save(tmp_path / "sleep.bmm")


@pytest.mark.slow
def test_saved_file_is_netcdf_with_a_json_description(saved):
    tree = xr.open_datatree(saved, engine="h5netcdf")
    assert {"posterior", "sample_stats", "reparameterization", persist.FRAME_GROUP} <= set(tree.children)
    description = json.loads(tree.attrs["bayesmm"])
    assert description["formula"] == "Reaction ~ Days + (Days | Subject)"
    assert description["family"] == "gaussian" and description["priors"] == {}
    tree.close()


@pytest.mark.slow
def test_interrupted_save_keeps_the_earlier_file(sleepstudy_fit, saved, monkeypatch):
    before = saved.read_bytes()

    def interrupted(self, path, **kwargs):
        with open(path, "wb") as handle:
            handle.write(b"\x89HDF partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(xr.DataTree, "to_netcdf", interrupted)
    with pytest.raises(KeyboardInterrupt):
        sleepstudy_fit.save(saved)
    assert saved.read_bytes() == before
    assert [p.name for p in saved.parent.iterdir()] == [saved.name]  # no partial file left behind


def test_loading_never_runs_code_from_the_file(tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.bmm"
    path.write_bytes(pickle.dumps({"format": "bayesmm-fit/1", "model": Payload()}))
    with pytest.raises(ValueError, match="does not load pickles"):
        bm.load(path)
    assert not marker.exists()


@pytest.mark.slow
def test_damaged_files_name_the_file_and_the_reason(saved, tmp_path):
    truncated = tmp_path / "truncated.bmm"
    truncated.write_bytes(saved.read_bytes()[: os.path.getsize(saved) // 2])
    with pytest.raises(ValueError, match="truncated.bmm is not a readable netCDF file"):
        bm.load(truncated)
    empty = tmp_path / "empty.bmm"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.bmm is empty"):
        bm.load(empty)
    with pytest.raises(FileNotFoundError, match="no such file"):
        bm.load(tmp_path / "missing.bmm")


@pytest.mark.slow
def test_loaded_fit_rebuilds_the_model_from_its_frame(saved, sleepstudy_fit):
    loaded = bm.load(saved)
    np.testing.assert_array_equal(loaded.design.X, sleepstudy_fit.design.X)
    assert loaded.design.group_levels("Subject") == sleepstudy_fit.design.group_levels("Subject")
    assert list(loaded.model.model_frame.columns) == ["Reaction", "Days", "Subject"]
    loaded.loo()  # the rebuilt PyMC model evaluates the saved draws
    assert loaded.idata.log_likelihood["Reaction"].shape == (4, 1000, 180)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("formula", "parts", "message"),
    [
        (
            "Reaction ~ I(__import__('pathlib').Path('{marker}').touch()) + (Days | Subject)",
            {},
            "function '__import__' is not allowed",
        ),
        (
            "Reaction ~ I(open('{marker}', 'w').close()) + (Days | Subject)",
            {},
            "function 'open' is not allowed",
        ),
        ("Reaction ~ I(np.load('{marker}')) + (Days | Subject)", {}, "function 'np.load' is not allowed"),
        ("Reaction ~ I((lambda: 0)()) + (Days | Subject)", {}, "'lambda' is neither a column"),
        (
            "Reaction ~ Days + (Days | Subject)",
            {"zi": "~ I(open('{marker}', 'w'))"},
            "family 'gaussian' takes no zi",
        ),
        (
            "Reaction ~ Days + (Days | Subject)",
            {"dispersion": "~ I(open('{marker}', 'w'))"},
            "function 'open' is not allowed",
        ),
        ("Reaction ~ Days + (Days | Subject)", {"data": "~ 1"}, "must be among zi, hu, dispersion"),
    ],
)
def test_a_crafted_file_cannot_run_code_through_its_formula(saved, tmp_path, formula, parts, message):
    """A saved file's formulas go through the same allow-list as any formula: nothing runs."""
    marker = tmp_path / "ran"
    tree = xr.open_datatree(saved, engine="h5netcdf").load()
    description = json.loads(tree.attrs["bayesmm"])
    description["formula"] = formula.format(marker=marker)
    description["parts"] = {p: t.format(marker=marker) for p, t in parts.items()}
    tree.attrs["bayesmm"] = json.dumps(description)
    crafted = tmp_path / "crafted.bmm"
    tree.to_netcdf(crafted, engine="h5netcdf")
    with pytest.raises(ValueError, match=message):
        bm.load(crafted)
    assert not marker.exists()


@pytest.mark.slow
def test_the_parameterization_is_saved_with_the_draws(saved, sleepstudy_fit, tmp_path):
    """The reparameterization group's draws fit only the model they came from: a file says
    which terms were centred; one without the key (older files) was all non-centred."""
    assert sleepstudy_fit.model.centred == (True,)
    assert bm.load(saved).model.centred == (True,)
    tree = xr.open_datatree(saved, engine="h5netcdf").load()
    description = json.loads(tree.attrs["bayesmm"])
    assert description["centred"] == [True]
    for k, (value, expected) in enumerate(((None, (False,)), ("yes", None), ([True, False], None))):
        if value is None:
            del description["centred"]
        else:
            description["centred"] = value
        tree.attrs["bayesmm"] = json.dumps(description)
        edited = tmp_path / f"edited{k}.bmm"  # a loaded file may still be open
        tree.to_netcdf(edited, engine="h5netcdf")
        if expected is None:
            with pytest.raises(ValueError, match=rf"edited{k}.bmm: 'centred' must list true/false for each"):
                bm.load(edited)
        else:
            assert bm.load(edited).model.centred == expected


def _loaded_after(statements: str, modules=("matplotlib", "arviz_plots", "nutpie", "numba")) -> str:
    """What a fresh process that runs ``statements`` (bayesmm imported as bm) prints last: the
    ``modules`` it has imported, after anything the statements print."""
    code = (
        "import sys, warnings, bayesmm as bm\n"
        "warnings.simplefilter('ignore')\n"
        "model = bm.Model('Reaction ~ Days + (Days | Subject)', bm.datasets.load('sleepstudy'))\n"
        f"{statements}\n"
        f"print(sorted(m for m in {modules!r} if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_building_a_model_loads_neither_matplotlib_nor_a_sampler():
    # Plots and samplers load when first used: a model is formula, data and a PyMC graph.
    assert _loaded_after("model.pymc_model") == "[]"


@pytest.mark.slow
@pytest.mark.parametrize("collapsed", [True, False])
def test_a_fit_on_the_template_loads_no_sampler_library_numba_matplotlib_or_pymc(collapsed):
    """A fit process's floor is what it imports: bayesmm's NUTS needs none of nutpie (which
    brings arviz, arviz_plots, matplotlib.pyplot and numba: 1.75 s of a process here), and a
    model the template writes is laid out from its design, so neither PyMC nor PyTensor is
    imported (a third of a second) for the fit, its summary and its checks."""
    options = "" if collapsed else ", collapsed=False"
    model = f"model = bm.Model('Reaction ~ Days + (Days | Subject)', bm.datasets.load('sleepstudy'){options})"
    fit = "fit = model.fit(draws=50, tune=50, chains=2, random_seed=1, progressbar=False); fit.summary()"
    modules = ("matplotlib", "arviz_plots", "nutpie", "numba", "pymc", "pytensor")
    said = "print(fit.settings.sampler, fit.idata.attrs['laid_out_by'])"
    printed = _loaded_after(f"{model}\n{fit}\n{said}", modules)
    assert printed.splitlines() == ["bayesmm design", "[]"]
