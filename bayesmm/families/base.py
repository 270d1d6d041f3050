"""Response families: link, likelihood, response checks and default priors.

A family is one small class. Adding one means writing its likelihood (a PyMC
observed variable built from the linear predictor), saying what a valid
response looks like, and giving weakly informative priors for its own
parameters (``sigma`` for the Gaussian, ...).
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from scipy import special, stats

from ..design.build import DataError, Design
from ..spec.priors import Prior
from ..warn import warn_user

__all__ = [
    "Link",
    "Family",
    "FormulaParameter",
    "Gaussian",
    "Bernoulli",
    "Binomial",
    "Poisson",
    "NegativeBinomial",
    "NegativeBinomial1",
    "BetaBinomial",
    "Cumulative",
    "Categorical",
    "Beta",
    "GammaFamily",
    "StudentT",
    "LogNormal",
    "get_family",
    "FAMILIES",
    "ALIASES",
]


@dataclass(frozen=True)
class Link:
    """A link function g with its inverse, for numpy arrays and for PyTensor graphs."""

    name: str
    link: Callable[[np.ndarray], np.ndarray]
    inverse: Callable[[np.ndarray], np.ndarray]
    inverse_graph: Callable


def _cloglog_inverse(eta):
    return -np.expm1(-np.exp(eta))


LINKS: dict[str, Link] = {
    "identity": Link("identity", lambda mu: mu, lambda eta: eta, lambda eta: eta),
    "log": Link("log", np.log, np.exp, pt.exp),
    "logit": Link("logit", special.logit, special.expit, pt.sigmoid),
    "probit": Link(
        "probit",
        special.ndtri,
        special.ndtr,
        lambda eta: 0.5 * pt.erfc(-eta / np.sqrt(2.0)),
    ),
    "cloglog": Link(
        "cloglog",
        lambda mu: np.log(-np.log1p(-mu)),
        _cloglog_inverse,
        lambda eta: -pt.expm1(-pt.exp(eta)),
    ),
    "sqrt": Link("sqrt", np.sqrt, np.square, pt.square),
    "inverse": Link("inverse", np.reciprocal, np.reciprocal, pt.reciprocal),
}


@dataclass(frozen=True)
class FormulaParameter:
    """A family parameter that can take its own formula (brms's distributional parameters):
    the link from that formula's linear predictor to the parameter, and the default prior of
    the formula's intercept, on the link scale."""

    link: str
    intercept_prior: Prior

    @property
    def inverse(self) -> Callable:
        """Linear predictor -> parameter, for numpy arrays."""
        return LINKS[self.link].inverse

    @property
    def inverse_graph(self) -> Callable:
        """Linear predictor -> parameter, for PyTensor graphs."""
        return LINKS[self.link].inverse_graph


# zi and hu are probabilities (logit link; brms's logistic(0, 1) on the intercept: uniform
# on the probability scale); a scale or shape parameter is positive (log link).
PROBABILITY = FormulaParameter("logit", Prior("Logistic", mu=0.0, s=1.0))
POSITIVE_SCALE = FormulaParameter("log", Prior("StudentT", nu=3.0, mu=0.0, sigma=2.5))


def mad(values: np.ndarray) -> float:
    """Median absolute deviation scaled to the normal SD (R's ``mad``)."""
    values = np.asarray(values, dtype=float)
    return float(1.4826 * np.median(np.abs(values - np.median(values))))


class Family:
    """A response distribution: its likelihood given the linear predictor ``eta``, the
    check of a valid response, and default priors scaled to the data.

    Users pick a family by name (``Model(family="poisson")``, see
    [`get_family`][bayesmm.get_family]); a new family is a subclass that sets the class
    attributes below and implements [`likelihood`][bayesmm.Family.likelihood],
    [`log_likelihood`][bayesmm.Family.log_likelihood] and [`draw`][bayesmm.Family.draw]
    (and [`check_response`][bayesmm.Family.check_response] and the prior hooks where the
    defaults do not fit).

    Parameters
    ----------
    link
        The link's name; None takes the family's default (the first of ``links``).

    Attributes
    ----------
    name
        The family's name in ``Model(family=...)``.
    links
        The links it allows, default first.
    params
        Its own parameters (``("sigma",)``, ``("alpha",)``), reported by name in the summary.
    binary_response, needs_trials
        Whether the response is 0/1, and whether it needs binomial trials.
    continuous
        Whether the response is a continuous quantity (Gaussian, gamma, beta, ...), so
        that a posterior predictive check draws a density whatever values the data take.
    parts, required_parts, dispersion_param
        Which one-sided part formulas it takes (``zi``, ``hu``; ``dispersion`` models
        ``dispersion_param``), and which it always has, with their default formula.
    formula_params
        Further parameters that take a formula (``nu`` of the Student-t), each a
        ``FormulaParameter`` (link and default intercept prior).

    Examples
    --------
    >>> family = bm.get_family("poisson")
    >>> family.name, family.link.name, family.params
    ('poisson', 'log', ())
    >>> bm.Family.__subclasses__()[0].name
    'gaussian'
    """

    name: ClassVar[str]
    links: ClassVar[tuple[str, ...]]
    params: ClassVar[tuple[str, ...]] = ()
    binary_response: ClassVar[bool] = False
    needs_trials: ClassVar[bool] = False
    continuous: ClassVar[bool] = False
    # Distributional parts: which one-sided formulas the family takes (zi=, hu=,
    # dispersion=), which it always has (with their default formula), and which
    # constant parameter a dispersion= formula replaces.
    parts: ClassVar[tuple[str, ...]] = ()
    required_parts: ClassVar[dict[str, str]] = {}
    dispersion_param: ClassVar[str | None] = None
    formula_params: ClassVar[dict[str, FormulaParameter]] = {}
    # An ordinal family codes its response 1..K and has thresholds instead of an intercept.
    ordinal: ClassVar[bool] = False
    # A categorical family codes its response 1..K and has one linear predictor per category
    # but the first: the mean's formula is that of category 2 (its part "mu2"), and parts
    # mu3, ..., muK repeat it.
    categorical: ClassVar[bool] = False
    main_part: str = ""

    @property
    def has_categories(self) -> bool:
        """Whether the response is coded as categories 1..K (ordinal or categorical)."""
        return self.ordinal or self.categorical

    def for_design(self, design: Design) -> Family:
        """The family as it applies to ``design``: itself, or for a family whose parameters
        depend on the data (an ordinal family's thresholds, one fewer than its categories) a
        configured copy. The instance given is never changed.

        Parameters
        ----------
        design
            The model's design.

        Returns
        -------
        Family

        Examples
        --------
        >>> bm.get_family("gaussian").for_design(model.design).params
        ('sigma',)
        """
        return self

    def param_class(self, name: str) -> str:
        """The prior class of a family parameter (a prior given for the class sets every
        parameter in it): its own name, or ``"Intercept"`` for an ordinal model's thresholds.

        Parameters
        ----------
        name
            A name in ``params``.

        Returns
        -------
        str

        Examples
        --------
        >>> bm.get_family("gaussian").param_class("sigma")
        'sigma'
        """
        return name

    def create_params(self, priors: dict, names: list[str], design: Design) -> dict:
        """The family's constant parameters as PyMC variables, in the model being built.

        Parameters
        ----------
        priors
            Prior entries by parameter name.
        names
            The parameters to create (those no part formula replaces).
        design
            The model's design.

        Returns
        -------
        dict of str to pytensor.tensor.TensorVariable

        Examples
        --------
        >>> import pymc as pm
        >>> with pm.Model():
        ...     params = model.family.create_params({e.parameter: e for e in model.prior_entries},
        ...                                         ["sigma"], model.design)
        >>> list(params)
        ['sigma']
        """
        return {name: priors[name].prior.create(name) for name in names}

    def part(self, part: str) -> FormulaParameter:
        """Link and default intercept prior of a part formula (``"zi"``, ``"dispersion"``, ``"nu"``).

        Parameters
        ----------
        part
            One of [`allowed_parts`][bayesmm.Family.allowed_parts].

        Returns
        -------
        FormulaParameter

        Examples
        --------
        >>> bm.get_family("student").part("nu").link
        'log'
        """
        if part in ("zi", "hu"):
            return PROBABILITY
        if part == "dispersion":
            return POSITIVE_SCALE
        return self.formula_params[part]

    def allowed_parts(self) -> tuple[str, ...]:
        """The part formulas ``Model`` accepts for this family.

        Returns
        -------
        tuple of str
            Among ``"zi"``, ``"hu"``, ``"dispersion"`` and the family's ``formula_params``.

        Examples
        --------
        >>> bm.get_family("zero_inflated_negbinomial").allowed_parts()
        ('zi', 'dispersion')
        """
        return self.parts + (("dispersion",) if self.dispersion_param else ()) + tuple(self.formula_params)

    def part_parameter(self, part: str) -> str:
        """The family parameter a part's linear predictor gives, per row.

        Parameters
        ----------
        part
            ``"zi"``, ``"hu"`` or ``"dispersion"``.

        Returns
        -------
        str
            The parameter's name (``"zi"``, ``"hu"``, or e.g. ``"sigma"`` for dispersion).

        Examples
        --------
        >>> bm.get_family("gaussian").part_parameter("dispersion")
        'sigma'
        """
        return self.dispersion_param if part == "dispersion" else part

    def constant_params(self, parts) -> list[str]:
        """Family parameters that stay single numbers given these distributional parts.

        Parameters
        ----------
        parts
            The part formulas the model has (their names).

        Returns
        -------
        list of str
            The parameters no part formula replaces.

        Examples
        --------
        >>> bm.get_family("gaussian").constant_params(["dispersion"])
        []
        """
        replaced = {self.part_parameter(p) for p in parts}
        return [name for name in self.params if name not in replaced]

    def __init__(self, link: str | None = None):
        link = link or self.links[0]
        if link not in self.links:
            raise ValueError(
                f"link '{link}' is not available for family '{self.name}'; "
                f"choose one of {', '.join(self.links)}"
            )
        self.link = LINKS[link]

    def __repr__(self) -> str:
        return f"{self.name}(link={self.link.name})"

    # Links hold functions; pickle the link's name and look it up again on load.
    def __getstate__(self) -> dict:
        return {**self.__dict__, "link": self.link.name}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update({**state, "link": LINKS[state["link"]]})

    # -- data ------------------------------------------------------------
    def check_response(self, design: Design) -> None:
        """Raise a DataError naming the response when its values do not fit the family (the
        design has refused infinite values already, naming their rows).

        Parameters
        ----------
        design
            The model's design (``design.y`` is the response).

        Returns
        -------
        None

        Examples
        --------
        >>> bm.get_family("gaussian").check_response(model.design)   # any real number
        """

    # -- priors ----------------------------------------------------------
    def response_scale(self, design: Design) -> float:
        """The scale that default priors on coefficients and SDs are measured in.

        Parameters
        ----------
        design
            The model's design.

        Returns
        -------
        float
            2.5 on link scales; the Gaussian uses the response's MAD.

        Examples
        --------
        >>> bm.get_family("poisson").response_scale(model.design)
        2.5
        """
        return 2.5

    def intercept_prior(self, design: Design) -> Prior:
        """The default prior of the intercept (at the predictors' means).

        Parameters
        ----------
        design
            The model's design.

        Returns
        -------
        Prior

        Examples
        --------
        >>> bm.get_family("bernoulli").intercept_prior(model.design)
        StudentT(nu=3, mu=0, sigma=2.5)
        """
        return Prior("StudentT", nu=3.0, mu=0.0, sigma=2.5)

    def coefficient_scale(self, design: Design) -> float:
        """Default prior SD of a coefficient for a predictor with unit SD (rstanarm's 2.5).

        Parameters
        ----------
        design
            The model's design.

        Returns
        -------
        float

        Examples
        --------
        >>> bm.get_family("poisson").coefficient_scale(model.design)
        2.5
        """
        return 2.5

    def sd_prior(self, design: Design) -> Prior:
        """The default prior of a group-level SD: a half Student-t on the response scale.

        Parameters
        ----------
        design
            The model's design.

        Returns
        -------
        Prior

        Examples
        --------
        >>> bm.get_family("poisson").sd_prior(model.design)
        HalfStudentT(nu=3, sigma=2.5)
        """
        return Prior("HalfStudentT", nu=3.0, sigma=self.response_scale(design))

    def param_priors(self, design: Design) -> dict[str, Prior]:
        """Default priors of the family's own parameters.

        Parameters
        ----------
        design
            The model's design.

        Returns
        -------
        dict of str to Prior
            One per name in ``params``.

        Examples
        --------
        >>> list(bm.get_family("gaussian").param_priors(model.design))
        ['sigma']
        """
        return {}

    # -- likelihood ------------------------------------------------------
    def likelihood(self, name: str, eta, params: dict, design: Design, dims: str):
        """The observed PyMC variable of the response, built in the PyMC model's context.

        Parameters
        ----------
        name
            The response variable's name.
        eta
            The linear predictor, a PyTensor vector over rows.
        params
            The family's parameters as PyTensor variables (scalars, or vectors over rows
            where a part formula models them).
        design
            The model's design (response, trials).
        dims
            The rows' dimension name.

        Returns
        -------
        pytensor.tensor.TensorVariable
            The observed random variable.

        Examples
        --------
        >>> import pymc as pm, pytensor.tensor as pt
        >>> n = model.design.n_obs
        >>> with pm.Model(coords={"obs": range(n)}) as pymc_model:
        ...     y = model.family.likelihood("Reaction", pt.zeros(n), {"sigma": 50.0}, model.design, "obs")
        >>> pymc_model.observed_RVs
        [Reaction]
        """
        raise NotImplementedError

    def mean(self, eta: np.ndarray, params: dict, trials: np.ndarray | None = None) -> np.ndarray:
        """Expected response given draws of the linear predictor.

        Parameters
        ----------
        eta
            Linear predictor draws, (draws, rows).
        params
            The family's parameters: arrays of draws, (draws, 1) or (draws, rows).
        trials
            Binomial trials per row, or None.

        Returns
        -------
        numpy.ndarray
            (draws, rows).

        Examples
        --------
        >>> bm.get_family("poisson").mean(np.log([[1.0, 4.0]]), {})
        array([[1., 4.]])
        """
        return self.link.inverse(eta)

    def log_likelihood(self, y: np.ndarray, eta: np.ndarray, params: dict, trials=None) -> np.ndarray:
        """Pointwise log-likelihood in numpy, for LOO, WAIC and checks.

        Parameters
        ----------
        y
            The response, (rows,).
        eta
            Linear predictor draws, (draws, rows).
        params
            The family's parameters, as for [`mean`][bayesmm.Family.mean].
        trials
            Binomial trials per row, or None.

        Returns
        -------
        numpy.ndarray
            (draws, rows).

        Examples
        --------
        >>> bm.get_family("poisson").log_likelihood(np.array([0.0]), np.zeros((1, 1)), {})
        array([[-1.]])
        """
        raise NotImplementedError

    def draw(self, eta: np.ndarray, params: dict, trials, rng: np.random.Generator) -> np.ndarray:
        """New responses, one per draw and row.

        Parameters
        ----------
        eta
            Linear predictor draws, (draws, rows).
        params
            The family's parameters, as for [`mean`][bayesmm.Family.mean].
        trials
            Binomial trials per row, or None.
        rng
            Numpy random generator.

        Returns
        -------
        numpy.ndarray
            (draws, rows).

        Examples
        --------
        >>> family = bm.get_family("bernoulli")
        >>> family.draw(np.full((1, 3), 50.0), {}, None, np.random.default_rng(1))
        array([[1., 1., 1.]])
        """
        raise NotImplementedError


def _check_counts(design: Design, what: str) -> np.ndarray:
    y = design.y
    name = design.response_name
    for wrong, problem in ((y < 0, "negative"), (y != np.round(y), "non-integer")):
        if np.any(wrong):
            first = int(np.flatnonzero(wrong)[0])
            raise DataError(
                f"the response '{name}' has {np.sum(wrong)} {problem} value(s), the first {y[first]:g} in "
                f"row {design.rows[first]}: {what} needs counts 0, 1, 2, ..."
            )
    return y


class Gaussian(Family):
    name = "gaussian"
    continuous = True
    links = ("identity", "log")
    params = ("sigma",)
    dispersion_param = "sigma"

    def response_scale(self, design: Design) -> float:
        # brms: max(2.5, mad(y)); the floor keeps priors proper for nearly constant data.
        return max(2.5, mad(design.y))

    def intercept_prior(self, design: Design) -> Prior:
        location = float(np.median(design.y))
        if self.link.name == "log":
            location = float(np.log(max(location, 1e-8)))
            return Prior("StudentT", nu=3.0, mu=location, sigma=2.5)
        return Prior("StudentT", nu=3.0, mu=location, sigma=self.response_scale(design))

    def coefficient_scale(self, design: Design) -> float:
        if self.link.name == "log":
            return 2.5
        return 2.5 * float(np.std(design.y))

    def sd_prior(self, design: Design) -> Prior:
        scale = 2.5 if self.link.name == "log" else self.response_scale(design)
        return Prior("HalfStudentT", nu=3.0, sigma=scale)

    def param_priors(self, design: Design) -> dict[str, Prior]:
        return {"sigma": Prior("HalfStudentT", nu=3.0, sigma=self.response_scale(design))}

    def likelihood(self, name, eta, params, design, dims):
        mu = self.link.inverse_graph(eta)
        return pm.Normal(name, mu=mu, sigma=params["sigma"], observed=design.y, dims=dims)

    def log_likelihood(self, y, eta, params, trials=None):
        return stats.norm.logpdf(y, self.link.inverse(eta), params["sigma"])

    def draw(self, eta, params, trials, rng):
        return rng.normal(self.link.inverse(eta), params["sigma"])


class Bernoulli(Family):
    name = "bernoulli"
    links = ("logit", "probit", "cloglog")
    binary_response = True

    def check_response(self, design: Design) -> None:
        y = design.y
        if not np.all(np.isin(y, (0.0, 1.0))):
            bad = y[~np.isin(y, (0.0, 1.0))][0]
            raise DataError(
                f"the response '{design.response_name}' must be 0/1 (or a two-level factor) "
                f"for family 'bernoulli'; found {bad}. For counts out of n trials use "
                "family='binomial' with cbind(successes, failures) or trials="
            )

    def likelihood(self, name, eta, params, design, dims):
        if self.link.name == "logit":
            return pm.Bernoulli(name, logit_p=eta, observed=design.y, dims=dims)
        return pm.Bernoulli(name, p=self.link.inverse_graph(eta), observed=design.y, dims=dims)

    def log_likelihood(self, y, eta, params, trials=None):
        if self.link.name == "logit":
            # log(p) and log(1 - p) straight from eta, stable for large |eta|.
            return np.where(y == 1, special.log_expit(eta), special.log_expit(-eta))
        return stats.bernoulli.logpmf(y, self.link.inverse(eta))

    def draw(self, eta, params, trials, rng):
        return rng.binomial(1, self.link.inverse(eta)).astype(float)


class Binomial(Family):
    name = "binomial"
    links = ("logit", "probit", "cloglog")
    needs_trials = True

    def check_response(self, design: Design) -> None:
        if design.trials is None:
            raise DataError(
                f"family '{self.name}' needs the number of trials: write the response as "
                "cbind(successes, failures) or pass trials= (a column name or array)"
            )
        _check_counts(design, "a binomial model")
        trials = design.trials
        if np.any(trials != np.round(trials)) or np.any(trials < 0):
            raise DataError("binomial trials must be non-negative integers")
        over = design.y > trials
        if np.any(over):
            i = int(np.argmax(over))
            raise DataError(
                f"successes exceed trials in {int(over.sum())} rows (first: row {design.rows[i]!r}, "
                f"{design.response_name} = {design.y[i]:g} > trials = {trials[i]:g})"
            )

    def pymc_kwargs(self, eta, params, design) -> dict:
        return {"n": design.trials.astype("int64"), "p": self.link.inverse_graph(eta)}

    def likelihood(self, name, eta, params, design, dims):
        y = design.y.astype("int64")
        if self.link.name == "logit":
            n = design.trials.astype("int64")
            return pm.Binomial(name, n=n, logit_p=eta, observed=y, dims=dims)
        return pm.Binomial(name, **self.pymc_kwargs(eta, params, design), observed=y, dims=dims)

    def mean(self, eta, params, trials=None):
        p = self.link.inverse(eta)
        return p if trials is None else p * trials

    def log_likelihood(self, y, eta, params, trials=None):
        return stats.binom.logpmf(y, trials, self.link.inverse(eta))

    def draw(self, eta, params, trials, rng):
        return rng.binomial(trials.astype(np.int64), self.link.inverse(eta)).astype(float)


class Poisson(Family):
    name = "poisson"
    links = ("log", "identity", "sqrt")

    def check_response(self, design: Design) -> None:
        _check_counts(design, "a Poisson model")

    def intercept_prior(self, design: Design) -> Prior:
        mean = max(float(np.mean(design.y)), 0.1)
        location = float(self.link.link(np.array(mean)))
        return Prior("StudentT", nu=3.0, mu=location, sigma=2.5)

    def pymc_kwargs(self, eta, params, design) -> dict:
        return {"mu": self.link.inverse_graph(eta)}

    def likelihood(self, name, eta, params, design, dims):
        y = design.y.astype("int64")
        return pm.Poisson(name, **self.pymc_kwargs(eta, params, design), observed=y, dims=dims)

    def log_likelihood(self, y, eta, params, trials=None):
        return stats.poisson.logpmf(y, self.link.inverse(eta))

    def draw(self, eta, params, trials, rng):
        return rng.poisson(self.link.inverse(eta)).astype(float)


class _MeanPrecision:
    """A beta distribution of the mean mu = g^-1(eta) with precision phi, Beta(mu phi,
    (1 - mu) phi), and brms's default prior of phi: shared by Beta and BetaBinomial."""

    params = ("phi",)
    dispersion_param = "phi"

    def param_priors(self, design: Design) -> dict[str, Prior]:
        return {"phi": Prior("Gamma", alpha=0.01, beta=0.01)}  # brms's default for phi

    def _shapes(self, mu, phi):
        return mu * phi, (1 - mu) * phi


class Beta(_MeanPrecision, Family):
    """Proportions strictly between 0 and 1: mean mu = g^-1(eta), precision phi
    (Beta(mu * phi, (1 - mu) * phi), variance mu (1 - mu) / (1 + phi)), as brms's ``Beta``."""

    name = "beta"
    links = ("logit", "probit", "cloglog")
    continuous = True

    def check_response(self, design: Design) -> None:
        y = design.y
        outside = (y <= 0) | (y >= 1)
        if np.any(outside):
            i = int(np.argmax(outside))
            raise DataError(
                f"the response '{design.response_name}' must lie strictly between 0 and 1 for family "
                f"'beta'; {int(outside.sum())} values do not (first: row {design.rows[i]!r}, value {y[i]:g})"
            )

    def likelihood(self, name, eta, params, design, dims):
        alpha, beta = self._shapes(self.link.inverse_graph(eta), params["phi"])
        return pm.Beta(name, alpha=alpha, beta=beta, observed=design.y, dims=dims)

    def log_likelihood(self, y, eta, params, trials=None):
        return stats.beta.logpdf(y, *self._shapes(self.link.inverse(eta), params["phi"]))

    def draw(self, eta, params, trials, rng):
        return rng.beta(*self._shapes(self.link.inverse(eta), params["phi"]))


class NegativeBinomial(Poisson):
    """Overdispersed counts (NB2): variance mu + mu^2 / alpha; brms's ``negbinomial`` (its ``shape``)."""

    name = "negativebinomial"
    links = ("log", "identity", "sqrt")
    params = ("alpha",)
    dispersion_param = "alpha"

    def check_response(self, design: Design) -> None:
        _check_counts(design, "a negative binomial model")

    def param_priors(self, design: Design) -> dict[str, Prior]:
        return {"alpha": Prior("Gamma", alpha=0.01, beta=0.01)}  # brms's default for the NB shape

    def pymc_kwargs(self, eta, params, design) -> dict:
        return {"mu": self.link.inverse_graph(eta), "alpha": params["alpha"]}

    def likelihood(self, name, eta, params, design, dims):
        y = design.y.astype("int64")
        return pm.NegativeBinomial(name, **self.pymc_kwargs(eta, params, design), observed=y, dims=dims)

    def log_likelihood(self, y, eta, params, trials=None):
        alpha = params["alpha"]
        return stats.nbinom.logpmf(y, alpha, alpha / (alpha + self.link.inverse(eta)))

    def draw(self, eta, params, trials, rng):
        alpha = np.broadcast_to(params["alpha"], np.shape(eta))
        return rng.negative_binomial(alpha, alpha / (alpha + self.link.inverse(eta))).astype(float)


def _check_positive(design: Design, family: str) -> None:
    if np.any(design.y <= 0):
        bad = design.y[design.y <= 0][0]
        raise DataError(
            f"the response '{design.response_name}' must be positive for family '{family}'; found {bad:g}"
        )


class GammaFamily(Family):
    """Positive continuous responses: mean mu = g^-1(eta), shape k (coefficient of variation 1/sqrt(k))."""

    name = "gamma"
    links = ("log", "identity", "inverse")
    continuous = True
    params = ("shape",)
    dispersion_param = "shape"

    def check_response(self, design: Design) -> None:
        _check_positive(design, self.name)

    def intercept_prior(self, design: Design) -> Prior:
        location = float(self.link.link(np.array(np.mean(design.y))))
        return Prior("StudentT", nu=3.0, mu=location, sigma=2.5)

    def param_priors(self, design: Design) -> dict[str, Prior]:
        return {"shape": Prior("Gamma", alpha=0.01, beta=0.01)}  # brms's default

    def likelihood(self, name, eta, params, design, dims):
        mu = self.link.inverse_graph(eta)
        return pm.Gamma(name, alpha=params["shape"], beta=params["shape"] / mu, observed=design.y, dims=dims)

    def log_likelihood(self, y, eta, params, trials=None):
        return stats.gamma.logpdf(y, params["shape"], scale=self.link.inverse(eta) / params["shape"])

    def draw(self, eta, params, trials, rng):
        shape = np.broadcast_to(params["shape"], np.shape(eta))
        return rng.gamma(shape, self.link.inverse(eta) / shape)


class StudentT(Gaussian):
    """Heavy-tailed continuous responses: location mu, scale sigma, degrees of freedom nu."""

    name = "student"
    links = ("identity", "log")
    params = ("sigma", "nu")
    # nu by a formula: log link; the intercept's prior is about what Gamma(2, 0.1) on nu
    # says on the log scale (median near 17, 95% within 3 to 60).
    formula_params = {"nu": FormulaParameter("log", Prior("StudentT", nu=3.0, mu=2.8, sigma=0.7))}

    def param_priors(self, design: Design) -> dict[str, Prior]:
        return {**super().param_priors(design), "nu": Prior("Gamma", alpha=2.0, beta=0.1)}  # brms's nu prior

    def likelihood(self, name, eta, params, design, dims):
        mu = self.link.inverse_graph(eta)
        return pm.StudentT(name, nu=params["nu"], mu=mu, sigma=params["sigma"], observed=design.y, dims=dims)

    def log_likelihood(self, y, eta, params, trials=None):
        return stats.t.logpdf(y, params["nu"], self.link.inverse(eta), params["sigma"])

    def draw(self, eta, params, trials, rng):
        nu = np.broadcast_to(params["nu"], np.shape(eta))
        return self.link.inverse(eta) + params["sigma"] * rng.standard_t(nu)


class LogNormal(Gaussian):
    """Positive responses whose logarithm is normal: mu (= eta) and sigma on the log scale."""

    name = "lognormal"
    links = ("identity",)

    def check_response(self, design: Design) -> None:
        _check_positive(design, self.name)

    def _log_design(self, design: Design) -> Design:
        # Default priors are those of a Gaussian model for log(y).
        return dataclasses.replace(design, y=np.log(design.y))

    def response_scale(self, design: Design) -> float:
        return super().response_scale(self._log_design(design))

    def intercept_prior(self, design: Design) -> Prior:
        return super().intercept_prior(self._log_design(design))

    def coefficient_scale(self, design: Design) -> float:
        return super().coefficient_scale(self._log_design(design))

    def likelihood(self, name, eta, params, design, dims):
        return pm.LogNormal(name, mu=eta, sigma=params["sigma"], observed=design.y, dims=dims)

    def log_likelihood(self, y, eta, params, trials=None):
        return stats.lognorm.logpdf(y, params["sigma"], scale=np.exp(eta))

    def draw(self, eta, params, trials, rng):
        return np.exp(rng.normal(eta, params["sigma"]))

    def mean(self, eta, params, trials=None):
        return np.exp(eta + params["sigma"] ** 2 / 2)


class _ZeroAltered(Family):
    """Shared machinery of zero-inflated and hurdle versions of a count family ``base``.

    Zero-inflated: P(0) = zi + (1 - zi) f(0), P(y) = (1 - zi) f(y) for y > 0.
    Hurdle: P(0) = hu, P(y) = (1 - hu) f(y) / (1 - f(0)) for y > 0.
    The probability (zi or hu) has its own formula, ``"~ 1"`` by default.
    """

    base: ClassVar[type[Family]]
    pymc_name: ClassVar[str]
    probability: ClassVar[str]

    def __init_subclass__(cls, **kwargs):
        # A zero-altered family has its count family's links, parameters, dispersion and trials.
        super().__init_subclass__(**kwargs)
        if "base" in cls.__dict__:
            for attribute in ("links", "params", "dispersion_param", "needs_trials"):
                setattr(cls, attribute, getattr(cls.base, attribute))

    def __init__(self, link: str | None = None):
        super().__init__(link)
        self._base = self.base(link)

    def check_response(self, design: Design) -> None:
        self._base.check_response(design)

    def intercept_prior(self, design: Design) -> Prior:
        return self._base.intercept_prior(design)

    def param_priors(self, design: Design) -> dict[str, Prior]:
        return self._base.param_priors(design)

    def likelihood(self, name, eta, params, design, dims):
        kwargs = self._base.pymc_kwargs(eta, params, design)
        psi = 1.0 - params[self.probability]  # PyMC's psi: the probability of the count part
        distribution = getattr(pm, self.pymc_name)
        return distribution(name, psi=psi, **kwargs, observed=design.y.astype("int64"), dims=dims)

    def _log_f(self, y, eta, params, trials):
        return self._base.log_likelihood(y, eta, params, trials)


class _ZeroInflated(_ZeroAltered):
    probability = "zi"
    parts = ("zi",)
    required_parts = {"zi": "~ 1"}

    def log_likelihood(self, y, eta, params, trials=None):
        zi = params["zi"]
        log_f = self._log_f(y, eta, params, trials)
        log_f0 = self._log_f(np.zeros_like(y), eta, params, trials)
        zero = np.logaddexp(np.log(zi), np.log1p(-zi) + log_f0)
        return np.where(y == 0, zero, np.log1p(-zi) + log_f)

    def draw(self, eta, params, trials, rng):
        counts = self._base.draw(eta, params, trials, rng)
        return np.where(rng.random(counts.shape) < params["zi"], 0.0, counts)

    def mean(self, eta, params, trials=None):
        return (1 - params["zi"]) * self._base.mean(eta, params, trials)


class _Hurdle(_ZeroAltered):
    probability = "hu"
    parts = ("hu",)
    required_parts = {"hu": "~ 1"}

    def _f0(self, eta, params, trials):
        return np.exp(self._log_f(np.zeros(np.shape(eta)[-1]), eta, params, trials))

    def log_likelihood(self, y, eta, params, trials=None):
        hu = np.broadcast_to(params["hu"], np.shape(eta))
        log_f = self._log_f(y, eta, params, trials)
        positive = np.log1p(-hu) + log_f - np.log1p(-self._f0(eta, params, trials))
        return np.where(y == 0, np.log(hu), positive)

    def draw(self, eta, params, trials, rng):
        counts = self._base.draw(eta, params, trials, rng)
        # Zero-truncated draws by redrawing the zeros; a count part that almost never
        # leaves zero is truncated to its smallest positive value, 1.
        for _ in range(100):
            zeros = counts == 0
            if not zeros.any():
                break
            counts = np.where(zeros, self._base.draw(eta, params, trials, rng), counts)
        counts = np.where(counts == 0, 1.0, counts)
        return np.where(rng.random(counts.shape) < params["hu"], 0.0, counts)

    def mean(self, eta, params, trials=None):
        f0 = self._f0(eta, params, trials)
        return (1 - params["hu"]) * self._base.mean(eta, params, trials) / (1 - f0)


class ZeroInflatedPoisson(_ZeroInflated):
    name, base, pymc_name = "zero_inflated_poisson", Poisson, "ZeroInflatedPoisson"


class ZeroInflatedNegativeBinomial(_ZeroInflated):
    name, base, pymc_name = "zero_inflated_negbinomial", NegativeBinomial, "ZeroInflatedNegativeBinomial"


class ZeroInflatedBinomial(_ZeroInflated):
    name, base, pymc_name = "zero_inflated_binomial", Binomial, "ZeroInflatedBinomial"


class HurdlePoisson(_Hurdle):
    name, base, pymc_name = "hurdle_poisson", Poisson, "HurdlePoisson"


class HurdleNegativeBinomial(_Hurdle):
    name, base, pymc_name = "hurdle_negbinomial", NegativeBinomial, "HurdleNegativeBinomial"


class _CategoryFamily(Family):
    """A response of categories 1..K whose parameters depend on K (an ordinal model's
    thresholds, a categorical model's linear predictors): configured from the design by
    ``for_design``, on a copy; a configured family keeps its categories in refits."""

    def __init__(self, link: str | None = None):
        super().__init__(link)
        self.categories: tuple[str, ...] | None = None

    def __repr__(self) -> str:
        categories = "" if self.categories is None else f", categories={len(self.categories)}"
        return f"{self.name}(link={self.link.name}{categories})"

    def for_design(self, design: Design) -> Family:
        levels = tuple(design.response_levels or ())
        if self.categories is not None:  # configured before (a refit): the categories stay
            if len(levels) > len(self.categories) or np.any(design.y > len(self.categories)):
                raise DataError(
                    f"the response '{design.response_name}' has categories beyond the model's "
                    f"{len(self.categories)} ({', '.join(self.categories)})"
                )
            return self
        configured = copy.copy(self)
        configured.categories = levels
        configured._configure(design)
        return configured

    def _configure(self, design: Design) -> None:
        """Set the parameters that depend on the categories (on the configured copy)."""
        raise NotImplementedError

    @property
    def n_categories(self) -> int:
        return len(self.categories)


class Categorical(_CategoryFamily):
    """Unordered categories 1..K (brms's ``categorical()``, the multinomial logit): one linear
    predictor per category but the first, the reference, P(y = k) = softmax(0, mu2, ..., muK)_k.
    Each predictor has the mean's formula, fixed and group effects both, and its own
    parameters: ``mu2:Intercept``, ``mu2:x``, ``sd(mu3:Intercept|g)``; ``dpars={"mu3": "~ z"}``
    gives a category its own formula. Category k is the k-th level of a factor response (of
    sorted text, or the integer k)."""

    name = "categorical"
    links = ("logit",)
    categorical = True

    def __init__(self, link: str | None = None):
        super().__init__(link)
        self.parts, self.required_parts = (), {}

    @property
    def main_part(self) -> str:
        return "mu2"

    def _configure(self, design: Design) -> None:
        text = design.formula.text
        self.parts = tuple(f"mu{k}" for k in range(3, len(self.categories) + 1))
        self.required_parts = {part: text[text.index("~") :] for part in self.parts}

    def part(self, part: str) -> FormulaParameter:
        return FormulaParameter("identity", Prior("StudentT", nu=3.0, mu=0.0, sigma=2.5))

    def _logits(self, eta, params):
        eta = np.asarray(eta, dtype=float)
        others = [np.broadcast_to(params[p], eta.shape) for p in self.parts]
        return np.stack([np.zeros_like(eta), eta, *others], axis=-1)

    def likelihood(self, name, eta, params, design, dims):
        logits = pt.stack([pt.zeros_like(eta), eta, *(params[p] for p in self.parts)], axis=1)
        return pm.Categorical(name, logit_p=logits, observed=design.y.astype("int64") - 1, dims=dims)

    def probabilities(self, eta: np.ndarray, params: dict) -> np.ndarray:
        """P(y = k) for k = 1..K, (draws, rows, K)."""
        return special.softmax(self._logits(eta, params), axis=-1)

    def mean(self, eta, params, trials=None):
        raise ValueError("a categorical response has no mean: use predict(kind='probs') for each category's "
                         "probability")  # fmt: skip

    def log_likelihood(self, y, eta, params, trials=None):
        logp = special.log_softmax(self._logits(eta, params), axis=-1)
        k = np.broadcast_to(np.asarray(y, dtype=int) - 1, logp.shape[:-1])
        return np.take_along_axis(logp, k[..., None], axis=-1)[..., 0]

    def draw(self, eta, params, trials, rng):
        cumulative = np.cumsum(self.probabilities(eta, params), axis=-1)
        u = rng.random(cumulative.shape[:-1])
        return 1.0 + (cumulative[..., :-1] < u[..., None]).sum(axis=-1).astype(float)


FAMILIES: dict[str, type[Family]] = {
    cls.name: cls
    for cls in (
        Gaussian,
        Bernoulli,
        Binomial,
        Poisson,
        NegativeBinomial,
        Beta,
        GammaFamily,
        StudentT,
        LogNormal,
        ZeroInflatedPoisson,
        ZeroInflatedNegativeBinomial,
        ZeroInflatedBinomial,
        HurdlePoisson,
        HurdleNegativeBinomial,
    )
}


class BetaBinomial(_MeanPrecision, Binomial):
    """Overdispersed binomial counts: success probability p ~ Beta(mu phi, (1 - mu) phi) per
    row, mu = g^-1(eta), so that the variance is n mu (1 - mu) (1 + (n - 1) / (phi + 1));
    brms's ``beta_binomial`` and glmmTMB's ``betabinomial`` (its dispersion is phi)."""

    name = "beta_binomial"

    def likelihood(self, name, eta, params, design, dims):
        alpha, beta = self._shapes(self.link.inverse_graph(eta), params["phi"])
        n = design.trials.astype("int64")
        return pm.BetaBinomial(
            name, alpha=alpha, beta=beta, n=n, observed=design.y.astype("int64"), dims=dims
        )

    def log_likelihood(self, y, eta, params, trials=None):
        return stats.betabinom.logpmf(y, trials, *self._shapes(self.link.inverse(eta), params["phi"]))

    def draw(self, eta, params, trials, rng):
        p = rng.beta(*self._shapes(self.link.inverse(eta), params["phi"]))
        return rng.binomial(np.broadcast_to(trials.astype(np.int64), p.shape), p).astype(float)


class NegativeBinomial1(NegativeBinomial):
    """Overdispersed counts with the variance linear in the mean (NB1): variance mu (1 + phi),
    a negative binomial of shape mu / phi; glmmTMB's ``nbinom1`` (its dispersion is phi)."""

    name = "nbinom1"
    params = ("phi",)
    dispersion_param = "phi"

    def param_priors(self, design: Design) -> dict[str, Prior]:
        # phi is the variance's excess over the mean, per unit of the mean: 0 is Poisson.
        return {"phi": Prior("HalfStudentT", nu=3.0, sigma=2.5)}

    def pymc_kwargs(self, eta, params, design) -> dict:
        mu = self.link.inverse_graph(eta)
        return {"mu": mu, "alpha": mu / params["phi"]}

    def _shape_and_p(self, eta, params):
        mu, phi = self.link.inverse(eta), params["phi"]
        return mu / phi, np.broadcast_to(1.0 / (1.0 + phi), np.shape(mu))

    def log_likelihood(self, y, eta, params, trials=None):
        return stats.nbinom.logpmf(y, *self._shape_and_p(eta, params))

    def draw(self, eta, params, trials, rng):
        return rng.negative_binomial(*self._shape_and_p(eta, params)).astype(float)


class ZeroInflatedNegativeBinomial1(_ZeroInflated):
    name, base, pymc_name = "zero_inflated_nbinom1", NegativeBinomial1, "ZeroInflatedNegativeBinomial"


class HurdleNegativeBinomial1(_Hurdle):
    name, base, pymc_name = "hurdle_nbinom1", NegativeBinomial1, "HurdleNegativeBinomial"


def _log1mexp(x):
    """log(1 - exp(x)) for x <= 0, accurate at both ends (Maechler 2012)."""
    x = np.asarray(x, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x > -np.log(2.0), np.log(-np.expm1(x)), np.log1p(-np.exp(x)))


class Cumulative(_CategoryFamily):
    """Ordered categories 1..K (brms's ``cumulative``, R's ``ordinal::clmm``): a latent
    variable eta + e, e logistic (logit link) or standard normal (probit), falls into category
    k between the thresholds Intercept[k-1] and Intercept[k], so that
    P(y <= k) = F(Intercept[k] - eta). The thresholds take the intercept's place (the linear
    predictor has none) and are ordered; each has brms's default prior, Student-t(3, 0, 2.5),
    restricted to the ordered values."""

    name = "cumulative"
    links = ("logit", "probit")
    ordinal = True

    def __init__(self, link: str | None = None):
        super().__init__(link)
        self.params = ()

    def _configure(self, design: Design) -> None:
        self.params = tuple(f"Intercept[{k}]" for k in range(1, len(self.categories)))

    def param_class(self, name: str) -> str:
        return "Intercept" if name.startswith("Intercept[") else name

    def check_response(self, design: Design) -> None:
        counts = np.bincount(design.y.astype(int), minlength=self.n_categories + 1)[1:]
        empty = [c for c, n in zip(self.categories, counts, strict=True) if n == 0]
        if empty:
            warn_user(
                f"categor{'y' if len(empty) == 1 else 'ies'} {', '.join(map(repr, empty))} of the response "
                f"'{design.response_name}' never occur: the thresholds around them are estimated from "
                "their priors alone",
                UserWarning,
            )

    def param_priors(self, design: Design) -> dict[str, Prior]:
        return {name: Prior("StudentT", nu=3.0, mu=0.0, sigma=2.5) for name in self.params}

    def _initial_thresholds(self, design: Design) -> np.ndarray:
        """Thresholds at the observed cumulative proportions (strictly increasing)."""
        counts = np.bincount(design.y.astype(int), minlength=self.n_categories + 1)[1:] + 0.5
        cumulative = np.cumsum(counts)[:-1] / counts.sum()
        return np.sort(self.link.link(cumulative)) + 1e-3 * np.arange(self.n_categories - 1)

    def create_params(self, priors: dict, names: list[str], design: Design) -> dict:
        entries = [priors[name] for name in self.params]

        def draw(size):
            # The ordered prior of iid thresholds is that of their order statistics.
            return pt.sort(pt.stack([e.prior.as_dist() for e in entries]))

        def logp(value):
            return sum(pm.logp(e.prior.as_dist(), value[k]) for k, e in enumerate(entries))

        start = self._initial_thresholds(design)

        def support_point(rv, size):
            return pt.as_tensor_variable(start)

        thresholds = pm.CustomDist(
            "thresholds", dist=draw, logp=logp, support_point=support_point, signature="->(k)",
            transform=pm.distributions.transforms.ordered,
        )  # fmt: skip
        return {name: pm.Deterministic(name, thresholds[k]) for k, name in enumerate(self.params)}

    def _thresholds(self, params: dict) -> np.ndarray:
        """(..., K - 1) thresholds, broadcasting against (draws, rows)."""
        return np.stack([np.asarray(params[name], dtype=float) for name in self.params], axis=-1)

    def likelihood(self, name, eta, params, design, dims):
        cutpoints = pt.stack([params[k] for k in self.params])
        observed = design.y.astype("int64") - 1  # PyMC's categories count from 0
        if self.link.name == "logit":
            return pm.OrderedLogistic(name, eta=eta, cutpoints=cutpoints, compute_p=False, observed=observed,
                                      dims=dims)  # fmt: skip
        return pm.OrderedProbit(name, eta=eta, cutpoints=cutpoints, sigma=1.0, compute_p=False,
                                observed=observed, dims=dims)  # fmt: skip

    def _log_cdf(self, z):
        return special.log_expit(z) if self.link.name == "logit" else special.log_ndtr(z)

    def probabilities(self, eta: np.ndarray, params: dict) -> np.ndarray:
        """P(y = k) for k = 1..K, (draws, rows, K)."""
        cumulative = self.link.inverse(self._thresholds(params) - np.asarray(eta)[..., None])
        shape = cumulative.shape[:-1]
        padded = np.concatenate([np.zeros(shape + (1,)), cumulative, np.ones(shape + (1,))], axis=-1)
        return np.diff(padded, axis=-1)

    def mean(self, eta, params, trials=None):
        # E(y) = 1 + sum_k P(y > k)
        return 1.0 + (1.0 - self.link.inverse(self._thresholds(params) - np.asarray(eta)[..., None])).sum(-1)

    def log_likelihood(self, y, eta, params, trials=None):
        eta = np.asarray(eta, dtype=float)
        tau = np.broadcast_to(self._thresholds(params), eta.shape[:-1] + (1, self.n_categories - 1))
        infinite = np.full(tau.shape[:-1] + (1,), np.inf)
        padded = np.concatenate([-infinite, tau, infinite], axis=-1)
        k = np.asarray(y, dtype=int)
        upper = np.take_along_axis(padded, np.broadcast_to(k, padded.shape[:-2] + k.shape)[..., None], -1)
        lower = np.take_along_axis(padded, np.broadcast_to(k - 1, padded.shape[:-2] + k.shape)[..., None], -1)
        a, b = upper[..., 0] - eta, lower[..., 0] - eta
        with np.errstate(invalid="ignore"):
            # F(a) - F(b), or for the upper tail S(b) - S(a) with S(z) = F(-z) (both links symmetric).
            below = self._log_cdf(a) + _log1mexp(self._log_cdf(b) - self._log_cdf(a))
            above = self._log_cdf(-b) + _log1mexp(self._log_cdf(-a) - self._log_cdf(-b))
        return np.where(a + b > 0, above, below)

    def draw(self, eta, params, trials, rng):
        cumulative = self.link.inverse(self._thresholds(params) - np.asarray(eta)[..., None])
        u = rng.random(cumulative.shape[:-1])
        return 1.0 + (cumulative < u[..., None]).sum(axis=-1).astype(float)


FAMILIES: dict[str, type[Family]] = {
    cls.name: cls
    for cls in (
        Gaussian,
        Bernoulli,
        Binomial,
        BetaBinomial,
        Poisson,
        NegativeBinomial,
        NegativeBinomial1,
        Beta,
        GammaFamily,
        StudentT,
        LogNormal,
        Cumulative,
        Categorical,
        ZeroInflatedPoisson,
        ZeroInflatedNegativeBinomial,
        ZeroInflatedNegativeBinomial1,
        ZeroInflatedBinomial,
        HurdlePoisson,
        HurdleNegativeBinomial,
        HurdleNegativeBinomial1,
    )
}
# Other spellings users bring from brms, glmmTMB, bambi, statsmodels and R's glm (compared
# after lower-casing and reading '-', ' ' and '.' as '_').
ALIASES: dict[str, str] = {
    "normal": "gaussian",
    "t": "student",
    "student_t": "student",
    "studentt": "student",
    "log_normal": "lognormal",
    "logistic": "bernoulli",
    "binary": "bernoulli",
    "betabinomial": "beta_binomial",
    "negbinomial": "negativebinomial",
    "negative_binomial": "negativebinomial",
    "neg_binomial": "negativebinomial",
    "nbinom2": "negativebinomial",
    "nb": "negativebinomial",
    "nb2": "negativebinomial",
    "negbin": "negativebinomial",
    "negbinomial1": "nbinom1",
    "nb1": "nbinom1",
    "ordinal": "cumulative",
    "ordered": "cumulative",
    "ordered_logistic": "cumulative",
    "multinomial": "categorical",
    "multinomial_logit": "categorical",
    "zip": "zero_inflated_poisson",
    "zinb": "zero_inflated_negbinomial",
    "zero_inflated_negativebinomial": "zero_inflated_negbinomial",
    "zero_inflated_negative_binomial": "zero_inflated_negbinomial",
    "zero_inflated_nbinom2": "zero_inflated_negbinomial",
    "hurdle_negativebinomial": "hurdle_negbinomial",
    "hurdle_negative_binomial": "hurdle_negbinomial",
    "hurdle_nbinom2": "hurdle_negbinomial",
    "truncated_poisson": "hurdle_poisson",
}


def _spelling(name: str) -> str:
    return re.sub(r"[-. ]", "_", name.strip().lower())


def _unknown_family(family: object) -> str:
    if not isinstance(family, str):
        return f"family must be a name such as 'poisson' or a bayesmm.Family, got {type(family).__name__}"
    spelled = _spelling(family)
    scores = {name: difflib.SequenceMatcher(None, spelled, name).ratio() for name in [*FAMILIES, *ALIASES]}
    best = max(scores.values())
    # The closest names only: 'poison' is poisson, not also hurdle_poisson.
    close = [
        name
        for name, score in sorted(scores.items(), key=lambda kv: -kv[1])
        if score >= max(0.6, best - 0.05)
    ]
    suggestions = list(dict.fromkeys(ALIASES.get(c, c) for c in close))[:3]
    if suggestions:
        return f"unknown family {family!r}; did you mean {' or '.join(repr(c) for c in suggestions)}?"
    return (
        f"unknown family {family!r}, and no family of bayesmm is spelled like it; "
        f"bm.FAMILIES lists the {len(set(FAMILIES.values()))} families, bm.families.ALIASES other spellings"
    )


@functools.cache
def family_parameter_names() -> frozenset[str]:
    """Every name a family gives a distributional parameter (``sigma``, ``phi``, ``zi``)."""
    names = set()
    for family in FAMILIES.values():
        names |= {*family.params, *family.parts, *family.formula_params}
    return frozenset(names)


def get_family(family: str | Family, link: str | None = None) -> Family:
    """A Family instance from a name (``"poisson"``) or an instance.

    Parameters
    ----------
    family
        A name among ``FAMILIES``, or one of the other spellings of brms, glmmTMB and bambi
        (``"negbinomial"``, ``"nbinom2"``, ``"negative_binomial"``, ``"t"``, ``"ordinal"``, ...;
        ``ALIASES``), case-insensitive, or a [`Family`][bayesmm.Family] instance.
    link
        A link other than the family's default (``"probit"``, ``"cloglog"``, ...), or None.

    Returns
    -------
    Family

    Raises
    ------
    ValueError
        For an unknown family (suggesting the closest names) or a link the family does not
        allow (listing the choices).

    Examples
    --------
    >>> bm.get_family("binomial", link="probit")
    binomial(link=probit)
    >>> bm.get_family("nbinom2")
    negativebinomial(link=log)
    >>> bm.get_family("poison")
    Traceback (most recent call last):
    ValueError: unknown family 'poison'; did you mean 'poisson'?
    """
    if isinstance(family, Family):
        if link is not None and link != family.link.name:
            raise ValueError("give the link either in the family instance or as link=, not both")
        return family
    if not isinstance(family, str):
        raise ValueError(_unknown_family(family))
    name = _spelling(family)
    name = ALIASES.get(name, name)
    if name not in FAMILIES:
        raise ValueError(_unknown_family(family))
    return FAMILIES[name](link)
