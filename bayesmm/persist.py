"""Saving and loading fits: posterior, design and settings in one file.

The file is a pickle (with a format tag and the bayesmm version), so load only
files you trust. The PyMC graph is not stored; it is rebuilt from the design if
needed. Nothing needs the original DataFrame.
"""

from __future__ import annotations

import pickle
from pathlib import Path

__all__ = ["save", "load"]

FORMAT = "bayesmm-fit/1"


def save(fit, path: str | Path) -> Path:
    from . import __version__

    path = Path(path)
    payload = {
        "format": FORMAT,
        "version": __version__,
        "model": fit.model,
        "idata": fit.idata,
        "settings": fit.settings,
    }
    with path.open("wb") as handle:
        pickle.dump(payload, handle, protocol=pickle.HIGHEST_PROTOCOL)
    return path


def load(path: str | Path):
    """A Fit saved with ``fit.save(path)``."""
    from .fit import Fit

    with Path(path).open("rb") as handle:
        payload = pickle.load(handle)  # noqa: S301 - documented: load only trusted files
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not a bayesmm fit (saved with fit.save)")
    return Fit(model=payload["model"], idata=payload["idata"], settings=payload["settings"])
