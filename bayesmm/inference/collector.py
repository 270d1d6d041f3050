"""Python's cyclic garbage collector, kept out of a fit's way.

A process that has fitted a model holds about 350,000 objects that the collector tracks,
most of them the modules and caches of PyMC, PyTensor and numba, alive until the process
ends. Every full collection walks all of them (0.26 s in sleepstudy's process). Building,
compiling and sampling a model set off about eight such collections (0.9 s of a 5 s
process, measured on sleepstudy with a warm compile cache), and the interpreter's final
collections at exit take another 1.2 s; none of them finds much to free.

So bayesmm pauses the collector while it imports its dependencies, builds a model and fits
it (:func:`paused`: reference counting still frees everything that is not in a cycle, and
the cycles left are collected at the first collection after the pause), and at exit moves
the objects still alive out of the collector's reach (:func:`skip_final_collections`)
before the interpreter walks them. Python does not promise to run the finalizers of objects
still alive at exit (the ``__del__`` documentation), and the finalizers registered to run
at exit (``atexit``, ``weakref.finalize``) still run.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import gc

__all__ = ["paused", "skip_final_collections"]


@contextlib.contextmanager
def paused():
    """No automatic collection inside the block; the collector's state is restored after
    it, also on an error (a pause inside a pause leaves it to the outer one)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def pausing(function):
    """``function`` run with the collector :func:`paused`."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with paused():
            return function(*args, **kwargs)

    return wrapper


def skip_final_collections() -> None:
    """Move every tracked object to the collector's permanent generation, which its final
    collections at interpreter exit do not walk (registered with ``atexit`` on import).
    The young objects are collected first: cheap, and most garbage made late is there."""
    gc.collect(1)
    gc.freeze()


atexit.register(skip_final_collections)
