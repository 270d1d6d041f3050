"""Saving and loading fits: one netCDF file, with no code in it.

The file holds the InferenceData (every group of ``fit.idata``), the model frame (the
data columns the formulas use, as brms keeps ``fit$data``) and a JSON description of the
model: formula texts, family and link, the user's priors, trials and the sampler
settings. Loading rebuilds the model from that description and the model frame through
the same formula machinery as a fresh ``Model`` (so the design, the level labels and the
encoding of new data are exactly those of the fit); nothing in the file is executed.

A save is atomic: the file is written under a temporary name in the same folder and
renamed over the target only when complete, so an interrupted save leaves an earlier
file intact.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import xarray as xr

from ..files import write_atomically
from ..inference.nuts import SamplerSettings

if TYPE_CHECKING:  # pragma: no cover
    from .fit import Fit

__all__ = ["save", "read", "Saved", "naming", "check_centred", "write_idata"]

FORMAT = "bayesmm-fit/2"
FRAME_GROUP = "bayesmm_model_frame"
# gr(g, cov = A)'s matrices, as the model used them (its levels, in their order).
DATA2_GROUP = "bayesmm_data2"
INDEX = "__index__"
TRIALS = "__trials__"


def _sanitized(tree: xr.DataTree) -> xr.DataTree:
    """A copy whose object-typed variables (sampler messages, level labels) are strings,
    which netCDF stores; ``None`` becomes an empty string."""
    tree = tree.copy()
    for node in tree.subtree:
        for name, variable in list(node.variables.items()):
            if variable.dtype == object:
                text = np.vectorize(lambda v: "" if v is None else str(v), otypes=[str])(variable.values)
                node[name] = variable.copy(data=text.astype(object))
    return tree


def _write_netcdf(tree: xr.DataTree, path: Path) -> Path:
    return write_atomically(path, lambda temporary: _sanitized(tree).to_netcdf(temporary, engine="h5netcdf"))


def write_idata(idata: xr.DataTree, path: str | Path) -> Path:
    """Write an InferenceData to netCDF atomically (readable with ``arviz.from_netcdf``)."""
    return _write_netcdf(idata, Path(path))


def _frame_dataset(frame: pd.DataFrame) -> tuple[xr.Dataset, dict]:
    """The model frame as netCDF variables, and what restores its types (categories, index)."""
    variables, types = {}, {}
    for position, (name, column) in enumerate(frame.items()):
        key = f"column{position}"
        if isinstance(column.dtype, pd.CategoricalDtype):
            types[key] = {
                "name": name,
                "kind": "category",
                "categories": [_plain(c) for c in column.cat.categories],
                "ordered": bool(column.cat.ordered),
            }
            values = column.cat.codes.to_numpy()
        elif pd.api.types.is_bool_dtype(column.dtype) and not column.isna().any():
            types[key] = {"name": name, "kind": "bool"}
            values = column.to_numpy(dtype=bool)
        elif pd.api.types.is_numeric_dtype(column.dtype):
            types[key] = {"name": name, "kind": "number"}
            values = column.to_numpy(dtype=float, na_value=np.nan)
        else:
            types[key] = {"name": name, "kind": "text"}
            missing = column.isna().to_numpy()
            values = np.where(missing, "", column.astype(str).to_numpy()).astype(object)
            variables[f"{key}_missing"] = ("row", missing)
        variables[key] = ("row", values)
    index = frame.index
    numeric_index = pd.api.types.is_integer_dtype(index.dtype)
    variables[INDEX] = (
        "row",
        index.to_numpy(dtype=np.int64) if numeric_index else index.astype(str).to_numpy(dtype=object),
    )
    return xr.Dataset(variables), {"columns": types, "integer_index": bool(numeric_index)}


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def _frame_from(dataset: xr.Dataset, spec: dict) -> pd.DataFrame:
    columns = {}
    for key, info in spec["columns"].items():
        values = dataset[key].values
        if info["kind"] == "category":
            columns[info["name"]] = pd.Categorical.from_codes(
                values.astype(int), categories=info["categories"], ordered=info["ordered"]
            )
        elif info["kind"] == "text":
            text = pd.Series(values.astype(str), dtype=object)
            text[dataset[f"{key}_missing"].values.astype(bool)] = None
            columns[info["name"]] = text.to_numpy()
        elif info["kind"] == "bool":
            columns[info["name"]] = values.astype(bool)
        else:
            columns[info["name"]] = values.astype(float)
    index = dataset[INDEX].values
    index = index.astype(np.int64) if spec["integer_index"] else index.astype(str)
    return pd.DataFrame(columns, index=pd.Index(index))


def _data2_dataset(design) -> xr.Dataset | None:
    """Each known covariance of levels (gr(g, cov = A)) as the model used it, labelled by level."""
    matrices = {t.spec.cov: (t.levels, t.level_cov) for t in design.random if t.level_cov is not None}
    if not matrices:
        return None
    variables, coords = {}, {}
    for name, (levels, values) in matrices.items():
        variables[name] = ((f"{name}__row", f"{name}__col"), values)
        coords[f"{name}__row"] = coords[f"{name}__col"] = list(levels)
    return xr.Dataset(variables, coords=coords)


def _data2_from(dataset: xr.Dataset) -> dict:
    """The saved matrices as DataFrames labelled by level, as data2 takes them."""
    data2 = {}
    for name, variable in dataset.data_vars.items():
        rows, columns = (variable.coords[dim].values.astype(str) for dim in variable.dims)
        data2[str(name)] = pd.DataFrame(variable.values, index=list(rows), columns=list(columns))
    return data2


def _description(fit: Fit, frame_types: dict) -> dict:
    from ..version import __version__

    model = fit.model
    return {
        "format": FORMAT,
        "version": __version__,
        "formula": model.formula.text,
        "family": model.family.name,
        "link": model.family.link.name,
        "parts": dict(model.part_texts),
        "priors": {
            name: {"dist": p.dist, "params": {k: np.asarray(v).tolist() for k, v in p.params.items()}}
            for name, p in model.user_priors.items()
        },
        "trials": model.trials_column,
        "na_action": model.na_action,
        # Which terms were sampled centred: the saved draws of the sampler's own variables
        # (the reparameterization group) only fit the model they came from.
        "centred": [bool(c) for c in model.centred],
        # Whether the group effects were integrated out (and drawn afterwards).
        "collapsed": bool(model.collapsed),
        "decomp": model.decomp,
        "frame": frame_types,
        "settings": dataclasses.asdict(fit.settings),
    }


def _saved_decomp(description: dict, path: Path) -> str | None:
    """The saved decomp= (None in files from before it existed)."""
    value = description.get("decomp")
    if value not in (None, "QR"):
        raise ValueError(f"{path}: 'decomp' must be null or \"QR\", got {value!r}")
    return value


def _saved_flag(description: dict, key: str, path: Path) -> bool:
    """A true/false entry of a saved description (false in files from before it existed)."""
    value = description.get(key, False)
    if not isinstance(value, bool):
        raise ValueError(f"{path}: '{key}' must be true or false, got {value!r}")
    return value


def save(fit: Fit, path: str | Path) -> Path:
    """Write ``fit`` to ``path`` (netCDF); read it back with :func:`load`."""
    frame_data, frame_types = _frame_dataset(fit.model.model_frame)
    tree = fit.idata.copy()
    tree[FRAME_GROUP] = xr.DataTree(frame_data)
    known = _data2_dataset(fit.model.design)
    if known is not None:
        tree[DATA2_GROUP] = xr.DataTree(known)
    tree.attrs = {**tree.attrs, "bayesmm": json.dumps(_description(fit, frame_types))}
    return _write_netcdf(tree, Path(path))


def _read(path: Path) -> tuple[xr.DataTree, dict]:
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if path.is_dir():
        raise ValueError(f"{path} is a folder, not a file saved with fit.save")
    head = path.read_bytes()[:8]
    if not head:
        raise ValueError(f"{path} is empty: it is not a bayesmm fit (or its save was interrupted)")
    if head[:1] == b"\x80":
        raise ValueError(
            f"{path} is a pickle written by bayesmm 0.1; this version does not load pickles, because "
            "loading one can run code from the file. Refit the model and save it again."
        )
    try:
        tree = xr.open_datatree(path, engine="h5netcdf").load()
    except Exception as err:  # h5py and xarray raise many kinds for a damaged file
        raise ValueError(f"{path} is not a readable netCDF file ({type(err).__name__}: {err})") from None
    text = tree.attrs.get("bayesmm")
    if text is None or FRAME_GROUP not in tree.children:
        raise ValueError(f"{path} is a netCDF file but not a bayesmm fit (saved with fit.save)")
    description = json.loads(text)
    if description.get("format") != FORMAT:
        raise ValueError(f"{path} has format {description.get('format')!r}; this bayesmm reads {FORMAT!r}")
    return tree, description


def _part_names() -> list[str]:
    """Every part formula some family takes: zi, hu, dispersion, nu, ..."""
    from ..families.registry import FAMILIES

    found = [p for cls in FAMILIES.values() for p in cls().allowed_parts()]
    return list(dict.fromkeys(["zi", "hu", "dispersion", *found]))


def _check_saved_formula(text: object, path: Path) -> str:
    """``text`` if it reads as a formula. Nothing in it is ever executed: rebuilding the
    model interprets its expressions with the formula allow-list (bayesmm.spec.expressions),
    which refuses any other call, attribute, dunder name or Python construct."""
    from ..spec.formula import FormulaSyntaxError, parse_formula

    if not isinstance(text, str):
        raise ValueError(f"{path}: the saved formula is not text")
    try:
        parse_formula(text)
    except FormulaSyntaxError as err:
        raise ValueError(
            f"{path}: the saved formula {text!r} cannot be read: {str(err).splitlines()[0]}"
        ) from None
    return text


@contextlib.contextmanager
def naming(path: Path):
    """Errors while rebuilding a saved model name the file they came from."""
    try:
        yield
    except ValueError as err:
        first = str(err).splitlines()[0]
        raise ValueError(f"{path}: cannot rebuild the saved model: {first}") from None


@dataclass
class Saved:
    """What a saved fit holds, checked: the draws, the model frame and the model's description."""

    path: Path
    tree: xr.DataTree
    frame: pd.DataFrame
    model_options: dict  # Model's arguments: formula, family, priors, link, trials, ...
    centred: list
    settings: SamplerSettings


def read(path: str | Path) -> Saved:
    """Read and check a file written by :func:`save` (bayesmm.api.load rebuilds the Model
    and the Fit from it). The file holds data and a description, never code."""
    from ..spec.priors import Prior

    path = Path(path)
    tree, description = _read(path)
    frame = _frame_from(tree[FRAME_GROUP].to_dataset(), description["frame"])
    del tree[FRAME_GROUP]
    data2 = None
    if DATA2_GROUP in tree.children:
        data2 = _data2_from(tree[DATA2_GROUP].to_dataset())
        del tree[DATA2_GROUP]
    tree.attrs = {k: v for k, v in tree.attrs.items() if k != "bayesmm"}
    formula = _check_saved_formula(description["formula"], path)
    parts = description["parts"]
    names = _part_names()
    if not isinstance(parts, dict) or set(parts) - set(names):
        raise ValueError(f"{path}: saved part formulas must be among {', '.join(names)}, got {parts!r}")
    parts = {part: _check_saved_formula(text, path) for part, text in parts.items()}
    priors = {name: Prior(p["dist"], **p["params"]) for name, p in description["priors"].items()}
    options = {"formula": formula, "family": description["family"], "priors": priors or None,
               "link": description["link"], "trials": description["trials"],
               "na_action": description["na_action"], "dpars": parts,
               "collapsed": _saved_flag(description, "collapsed", path),
               "decomp": _saved_decomp(description, path), "data2": data2}  # fmt: skip
    for node in tree.subtree:  # level labels and coordinates read back as strings
        for name, coordinate in node.coords.items():
            if coordinate.dtype.kind == "U":
                node.coords[name] = coordinate.astype(object)
    # Files from before the choice existed hold draws of the all-non-centred model (None here).
    centred = description.get("centred")
    return Saved(path, tree, frame, options, centred, SamplerSettings(**description["settings"]))


def check_centred(saved: Saved, n_terms: int) -> tuple[bool, ...]:
    """The saved centred / non-centred choice per random-effect term."""
    centred = [False] * n_terms if saved.centred is None else saved.centred
    valid = isinstance(centred, list) and len(centred) == n_terms
    if not (valid and all(isinstance(c, bool) for c in centred)):
        raise ValueError(f"{saved.path}: 'centred' must list true/false for each of the {n_terms} "
                         f"random-effect terms, got {centred!r}")  # fmt: skip
    return tuple(centred)
