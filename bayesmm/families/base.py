"""What every family is: the links, a formula parameter's declaration, and the ``Family``
base class whose attributes declare a family (its parameters, links, support, parts) and
whose methods give its PyMC likelihood, pointwise log-likelihood, draws and mean."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy import special

from ..design.build import DataError, Design
from ..lazy import pm, pt
from ..spec.priors import Prior


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
    "log": Link("log", np.log, np.exp, lambda eta: pt.exp(eta)),
    "logit": Link("logit", special.logit, special.expit, lambda eta: pt.sigmoid(eta)),
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
    "sqrt": Link("sqrt", np.sqrt, np.square, lambda eta: pt.square(eta)),
    "inverse": Link("inverse", np.reciprocal, np.reciprocal, lambda eta: pt.reciprocal(eta)),
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
    attributes below and declares its distribution once: ``pymc_name`` and
    ``scipy_distribution`` with ``pymc_arguments`` and ``scipy_arguments`` (the arguments of
    each given the mean), from which [`likelihood`][bayesmm.Family.likelihood],
    [`log_likelihood`][bayesmm.Family.log_likelihood] and [`draw`][bayesmm.Family.draw] follow
    (a family whose distribution is a mixture, as the zero-altered ones, or has several
    linear predictors, as the category ones, writes those three itself); and
    [`check_response`][bayesmm.Family.check_response] and the prior hooks where the defaults
    do not fit.

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
    log_response
        Whether the linear predictor models log(y) itself (the lognormal).
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
    >>> bm.FAMILIES["gaussian"].continuous
    True
    """

    name: ClassVar[str]
    links: ClassVar[tuple[str, ...]]
    params: ClassVar[tuple[str, ...]] = ()
    binary_response: ClassVar[bool] = False
    needs_trials: ClassVar[bool] = False
    continuous: ClassVar[bool] = False
    # Whether its likelihood can be censored and truncated (brms's cens() and trunc()): a
    # single distribution with a CDF. Bounds at or beyond the support's ends truncate nothing.
    censorable: ClassVar[bool] = False
    support_lower: ClassVar[float] = -np.inf
    support_upper: ClassVar[float] = np.inf
    # The response's distribution, declared once: its PyMC class's name and scipy counterpart, the
    # maps from the mean mu (with the family's parameters and the trials) to each one's
    # arguments (pymc_arguments, scipy_arguments), and whether it is discrete. The likelihood,
    # the pointwise log-likelihood and the draws all come from it.
    pymc_name: ClassVar[str | None] = None
    scipy_distribution: ClassVar[object | None] = None
    discrete: ClassVar[bool] = False
    # Whether the linear predictor models log(y) directly (the lognormal): the response's
    # link-scale form, for choosing each term's parameterization, is then log(y).
    log_response: ClassVar[bool] = False
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
        observed = design.y.astype("int64") if self.discrete else design.y
        kwargs = self.pymc_kwargs(eta, params, design)
        return getattr(pm, self.pymc_name)(name, **kwargs, observed=observed, dims=dims)

    def pymc_arguments(self, mu, params: dict, trials) -> dict:
        """The family's declaration, PyMC's half: the arguments of ``pymc_name``'s distribution given
        the mean; [`scipy_arguments`][bayesmm.Family.scipy_arguments] gives the same
        distribution in scipy's terms.

        Parameters
        ----------
        mu
            The mean, g^-1(eta): a PyTensor variable over rows.
        params
            The family's parameters (PyTensor scalars, or vectors over rows).
        trials
            Binomial trials per row (int64), or None.

        Returns
        -------
        dict
            Keyword arguments of ``pymc_name``'s distribution.

        Examples
        --------
        >>> bm.get_family("negativebinomial").pymc_arguments(2.0, {"alpha": 3.0}, None)
        {'mu': 2.0, 'alpha': 3.0}
        """
        raise NotImplementedError(f"family {self.name!r} declares no PyMC distribution")

    def scipy_arguments(self, mu, params: dict, trials) -> dict:
        """The family's declaration, scipy's half: the arguments of ``scipy_distribution``
        given the mean (numpy arrays): the same distribution as
        [`pymc_arguments`][bayesmm.Family.pymc_arguments].

        Parameters
        ----------
        mu
            The mean, g^-1(eta): an array, (draws, rows).
        params
            The family's parameters, as for [`mean`][bayesmm.Family.mean].
        trials
            Binomial trials per row (int64), or None.

        Returns
        -------
        dict
            Keyword arguments of ``scipy_distribution``.

        Examples
        --------
        >>> bm.get_family("negativebinomial").scipy_arguments(2.0, {"alpha": 3.0}, None)
        {'n': 3.0, 'p': 0.6}
        """
        raise NotImplementedError(f"family {self.name!r} declares no scipy distribution")

    def pymc_kwargs(self, eta, params: dict, design: Design) -> dict:
        """The PyMC distribution's arguments for the linear predictor (a zero-altered family
        builds its mixture from them).

        Parameters
        ----------
        eta
            The linear predictor, a PyTensor vector over rows.
        params
            The family's parameters as PyTensor variables.
        design
            The model's design (its trials).

        Returns
        -------
        dict
            Keyword arguments of ``pymc_name``'s distribution.

        Examples
        --------
        >>> import pytensor.tensor as pt
        >>> sorted(bm.get_family("poisson").pymc_kwargs(pt.zeros(3), {}, model.design))
        ['mu']
        """
        trials = None if design.trials is None else design.trials.astype("int64")
        return self.pymc_arguments(self.link.inverse_graph(eta), params, trials)

    def response_distribution(self, eta: np.ndarray, params: dict, trials=None):
        """The scipy distribution of each response given draws of the linear predictor:
        [`log_likelihood`][bayesmm.Family.log_likelihood] and [`draw`][bayesmm.Family.draw] read it.

        Parameters
        ----------
        eta
            Linear predictor draws, (draws, rows).
        params
            The family's parameters, as for [`mean`][bayesmm.Family.mean].
        trials
            Binomial trials per row, or None.

        Returns
        -------
        scipy.stats frozen distribution

        Examples
        --------
        >>> bm.get_family("poisson").response_distribution(np.zeros((1, 2)), {}).mean()
        array([[1., 1.]])
        """
        trials = None if trials is None else np.asarray(trials).astype(np.int64)
        return self.scipy_distribution(**self.scipy_arguments(self.link.inverse(eta), params, trials))

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
        distribution = self.response_distribution(eta, params, trials)
        return distribution.logpmf(y) if self.discrete else distribution.logpdf(y)

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
        distribution = self.response_distribution(eta, params, trials)
        # scipy squeezes a leading axis of length 1 unless the size is given.
        shape = np.broadcast_shapes(np.shape(eta), *(np.shape(v) for v in distribution.kwds.values()))
        return np.asarray(distribution.rvs(size=shape, random_state=rng), dtype=float)


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


class _MeanPrecision:
    """A beta distribution of the mean mu = g^-1(eta) with precision phi, Beta(mu phi,
    (1 - mu) phi), and brms's default prior of phi: shared by Beta and BetaBinomial."""

    params = ("phi",)
    dispersion_param = "phi"

    def param_priors(self, design: Design) -> dict[str, Prior]:
        return {"phi": Prior("Gamma", alpha=0.01, beta=0.01)}  # brms's default for phi

    def _shapes(self, mu, phi):
        return mu * phi, (1 - mu) * phi
