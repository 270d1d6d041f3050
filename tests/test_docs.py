"""The documentation site builds with no warnings, and building it executes every
gallery notebook in examples/ (fewer draws), so the gallery cannot rot."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import bayesmm as bm

from .test_docstrings import PUBLIC

ROOT = Path(__file__).resolve().parent.parent
# Figures each notebook must show (matplotlib output embedded as PNG).
FIGURES = {
    "01_random_intercepts_arabidopsis": 4,
    "02_random_slopes_sleepstudy": 4,
    "03_crossed_and_nested": 1,
    "04_binomial_cbpp": 3,
    "05_singular_fits": 1,
    "06_zero_inflated_owls": 5,
    "07_priors": 3,
    "08_ordinal_wine": 2,
    "09_power_analysis": 1,
    "10_estimation_methods": 2,
    "11_model_building": 1,
    "12_meta_analysis_eight_schools": 2,
    "13_survival_kidney": 2,
    "14_gamm_chickweight": 1,
    "15_phylogenetic": 1,
}
# The theme embeds two small PNG icons in every notebook page; figures are larger.
FIGURE_BYTES = 5_000


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "BAYESMM_EXAMPLE_DRAWS": "300", "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return out, result.stderr


@pytest.mark.slow  # runs a sampling process
def test_build_has_no_warnings(site):
    _, log = site
    assert not re.findall(r"^WARNING\b.*", log, flags=re.MULTILINE)


@pytest.mark.slow  # runs a sampling process
def test_gallery_lists_every_example(site):
    assert sorted(p.stem for p in (ROOT / "examples").glob("*.py")) == sorted(FIGURES)
    nav = (ROOT / "mkdocs.yml").read_text()
    for name in FIGURES:
        assert f"gallery/{name}.py" in nav


@pytest.mark.slow  # runs a sampling process
@pytest.mark.parametrize("name", sorted(FIGURES))
def test_notebook_executed_and_shows_its_figures(site, name):
    out, _ = site
    page = (out / "gallery" / name / "index.html").read_text().replace("\u00a0", " ").replace("&nbsp;", " ")
    figures = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    assert sum(len(f) > FIGURE_BYTES for f in figures) == FIGURES[name]
    assert "Traceback" not in page
    # Every code cell ran: executed cells carry an execution count, unexecuted ones "In [ ]".
    assert "In [1]" in page
    assert "In [ ]" not in page


@pytest.mark.slow  # runs a sampling process
def test_reference_pages_document_the_api(site):
    out, _ = site
    api = (out / "api" / "index.html").read_text()
    missing = [name for name in PUBLIC if f'id="{name}"' not in api]
    assert not missing
    # Every public function's examples render as highlighted code (at least one block each),
    # and no Sphinx role is left as literal text: cross-references are mkdocstrings links.
    assert api.count('doc-section-title">Examples:') == len(PUBLIC)
    code = '<div class="highlight"><pre><span></span><code><span class="gp">&gt;&gt;&gt;'
    assert api.count(code) >= len(PUBLIC)
    assert not re.findall(r":(?:class|meth|func):<code>", api)
    assert 'href="#bayesmm.Fit.ranef"' in api
    formulas = (out / "formulas" / "index.html").read_text()
    assert "cs(1 + x + z | g)" in formulas


def test_model_docstring_lists_every_family():
    """Model's ``family`` parameter names every family (tests/test_docstrings.py checks that
    every parameter of every public function is documented)."""
    import inspect

    model_doc = inspect.getdoc(bm.Model)
    names = {f.name for f in bm.FAMILIES.values()}
    assert all(f'"{name}"' in model_doc for name in names), names


NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                "eleven", "twelve", "thirteen", "fourteen", "fifteen"]  # fmt: skip


def test_counts_in_the_prose_match_the_code():
    """The docs' and README's counts of the demo's plots and of the gallery's notebooks are
    the code's (docs/index.md said "two plots" and "seven worked examples": issue 33)."""
    from bayesmm.cli import DEMO_PLOTS

    index = (ROOT / "docs" / "index.md").read_text()
    readme = (ROOT / "README.md").read_text()
    plots = NUMBER_WORDS[len(DEMO_PLOTS)]
    notebooks = NUMBER_WORDS[len(list((ROOT / "examples").glob("*.py")))]
    assert re.search(rf"writes {plots} plots", index)
    assert re.search(rf"gallery: {notebooks} worked examples", index)
    assert re.search(rf"`examples/` holds {notebooks} notebooks", readme)
    said = re.findall(r"writes (\w+) plots|gallery: (\w+) worked|holds (\w+) notebooks", index + readme)
    assert {w for match in said for w in match if w} == {plots, notebooks}
