"""Warnings that point at the user's line.

Every warning bayesmm gives is attributed to the first frame outside the bayesmm package
(``skip_file_prefixes``, Python 3.12), so a notebook shows the cell, and a script the line,
that caused it, however deep inside bayesmm it was noticed.
"""

from __future__ import annotations

import os
import warnings

__all__ = ["warn_user", "PACKAGE_PREFIX"]

PACKAGE_PREFIX = os.path.dirname(os.path.abspath(__file__)) + os.sep


def warn_user(message: str | Warning, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn`` attributed to the caller's first frame outside bayesmm."""
    warnings.warn(message, category, skip_file_prefixes=(PACKAGE_PREFIX,))
