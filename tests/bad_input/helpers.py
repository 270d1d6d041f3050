"""Small data sets and a guard that the user's data are never modified."""

import contextlib

import numpy as np
import pandas as pd


def frame(n_groups: int = 6, per_group: int = 5, seed: int = 0) -> pd.DataFrame:
    """y ~ x + (1 | g) data with a count, a factor and an exposure column."""
    rng = np.random.default_rng(seed)
    n = n_groups * per_group
    g = np.repeat([f"g{i}" for i in range(n_groups)], per_group)
    x = np.tile(np.arange(per_group, dtype=float), n_groups)
    effects = rng.normal(0, 1, n_groups)[np.repeat(np.arange(n_groups), per_group)]
    return pd.DataFrame(
        {
            "y": 1.0 + 0.5 * x + effects + rng.normal(0, 0.5, n),
            "x": x,
            "day": np.tile(np.arange(per_group)[::-1] ** 2, n_groups),  # integers
            "count": rng.poisson(3, n),
            "n": np.full(n, 10),
            "f": np.tile(["a", "b", "c"], n // 3 + 1)[:n],
            "g": g,
        }
    )


def refused(formula: str, data: pd.DataFrame, message: str) -> None:
    """Assert that bm.Model(formula, data) refuses with a DataError or FormulaSyntaxError
    matching ``message``, leaving ``data`` as it was."""
    import pytest

    import bayesmm as bm

    with unchanged(data), pytest.raises((bm.DataError, bm.FormulaSyntaxError), match=message):
        bm.Model(formula, data)


@contextlib.contextmanager
def unchanged(data: pd.DataFrame):
    """Assert that the block leaves ``data`` exactly as it was (values, dtypes, index)."""
    before = data.copy(deep=True)
    yield
    pd.testing.assert_frame_equal(data, before)
