"""The error every stage of building raises for data that do not fit."""

from __future__ import annotations

import difflib

__all__ = ["DataError", "missing_column_error"]


class DataError(ValueError):
    """The data do not fit the formula or the family; raised before any sampling.

    The message names the column, the value and the rows: a missing column, a
    response the family cannot model, infinite values, a grouping factor with one
    level, and so on.

    Examples
    --------
    >>> import pandas as pd
    >>> data = pd.DataFrame({"y": [1, 2, -3], "g": ["a", "b", "b"]})
    >>> try:
    ...     bm.Model("y ~ 1 + (1 | g)", data, family="poisson")
    ... except bm.DataError as err:
    ...     print(err)
    the response 'y' has 1 negative value(s), the first -3 in row 2: a Poisson model needs counts ...
    """


def _suggest(name: str, columns) -> str:
    close = difflib.get_close_matches(name, [str(c) for c in columns], n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def missing_column_error(name: str, where: str, columns) -> DataError:
    return DataError(f"column '{name}' in {where} is not in the data{_suggest(name, columns)}")
