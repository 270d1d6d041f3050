"""PyMC and PyTensor, imported on first use.

A model the compiled template writes is built, sampled and summarised without a PyMC graph,
so its process need not import PyMC and PyTensor (a third of a second here). The modules
that build graphs name them through the references below; the first attribute taken from
one imports the module as an ordinary import would (``sys.modules`` holds the real module,
nothing else is touched). Type checkers see the modules themselves.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Any

__all__ = ["pm", "pt"]


class LazyModule:
    """A module that is imported when an attribute is first taken from it."""

    def __init__(self, name: str):
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attribute: str) -> Any:
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attribute)

    def __repr__(self) -> str:
        return f"<{self._name}, imported on first use>"


if TYPE_CHECKING:
    import pymc as pm
    import pytensor.tensor as pt
else:
    pm = LazyModule("pymc")
    pt = LazyModule("pytensor.tensor")
