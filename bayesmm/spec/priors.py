"""Prior specification: the ``Prior`` record, data-scaled defaults and the prior table.

Defaults follow brms and rstanarm (see the README's "Priors" section):

* ``Intercept`` (the intercept with every predictor at its mean, as in brms):
  Student-t(3, median(y), s) for the Gaussian, where s = max(2.5, mad(y));
  Student-t(3, 0, 2.5) on the link scale otherwise (Poisson: centred at log mean(y)).
* ``b`` (each other coefficient): Normal(0, 2.5 * sd(y) / sd(x)) for the Gaussian,
  Normal(0, 2.5 / sd(x)) otherwise (rstanarm's autoscaling).
* ``sd`` (group-level SDs): half-Student-t(3, s), s as above (2.5 for non-Gaussian).
* ``cor``: LKJ(eta = 1) on each correlated term's correlation matrix.
* family parameters: ``sigma`` ~ half-Student-t(3, s).

Users override any of them by parameter name (``"Days"``, ``"sd(Days|Subject)"``),
by class within a group (``"sd(Subject)"``, ``"cor(Subject)"``), or by class
(``"b"``, ``"sd"``, ``"cor"``, ``"Intercept"``, ``"sigma"``).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..lazy import pm

__all__ = ["Prior", "PriorEntry", "resolve_priors", "prior_table", "PriorError"]

# Distributions whose support is the positive half line, fit for SDs and scales.
POSITIVE = frozenset(
    {
        "HalfNormal",
        "HalfStudentT",
        "HalfCauchy",
        "Exponential",
        "Gamma",
        "InverseGamma",
        "LogNormal",
        "Weibull",
        "HalfFlat",
        "ChiSquared",
    }
)


class PriorError(ValueError):
    """A prior that does not exist, does not fit its parameter, or names no parameter.

    Raised when a [`Prior`][bayesmm.Prior] or a [`Model`][bayesmm.Model] is made, before anything is
    sampled; the message names the distribution, the parameter or the prior's key.

    Examples
    --------
    >>> try:
    ...     bm.Prior("Normall", mu=0)
    ... except bm.PriorError as err:
    ...     print(err)
    'Normall' is not a PyMC distribution (try 'Normal', 'StudentT', 'HalfNormal', 'Exponential', ...)
    """


def _as_float(value: Any):
    # Integer parameters make some PyMC log-densities evaluate to NaN
    # (HalfStudentT with nu=3 did on pymc 5.28), so everything goes in as float.
    array = np.asarray(value, dtype=float)
    return float(array) if array.ndim == 0 else array


# Parameters that must be positive for the distribution to exist (PyMC would only fail
# later, at sampling, with "all initialization points failed").
_POSITIVE_PARAMETERS = {"sigma", "tau", "lam", "nu", "eta", "kappa", "b", "s"}
_POSITIVE_ALPHA_BETA = {"Gamma", "InverseGamma", "Weibull", "Beta", "Kumaraswamy", "Pareto"}


def _parameter_value(dist: str, name: str, value: Any):
    """The parameter as a float (or array), or a PriorError naming the prior and parameter."""
    try:
        return _as_float(value)
    except (TypeError, ValueError):
        raise PriorError(
            f"Prior('{dist}', {name}={value!r}): {name} must be a number or an array of numbers, "
            f"got {type(value).__name__} {value!r}"
        ) from None


def _is_positive_parameter(dist: str, name: str) -> bool:
    if name in _POSITIVE_PARAMETERS:
        return True
    if name == "beta" and dist in ("Cauchy", "HalfCauchy", "Gumbel", "Moyal"):
        return True
    return name in ("alpha", "beta") and dist in _POSITIVE_ALPHA_BETA


# The everyday distributions in the parameters PyMC's ``dist`` takes (a subset of its signature)
# and those it requires: a prior given in them is checked here, without PyMC (tests/test_priors.py
# holds the table to PyMC's signatures); any other prior is checked by PyMC itself.
_SIGNATURES = {
    "Normal": ({"mu", "sigma"}, set()),
    "LogNormal": ({"mu", "sigma"}, set()),
    "HalfNormal": ({"sigma"}, set()),
    "StudentT": ({"nu", "mu", "sigma"}, {"nu"}),
    "HalfStudentT": ({"nu", "sigma"}, {"nu"}),
    "Cauchy": ({"alpha", "beta"}, {"alpha", "beta"}),
    "HalfCauchy": ({"beta"}, {"beta"}),
    "Exponential": ({"lam"}, set()),
    "Gamma": ({"alpha", "beta"}, {"alpha", "beta"}),
    "InverseGamma": ({"alpha", "beta"}, {"alpha"}),
    "Beta": ({"alpha", "beta"}, {"alpha", "beta"}),
    "Weibull": ({"alpha", "beta"}, {"alpha", "beta"}),
    "Logistic": ({"mu", "s"}, set()),
    "Laplace": ({"mu", "b"}, {"mu", "b"}),
    "Uniform": ({"lower", "upper"}, set()),
}


class Prior:
    """A prior distribution: a PyMC distribution name and its parameters.

    The name and parameters are checked when the prior is made: an unknown
    distribution, an unknown parameter, a non-finite value or a non-positive scale
    raises a [`PriorError`][bayesmm.PriorError] naming it. Give priors to ``Model(priors=...)`` by
    parameter name (``"Days"``, ``"sd(Days|Subject)"``, ``"sigma"``) or by class
    (``"b"``, ``"sd"``, ``"cor"``, ``"Intercept"``).

    Parameters
    ----------
    dist
        A PyMC distribution's name (``"Normal"``, ``"StudentT"``, ``"HalfNormal"``,
        ``"Exponential"``, ``"Gamma"``, ...) or ``"LKJ"`` for correlation matrices.
    **params
        The distribution's parameters by PyMC's names (numbers, or arrays of them).

    Examples
    --------
    >>> bm.Prior("Normal", mu=0, sigma=10)
    Normal(mu=0, sigma=10)
    >>> bm.Prior("LKJ", eta=2)   # for correlation matrices
    LKJ(eta=2)
    >>> bm.Prior("HalfNormal", sigma=-1)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    bayesmm.spec.priors.PriorError: Prior('HalfNormal'): parameter sigma is a scale or shape and must be ...
    """

    def __init__(self, dist: str, **params: Any):
        if not isinstance(dist, str):
            raise PriorError(f"Prior takes a PyMC distribution name, got {dist!r}")
        self.dist = dist
        self.params = {k: _parameter_value(dist, k, v) for k, v in params.items()}
        self._validate()

    def _validate(self) -> None:
        if self.dist == "LKJ":
            if set(self.params) != {"eta"} or not self.params["eta"] > 0:
                raise PriorError("Prior('LKJ', eta=...) takes one parameter, eta > 0")
            return
        known = _SIGNATURES.get(self.dist)
        if known is not None and known[1] <= set(self.params) <= known[0]:  # (taken, required)
            # The everyday priors, in PyMC's own parameters, are checked without importing PyMC.
            self._check_values()
            shapes = [np.shape(value) for value in self.params.values()]
            try:
                np.broadcast_shapes(*shapes)
            except ValueError:
                raise PriorError(
                    f"invalid parameters for Prior('{self.dist}'): the shapes of {', '.join(self.params)} "
                    f"({', '.join(map(str, shapes))}) do not broadcast"
                ) from None
            return
        cls = getattr(pm, self.dist, None)
        if not (isinstance(cls, type) and issubclass(cls, pm.Distribution)):
            raise PriorError(
                f"'{self.dist}' is not a PyMC distribution (try 'Normal', 'StudentT', "
                "'HalfNormal', 'Exponential', ...)"
            )
        accepted = [
            name
            for name, parameter in inspect.signature(cls.dist).parameters.items()
            if parameter.kind not in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL)
            and name not in ("cls", "args", "kwargs")
        ]
        unknown = [name for name in self.params if name not in accepted]
        if unknown:
            # PyMC 6 passes unknown keywords on without a word; refuse them here.
            raise PriorError(
                f"invalid parameters for Prior('{self.dist}'): unknown parameter(s) "
                f"{', '.join(repr(u) for u in unknown)}; it takes {', '.join(accepted)}"
            )
        self._check_values()
        try:
            cls.dist(**self.params)
        except Exception as err:  # PyMC raises TypeError/ValueError of many kinds
            raise PriorError(f"invalid parameters for Prior('{self.dist}'): {err}") from None

    def _check_values(self) -> None:
        for name, value in self.params.items():
            values = np.ravel(value)
            if not np.all(np.isfinite(values)):
                raise PriorError(
                    f"Prior('{self.dist}'): parameter {name} must be a finite number, got {_fmt(value)}"
                )
            if _is_positive_parameter(self.dist, name) and not np.all(values > 0):
                raise PriorError(
                    f"Prior('{self.dist}'): parameter {name} is a scale or shape and must be > 0, "
                    f"got {_fmt(value)}"
                )

    @property
    def positive(self) -> bool:
        return self.dist in POSITIVE

    def create(self, name: str, **kwargs):
        """The prior as a named PyMC random variable in the PyMC model being built.

        Parameters
        ----------
        name
            The variable's name in the PyMC model.
        **kwargs
            Further arguments for the distribution (``dims=``, ``shape=``, ...).

        Returns
        -------
        pytensor.tensor.TensorVariable
            The random variable.

        Examples
        --------
        >>> import pymc as pm
        >>> with pm.Model():
        ...     b = bm.Prior("Normal", mu=0, sigma=10).create("b", shape=3)
        >>> b.type.shape
        (3,)
        """
        return getattr(pm, self.dist)(name, **self._float64(), **kwargs)

    def as_dist(self, **kwargs):
        """The prior as an unnamed PyMC distribution (for a log density taken elsewhere: ``pm.logp``).

        Parameters
        ----------
        **kwargs
            Further arguments for the distribution (``shape=``, ...).

        Returns
        -------
        pytensor.tensor.TensorVariable
            The distribution's variable, outside any model.

        Examples
        --------
        >>> import pymc as pm
        >>> float(pm.draw(bm.Prior("HalfNormal", sigma=1).as_dist(), random_seed=1)) > 0
        True
        """
        return getattr(pm, self.dist).dist(**self._float64(), **kwargs)

    def _float64(self) -> dict:
        """The parameters as float64 arrays: PyTensor makes a Python float that float32 holds
        exactly (2.5, 3.0) a float32 constant, and then evaluates what only such constants
        enter (a StudentT's 1 / sigma^2) in float32 (relative error 1e-8)."""
        return {k: np.asarray(v, dtype=np.float64) for k, v in self.params.items()}

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Prior)
            and self.dist == other.dist
            and self.params.keys() == other.params.keys()
            and all(np.array_equal(self.params[k], other.params[k]) for k in self.params)
        )

    def __hash__(self) -> int:
        return hash((self.dist, tuple(self.params)))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={_fmt(v)}" for k, v in self.params.items())
        return f"{self.dist}({args})"


def _fmt(value) -> str:
    if np.ndim(value) == 0:
        return f"{float(value):.4g}"
    return "[" + ", ".join(f"{float(v):.4g}" for v in np.ravel(value)) + "]"


def stack_priors(priors: list[Prior]) -> Prior | None:
    """One vector-valued Prior equal to ``priors`` elementwise, or None if their families differ."""
    first = priors[0]
    if any(p.dist != first.dist or p.params.keys() != first.params.keys() for p in priors):
        return None
    params = {k: np.array([p.params[k] for p in priors], dtype=float) for k in first.params}
    stacked = Prior.__new__(Prior)
    stacked.dist, stacked.params = first.dist, params
    return stacked


@dataclass
class PriorEntry:
    """One row of the prior table."""

    parameter: str
    cls: str
    group: str | None
    prior: Prior
    source: str = "default"


def _coefficient_entries(design, intercept: Prior, scale: float, sd_prior: Prior) -> list[PriorEntry]:
    """Intercept, slopes, group-level SDs and correlations of one linear predictor."""
    q = design.qualified
    entries: list[PriorEntry] = []
    if design.has_intercept:
        entries.append(PriorEntry(q("Intercept"), q("Intercept"), None, intercept))
    for j, name in enumerate(design.fixef_names):
        if name == "Intercept":
            continue
        sd_x = float(np.std(design.X[:, j]))
        sigma = scale / sd_x if sd_x > 0 else scale
        entries.append(PriorEntry(q(name), q("b"), None, Prior("Normal", mu=0.0, sigma=sigma)))
    for smooth in design.smooths:
        # The SD of a smooth's penalized coefficients (brms's sds()): a group-level SD's prior.
        entries.append(PriorEntry(q(f"sds({smooth.name})"), q("sds"), None, sd_prior))
    for gp in design.gps:
        # The GP's SD as a group-level SD's; its length scale inverse-gamma, tuned to the data.
        a, b = gp.lscale_prior
        entries.append(PriorEntry(q(f"sdgp({gp.name})"), q("sdgp"), None, sd_prior))
        lscale = Prior("InverseGamma", alpha=a, beta=b)
        entries.append(PriorEntry(q(f"lscale({gp.name})"), q("lscale"), None, lscale))
    for term in design.monotonic:
        # b is the average step between adjacent levels: its scale is that of a slope of the
        # level codes 0..D; the steps' shares zeta are uniform on the simplex (brms's defaults).
        sd_x = float(np.std(term.codes))
        sigma = scale / sd_x if sd_x > 0 else scale
        entries.append(PriorEntry(q(f"bsp({term.name})"), q("b"), None, Prior("Normal", mu=0.0, sigma=sigma)))
        entries.append(PriorEntry(q(f"simo({term.name})"), q("simo"), None,
                                  Prior("Dirichlet", a=np.ones(term.n_steps))))  # fmt: skip
    for term in design.random:
        entries += term.covariance.prior_entries(q, sd_prior)
    return entries


def _default_entries(design, family, parts=None) -> list[PriorEntry]:
    entries = _coefficient_entries(
        design, family.intercept_prior(design), family.coefficient_scale(design), family.sd_prior(design)
    )
    for name, prior in family.param_priors(design).items():
        if name in family.constant_params(parts or {}):
            entries.append(PriorEntry(name, family.param_class(name), None, prior))
    for part, part_design in (parts or {}).items():
        sd_prior = Prior("HalfStudentT", nu=3.0, sigma=2.5)
        entries += _coefficient_entries(part_design, family.part(part).intercept_prior, 2.5, sd_prior)
    return entries


def _matching_keys(entry: PriorEntry) -> list[str]:
    """User keys that address ``entry``, most specific first."""
    keys = [entry.parameter]
    if entry.cls.endswith("sd"):
        keys.append(f"sd({entry.group})")
    keys.append(entry.cls)
    return keys


def resolve_priors(design, family, user: dict[str, Prior] | None = None, parts=None) -> list[PriorEntry]:
    """The prior of every parameter: the user's where given, else the data-scaled default."""
    entries = _default_entries(design, family, parts)
    if user is not None and not isinstance(user, dict):
        raise PriorError(
            f"priors must be a dict from parameter or class names to Prior, e.g. "
            f"{{'b': Prior('Normal', mu=0, sigma=1)}}; got a {type(user).__name__}"
        )
    user = dict(user or {})
    for key, prior in user.items():
        if not isinstance(key, str):
            raise PriorError(f"prior names are strings such as 'b' or 'sd(Subject)', got {key!r}")
        if not isinstance(prior, Prior):
            raise PriorError(f"the prior for '{key}' must be a bayesmm.Prior, got {type(prior).__name__}")
    matched: dict[str, list[PriorEntry]] = {}
    for entry in entries:
        key = next((k for k in _matching_keys(entry) if k in user), None)
        if key is not None:
            matched.setdefault(key, []).append(entry)
            entry.source = "user" if key == entry.parameter else f"user ({key})"
    for key, targets in matched.items():
        for entry, prior in zip(targets, _split_vector_prior(user[key], key, targets), strict=True):
            steps = np.size(entry.prior.params.get("a", 0))
            if entry.cls.endswith("simo") and np.size(prior.params.get("a", 0)) != steps:
                raise PriorError(f"the prior for {entry.parameter} needs {steps} concentrations a, one per "
                                 f"step between its levels; got {prior}")  # fmt: skip
            entry.prior = prior
    for entry in entries:
        _check_fits(entry)
    used = set(matched)
    unknown = [k for k in user if k not in used]
    if unknown:
        valid = sorted({k for e in entries for k in _matching_keys(e)})
        raise PriorError(
            f"prior given for {', '.join(repr(k) for k in unknown)}, which is not a "
            f"parameter or class of this model; valid names: {', '.join(valid)}"
        )
    _check_covariance_priors(design, entries, parts)
    return entries


def _split_vector_prior(prior: Prior, key: str, targets: list[PriorEntry]) -> list[Prior]:
    """A class prior with vector parameters gives the class's parameters one element each, in
    the order of the prior table; its length must match."""
    lengths = {np.size(v) for v in prior.params.values() if np.ndim(v) > 0}
    if not lengths or all(t.cls.endswith("simo") for t in targets):  # a simplex's prior is a vector
        return [prior] * len(targets)
    if lengths != {len(targets)}:
        names = ", ".join(e.parameter for e in targets)
        raise PriorError(
            f"the prior for '{key}' has vector parameters of length {', '.join(map(str, sorted(lengths)))} "
            f"but '{key}' covers {len(targets)} parameter(s) ({names}); give one value per parameter "
            "or a single number"
        )
    return [
        Prior(prior.dist, **{k: (np.ravel(v)[i] if np.ndim(v) > 0 else v) for k, v in prior.params.items()})
        for i in range(len(targets))
    ]


def _check_fits(entry: PriorEntry) -> None:
    dist = entry.prior.dist
    if entry.cls.endswith("cor"):
        if dist != "LKJ":
            raise PriorError(
                f"the prior for {entry.parameter} must be Prior('LKJ', eta=...), got {entry.prior}"
            )
        return
    if dist == "LKJ":
        raise PriorError(f"an LKJ prior fits correlations only, not '{entry.parameter}'")
    if entry.cls.endswith("simo"):
        if dist != "Dirichlet":
            raise PriorError(f"the prior for {entry.parameter} must be Prior('Dirichlet', a=[...]), one "
                             f"concentration per step; got {entry.prior}")  # fmt: skip
        return
    # Group-level SDs and every family parameter (sigma, alpha, shape, nu, phi) are positive.
    is_family_parameter = entry.group is None and not entry.cls.endswith(("Intercept", "b"))
    positive = entry.cls.endswith(("sd", "sds", "sdgp", "lscale")) or is_family_parameter
    if positive and not entry.prior.positive:
        raise PriorError(
            f"the prior for '{entry.parameter}' must live on positive values "
            f"(e.g. HalfNormal, HalfStudentT, Exponential), got {entry.prior}"
        )


def _check_covariance_priors(design, entries: list[PriorEntry], parts=None) -> None:
    by_name = {e.parameter: e for e in entries}
    for term in [t for d in (design, *(parts or {}).values()) for t in d.random]:
        term.covariance.check_priors(by_name)


def prior_table(entries: list[PriorEntry]) -> pd.DataFrame:
    """The prior table users see as ``model.priors``."""
    return pd.DataFrame(
        {
            "class": [e.cls for e in entries],
            "group": [e.group or "" for e in entries],
            "prior": [repr(e.prior) for e in entries],
            "source": [e.source for e in entries],
        },
        index=pd.Index([e.parameter for e in entries], name="parameter"),
    )
