"""Faults: Ctrl-C, damaged files and odd CLI input stop cleanly and say why."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import bayesmm as bm

from .helpers import frame


@pytest.mark.slow
@pytest.mark.parametrize("sampler", ["pymc", "nutpie"])
def test_an_interrupted_fit_raises_instead_of_returning_a_short_fit(monkeypatch, sampler):
    """PyMC and nutpie return the draws they have on Ctrl-C (measured: 2 x 72133 of
    2 x 200000 with nutpie; 1 of 2 chains with PyMC); bayesmm refuses that result."""
    import nutpie
    import pymc as pm

    model = bm.Model("y ~ x + (1 | g)", frame())
    module = pm if sampler == "pymc" else nutpie  # bayesmm samples nutpie directly
    real_sample = module.sample

    def interrupted(*args, **kwargs):
        return real_sample(*args, **{**kwargs, "draws": 20})  # fewer draws than asked, as after Ctrl-C

    monkeypatch.setattr(module, "sample", interrupted)
    with pytest.raises(KeyboardInterrupt, match="sampling was interrupted: 1 chains x 20 draws of 1 x 500"):
        model.fit(draws=500, tune=20, chains=1, random_seed=1, progressbar=False, sampler=sampler)


def _cli(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "bayesmm", *args], capture_output=True, text=True, **kwargs)


@pytest.mark.slow  # runs a sampling process
@pytest.mark.parametrize("wait", [1.5, 4.0, 9.0])
def test_ctrl_c_at_any_stage_exits_130(tmp_path, wait):
    """Importing, compiling or sampling: the same one line and exit status."""
    data = tmp_path / "d.csv"
    frame().to_csv(data, index=False)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bayesmm",
            "fit",
            str(data),
            "y ~ x + (1 | g)",
            "--draws",
            "1000000",
            "--quiet",
            "--out",
            str(tmp_path / "out"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(wait)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert (process.returncode, stderr.strip().splitlines()[-1]) == (130, "bayesmm: interrupted")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.mkdir(), "is a folder; give the CSV file inside it"),
        (lambda p: p.write_text(""), "is empty \\(a CSV file with a header row is needed\\)"),
        (lambda p: p.write_text("y;x;g\n1;2;a\n"), "looks separated by semicolons, not ',': add --sep ';'"),
        (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe"), "is not a text \\(CSV\\) file"),
        (lambda p: None, "no such data file"),
    ],
)
def test_cli_data_file_problems_answer_at_once_without_importing_pymc(tmp_path, make, message):
    path = tmp_path / "data.csv"
    make(path)
    code = (
        "import sys; from bayesmm.cli import main; "
        f"rc = main(['fit', {str(path)!r}, 'y ~ x']); print(rc, 'pymc' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.split() == ["2", "False"]
    assert result.stderr.startswith("bayesmm: error: ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert __import__("re").search(message, result.stderr)


def test_semicolon_file_reads_with_sep(tmp_path):
    path = tmp_path / "data.csv"
    frame().to_csv(path, index=False, sep=";")
    import bayesmm.cli as cli

    assert cli._check_data_file(str(path), ";") == path


def test_help_and_argument_errors_do_not_import_pymc():
    code = (
        "import sys\nfrom bayesmm.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "rc = main(['demo', '--chains', '0'])\nprint(rc, 'pymc' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip().splitlines()[-1] == "2 False"
    assert "bayesmm: error: --chains must be 1 or more, got 0" in result.stderr


def test_damaged_saved_files_name_the_file(tmp_path):
    empty = tmp_path / "empty.nc"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=f"{empty} is empty: it is not a bayesmm fit"):
        bm.load(empty)
    foreign = tmp_path / "foreign.nc"
    xr.Dataset({"a": ("x", np.arange(3))}).to_netcdf(foreign, engine="h5netcdf")
    with pytest.raises(ValueError, match=f"{foreign} is a netCDF file but not a bayesmm fit"):
        bm.load(foreign)


def test_cli_figures_are_written_atomically(tmp_path):
    """An interrupted plot keeps the earlier PNG; a complete one replaces it."""
    import matplotlib.pyplot as plt

    import bayesmm.cli as cli

    path = tmp_path / "ppc.png"
    path.write_bytes(b"earlier")

    class Interrupted:
        def savefig(self, target, **options):
            Path(target).write_bytes(b"\x89PNG partial")
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cli._save(Interrupted(), path)
    assert path.read_bytes() == b"earlier"
    assert [p.name for p in tmp_path.iterdir()] == ["ppc.png"]
    figure, _ = plt.subplots()
    cli._save(figure, path, dpi=50)
    plt.close(figure)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
