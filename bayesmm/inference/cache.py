"""bayesmm's folder of compiled models and the fingerprints that key them."""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

import numpy as np

from ..files import write_atomically
from ..warn import warn_user

__all__ = ["cache_dir", "fingerprint", "write_text_atomically"]


def cache_dir() -> Path:
    """Where the generated modules and numba's cache of them live: ``$BAYESMM_CACHE_DIR``
    if set, else beside PyTensor's own compile cache, so that clearing one clears both.
    Where that folder cannot be written, a temporary folder of this process (with a
    warning): fits still run, and compile as if nothing had been kept."""
    import pytensor

    if os.environ.get("BAYESMM_CACHE_DIR"):
        folder = Path(os.environ["BAYESMM_CACHE_DIR"])
    else:
        folder = Path(pytensor.config.compiledir) / "bayesmm_nutpie"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # Writing the README (a temporary file renamed into place) shows the folder can be
        # written, and keeps it from being empty: PyTensor's module cache deletes the empty
        # folders it finds in its compile cache (a first fit on a new machine).
        write_text_atomically(folder / "README", _README)
    except OSError as error:
        return _fallback_dir(str(folder), error.strerror or str(error))
    return folder


_README = ("bayesmm's compiled models (bayesmm.inference.native): generated modules, numba's cache of them "
           "and their layouts. Safe to delete.\n")


def write_text_atomically(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all (bayesmm.results.persist's temporary file and rename): a
    reader, or a process killed mid-write, never sees half a file."""
    write_atomically(path, lambda temporary: temporary.write_text(text))


@functools.cache
def _fallback_dir(wanted: str, reason: str) -> Path:
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="bayesmm_nutpie_"))
    warn_user(
        f"cannot keep compiled models in {wanted} ({reason}); using {folder} for this "
        "process, so the next process compiles again. Set BAYESMM_CACHE_DIR to a folder you can write.",
        RuntimeWarning,
    )
    return folder


def fingerprint(value) -> str:
    """A constant's value as the same text in every process: an array's bytes, and the repr
    of anything else (the bytes of ``None`` as an array are its address)."""
    array = np.asarray(value)
    if array.dtype == object:
        return repr(value)
    return hashlib.sha1(np.ascontiguousarray(array).tobytes()).hexdigest()
