"""Each plot draws the right number of elements."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.patches import Ellipse

import bayesmm as bm
from bayesmm.results.plots import default_ppc_kind, no_pooling

from .conftest import quiet_fit

pytestmark = pytest.mark.slow  # every test here samples, or uses a fit that does


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_no_pooling_is_least_squares_per_subject(sleepstudy_fit, sleepstudy):
    estimates, columns, sizes = no_pooling(sleepstudy_fit, "Subject")
    ols = [np.polyfit(d.Days, d.Reaction, 1)[::-1] for _, d in sleepstudy.groupby("Subject", observed=True)]
    assert columns == ["Intercept", "Days"]
    np.testing.assert_allclose(estimates, np.array(ols), atol=1e-3)
    assert list(sizes) == [10] * 18


def test_shrinkage_1d(sleepstudy_fit):
    ax = sleepstudy_fit.plot_shrinkage("Subject", term="Days")
    points = [c for c in ax.collections if c.get_offsets().shape == (18, 2)]
    assert len(points) == 2  # no pooling and partial pooling, 18 subjects each
    assert len(ax.texts) == 18  # one arrow per subject
    assert len(ax.get_yticklabels()) == 18
    with pytest.raises(KeyError, match="'Hours' does not vary by 'Subject'"):
        sleepstudy_fit.plot_shrinkage("Subject", term="Hours")


def test_shrinkage_2d(sleepstudy_fit):
    ax = sleepstudy_fit.plot_shrinkage("Subject", terms=("Intercept", "Days"))
    assert sum(isinstance(p, Ellipse) for p in ax.patches) == 2  # 50% and 95% population ellipses
    assert [c.get_offsets().shape for c in ax.collections] == [(18, 2), (18, 2)]
    assert len(ax.texts) == 18


def test_ranef_caterpillar(sleepstudy_fit):
    axes = sleepstudy_fit.plot_ranef("Subject")
    assert len(axes) == 2
    assert all(len(ax.collections[0].get_segments()) == 18 for ax in axes)  # one interval per level


def test_ppc_kinds(sleepstudy_fit):
    ax = sleepstudy_fit.plot_ppc("hist", num_pp_samples=50)
    assert len(ax.patches) == 30  # observed histogram bars
    ax = sleepstudy_fit.plot_ppc("stat", stat="sd")
    assert ax.lines[0].get_xdata()[0] == pytest.approx(np.std(sleepstudy_fit.design.y))
    axes = sleepstudy_fit.plot_ppc("density", num_pp_samples=20)
    assert np.size(axes) >= 1
    with pytest.raises(ValueError, match="is for count responses"):
        sleepstudy_fit.plot_ppc("rootogram")


@pytest.fixture(scope="module")
def count_fit():
    rng = np.random.default_rng(5)
    import pandas as pd

    g = np.repeat(np.arange(20), 15)
    y = rng.poisson(np.exp(0.3 + rng.normal(0, 0.5, 20)[g]))
    return quiet_fit(
        bm.Model("y ~ 1 + (1 | g)", pd.DataFrame({"y": y, "g": g}), family="poisson"), random_seed=1
    )


def test_rootogram_and_zeros(count_fit):
    y = count_fit.design.y
    ax = count_fit.plot_ppc("rootogram")
    k = len(ax.patches)
    assert k >= y.max() + 1  # one hanging bar per count value
    heights = [p.get_height() for p in ax.patches]
    np.testing.assert_allclose(heights[: int(y.max()) + 1], np.sqrt(np.bincount(y.astype(int))))
    ax = count_fit.plot_ppc("zeros")
    assert ax.lines[0].get_xdata()[0] == (y == 0).sum()


def test_priors_against_posteriors(sleepstudy_fit):
    axes = sleepstudy_fit.plot_priors(draws=500)
    visible = [ax for ax in np.ravel(axes) if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == list(sleepstudy_fit.summary().index)
    assert all(
        len(ax.lines) == 1 and len(ax.collections) == 1 for ax in visible
    )  # posterior line, prior fill


def test_counts_default_to_a_rootogram_on_the_data_range(count_fit):
    y = count_fit.design.y
    ax = count_fit.plot_ppc()
    assert ax.get_title() == "Hanging rootogram"
    low, high = ax.get_xlim()
    assert low < 0 < high <= y.max() + 5  # one bar per count, the axis ends near the data
    assert len(ax.collections) == 1  # the replicates' band around the hanging bars


def test_pit_checks_from_arviz(sleepstudy_fit):
    for kind in ("pit", "loo_pit"):
        ax = sleepstudy_fit.plot_ppc(kind)
        assert len(ax.lines) >= 1  # the PIT's ECDF (difference) curve
    assert default_ppc_kind(sleepstudy_fit) == "density"  # continuous data: ArviZ's density
    with pytest.raises(ValueError, match="drawn by ArviZ in its own figure"):
        sleepstudy_fit.plot_ppc("pit", ax=plt.gca())
