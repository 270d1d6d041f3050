"""``Model``: wires formula, design, family, priors and the PyMC model together.

Each stage lives in its own module; this class only holds what they produce.
"""

from __future__ import annotations

import html
import warnings

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .design.build import DataError, build_design
from .families.additions import check_additions
from .families.base import Family
from .families.continuous import Gaussian
from .families.registry import get_family
from .inference.nuts import approximate, sample
from .lazy import pm
from .model.builder import build_collapsed_model, build_pymc_model
from .model.collapsed import collapsed_group, why_not_collapsible
from .model.maximal import Maximal, few_level_groups, maximal_structure, unidentified_terms
from .model.parameterization import centred_terms, informativeness, smooth_centring
from .model.variables import reported_variables
from .results import persist
from .results.fit import Fit
from .results.persist import TRIALS
from .spec.formula import parse_formula
from .spec.priors import Prior, prior_table, resolve_priors
from .warn import warn_user

__all__ = ["Model", "load", "maximal"]


def _model_frame(data: pd.DataFrame, designs: list, trials) -> tuple[pd.DataFrame, str | None]:
    """The columns of ``data`` that the model reads (as its checked formulas report them),
    with trials given as an array stored as a column of their own; and the trials column."""
    used = {c for design in designs for c in design.used_columns}
    if isinstance(trials, str):
        used.add(trials)
    frame = data[[c for c in data.columns if c in used]].copy()
    if trials is None or isinstance(trials, str):
        return frame, trials
    frame[TRIALS] = np.asarray(trials)  # its length was checked with the design
    return frame, TRIALS


def _check_response_varies(design, family: Family) -> None:
    y = design.y
    if len(y) == 0 or not np.all(y == y[0]):
        return
    message = f"the response '{design.response_name}' is {y[0]:g} in every one of the {len(y)} rows"
    if family.continuous:  # nothing to model, and default priors of zero width
        raise DataError(f"{message}; a constant response has no variation to model")
    warn_user(f"{message}: its estimates will come from the priors", UserWarning)


# decomp="auto" decomposes the slope columns when one of them has a variance inflation
# factor above this (the usual threshold for harmful collinearity): the owlet model's
# ArrivalTime:SexParent has 170, cbpp's, grouseticks' and VerbAgg's slopes at most 1.5.
QR_VIF = 10.0


def _decomposition(design, setting) -> str | None:
    """ "QR" or None from decomp= ("auto", "QR", None or "none"); "QR" refuses collinear
    columns now, before anything is built (qr_factors raises naming one)."""
    from .model.builder import qr_factors
    from .model.fixed import centred_slopes

    if setting not in ("auto", "QR", "none", None):
        raise ValueError(f"decomp takes 'auto', 'QR' or None (as brms's decomp), got {setting!r}")
    slopes, Xc = centred_slopes(design)
    if setting in (None, "none") or not slopes:
        return None
    if setting == "auto":
        spread = Xc.std(axis=0)
        if len(slopes) < 2 or np.any(spread == 0):
            return None
        correlation = np.corrcoef(Xc.T)
        if np.linalg.cond(correlation) > 1e12:  # collinear: the design has said so; leave it
            return None
        return "QR" if np.max(np.diag(np.linalg.inv(correlation))) > QR_VIF else None
    qr_factors(Xc, [design.fixef_names[j] for j in slopes])
    return "QR"


def _collapse(design, family: Family, parts: dict, setting, centered) -> bool:
    """Whether the group effects are integrated out: ``setting`` True, False, None (when the
    model allows it) or "auto" (when it allows it, the effects all belong to one grouping
    factor, so that NUTS samples no group effects at all, and ``centered`` names no choice for
    that factor); True for a model that cannot be collapsed is an error saying why."""
    if not (setting is None or isinstance(setting, bool) or setting == "auto"):
        raise ValueError(f"collapsed must be True, False, None or 'auto', got {setting!r}")
    if setting is False:
        return False
    reason = why_not_collapsible(design, family, parts)
    if reason is not None and setting is True:
        raise ValueError(f"collapsed=True: the group effects of this model cannot be integrated out: "
                         f"{reason}")  # fmt: skip
    if setting == "auto":
        asked = isinstance(centered, bool) or (isinstance(centered, dict) and bool(centered))
        return reason is None and len(design.groups) == 1 and not asked
    return reason is None


def _warn_if_one_row_per_level(design, family: Family) -> None:
    """With one row per level, a random intercept is the residual error under another name."""
    if not isinstance(family, Gaussian) or "sigma" not in family.params:
        return  # gaussian, student and lognormal have a residual SD, unless se() gives it
    for term in design.random:
        if term.group in design.observation_level_groups and "Intercept" in term.columns:
            warn_user(
                f"every level of '{term.group}' in {term.spec.text} has a single observation, so its "
                f"random intercept cannot be told apart from the residual SD (sigma) of a {family.name} "
                "model: the two SDs are identified only by their priors. Drop the term, or use a family "
                "without a residual SD (e.g. an observation-level effect in a Poisson model)",
                UserWarning,
            )


class Model:
    """A Bayesian generalized linear mixed model, specified as in lme4 and brms.

    The formula and data are checked, and the design (fixed-effect matrix, grouping
    factors, default priors scaled to the data) built, when the model is made: bad input
    fails here, naming the column, term or value, before anything is compiled or
    sampled. The PyMC model is built on first use (``model.pymc_model``).

    Parameters
    ----------
    formula
        ``response ~ fixed + (varying | group) + ...`` with R's meaning for the expressions
        in it; see [the formula syntax](formulas.md). brms's addition terms follow the
        response: ``y | trials(n)``, ``y | se(s)`` (known standard errors, meta-analysis),
        ``y | weights(w)``, ``y | cens(c)`` or ``cens(c, y2)`` (censoring), ``y | trunc(lb = 1)``
        (truncation), combined with ``+``; ``Surv(time, status)`` is ``time`` right-censored
        where ``status`` is 0. Formula text is interpreted with an allow-list of functions and
        never run as Python.
    data
        A pandas DataFrame. It is never modified.
    family
        The response distribution, by name or as a [`Family`][bayesmm.Family]: ``"gaussian"``,
        ``"student"``, ``"lognormal"``, ``"gamma"``, ``"exponential"``, ``"weibull"``, ``"beta"``,
        ``"bernoulli"``,
        ``"binomial"``, ``"beta_binomial"``, ``"poisson"``, ``"negbinomial"`` (also
        ``"negativebinomial"``, ``"nbinom2"``, ``"negative_binomial"``), ``"nbinom1"``,
        ``"cumulative"`` (ordinal; thresholds ``Intercept[1]``, ...), ``"categorical"`` (one
        linear predictor per category but the first: ``mu2:x``, ...), ``"zero_inflated_poisson"``,
        ``"zero_inflated_negbinomial"``, ``"zero_inflated_nbinom1"``, ``"zero_inflated_binomial"``,
        ``"hurdle_poisson"``, ``"hurdle_negbinomial"`` or ``"hurdle_nbinom1"``. Other spellings
        of brms, glmmTMB and bambi are accepted; a misspelled name gets the closest back.
    priors
        Overrides by parameter name or class, e.g. ``{"Days": Prior("Normal", mu=0, sigma=10)}``
        or ``{"sd": Prior("HalfNormal", sigma=20)}``; ``model.priors`` lists every name.
    link
        A non-default link (``"probit"``, ``"cloglog"`` for binary data, ...).
    trials
        Binomial trials: a column name or an array (or write ``cbind(s, f) ~ ...`` or
        ``s | trials(n) ~ ...``).
    na_action
        ``"drop"`` (drop incomplete rows with a warning) or ``"raise"``.
    zi
        One-sided formula for the zero-inflation probability (logit scale) of a
        ``zero_inflated_*`` family, e.g. ``"~ x + (1 | g)"``.
    hu
        One-sided formula for the hurdle probability of a ``hurdle_*`` family.
    dispersion
        One-sided formula for the family's scale or shape parameter (log scale): sigma,
        the negative binomial shape, the beta precision, ...
    dpars
        Formulas for distributional parameters by name, as brms's ``bf(y ~ ..., nu ~ ...)``:
        ``{"nu": "~ x"}`` (Student-t degrees of freedom, log link), ``{"sigma": "~ x"}``,
        ``{"phi": ...}``, ``{"alpha": ...}`` (the same as ``dispersion=``), ``{"zi": ...}``,
        ``{"hu": ...}``. Each may have fixed and group effects; its parameters are named
        ``nu:x``, ``sd(nu:Intercept|g)`` and so on.
    centered
        How the mean's group effects are sampled: None (the default) chooses per term from the
        data, centred where each level's rows pin its effects down (many informative rows per
        level) and non-centred where they do not; True or False for every term; or a dict by
        grouping factor, ``{"Subject": False}``. The model is the same either way; the choice
        only changes how well the sampler mixes. ``model.parameterization`` shows it.
    collapsed
        Integrate the group effects out of the likelihood (bayesmm.model.collapsed) and draw them
        afterwards from their exact conditional, for a Gaussian model (identity link,
        constant sigma) whose group effects all belong to one grouping factor: NUTS then
        samples only the fixed effects, the covariance parameters and sigma, so there is no
        funnel to mix through, and each step costs O(levels), not O(rows). The posterior is
        the same. ``"auto"`` (the default) collapses a Gaussian model whose group effects all
        belong to one grouping factor (sleepstudy, Dyestuff), unless ``centered`` asks for a
        parameterization; None also collapses the largest of several factors (the others
        sampled); False samples the effects; True refuses a model it cannot collapse, saying
        why.
    data2
        Matrices the formula names, by name: ``(1 | gr(g, cov = A))`` reads ``data2["A"]``,
        the known covariance (or correlation) of the levels of ``g`` (a phylogeny's, a
        pedigree's), as brms's ``data2``. A DataFrame labelled by level on its rows and
        columns (extra levels are dropped), or an array in the factor's level order;
        checked symmetric and positive definite. The levels' effects of each varying term
        are then MVN(0, sd^2 A).
    decomp
        ``"QR"`` samples the mean's slopes through the QR decomposition of their (centred)
        columns, as brms's ``decomp = "QR"`` and rstanarm's ``QR = TRUE``: correlated
        predictors (an interaction with a predictor far from zero) then do not slow the
        sampler. The priors stay on the slopes themselves (the map is linear, its Jacobian
        constant), so the model is the same. ``"auto"`` (the default) decomposes when a
        slope column's variance inflation factor exceeds 10; None: never.

    Examples
    --------
    >>> sleepstudy = bm.datasets.load("sleepstudy")
    >>> model = bm.Model("Reaction ~ Days + (Days | Subject)", sleepstudy)
    >>> model.priors                     # every parameter's prior, defaults scaled to the data
    >>> fit = model.fit(draws=1000, chains=4, random_seed=1)
    >>> fit.summary()

    Counts with crossed grouping factors, an observation-level effect and a zero-inflation
    part:

    >>> grouse = bm.datasets.load("grouseticks")
    >>> bm.Model("TICKS ~ YEAR + cHEIGHT + (1 | BROOD) + (1 | LOCATION)", grouse,
    ...          family="zero_inflated_poisson", zi="~ 1")
    """

    def __init__(
        self,
        formula: str,
        data: pd.DataFrame,
        family: str | Family = "gaussian",
        priors: dict[str, Prior] | None = None,
        *,
        link: str | None = None,
        trials=None,
        na_action: str = "drop",
        zi: str | None = None,
        hu: str | None = None,
        dispersion: str | None = None,
        dpars: dict[str, str] | None = None,
        centered: bool | dict[str, bool] | None = None,
        collapsed: bool | str | None = "auto",
        decomp: str | None = "auto",
        data2: dict | None = None,
    ):
        self.formula = parse_formula(formula)
        if data2 is not None and not isinstance(data2, dict):
            kind = type(data2).__name__
            raise ValueError(f"data2 takes a dict of names to matrices, e.g. {{'A': A}}; got {kind}")
        self.data2 = data2
        self.family = get_family(family, link)
        if self.formula.cbind and not self.family.needs_trials:
            raise ValueError(
                f"a cbind(successes, failures) response needs family='binomial', not '{self.family.name}'"
            )
        if (trials is not None or self.formula.trials is not None) and not self.family.needs_trials:
            raise ValueError(
                f"family '{self.family.name}' has no number of trials; trials are for family='binomial' "
                "(or drop trials=)"
            )
        if trials is not None and self.formula.trials is not None:
            raise ValueError("give the trials either as y | trials(n) in the formula or as trials=, not both")
        if isinstance(data, pd.DataFrame) and not data.index.is_unique:
            # Rows are matched by index label between the formula and its parts: number them.
            data = data.reset_index(drop=True)
        if self.family.categorical:
            # One linear predictor per category but the first: how many, the response says.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # said when the design is built below
                probe = build_design(self.formula, data, trials=trials, na_action=na_action,
                                     categorical_response=True, part=self.family.main_part)  # fmt: skip
            self.family = self.family.for_design(probe)
        given = self._given_parts({"zi": zi, "hu": hu, "dispersion": dispersion}, dpars)
        part_formulas = self._part_formulas(given)
        # What fit.save stores to rebuild this model: the user's own settings and the
        # model frame (the data columns the formulas use).
        self.part_texts = {p: t for p, t in given.items() if t}
        self.na_action = na_action
        self.design, self.parts = self._build_designs(data, part_formulas, trials, na_action)
        self.model_frame, self.trials_column = _model_frame(data, [self.design, *self.parts.values()], trials)
        self.family = self.family.for_design(self.design)
        check_additions(self.family, self.design, self.parts)
        self.family.check_response(self.design)
        _check_response_varies(self.design, self.family)
        _warn_if_one_row_per_level(self.design, self.family)
        self.unidentified = unidentified_terms(self.design, self.family)
        for term in self.unidentified:
            warn_user(term.message(), UserWarning)
        for group, n in few_level_groups(self.design).items():
            warn_user(
                f"grouping factor '{group}' has only {n} levels: its SD rests on {n} values and the data "
                f"barely inform it. With so few levels, model '{group}' as a fixed effect, or give its SDs "
                f'an informative prior (priors={{"sd({group})": bm.Prior(...)}})',
                UserWarning,
            )
        self.prior_entries = resolve_priors(self.design, self.family, priors, self.parts)
        self.user_priors = dict(priors or {})  # a dict: resolve_priors refuses anything else
        self.centered_setting = centered
        self.centred = centred_terms(self.design, self.family, centered)
        self.smooth_weights = smooth_centring(self.design, self.family)
        self.collapsed_setting = collapsed
        self.collapsed = _collapse(self.design, self.family, self.parts, collapsed, centered)
        self.decomp_setting = decomp
        self.decomp = _decomposition(self.design, decomp)
        self._pymc_model: pm.Model | None = None
        self._collapsed_model: pm.Model | None = None

    def _given_parts(self, spelled: dict[str, str | None], dpars) -> dict[str, str | None]:
        """zi=, hu=, dispersion= and dpars= as one dict by part name; ``dpars`` may name the
        dispersion by its parameter (``sigma``, ``phi``, ``alpha``, ``shape``)."""
        if dpars is None:
            return spelled
        if not isinstance(dpars, dict) or not all(isinstance(k, str) for k in dpars):
            raise ValueError(
                f"dpars takes a dict from parameter names to formulas, e.g. {{'nu': '~ x'}}; got {dpars!r}"
            )
        given = dict(spelled)
        for name, text in dpars.items():
            part = "dispersion" if name == self.family.dispersion_param else name
            if given.get(part) is not None:
                raise ValueError(f"the formula for {name} is given twice (as {part}= and in dpars)")
            given[part] = text
        return given

    def _part_formulas(self, given: dict[str, str | None]) -> dict[str, str]:
        """The one-sided formula of each distributional part (zi=, hu=, dispersion=, dpars=)."""
        allowed = self.family.allowed_parts()
        formulas = dict(self.family.required_parts)
        for part, text in given.items():
            if text is None:
                continue
            if part not in allowed:
                hint = {
                    "zi": "use a zero-inflated family such as 'zero_inflated_poisson'",
                    "hu": "use a hurdle family such as 'hurdle_poisson'",
                    "dispersion": "use a family with a scale or dispersion parameter",
                }.get(part)
                if hint is None:
                    names = [self.family.part_parameter(p) for p in allowed]
                    hint = f"its formulas are for {', '.join(names) or 'no parameter'}"
                raise ValueError(f"family '{self.family.name}' takes no {part}= formula; {hint}")
            if not isinstance(text, str):
                raise ValueError(f"the formula for {part} must be a string such as '~ x', got {text!r}")
            parsed = parse_formula(text)
            if parsed.response is not None:
                raise ValueError(f"{part}= takes a one-sided formula such as '~ x + (1 | g)', got {text!r}")
            formulas[part] = text
        return formulas

    def _build_designs(self, data, part_formulas: dict[str, str], trials, na_action):
        """The mean's design and each part's, on the same rows (complete in every part)."""
        lhs = self.formula.text[: self.formula.text.index("~")].strip()

        def build(rows, part=None, formula=None):
            text = self.formula if part is None else f"{lhs} {formula.strip()}"
            frame = data if rows is None else data.loc[rows]
            part_trials = trials
            if rows is not None and trials is not None and not isinstance(trials, str):
                # trials given as an array follow the rows that are kept
                part_trials = pd.Series(np.asarray(trials), index=data.index).loc[rows].to_numpy()
            return build_design(text, frame, trials=part_trials, binary_response=self.family.binary_response,
                                na_action=na_action, part=self.family.main_part if part is None else part,
                                ordinal_response=self.family.ordinal and part is None,
                                categorical_response=self.family.categorical, data2=self.data2)  # fmt: skip

        if not part_formulas:
            return build(None), {}
        # Each design is built once on every row; only when some part drops rows are they
        # built again on the rows complete in all parts (stateful transforms such as scale()
        # learn from the rows that are kept). The first build's warnings are said once,
        # from whichever build is kept.
        with warnings.catch_warnings(record=True) as said:
            first = [build(None)] + [build(None, p, f) for p, f in part_formulas.items()]
        common = first[0].rows
        for design in first[1:]:
            common = common.intersection(design.rows, sort=False)
        if len(common) == 0:
            raise DataError("no row is complete in every part of the model (formula, zi=, hu=, dispersion=)")
        dropped = len(data) - len(common)
        if not dropped:
            for warning in said:
                warn_user(warning.message, warning.category)
            return first[0], dict(zip(part_formulas, first[1:], strict=True))
        warn_user(
            f"dropped {dropped} of {len(data)} rows with missing values in the formula or its "
            f"{', '.join(p + '=' for p in part_formulas)} formulas",
            UserWarning,
        )
        main = build(common)
        parts = {p: build(common, p, f) for p, f in part_formulas.items()}
        main.n_dropped = dropped
        return main, parts

    @property
    def priors(self) -> pd.DataFrame:
        """Every parameter's prior, with its class, group and whether it is a default."""
        return prior_table(self.prior_entries)

    @property
    def pymc_model(self) -> pm.Model:
        """The underlying PyMC model, built on first use."""
        if self._pymc_model is None:
            self._pymc_model = build_pymc_model(
                self.design,
                self.family,
                self.prior_entries,
                self.parts,
                self.centred,
                self.decomp == "QR",
                self.smooth_weights,
            )
        return self._pymc_model

    @property
    def collapsed_group(self) -> str | None:
        """The grouping factor whose effects are integrated out (None: not ``collapsed``)."""
        return collapsed_group(self.design) if self.collapsed else None

    @property
    def sampled_model(self) -> pm.Model:
        """The PyMC model NUTS samples: ``pymc_model``, or with ``collapsed`` the model whose
        group effects are integrated out (built on first use)."""
        if not self.collapsed:
            return self.pymc_model
        if self._collapsed_model is None:
            self._collapsed_model = build_collapsed_model(
                self.design, self.family, self.prior_entries, self.centred, self.decomp == "QR"
            )
        return self._collapsed_model

    @property
    def reported_variables(self) -> list[str]:
        """The PyMC variables that ``fit.idata.posterior`` holds: those behind the summary."""
        return reported_variables(self.design, self.family, self.parts)

    @property
    def parameterization(self) -> pd.DataFrame:
        """How each of the mean's random-effect terms is sampled: its informativeness kappa
        per column (a level's data precision over the spread of effects; see
        bayesmm.model.parameterization), the smallest over its columns, whether it is centred, and
        whether it is integrated out (``collapsed``: then NUTS samples neither form), and
        the form in words (``form``: also where one nested term is integrated out of
        another's prior, bayesmm.model.builder.marginal_nesting).
        """
        from .model.builder import marginal_nesting

        kappas = informativeness(self.design, self.family) if self.design.random else []
        nesting = None if self.collapsed else marginal_nesting(self.design, self.centred, self.decomp == "QR")
        terms = self.design.random

        def form(i: int, centred: bool) -> str:
            if terms[i].group == self.collapsed_group:
                return "integrated out of the likelihood"
            if nesting is not None and i == nesting[1]:
                return f"integrated out of {terms[nesting[0]].group}'s prior"
            if nesting is not None and i == nesting[0]:
                return f"centred, whole linear predictor, {terms[nesting[1]].group} integrated out"
            return "centred" if centred else "non-centred"

        rows = [
            {"term": t.spec.text, "group": t.group, "columns": ", ".join(t.columns),
             "kappa": float(np.min(k)) if len(k) else 0.0, "centred": c, "collapsed": self.collapsed,
             "form": form(i, c)}
            for i, (t, k, c) in enumerate(zip(terms, kappas, self.centred, strict=True))
        ]  # fmt: skip
        return pd.DataFrame(rows, columns=["term", "group", "columns", "kappa", "centred", "collapsed",
                                           "form"])  # fmt: skip

    @property
    def Z(self) -> sp.csr_matrix:
        """The sparse random-effects model matrix (for teaching; not used for fitting)."""
        return self.design.Z

    def updated(self, formula=None, data=None, family=None, priors=None, trials=None) -> Model:
        """This model with its formula, data, family, priors or trials replaced (None keeps
        each), every other setting kept: what ``Fit.update``, ``kfold`` and the simulation
        workflows refit. Unchanged structures reuse their compiled code.

        Parameters
        ----------
        formula
            A new formula; None keeps this one.
        data
            New data; None keeps the model frame.
        family
            A new family; None keeps this one.
        priors
            New priors; None keeps the user's priors.
        trials
            New binomial trials; None keeps the trials column.

        Returns
        -------
        Model
            The new model (unfitted).

        Examples
        --------
        >>> shifted = model.updated(data=sleepstudy.assign(Reaction=sleepstudy.Reaction + 10))
        """
        if trials is None and data is not None and self.trials_column == TRIALS:
            raise ValueError("this model's trials were given as an array: pass trials= for the new data")
        return Model(
            formula or self.formula.text,
            self.model_frame if data is None else data,
            family=self.family if family is None else family,
            priors=(self.user_priors or None) if priors is None else priors,
            trials=self.trials_column if trials is None else trials,
            na_action=self.na_action,
            dpars=self.part_texts,
            centered=self.centered_setting,
            collapsed=self.collapsed_setting,
            decomp=self.decomp_setting,
            data2=self.data2,
        )

    def fit(
        self,
        draws: int = 1000,
        tune: int = 1000,
        chains: int = 4,
        *,
        random_seed: int | None = None,
        sampler: str = "auto",
        target_accept: float | None = None,
        cores: int | None = None,
        progressbar: bool = True,
        chain_method: str | None = None,
        method: str = "nuts",
    ) -> Fit:
        """Sample the posterior with NUTS (nutpie when installed, else PyMC's own), or
        approximate it.

        Parameters
        ----------
        draws
            Draws kept per chain, after tuning.
        tune
            Tuning (warm-up) steps per chain, discarded.
        chains
            Independent chains; R-hat and the ESS need at least 2 (4 recommended).
        random_seed
            A non-negative integer for reproducible draws, or None. On bayesmm's engine
            (with bayesmm's NUTS or nutpie) the same seed gives the same draws in every
            process and with any number of cores: no model is compiled when it is fitted
            (bayesmm.inference.native). Other machines may differ in the last bits, and
            then in the draws.
        sampler
            ``"auto"`` (the fastest installed: bayesmm's own NUTS, in C, on every model its
            engine evaluates, nutpie on the others), ``"bayesmm"``, ``"nutpie"``,
            ``"pymc"``, or the JAX samplers ``"numpyro"`` and ``"blackjax"`` where installed
            (for a GPU).
        target_accept
            NUTS's target acceptance rate in (0, 1); raise it (0.95, 0.99) when the fit
            reports divergences. None: 0.95 when a grouping factor whose effects are
            sampled (not integrated out, ``collapsed``) has fewer than 10 levels (its SD is
            weakly identified, and 0.8 leaves divergences there), else 0.8
            (``bm.fit.default_target_accept``).
        cores
            Threads (bayesmm's NUTS, nutpie) or processes (PyMC's sampler) running the
            chains (None: one per chain, up to 4 and the CPU count).
        progressbar
            Show the sampler's progress.
        chain_method
            How the JAX samplers run their chains: ``"parallel"`` (one device each: CPU
            cores, or several GPUs) or ``"vectorized"`` (all chains in one program on one
            device: one GPU). None: parallel when JAX has a device per chain, else
            vectorized. nutpie and PyMC's sampler run chains in parallel themselves and
            take no chain_method.
        method
            ``"nuts"`` (the default), or an approximation whose draws every post-fit tool
            reads like a posterior's: ``"laplace"`` (a normal distribution at the posterior's
            mode in the unconstrained, non-centred coordinates; for a Gaussian model with one
            grouping factor the effects are integrated out first, as lme4 does) or
            ``"advi"`` (PyMC's mean-field variational inference). Approximations ignore
            ``tune``, ``target_accept``, ``sampler`` and ``cores``; ``bm.compare_methods``
            sets them beside NUTS.

        Returns
        -------
        Fit
            The draws (``fit.idata``) with summary, prediction, checking and plotting
            methods. Settings are checked before anything is compiled; an interrupted run
            raises KeyboardInterrupt instead of returning a short fit.

        Examples
        --------
        >>> fit = model.fit(draws=1000, chains=4, target_accept=0.95, random_seed=1)
        >>> fit = model.fit(draws=500, chains=2, sampler="nutpie", progressbar=False)
        """
        if method != "nuts":
            idata, settings = approximate(self, method, draws=draws, chains=chains, random_seed=random_seed)
            return Fit(model=self, idata=idata, settings=settings)
        idata, settings = sample(
            self,
            draws=draws,
            tune=tune,
            chains=chains,
            cores=cores,
            target_accept=target_accept,
            random_seed=random_seed,
            sampler=sampler,
            progressbar=progressbar,
            chain_method=chain_method,
        )
        fit = Fit(model=self, idata=idata, settings=settings)
        fit.warn_if_unhealthy()
        return fit

    def prior_predictive(self, draws: int = 500, random_seed=None):
        """Draws from the priors and data sets drawn under them, for prior predictive checks.

        Parameters
        ----------
        draws
            Prior draws (one data set each).
        random_seed
            Seed, or None.

        Returns
        -------
        xarray.DataTree
            ArviZ groups ``prior`` (every PyMC variable) and ``prior_predictive`` (the
            response, one data set per draw).

        Examples
        --------
        >>> prior = model.prior_predictive(draws=200, random_seed=1)
        >>> prior.prior_predictive["Reaction"].quantile([0.05, 0.95])
        """
        return pm.sample_prior_predictive(draws=draws, model=self.pymc_model, random_seed=random_seed)

    def prior_draws(self, draws: int = 2000, random_seed=None):
        """Draws of the reported parameters from their priors; no responses are drawn.

        Quick for every family (a response's prior predictive can overflow for counts
        under wide priors); ``Fit.plot_priors`` uses it.

        Parameters
        ----------
        draws
            Prior draws.
        random_seed
            Seed, or None.

        Returns
        -------
        xarray.Dataset
            Fixed effects, SDs, correlations and family parameters, shaped like
            ``fit.idata.posterior`` (dims chain, draw, ...).

        Examples
        --------
        >>> model.prior_draws(draws=500, random_seed=1)["sigma"].mean()
        """
        import xarray as xr

        # pm.draw rather than sample_prior_predictive, which logs PyMC's internal variable names.
        model = self.pymc_model
        names = self.reported_variables
        with warnings.catch_warnings():  # numba's object-mode notes name PyMC's variables too
            warnings.filterwarnings("ignore", message="Numba will use object mode")
            values = pm.draw([model[name] for name in names], draws=draws, random_seed=random_seed)
        arrays = {}
        for name, value in zip(names, values, strict=True):
            dims = tuple(model.named_vars_to_dims.get(name, ()))
            shape = np.shape(value)[1:] if draws > 1 else np.shape(value)  # pm.draw drops draws=1's axis
            value = np.reshape(value, (1, draws, *shape))
            coords = {d: list(model.coords[d]) for d in dims if model.coords.get(d) is not None}
            arrays[name] = xr.DataArray(value, dims=("chain", "draw", *dims), coords=coords)
        return xr.Dataset(arrays, coords={"chain": [0], "draw": np.arange(draws)})

    # The PyMC graph is rebuilt on demand rather than pickled.
    def __getstate__(self) -> dict:
        return {**self.__dict__, "_pymc_model": None, "_collapsed_model": None}

    def _describe(self) -> list[str]:
        d = self.design
        groups = ", ".join(f"{g} ({len(d.group_levels(g))} levels)" for g in d.groups) or "none"
        return [
            f"Formula: {d.formula.text}",
            f" Family: {self.family.name} (link: {self.family.link.name})",
            f"   Data: {d.n_obs} observations, {len(d.fixef_names)} fixed-effect columns",
            f" Groups: {groups}",
            *(f"{part:>7}: {d.formula.text[d.formula.text.index('~') :]}" for part, d in self.parts.items()),
            *(f"  Terms: {line}" for line in d.additions.describe()),
        ]

    def __repr__(self) -> str:
        return "\n".join(self._describe() + ["", "Priors:", self.priors.to_string()])

    def _repr_html_(self) -> str:
        head = "<pre>" + html.escape("\n".join(self._describe())) + "</pre>"
        return head + "<h4>Priors</h4>" + self.priors.to_html()


def load(path) -> Fit:
    """Read back a fit saved with ``fit.save(path)``.

    The file holds data and a description of the model, never code: the model is
    rebuilt from the saved formula, family and priors (checked as a new model's are),
    so a file from someone else cannot run anything. A damaged, truncated or foreign
    file raises an error naming it.

    Parameters
    ----------
    path
        The file written by [`Fit.save`][bayesmm.Fit.save].

    Returns
    -------
    Fit
        With the same draws, design and settings as the saved fit.

    Examples
    --------
    >>> path = fit.save("sleepstudy_fit.nc")
    >>> bm.load(path).summary()
    """
    saved = persist.read(path)
    options = dict(saved.model_options)
    with warnings.catch_warnings(), persist.naming(saved.path):
        warnings.simplefilter("ignore")  # the fit already said what these warnings say
        model = Model(options.pop("formula"), saved.frame, **options)
    model.centred = persist.check_centred(saved, len(model.design.random))
    return Fit(model=model, idata=saved.tree, settings=saved.settings)


def maximal(formula: str, data: pd.DataFrame, family: str | Family = "gaussian", trials=None,
            link: str | None = None) -> Maximal:  # fmt: skip
    """The maximal identifiable random-effects structure of a design (the lecture's "What is
    the maximal model?"): for each grouping factor of ``formula``, which fixed-effect terms
    vary within its levels and are identified there.

    A term that is constant within every level (a between-level term) cannot vary by it; one
    that varies is identified when the levels keep rows over for the residual: one row per
    subject and type (nlme's ergoStool) leaves none for ``(Type | Subject)``, while binomial
    rows of many trials need none (cbpp's ``(period | herd)``).

    Parameters
    ----------
    formula
        The model's formula; its random-effect terms name the grouping factors (their varying
        terms are not used: ``y ~ x + (1 | g)`` asks about x within g).
    data
        A pandas DataFrame.
    family
        The response family, as for [`Model`][bayesmm.Model].
    trials
        Binomial trials, as for [`Model`][bayesmm.Model].
    link
        A link other than the family's default.

    Returns
    -------
    Maximal
        ``.formula``, the maximal identifiable formula, and ``.table``, one row per grouping
        factor and fixed-effect term with the decision and its reason; ``print()`` explains.

    Examples
    --------
    >>> result = bm.maximal("cbind(incidence, size - incidence) ~ period + (1 | herd)",
    ...                     bm.datasets.load("cbpp"), family="binomial")
    >>> result.formula
    'cbind(incidence, size - incidence) ~ period + (period | herd)'
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the candidate's warnings are about its own terms
        model = Model(formula, data, family=family, trials=trials, link=link)
    if not model.design.random:
        raise ValueError(f"give the grouping factors as random-effect terms, e.g. {formula} + (1 | g)")
    parsed = model.design.formula
    lhs = parsed.text[: parsed.text.index("~")].strip()
    offsets = [f"offset({o})" for o in parsed.offsets]
    fixed = " + ".join([parsed.fixed.strip() or "1", *offsets, *parsed.special_terms])
    return maximal_structure(model.design, model.family, fixed, lhs)
