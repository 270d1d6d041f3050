"""The demo, run as users run it: a separate process that prints a summary and writes plots."""

import subprocess
import sys

import pytest


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bayesmm",
            "demo",
            "--draws",
            "300",
            "--chains",
            "2",
            "--quiet",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    return result, out


@pytest.mark.slow  # runs a sampling process
def test_demo_prints_the_summary(demo):
    result, _ = demo
    assert result.returncode == 0, result.stderr
    for text in (
        "Formula: Reaction ~ Days + (Days | Subject)",
        "sd(Days|Subject)",
        "cor(Intercept,Days|Subject)",
        "Coefficients per subject",
    ):
        assert text in result.stdout


@pytest.mark.slow  # runs a sampling process
def test_demo_writes_plots(demo):
    _, out = demo
    for name in ("ranef_Subject.png", "trace.png", "shrinkage_Subject.png", "ppc.png"):
        path = out / name
        assert path.stat().st_size > 10_000
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_errors_are_one_line():
    result = subprocess.run(
        [sys.executable, "-m", "bayesmm", "demo", "--draws", "0"], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "bayesmm: error: --draws must be 1 or more, got 0"


@pytest.mark.parametrize(
    "options, message",
    [
        (["--target-accept", "1.2"], "--target-accept must lie between 0 and 1, got 1.2"),
        (["--tune", "-5"], "--tune must be 0 or more, got -5"),
        (["--cores", "0"], "--cores must be 1 or more, got 0"),
        (
            ["--prior", "b~Normal(0, 1)"],
            "--prior takes NAME=DIST(ARGS), e.g. 'b=Normal(0, 5)'; got 'b~Normal(0, 1)'",
        ),
        (["--prior", "b=Normal(0, __import__('os'))"], "--prior takes NAME=DIST(ARGS)"),
        (
            ["--prior", "b=Normal(0, os.getcwd)"],
            "--prior 'b=Normal(0, os.getcwd)': the arguments of Normal are numbers",
        ),
        (
            ["--prior", "b=Normal(mu=0, 5)"],
            "--prior 'b=Normal(mu=0, 5)': positional arguments come before keyword ones",
        ),
    ],
)
def test_fit_argument_errors_come_before_pymc_is_imported(tmp_path, options, message):
    (tmp_path / "d.csv").write_text("y,x\n1,2\n")
    code = (
        "import sys; from bayesmm.cli import main; "
        f"rc = main(['fit', {str(tmp_path / 'd.csv')!r}, 'y ~ x', *{options!r}]); "
        "print(rc, 'pymc' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.split() == ["2", "False"], result.stderr
    assert result.stderr.strip().startswith(f"bayesmm: error: {message}")


def test_cli_priors_are_read_as_data():
    from bayesmm.cli import _prior, _prior_syntax

    assert _prior_syntax("sd(Days|Subject) = HalfStudentT(nu=3, sigma=10)") == (
        "sd(Days|Subject)", "HalfStudentT", [("nu", 3.0), ("sigma", 10.0)]
    )  # fmt: skip
    # brms's spelling and PyMC's parameter order: student_t(3, 0, 2.5) is nu, mu, sigma.
    assert (
        repr(_prior("b", *_prior_syntax("b=student_t(3, 0, 2.5)")[1:])) == "StudentT(nu=3, mu=0, sigma=2.5)"
    )
    assert repr(_prior("cor", *_prior_syntax("cor=lkj(2)")[1:])) == "LKJ(eta=2)"
    with pytest.raises(ValueError, match=r"Normal takes at most 3 numbers"):  # mu, sigma, tau
        _prior("b", *_prior_syntax("b=Normal(0, 1, 2, 3)")[1:])


@pytest.fixture(scope="module")
def fit_run(tmp_path_factory):
    import bayesmm as bm

    folder = tmp_path_factory.mktemp("fit")
    bm.datasets.load("cbpp").to_csv(folder / "cbpp.csv", index=False)
    formula = "cbind(incidence, size - incidence) ~ factor(period) + (1 | herd)"
    options = ["--family", "binomial", "--draws", "300", "--chains", "2", "--seed", "1", "--quiet",
               "--tune", "400", "--target-accept", "0.9", "--sampler", "pymc", "--cores", "1",
               "--prior", "b=Normal(0, 2)", "--prior", "sd(herd)=HalfNormal(sigma=1.5)"]  # fmt: skip
    command = [sys.executable, "-m", "bayesmm", "fit", str(folder / "cbpp.csv"), formula, *options]
    command += ["--out", str(folder / "out")]
    return subprocess.run(command, capture_output=True, text=True, timeout=600), folder / "out"


@pytest.mark.slow  # runs a sampling process
def test_fit_command_prints_summary_and_diagnostics(fit_run):
    result, _ = fit_run
    assert result.returncode == 0, result.stderr[-3000:]
    for text in (
        "Family: binomial (link: logit)",
        "factor(period)[T.2]",
        "sd(Intercept|herd)",
        "ok divergences",
    ):
        assert text in result.stdout


@pytest.mark.slow  # runs a sampling process
def test_fit_command_writes_the_posterior_and_plots(fit_run):
    import arviz as az

    _, out = fit_run
    idata = az.from_netcdf(out / "idata.nc")
    assert idata.posterior.sizes["chain"] == 2 and idata.posterior.sizes["draw"] == 300
    assert list(idata.posterior["r_herd"].coords["herd"].values)[:3] == ["1", "2", "3"]
    for name in ("trace.png", "shrinkage_herd.png", "ppc.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG", name


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["missing.csv", "y ~ x"], "no such data file: missing.csv"),
        (
            ["DATA", "incidence ~ peroid"],
            "column 'peroid' in the fixed effects is not in the data; did you mean 'period'?",
        ),
        (
            ["DATA", "incidence ~ period | herd"],
            "'|' outside parentheses; random-effect terms are written (x | g) "
            "(at character 20 of 'incidence ~ period | herd')",
        ),
        (
            ["DATA", "incidence ~ period", "--family", "poison"],
            "unknown family 'poison'; did you mean 'poisson'?",
        ),
        (
            ["DATA", "incidence ~ factor(period) + (1 | herd)", "--family", "poisson", "--collapsed"],
            "collapsed=True: the group effects of this model cannot be integrated out: family 'poisson'",
        ),
    ],
)
@pytest.mark.slow  # runs a sampling process
def test_fit_command_errors_are_one_line(fit_run, arguments, message):
    _, out = fit_run
    arguments = [str(out.parent / "cbpp.csv") if a == "DATA" else a for a in arguments]
    result = subprocess.run(
        [sys.executable, "-m", "bayesmm", "fit", *arguments], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith(f"bayesmm: error: {message}")


@pytest.mark.slow  # runs a sampling process
def test_fit_command_says_each_problem_once(tmp_path):
    import bayesmm as bm

    bm.datasets.load("sleepstudy").to_csv(tmp_path / "sleep.csv", index=False)
    options = ["--draws", "30", "--chains", "2", "--seed", "1", "--quiet", "--out", str(tmp_path / "out")]
    command = [
        sys.executable,
        "-m",
        "bayesmm",
        "fit",
        str(tmp_path / "sleep.csv"),
        "Reaction ~ Days + (1 | Subject)",
    ]
    result = subprocess.run(command + options, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    printed = result.stdout + result.stderr
    # 60 draws cannot give 200 effective ones: the ESS check fails, and its advice is said once.
    assert printed.count("too few effective draws to describe the centre") == 1
    assert printed.count("Diagnostics: ") == 1
    assert "warnings.warn" not in result.stderr and ".py:" not in result.stderr
