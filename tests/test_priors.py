"""Default priors scaled to the data, overrides by name and class, and errors."""

import numpy as np
import pymc as pm
import pytest
from scipy import stats

import bayesmm as bm
from bayesmm.families.base import mad
from bayesmm.spec.priors import _SIGNATURES, Prior, PriorError


@pytest.fixture(scope="module")
def sleep():
    return bm.datasets.load("sleepstudy")


def test_gaussian_defaults_follow_brms_and_rstanarm(sleep):
    table = bm.Model("Reaction ~ Days + (Days | Subject)", sleep).prior_entries
    priors = {e.parameter: e.prior for e in table}
    y = sleep.Reaction.to_numpy()
    s = mad(y)
    assert s == pytest.approx(59.34, abs=0.01)  # brms prints student_t(3, 0, 59.3) here
    assert priors["Intercept"] == Prior("StudentT", nu=3, mu=np.median(y), sigma=s)
    assert priors["Days"] == Prior("Normal", mu=0, sigma=2.5 * y.std() / sleep.Days.std(ddof=0))
    assert priors["sd(Intercept|Subject)"] == Prior("HalfStudentT", nu=3, sigma=s)
    assert priors["sd(Days|Subject)"] == Prior("HalfStudentT", nu=3, sigma=s)
    assert priors["cor(Subject)"] == Prior("LKJ", eta=1)
    assert priors["sigma"] == Prior("HalfStudentT", nu=3, sigma=s)


def test_non_gaussian_defaults_are_on_the_link_scale(sleep):
    data = sleep.assign(count=np.round(sleep.Reaction / 10).astype(int))
    priors = {
        e.parameter: e.prior
        for e in bm.Model("count ~ Days + (1 | Subject)", data, family="poisson").prior_entries
    }
    assert priors["Intercept"] == Prior("StudentT", nu=3, mu=np.log(data["count"].mean()), sigma=2.5)
    assert priors["Days"] == Prior("Normal", mu=0, sigma=2.5 / sleep.Days.std(ddof=0))
    assert priors["sd(Intercept|Subject)"] == Prior("HalfStudentT", nu=3, sigma=2.5)


def test_overrides_by_name_group_and_class(sleep):
    model = bm.Model(
        "Reaction ~ Days + (Days | Subject)",
        sleep,
        priors={
            "Days": Prior("Normal", mu=0, sigma=10),
            "sd(Subject)": Prior("HalfNormal", sigma=30),
            "sd(Days|Subject)": Prior("HalfNormal", sigma=5),
            "cor": Prior("LKJ", eta=2),
        },
    )
    table = model.priors
    assert table.loc["Days", "prior"] == "Normal(mu=0, sigma=10)"
    assert table.loc["Days", "source"] == "user"
    assert table.loc["sd(Days|Subject)", "prior"] == "HalfNormal(sigma=5)"
    assert table.loc["sd(Intercept|Subject)", "prior"] == "HalfNormal(sigma=30)"
    assert table.loc["sd(Intercept|Subject)", "source"] == "user (sd(Subject))"
    assert table.loc["cor(Subject)", "prior"] == "LKJ(eta=2)"
    assert table.loc["Intercept", "source"] == "default"
    assert list(table.columns) == ["class", "group", "prior", "source"]


def test_user_priors_reach_the_pymc_model(sleep):
    model = bm.Model(
        "Reaction ~ Days + (Days | Subject)",
        sleep,
        priors={"Days": Prior("Normal", mu=1, sigma=10), "sigma": Prior("Exponential", lam=0.1)},
    )
    pymc_model = model.pymc_model
    sigma_logp = pm.logp(pymc_model["sigma"], 20.0).eval()
    assert sigma_logp == pytest.approx(stats.expon(scale=10).logpdf(20.0))
    # Days varies by subject, so it is sampled as Days + mean(r_Days) with its prior moved
    # by that mean (model.py's shear); Days itself must still have exactly the given prior.
    assert "b_plus_mean_r_std" in pymc_model.named_vars
    days, fixef = pm.draw([pymc_model["b"], pymc_model["fixef"]], draws=4000, random_seed=1)
    assert stats.kstest(days[:, 0], stats.norm(1, 10).cdf).pvalue > 0.01
    # The intercept keeps its default Student-t prior at the mean of Days, also sheared.
    intercept_c = fixef[:, 0] + sleep["Days"].mean() * fixef[:, 1]
    default = next(e.prior for e in model.prior_entries if e.parameter == "Intercept")
    student_t = stats.t(3, default.params["mu"], default.params["sigma"])
    assert stats.kstest(intercept_c, student_t.cdf).pvalue > 0.01


def test_integer_parameters_give_finite_log_densities():
    # pymc 5.28's HalfStudentT returns NaN for an integer nu; Prior converts to float.
    rv = Prior("HalfStudentT", nu=3, sigma=5).as_dist()
    assert pm.logp(rv, 2.0).eval() == pytest.approx(np.log(2) + stats.t(3, scale=5).logpdf(2.0))


def test_prior_for_unknown_parameter_lists_valid_names(sleep):
    with pytest.raises(
        PriorError, match="prior given for 'Dayz'.*valid names: .*Days.*sd\\(Days\\|Subject\\)"
    ):
        bm.Model("Reaction ~ Days + (Days | Subject)", sleep, priors={"Dayz": Prior("Normal", mu=0, sigma=1)})


@pytest.mark.parametrize(
    "key, prior, message",
    [
        ("sd", Prior("Normal", mu=0, sigma=1), "must live on positive values"),
        ("sigma", Prior("StudentT", nu=3, mu=0, sigma=1), "must live on positive values"),
        ("cor", Prior("HalfNormal", sigma=1), "must be Prior\\('LKJ'"),
        ("Days", Prior("LKJ", eta=2), "LKJ prior fits correlations only"),
    ],
)
def test_priors_that_do_not_fit_their_parameter(sleep, key, prior, message):
    with pytest.raises(PriorError, match=message):
        bm.Model("Reaction ~ Days + (Days | Subject)", sleep, priors={key: prior})


def test_the_sds_of_a_correlated_term_may_have_priors_of_different_families(sleep):
    # Each SD is its own variable beside the LKJ prior (bayesmm.spec.covariance.Unstructured).
    priors = {"sd(Days|Subject)": Prior("Exponential", lam=1)}
    model = bm.Model("Reaction ~ Days + (Days | Subject)", sleep, priors=priors)
    names = {v.name: type(v.owner.op).__name__ for v in model.pymc_model.free_RVs}
    assert names["sd_Subject_raw[sd(Days|Subject)]"] == "ExponentialRV"
    assert names["sd_Subject_raw[sd(Intercept|Subject)]"] == "HalfStudentTRV"
    # and the model NUTS samples copies into its shared-data form (bayesmm.inference.sampling)
    from bayesmm.inference import sampling

    built = sampling.data_model(model.sampled_model, model.design.n_obs)
    assert "sd_Subject" in {v.name for v in built.model.deterministics}


def test_prior_construction_errors():
    with pytest.raises(PriorError, match="'Gaussian' is not a PyMC distribution"):
        Prior("Gaussian", mu=0, sigma=1)
    with pytest.raises(PriorError, match="invalid parameters for Prior\\('Normal'\\)"):
        Prior("Normal", mean=0)
    with pytest.raises(PriorError, match="eta > 0"):
        Prior("LKJ", eta=-1)


@pytest.mark.parametrize("dist", sorted(_SIGNATURES))
def test_the_priors_checked_without_pymc_are_checked_as_pymc_would(dist):
    """A prior of _SIGNATURES's table is checked without PyMC: its parameters must be ones
    PyMC's dist takes, those it requires must be the ones PyMC requires, and what the table
    accepts or refuses PyMC accepts or refuses too."""
    import inspect

    taken, required = _SIGNATURES[dist]
    signature = inspect.signature(getattr(pm, dist).dist).parameters
    assert taken <= set(signature)
    valid = {name: 0.5 if name != "upper" else 2.0 for name in taken}
    getattr(pm, dist).dist(**valid)  # PyMC takes the full set
    assert Prior(dist, **valid).params == valid
    for name in required:  # PyMC refuses it without a required parameter; so does the table
        partial = {k: v for k, v in valid.items() if k != name}
        with pytest.raises((TypeError, ValueError)):
            getattr(pm, dist).dist(**partial)
        with pytest.raises(PriorError):
            Prior(dist, **partial)
    first, *rest = sorted(taken)
    shapes = {first: np.full(3, valid[first]), **{k: np.full(2, valid[k]) for k in rest}}
    if rest:  # parameters whose shapes do not broadcast: both refuse
        with pytest.raises(ValueError):
            getattr(pm, dist).dist(**shapes)
        with pytest.raises(PriorError, match="do not broadcast"):
            Prior(dist, **shapes)


def test_building_a_model_imports_neither_pymc_nor_pytensor():
    """bayesmm.lazy: a Model, its priors and its design are made without PyMC, which a
    graph (``model.pymc_model``) imports when it is first built."""
    import subprocess
    import sys

    code = (
        "import sys, bayesmm as bm\n"
        "m = bm.Model('Reaction ~ Days + (Days | Subject)', bm.datasets.load('sleepstudy'),\n"
        "             priors={'b': bm.Prior('Normal', mu=0, sigma=5),\n"
        "                     'sigma': bm.Prior('Exponential', lam=1)})\n"
        "m.priors\n"
        "print(sorted(k for k in ('pymc', 'pytensor') if k in sys.modules))\n"
        "m.pymc_model\n"
        "print(sorted(k for k in ('pymc', 'pytensor') if k in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.split("\n")[:2] == ["[]", "['pymc', 'pytensor']"], result.stderr


def test_user_prior_dict_is_not_modified(sleep):
    priors = {"b": Prior("Normal", mu=0, sigma=5)}
    bm.Model("Reaction ~ Days + (1 | Subject)", sleep, priors=priors)
    assert list(priors) == ["b"]


def test_mixed_families_for_coefficients_build_one_vector(sleep):
    model = bm.Model(
        "Reaction ~ Days + I(Days**2) + (1 | Subject)",
        sleep,
        priors={"Days": Prior("StudentT", nu=4, mu=0, sigma=10)},
        decomp=None,  # Days and its square are collinear enough for decomp="auto" to decompose
    )
    names = [rv.name for rv in model.pymc_model.free_RVs]
    # Each slope is sampled per SD of its predictor; b keeps exactly the prior given.
    assert "b[Days]_std" in names and "b[I(Days**2)]_std" in names
    b = pm.draw(model.pymc_model["b"], draws=4000, random_seed=2)
    assert b.shape == (4000, 2)
    assert stats.kstest(b[:, 0], stats.t(4, 0, 10).cdf).pvalue > 0.01
    # Through the QR decomposition (chosen by default here) each slope keeps its own prior too.
    decomposed = bm.Model("Reaction ~ Days + I(Days**2) + (1 | Subject)", sleep,
                          priors={"Days": Prior("StudentT", nu=4, mu=0, sigma=10)})  # fmt: skip
    assert decomposed.decomp == "QR"
    b = pm.draw(decomposed.pymc_model["b"], draws=4000, random_seed=2)
    assert stats.kstest(b[:, 0], stats.t(4, 0, 10).cdf).pvalue > 0.01
    (square,) = [e.prior for e in decomposed.prior_entries if e.parameter == "I(Days**2)"]
    assert square.dist == "Normal"
    assert stats.kstest(b[:, 1], stats.norm(square.params["mu"], square.params["sigma"]).cdf).pvalue > 0.01


def test_a_priors_parameters_enter_pymc_in_float64():
    """PyTensor makes a Python float that float32 holds exactly (2.5, 3.0) a float32 constant;
    a StudentT's 1 / sigma^2 was then computed in float32, its log-density 5e-9 off."""
    with pm.Model():
        variable = Prior("StudentT", nu=3, mu=0.0665893890151239, sigma=2.5).create("v")
        half = Prior("HalfNormal", sigma=2.5).as_dist()
    assert all(i.dtype == "float64" for i in variable.owner.inputs[2:])
    ours = float(pm.logp(variable, 1.3).eval())
    assert ours == pytest.approx(stats.t.logpdf(1.3, 3, 0.0665893890151239, 2.5), rel=1e-14)
    assert float(pm.logp(half, 0.7).eval()) == pytest.approx(stats.halfnorm.logpdf(0.7, 0, 2.5), rel=1e-14)
