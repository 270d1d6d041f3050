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


def test_demo_writes_plots(demo):
    _, out = demo
    for name in ("ranef_Subject.png", "trace.png"):
        path = out / name
        assert path.stat().st_size > 10_000
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_errors_are_one_line():
    result = subprocess.run(
        [sys.executable, "-m", "bayesmm", "demo", "--draws", "0"], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "bayesmm: error: draws must be a positive integer, got 0"
