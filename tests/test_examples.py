"""The example scripts run end to end (with fewer draws) and save their figures."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
FIGURES = {
    "shrinkage_arabidopsis.py": [
        "arabidopsis_shrinkage.png",
        "arabidopsis_rootogram.png",
        "arabidopsis_zeros.png",
    ],
    "sleepstudy_slopes_shrinkage.py": ["sleepstudy_shrinkage_2d.png", "sleepstudy_ppc.png"],
    "sleepstudy_random_slopes.py": ["sleepstudy_ranef.png", "sleepstudy_priors.png"],
}


@pytest.mark.parametrize("script", sorted(FIGURES))
def test_example_runs_and_saves_its_figures(script, tmp_path):
    env = {**os.environ, "BAYESMM_EXAMPLE_DRAWS": "200", "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script), str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for name in FIGURES[script]:
        figure = tmp_path / name
        assert figure.stat().st_size > 10_000, name
        assert figure.read_bytes()[:4] == b"\x89PNG"
