"""Tensor-product smooths t2(x, z), mgcv's construction for mixed models (brms's): each
penalized block a random effect with its own SD, the product of the margins' lines a fixed
effect. References from R 4.2 / mgcv 1.8-41 by tools/mgcv_smooth_reference.R on the rows of
tests/reference/smooth2_data.csv."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayesmm as bm
from bayesmm.design.tensor import tensor_terms

from .bad_input.helpers import refused
from .test_smooth import surface_draws

REFERENCE = Path(__file__).parent / "reference"


def _data():
    return pd.read_csv(REFERENCE / "smooth2_data.csv")


def _projection(A: np.ndarray) -> np.ndarray:
    return A @ np.linalg.pinv(A)


def test_the_blocks_are_mgcvs():
    data = _data()
    mgcv = pd.read_csv(REFERENCE / "t2_mgcv_basis.csv")
    blocks, fixed = tensor_terms(("x", "z"), data[["x", "z"]].to_numpy(), 5)
    assert [b.Z.shape for b in blocks] == [(250, 9), (250, 6), (250, 6)] and fixed.shape == (250, 3)
    # The first block (both margins' wiggles): the same covariance Z Z' as mgcv's, so the same
    # random effect (its columns may turn within the block).
    rr = mgcv.filter(like="rr").to_numpy()
    np.testing.assert_allclose(blocks[0].Z @ blocks[0].Z.T, rr @ rr.T, atol=1e-9)
    # The others span mgcv's spaces (their unpenalized margins' bases are fixed here, left to
    # rounding in mgcv's eigen-decomposition); the fixed columns with the intercept too.
    for block, name in zip(blocks[1:], ["nr", "rn"], strict=True):
        expected = _projection(mgcv.filter(like=name).to_numpy())
        np.testing.assert_allclose(_projection(block.Z), expected, atol=1e-9)
    ones = np.ones((len(data), 1))
    expected = _projection(np.column_stack([ones, mgcv.filter(like="fixed").to_numpy()]))
    np.testing.assert_allclose(_projection(np.column_stack([ones, fixed])), expected, atol=1e-9)
    # Each block's parts have a mean square of one (mgcv's unit.fnorm): the blocks' SDs share a scale.
    for block in blocks:
        assert 0.2 < np.mean(block.Z**2) < 5


def test_the_model_has_one_sds_per_block_and_the_lines_as_fixed_effects():
    data = _data()
    model = bm.Model("y ~ t2(x, z)", data)
    blocks = model.design.smooths
    assert [b.name for b in blocks] == ["t2(x, z)_1", "t2(x, z)_2", "t2(x, z)_3"]
    assert model.design.fixef_names == ["Intercept", "t2(x, z)_1", "t2(x, z)_2", "t2(x, z)_3"]
    assert {f"sds(t2(x, z)_{j})" for j in (1, 2, 3)} <= set(model.priors.index)
    assert model.design.formula.special_terms == ['t2(x, z, k = 5, bs = "cr")']
    # The basis at the fitted rows, built again from the stored margins, is the fitted one.
    for block in blocks:
        fixed, Z = block.columns(data[["x", "z"]].to_numpy())
        np.testing.assert_allclose(Z, block.Z, atol=1e-10)
    fixed, _ = blocks[0].columns(data[["x", "z"]].to_numpy())
    np.testing.assert_allclose(fixed, model.design.X[:, 1:], atol=1e-10)
    # Three columns: 2^3 - 1 penalized blocks and the 7 products of the lines less the constant.
    w = np.random.default_rng(1).uniform(size=len(data))
    three = bm.Model("y ~ t2(x, z, w, k = 4)", data.assign(w=w))
    assert len(three.design.smooths) == 7 and len(three.design.fixef_names) == 8
    assert [b.Z.shape[1] for b in three.design.smooths] == [8] * 7  # 2 x 2 x 2 each (k - 2 = 2 wiggles)


def test_a_tensor_smooth_per_level_of_a_factor_is_zero_on_the_others():
    data = _data().assign(f=np.tile(["a", "b"], 125))
    model = bm.Model("y ~ f + t2(x, z, by = f)", data)
    names = [b.name for b in model.design.smooths]
    assert names[:3] == ["t2(x, z, by = f)[a]_1", "t2(x, z, by = f)[a]_2", "t2(x, z, by = f)[a]_3"]
    assert len(names) == 6
    on_b = (data["f"] == "b").to_numpy()
    for block in model.design.smooths:
        off = on_b if block.level == "a" else ~on_b
        assert np.all(block.Z[off] == 0) and np.abs(block.Z[~off]).max() > 0
    # Each level's fixed columns sum to zero over its own rows.
    fixed = model.design.X[:, [i for i, n in enumerate(model.design.fixef_names) if n.startswith("t2")]]
    assert fixed.shape[1] == 6
    np.testing.assert_allclose(fixed[~on_b, :3].sum(axis=0), 0, atol=1e-9)


@pytest.mark.parametrize(
    "formula, change, message",
    [
        ("y ~ t2(x)", lambda d: d, "two or three different columns"),
        ("y ~ t2(x, x)", lambda d: d, "two or three different columns"),
        ("y ~ te(x, z)", lambda d: d, r"t2\(x, z\) is the tensor smooth for mixed models"),
        ("y ~ t2(x, f)", lambda d: d.assign(f=np.tile(["a", "b"], 125)), "'f' is a factor"),
        ("y ~ t2(x, z, k = 2)", lambda d: d, "needs k >= 3"),
        ('y ~ t2(x, z, bs = "ps")', lambda d: d, 'basis "ps" is not supported'),
        ("y ~ t2(x, z, m = 2)", lambda d: d, "other arguments are not supported"),
        ("y ~ t2(x, z)", lambda d: d.assign(z=np.tile([1.0, 2.0, 3.0, 4.0, 5.0], 50)[:250] * 0 + 1),
         "at least k = 5 distinct values of 'z'"),
        ("y ~ t2(x, w)", lambda d: d, "'w'"),
        ("y ~ t2(x, z) + t2(x, z)", lambda d: d, r"t2\(x, z\) is given twice"),
    ],
)  # fmt: skip
def test_what_cannot_be_a_tensor_smooth_is_refused(formula, change, message):
    refused(formula, change(_data()), message)


@pytest.mark.slow
def test_a_tensor_smooth_recovers_a_surface_and_mgcvs_estimate(tmp_path):
    fit, estimate = surface_draws("y ~ t2(x, z)", tmp_path)
    # Against mgcv's REML fit of t2(x, z) on the same rows: within 0.05 (RMSE over the grid).
    reference = pd.read_csv(REFERENCE / "t2_mgcv.csv")
    mgcv = reference.loc[reference["kind"] == "reml_grid_fit", "value"].to_numpy()
    assert np.sqrt(np.mean((estimate - mgcv) ** 2)) < 0.05
    sigma = reference.loc[reference["kind"] == "reml_sigma", "value"].iloc[0]
    assert fit.summary().loc["sigma", "mean"] == pytest.approx(sigma, rel=0.05)
