"""The few operations bayesmm needs on an ArviZ 1 ``InferenceData`` (an ``xarray.DataTree``).

PyMC 6 returns a DataTree whose groups (``posterior``, ``sample_stats``, ...) are child
nodes. These helpers read a group as a plain ``xarray.Dataset`` and add or replace one,
so the rest of bayesmm does not depend on the tree's API.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

__all__ = ["has_group", "get_group", "set_group", "observed_data", "REPARAMETERIZATION"]

# The variables NUTS actually moves (standard normals of the non-centred group effects,
# sheared coefficients, packed Cholesky factors). bayesmm keeps them out of ``posterior``
# (which holds what the summary reports) in a group of their own, because PyMC needs them
# to evaluate the model's log-likelihood from the draws.
REPARAMETERIZATION = "reparameterization"


def has_group(idata: xr.DataTree, name: str) -> bool:
    return name in idata.children


def get_group(idata: xr.DataTree, name: str) -> xr.Dataset:
    """A group as a Dataset (a cheap view of the node's variables)."""
    return idata[name].to_dataset()


def set_group(idata: xr.DataTree, name: str, dataset: xr.Dataset) -> None:
    """Add ``dataset`` as group ``name``, replacing a group of that name."""
    if has_group(idata, name):
        del idata[name]
    idata[name] = xr.DataTree(dataset)


def observed_data(design) -> xr.Dataset:
    """The response as ArviZ's ``observed_data`` group holds it."""
    return xr.Dataset({design.response_var: (("obs",), design.y)}, coords={"obs": np.arange(design.n_obs)})
