"""The engine's programs written from the design, without PyTensor: glmmTMB's template.

bayesmm.inference.engine translates PyMC's rewritten graph of a model into a program of
engine.c's instructions. Building and rewriting that graph costs a process 0.5-1 s per
model structure (Penicillin 1.0 s of a 3.9 s fit, benchmarks/graph_phase.py), most of it
PyTensor's rewriting of several hundred nodes and the garbage collections their objects
cause. For the standard models this module writes the same program from the design: the
log-density as a short list of operations over the sampled point (the linear predictor
from the fixed and group effects, here; the family's log-likelihood and every prior,
bayesmm.inference.densities), differentiated in reverse mode (bayesmm.inference.tape), and
the expansion of a draw into every reported variable. Each operation is one or a few of
engine.c's instructions, emitted through the translator's own memory and instruction
helpers, so the interpreter is the same.

PyMC's model stays the definition. What the template writes follows bayesmm.model.builder's
parameterization (the centred intercept sheared by the mean group effects, slopes per SD of
their predictor, group effects in the level basis z = H w, non-centred or centred), and the
PyMC model's free variables must be the ones expected (names, sizes, prior families,
transforms). tests/test_template.py compares the log-density, gradient and every reported
variable with PyMC's at random points for every case the template covers, so a change to
the builder's parameterization must keep them equal there. A model the template does not
cover takes the translated graph (bayesmm.inference.engine) as before. :func:`written` lays
the trace out from the design alone (bayesmm.inference.layout), for fits that build no PyMC
model; tests/test_written_layout.py holds that layout to PyMC's model's.

What it covers (the rest takes the graph):

* families (every one bayesmm offers), with each of their links: gaussian, student,
  lognormal, gamma, exponential, weibull, beta, poisson and the negative binomial (NB2 and
  NB1), the zero-inflated and hurdle Poisson, NB2 and NB1, the zero-inflated binomial,
  bernoulli, binomial, beta-binomial, cumulative (its ordered thresholds; logit and probit)
  and categorical; constant family parameters, or part formulas (zi=, hu=, dispersion=, the
  Student-t's nu, a categorical model's mu3= ...) with the mean's terms;
* terms: an intercept and slopes, per SD of their predictors or through the QR
  decomposition of their columns; any number of grouping factors, crossed or nested, each
  with any number of terms of any columns, uncorrelated (diag), correlated (LKJ's vine),
  cs(), ar1() or rr() (its loadings); levels with a known covariance (gr(cov=));
  non-centred or centred (a one-column centred term drawn around the effects of the terms
  it is nested in and the fixed effects of predictors constant within its levels), and the
  nested pair with the parent's effects integrated out of the child's prior
  (bayesmm.model.builder.marginal_nesting); offsets; any number of rows (over
  blocks.MIN_ROWS the interpreter runs row-by-row instructions a chunk of rows at a time);
* monotonic effects mo() (also varying, (mo(x) | g), non-centred), smooths s() (partially centred where
  the data say so) and Hilbert-space GPs gp() of each kernel (bayesmm.inference.bases);
* priors: Normal, StudentT, HalfNormal, HalfStudentT, HalfCauchy, Exponential, Beta,
  Gamma, InverseGamma, Uniform (an interval), Logistic, Cauchy, Laplace, Gumbel, LogNormal,
  Weibull, Flat, HalfFlat, Dirichlet (a simplex).

Likelihood weights (weights()) and known SEs (se(), with or without sigma) too; censoring
and truncation (cens(), trunc()) of every family that takes them (densities._log_tail).

The integrated-out Gaussian models (bayesmm.model.collapsed: one grouping factor from its
sufficient statistics, or beside sampled factors) through bayesmm.inference.woodbury.

Not covered: a centred (mo(x) | g), a few centred arrangements (with gr(cov=), a
centred term of several columns drawn around another factor's, a centred us term of over six
columns, centred terms around the fixed effects beside a collapsed factor with sheared
slopes), and priors of other families.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from . import bases, densities, engine, layout, woodbury
from .densities import Unsupported
from .engine import View
from .tape import Tape, Var

__all__ = ["program", "written", "Written", "why_not", "enabled", "Unsupported"]


# The families the template writes: family -> its log-likelihood's kind (densities.likelihood,
# which refuses a link it does not know).
_FAMILIES = {"gaussian": "gaussian", "student": "student", "lognormal": "lognormal", "gamma": "gamma",
             "exponential": "exponential", "beta": "beta", "poisson": "poisson",
             "negativebinomial": "negativebinomial", "nbinom1": "nbinom1",
             "zero_inflated_poisson": "zi_poisson", "zero_inflated_negbinomial": "zi_negativebinomial",
             "hurdle_poisson": "hu_poisson", "hurdle_negbinomial": "hu_negativebinomial",
             "bernoulli": "bernoulli", "binomial": "binomial", "beta_binomial": "beta_binomial",
             "cumulative": "cumulative", "categorical": "categorical", "weibull": "weibull",
             "zero_inflated_nbinom1": "zi_nbinom1", "hurdle_nbinom1": "hu_nbinom1",
             "zero_inflated_binomial": "zi_binomial"}  # fmt: skip
# The family parameters of each likelihood: parameter -> the link of its part formula.
_PART_PARAMETERS = {"gaussian": {"sigma": "log"}, "negativebinomial": {"alpha": "log"},
                    "student": {"sigma": "log", "nu": "log"}, "lognormal": {"sigma": "log"},
                    "gamma": {"shape": "log"}, "beta": {"phi": "log"}, "nbinom1": {"phi": "log"},
                    "beta_binomial": {"phi": "log"}, "weibull": {"shape": "log"},
                    "zi_poisson": {"zi": "logit"}, "zi_negativebinomial": {"zi": "logit", "alpha": "log"},
                    "hu_poisson": {"hu": "logit"},
                    "hu_negativebinomial": {"hu": "logit", "alpha": "log"},
                    "zi_nbinom1": {"zi": "logit", "phi": "log"}, "hu_nbinom1": {"hu": "logit", "phi": "log"},
                    "zi_binomial": {"zi": "logit"}}  # fmt: skip
# The transforms by PyMC's class name (densities.TRANSFORM_OF's codes).
_TRANSFORMS = {None: 0, "LogTransform": 1, "LogOddsTransform": 2, "Interval": 3, "IntervalTransform": 3,
               "Ordered": densities.ORDERED, "SimplexTransform": densities.SIMPLEX}  # fmt: skip


# -- the model --------------------------------------------------------------------------------


@dataclasses.dataclass
class _Term:
    """One random-effect term of p columns: its sampled variables' names (SDs (rr():
    None), standard normals, centred rows or None, the correlations' (the vine's partial
    correlations, cs's and ar1's rho, rr()'s two loadings variables) or None), its
    structure ("diag", "us", "cs", "ar1" or "rr"), its rows' level codes, its columns
    (None where a column is all ones), their means (the intercept's shear) and the slope
    each one shears ((column, slope position)), and, when centred (one intercept column),
    what it is drawn around: [(term position, its levels' parent levels)] and (slope
    positions, their values per level) or None."""

    sd_raw: str
    z: str
    v: str | None
    correlation: str | None
    structure: str
    codes: np.ndarray
    levels: int
    columns: list
    column_means: np.ndarray
    shears: list
    around: list
    within: tuple | None
    latent: int = 0  # standard normals per level (rr(): its rank; else p)
    level_factor: np.ndarray | None = None  # gr(cov = A): A's Cholesky factor, applied to r

    @property
    def p(self) -> int:
        return len(self.columns)


@dataclasses.dataclass(frozen=True)
class _CollapsedTerm:
    """A term of the integrated-out factor: what _factor and _sd_value read of a _Term (its
    SDs' and correlations' variables, structure, columns and standard normals per level);
    its effects are not sampled, so it has no rows, levels or centring."""

    sd_raw: str | None
    correlation: str | None
    structure: str
    p: int
    latent: int


@dataclasses.dataclass
class _Nesting:
    """A centred (1 | child) term nested in a (1 | parent) term, the parent's effects integrated
    out of the child's prior (bayesmm.model.builder._nested_marginal_part): the (child, parent)
    terms, the trace names (each level's whole linear predictor u, the parent's standard
    normals, the sampled SDs, the reported effects and SDs of child and parent), each child
    level's parent, the parents' numbers of children, the rows' child levels, and the slopes
    constant within the child's levels (positions and values per level) and the others
    (positions, their columns)."""

    terms: tuple
    u: str
    xi: str
    sd_raw: tuple[str, str]
    r: tuple[str, str]
    sd: tuple[str, str]
    up: np.ndarray
    count: np.ndarray
    codes: np.ndarray
    found: list
    values: np.ndarray
    within: list


def _sd_variable(term, by_name: dict) -> tuple:
    """A term's sampled SDs: (prior family, its parameters, size), their priors stacked."""
    from ..spec.priors import stack_priors

    prior = stack_priors([by_name[n].prior for n in term.sd_names])
    if prior is None:
        raise Unsupported(f"the SDs of {term.group}'s effects have priors of different families")
    return prior.dist, dict(prior.params), term.n_terms


def _structure(term) -> str:
    """A term's covariance structure as the template writes it: "diag", "us", "cs" or "ar1"."""
    from ..spec.covariance import AR1, CompoundSymmetry, Diagonal, ReducedRank, Unstructured

    kinds = {Diagonal: "diag", Unstructured: "us", CompoundSymmetry: "cs", AR1: "ar1", ReducedRank: "rr"}
    structure = kinds.get(type(term.covariance))
    if structure is None:
        raise Unsupported(f"the {term.covariance.name} covariance of {term.group}'s effects")
    return structure


def _covariance_variables(term, names, structure: str, by_name: dict, variables: dict):
    """Add a term's SDs and correlation variable (the vine's partial correlations, or cs's and
    ar1's rho) to ``variables``; the correlation variable's name (None: none). rr(): its
    loadings instead (the diagonal's, of the prior's positive half, and those below it), and
    their names."""
    if structure == "rr":
        prior = by_name[term.covariance.cor_parameter].prior
        half = {k: v for k, v in prior.params.items() if k != "mu"}
        diagonal, below = term.covariance._lower_trapezoid()
        variables[names("loadings_diag")] = (f"Half{prior.dist}", half, len(diagonal))
        if below:
            variables[names("loadings")] = (prior.dist, dict(prior.params), len(below))
        return names("loadings_diag"), names("loadings") if below else None
    variables[names("sd_raw")] = _sd_variable(term, by_name)
    if structure == "us":
        eta = by_name[term.covariance.cor_parameter].prior.params["eta"]
        beta = term.covariance.vine_beta(float(eta))
        variables[names("cpc")] = ("Beta", {"alpha": beta, "beta": beta}, len(beta))
        return names("cpc")
    if structure in ("cs", "ar1"):  # one correlation, rho
        prior = by_name[term.covariance.cor_parameter].prior
        variables[names("rho")] = (prior.dist, dict(prior.params), 1)
        return names("rho")
    return None


def _nesting(design, centred: tuple, by_name: dict, variables: dict, qr: bool) -> _Nesting | None:
    """The model's nested pair (bayesmm.model.builder.marginal_nesting), its free variables
    added to ``variables``; None where there is none."""
    from ..model.builder import level_covariates, marginal_nesting
    from ..model.fixed import centred_slopes
    from ..model.parameterization import level_parents
    from ..model.variables import TermNames, group_var

    pair = marginal_nesting(design, centred, qr)
    if pair is None:
        return None
    inner, outer = (design.random[i] for i in pair)
    if inner.n_levels < 2 or outer.n_levels < 2:
        raise Unsupported("a nested pair of terms with one level")
    names = [TermNames(design, term, 0) for term in (inner, outer)]
    for term, name in zip((inner, outer), names, strict=True):
        variables[name("sd_raw")] = _sd_variable(term, by_name)
    variables[names[0]("u")] = ("Normal", None, inner.n_levels)  # written out by _nested
    variables[names[1]("z")] = ("Normal", {}, outer.n_levels)
    up = level_parents(inner, outer)
    found, values = level_covariates(design, inner)
    slope_idx, _ = centred_slopes(design)
    return _Nesting(
        (inner, outer), names[0]("u"), names[1]("z"), (names[0]("sd_raw"), names[1]("sd_raw")),
        tuple(group_var(design, "r", t.group) for t in (inner, outer)),
        tuple(group_var(design, "sd", t.group) for t in (inner, outer)),
        up, np.bincount(up, minlength=outer.n_levels).astype(float), np.asarray(inner.codes, dtype=np.int64),
        found, values, [j for j in range(len(slope_idx)) if j not in found],
    )  # fmt: skip


class _Predictor:
    """One linear predictor (the mean's, or a part formula's: zi=, hu=, dispersion=): how it
    follows from its free variables, which it adds to ``variables`` (name -> prior family,
    its parameters, size) (bayesmm.model.builder._linear_predictor)."""

    def __init__(self, design, centred: tuple, by_name: dict, variables: dict, qr=False, nest=True,
                 smooths=None):  # fmt: skip
        from ..model.builder import (
            LOCATION_SCALE,
            _sheared_slopes,
            coefficient_form,
            qr_factors,
            slope_scales,
        )
        from ..model.fixed import centred_slopes, fixed_center
        from ..model.parameterization import centring_parents
        from ..model.variables import fixef_var, group_var
        from ..spec.priors import stack_priors

        self.design, self.variables = design, variables
        self.bases = bases.Bases(design, by_name, variables, smooths)  # s() and gp() terms
        centred = tuple(bool(c) for c in centred) or (False,) * len(design.random)
        parents = centring_parents(design) if any(centred) else [None] * len(design.random)
        self.terms: dict[int, _Term] = {}  # by position in design.random, in the groups' order
        self.nesting = _nesting(design, centred, by_name, variables, qr) if nest else None
        # Which slopes the group effects shear, and whether a centred term is drawn around
        # the fixed effects constant within its levels (builder._linear_predictor).
        slope_idx, self.Xc = centred_slopes(design)
        sheared_slopes = _sheared_slopes(design)
        self.groups: dict[str, tuple] = {}  # group -> (r name, sd name, cor name, its terms' positions)
        for group, terms in design.groups.items() if self.nesting is None else ():
            positions = [[t is term for t in design.random].index(True) for term in terms]
            self.groups[group] = (group_var(design, "r", group), group_var(design, "sd", group),
                                  group_var(design, "cor", group), positions)  # fmt: skip
            for k, (term, i) in enumerate(zip(terms, positions, strict=True)):
                self.terms[i] = self._term(design, term, k, centred[i], by_name, slope_idx,
                                           sheared_slopes or qr, parents[i])  # fmt: skip
        # The fixed effects (bayesmm.model.builder._fixed_coefficients).
        self.intercept = None  # (name, sheared)
        if design.has_intercept:
            prior = by_name[design.qualified("Intercept")].prior
            sheared = bool(design.random) and self.nesting is None
            form = coefficient_form(design.var("Intercept_c"), prior, 0.0 if sheared else None, 1.0)
            name, params = (design.var("Intercept_c"), dict(prior.params)) if form is None else form
            variables[name] = (prior.dist, params, 1)
            self.intercept = (name, form is not None and sheared)
        self.slopes = None  # (name, multiplier to b, scale where sheared else None)
        self.qr = None  # decomp="QR": (R*^-1, log |det R*|, the slopes' prior (code, table))
        if slope_idx:
            names = [design.qualified(design.fixef_names[j]) for j in slope_idx]
            stacked = stack_priors([by_name[name].prior for name in names])
            if stacked is None:
                raise Unsupported("slopes whose priors are of different families")
        if slope_idx and qr:  # theta = R* (b + shift), b's priors exact (builder._qr_slopes)
            R, R_inverse = qr_factors(self.Xc, [design.fixef_names[j] for j in slope_idx])
            self.qr = (R_inverse, float(np.sum(np.log(np.abs(np.diag(R))))),
                       densities.prior_table(stacked.dist, dict(stacked.params), len(slope_idx)))  # fmt: skip
            variables[design.var("b_qr")] = ("Normal", None, len(slope_idx))  # written by _linear
            self.slopes = (design.var("b_qr"), np.ones(len(slope_idx)), None)
        elif slope_idx:
            scales = slope_scales(design, slope_idx)
            sheared = any(design.fixef_names[j] in sheared_slopes for j in slope_idx) and (
                stacked.dist in LOCATION_SCALE
            )
            form = coefficient_form(design.var("b"), stacked, 0.0, scales) if sheared else None
            if form is None:
                name, params, mult = densities.scaled(stacked, scales, design.var("b"))
                shear = None
            else:
                (name, params), mult, shear = form, 1.0 / scales, np.asarray(scales, dtype=float)
            variables[name] = (stacked.dist, params, len(slope_idx))
            mult = np.broadcast_to(np.asarray(mult, dtype=float), (len(slope_idx),)).copy()
            self.slopes = (name, mult, shear)
        self.center = fixed_center(design)[slope_idx]
        self.fixef_order = [("Intercept", 0) if n == "Intercept" else ("b", slope_idx.index(j))
                            for j, n in enumerate(design.fixef_names)]  # fmt: skip
        self.fixef_name, self.b_name = fixef_var(design), design.var("b")
        self.offset = None if design.offset is None else np.asarray(design.offset, dtype=float)

    def _term(self, design, term, k: int, centred: bool, by_name: dict, slope_idx, sheared_slopes, parents):
        """The template's record of one term, its free variables added to ``self.variables``
        (bayesmm.model.builder._term_effects)."""
        from ..model.builder import _varies, level_covariates
        from ..model.parameterization import level_parents
        from ..model.variables import TermNames
        from ..spec.covariance import UNROLLED_SOLVE

        group, p, levels = term.group, term.n_terms, term.n_levels
        structure = _structure(term)
        if levels < 2:
            raise Unsupported(f"{group} has one level")
        if centred and structure != "diag" and p > UNROLLED_SOLVE:
            raise Unsupported(f"{group}'s centred effects of {p} correlated columns")
        names = TermNames(design, term, k)
        correlation = _covariance_variables(term, names, structure, by_name, self.variables)
        v, around, within = None, [], None
        if centred:
            self.variables[names("z")] = ("Normal", {}, p)
            v = names("v")
            self.variables[v] = ("Normal", None, (levels - 1) * p)  # written by _effects
            # Drawn around its parents' effects (each at its levels' parents) and the fixed
            # effects of the predictors constant within its levels (builder._random_part).
            around = [(j, level_parents(term, design.random[j])) for j in parents or ()]
            found, values = level_covariates(design, term)
            if found and slope_idx and not sheared_slopes:
                within = (found, values)
            if p > 1 and (around or within):
                raise Unsupported(f"{group}'s centred effects of {p} columns drawn around others'")
        else:
            self.variables[names("z")] = ("Normal", {}, levels * term.covariance.latent)
        ones = np.all(term.matrix == 1.0, axis=0)
        columns = [None if ones[c] else np.asarray(term.matrix[:, c], dtype=float) for c in range(p)]
        monotonic = {m.name for m in design.monotonic}
        for c, column in enumerate(term.columns):  # (mo(x) | g): mo(x)'s transform at the rows
            if column in monotonic:
                if centred:
                    raise Unsupported(f"{group}'s centred effects of {column}")
                columns[c] = column
        shears = []
        for c, column in enumerate(term.columns):
            if _varies(design, term, c):
                shears.append((c, slope_idx.index(design.fixef_names.index(column))))
        codes = np.asarray(term.codes, dtype=np.int64)
        sd_raw = None if structure == "rr" else names("sd_raw")
        if term.level_factor is not None and centred:
            raise Unsupported(f"{group}'s centred effects with a known covariance (gr(cov=))")
        level_factor = None if term.level_factor is None else np.asarray(term.level_factor, dtype=float)
        return _Term(sd_raw, names("z"), v, correlation, structure, codes, levels, columns,
                     term.matrix.mean(axis=0), shears, around, within, term.covariance.latent,
                     level_factor)  # fmt: skip


class _Model:
    """What the template reads from a bayesmm Model: the free variables it expects (name ->
    prior family, its parameters, size), its linear predictors (the mean's and each part
    formula's, with the family parameter it gives) and its family's log-likelihood."""

    def __init__(self, source):
        design, family = source.design, source.family
        self.design = design
        link = family.link.name
        kind = _FAMILIES.get(family.name)
        if kind is None:
            raise Unsupported(f"the {family.name} family")
        # Censoring and truncation: each row's code, y2, and the bounds (the families whose
        # tails densities writes).
        self.bounds = None
        if design.additions.bounded:
            from ..families.additions import _truncation

            additions = design.additions
            if kind not in densities.CENSORABLE:
                raise Unsupported(f"censoring or truncation in the {family.name} family")
            codes = (
                np.zeros(design.n_obs) if additions.cens is None else np.asarray(additions.cens, dtype=float)
            )
            y2 = (
                np.full(design.n_obs, np.nan)
                if additions.y2 is None
                else np.asarray(additions.y2, dtype=float)
            )
            self.bounds = (codes, y2, *_truncation(family, additions))
        self.kind, self.link = kind, link
        by_name = {e.parameter: e for e in source.prior_entries}
        self.variables: dict[str, tuple] = {}  # name -> (prior dist, params, size)
        # Integrated out (bayesmm.model.collapsed): the collapsed factor's terms (their
        # covariance variables) and the statistics its likelihood reads; the mean is the
        # rest of the model's, without that factor (builder's skip).
        self.collapsed, predicted, centred = None, design, source.centred
        if source.collapsed:
            predicted, centred = self._collapse(source, by_name)
        self.mean = _Predictor(predicted, centred, by_name, self.variables, source.decomp == "QR",
                               nest=not source.collapsed, smooths=source.smooth_weights)  # fmt: skip
        # Part formulas: parameter -> (its predictor, the inverse link's kind); a categorical
        # model's are the linear predictors of its categories 3..K (identity).
        self.parts: dict[str, tuple] = {}
        known = _PART_PARAMETERS.get(kind, {})
        if kind == "categorical":
            known = dict.fromkeys(family.parts, "identity")
        for name, part in source.parts.items():
            parameter = family.part_parameter(name)
            inverse = family.part(name).link
            if parameter not in known or inverse != known[parameter]:
                raise Unsupported(f"the {family.name} family's {name}= formula")
            self.parts[parameter] = (_Predictor(part, (), by_name, self.variables), inverse)
        self.categories = tuple(family.parts) if kind == "categorical" else ()
        # Constant family parameters (gaussian's sigma, the negative binomial's alpha, ...),
        # sampled under their own names; an ordinal model's thresholds, one ordered vector.
        self.constants = tuple(family.constant_params(source.parts))
        self.thresholds = ()
        if kind == "cumulative":
            self.thresholds, self.constants = self.constants, ()
            self.variables["thresholds"] = _thresholds_prior([by_name[n].prior for n in self.thresholds])
        for parameter in self.constants:
            prior = by_name[parameter].prior
            self.variables[parameter] = (prior.dist, dict(prior.params), 1)
        # se(): each row's known SE is its sigma (with sigma = TRUE, added in quadrature).
        additions = design.additions
        self.se = (
            None if additions.se is None else (np.asarray(additions.se, dtype=float), bool(additions.sigma))
        )
        if self.se is not None and (kind not in ("gaussian", "student") or "sigma" in self.parts):
            raise Unsupported(f"se() in the {family.name} family, or with a dispersion= formula")
        self.weights = None if additions.weights is None else np.asarray(additions.weights, dtype=float)
        given = {"sigma"} if self.se is not None and not self.se[1] else set()
        missing = set(known) - set(self.parts) - set(self.constants) - given
        if missing:
            raise Unsupported(f"the {family.name} family's parameters {sorted(missing)}")
        self.y = np.asarray(design.y, dtype=float)
        self.trials = None if design.trials is None else np.asarray(design.trials, dtype=float)

    def _collapse(self, source, by_name: dict):
        """Set ``collapsed`` (the factor, its terms' covariance variables, the statistics) and
        return the design of the rest of the model and its terms' centring."""
        from ..model.builder import _sheared_slopes, level_covariates
        from ..model.collapsed import collapsed_group
        from ..model.variables import TermNames

        design = source.design
        group = collapsed_group(design)
        keep = [i for i, term in enumerate(design.random) if term.group != group]
        rest = dataclasses.replace(design, random=[design.random[i] for i in keep])
        centred = tuple(source.centred[i] for i in keep) if source.centred else ()
        # The builder draws a centred term around the fixed effects constant within its levels
        # only where no slope of the whole design is sheared (the template reads the rest's).
        pairs = zip(centred, rest.random, strict=True)
        if any(c and level_covariates(rest, term)[0] for c, term in pairs) and (
            _sheared_slopes(design) != _sheared_slopes(rest)
        ):
            raise Unsupported("centred terms around fixed effects beside a collapsed factor with slopes")
        terms = []
        monotonic = {m.name for m in design.monotonic}
        for k, term in enumerate(design.groups[group]):
            if monotonic & set(term.columns):
                raise Unsupported(f"the collapsed factor's {sorted(monotonic & set(term.columns))}")
            structure, names = _structure(term), TermNames(design, term, k)
            correlation = _covariance_variables(term, names, structure, by_name, self.variables)
            sd_raw = None if structure == "rr" else names("sd_raw")
            terms.append(_CollapsedTerm(sd_raw, correlation, structure, term.n_terms, term.covariance.latent))
        self.collapsed = (group, terms, woodbury.Statistics(design, group))
        return rest, centred


def _collapsed_factor(t: Tape, model: _Model, constrained: dict, reported: dict) -> list:
    """The collapsed factor's covariance factor L (q x q, None where 0: its terms' factors on
    the diagonal), its sd_ and cor_ reported."""
    from ..model.variables import group_var

    group, terms, data = model.collapsed
    L = [[None] * sum(term.latent for term in terms) for _ in range(data.q)]
    sds, cors, start, column = [], [], 0, 0
    for term in terms:
        term_sds, F, term_cors = _factor(t, term, constrained)
        for j in range(term.p):
            for k in range(min(j + 1, term.latent)):
                if F is not None or j == k:
                    L[start + j][column + k] = term_sds[j] if F is None else F[j][k]
        sds.append(_sd_value(t, term, constrained, term_sds))
        cors += term_cors
        start, column = start + term.p, column + term.latent
    reported[group_var(model.design, "sd", group)] = sds[0] if len(sds) == 1 else t.join(sds)
    if cors:
        reported[group_var(model.design, "cor", group)] = t.join(cors)
    return L


def _thresholds_prior(priors: list) -> tuple:
    """The ordered thresholds' prior (bayesmm.families.categories.Cumulative: each its own
    prior, of one family here): (family, parameters element by element, size)."""
    if len({p.dist for p in priors}) != 1 or len({tuple(sorted(p.params)) for p in priors}) != 1:
        raise Unsupported("thresholds whose priors are of different families")
    params = {key: np.array([float(p.params[key]) for p in priors]) for key in priors[0].params}
    return priors[0].dist, params, len(priors)


def _densities(model: _Model, pymc_model, shapes: list[tuple]) -> list[tuple]:
    """The free variables in PyMC's order: (name, value name, start, size, prior code, table,
    transform), checked against the PyMC model's (names, sizes (``shapes``: their values'),
    transforms)."""
    free = list(pymc_model.free_RVs)
    if sorted(rv.name for rv in free) != sorted(model.variables):
        raise Unsupported("the sampled model's free variables are not the expected ones")
    out, start = [], 0
    for rv, shape in zip(free, shapes, strict=True):
        size = model.variables[rv.name][2]
        if int(np.prod(shape, dtype=int)) != size:
            raise Unsupported(f"{rv.name} has {int(np.prod(shape, dtype=int))} values, not {size}")
        code, table, wanted = _prior(model, rv.name)
        transform = pymc_model.rvs_to_transforms.get(rv)
        kind = None if transform is None else type(transform).__name__
        if _TRANSFORMS.get(kind) != wanted:
            raise Unsupported(f"{rv.name} has the transform {transform}")
        value = pymc_model.rvs_to_values[rv].name
        out.append((rv.name, value, start, size, code, table, wanted))
        start += size
    return out


def _prior(model: _Model, name: str) -> tuple[int, np.ndarray, int]:
    """A free variable's prior (code, table) and the transform its value takes (an ordinal
    model's thresholds: the ordered one, whatever their prior)."""
    dist, params, size = model.variables[name]
    code, table = densities.prior_table(dist, params or {}, size)
    if code == densities.DIRICHLET and table.shape[1] != size + 1:
        raise Unsupported(f"{name}'s Dirichlet prior has {table.shape[1]} elements, not {size + 1}")
    if name == "thresholds" and model.thresholds:
        return code, table, densities.ORDERED
    return code, table, densities.TRANSFORM_OF[code]


def _level_basis(t: Tape, w: Var, levels: int) -> Var:
    """H w for bayesmm.model.builder._level_basis's Householder reflection H (2 v v^T subtracted)."""
    v = -np.full(levels, 1.0 / np.sqrt(levels))
    v[0] += 1.0
    v /= np.linalg.norm(v)
    return t.sub(w, t.mul(t.constant(2.0 * v), t.dot(t.constant(v), w)))


def _write(t: Tape, model: _Model, variables: list[tuple], x: dict, density: bool):
    """The model's values on the tape from the point's pieces ``x`` (value name -> Var): the
    log-density (None unless ``density``) and the reported variables by name."""
    terms = []
    reported = {}
    constrained = {}
    unconstrained = {}
    tables = {name: (code, table) for name, _, _, _, code, table, _ in variables}
    for name, value_name, *_, transform in variables:
        piece = unconstrained[name] = x[value_name]
        if transform == 1:
            constrained[name] = t.exp(piece)
            reported[name] = constrained[name]
            terms.append(t.sum(piece))  # the log transform's Jacobian
        elif transform == 2:  # log-odds: log x + log(1 - x) = -softplus(-v) - softplus(v)
            constrained[name] = t.sigmoid(piece)
            reported[name] = constrained[name]
            terms.append(t.neg(t.add(t.sum(t.softplus(t.neg(piece))), t.sum(t.softplus(piece)))))
        elif transform == 3:  # an interval (a, b): x = s b + (1 - s) a, s = sigmoid(v)
            a, b = (t.constant(row) for row in tables[name][1][:2])
            share = t.sigmoid(piece)
            constrained[name] = t.add(t.mul(share, b), t.mul(t.sub(t.constant(1.0), share), a))
            reported[name] = constrained[name]
            width = float(np.sum(np.log(tables[name][1][1] - tables[name][1][0])))
            spread = t.add(t.mul(t.sum(t.softplus(t.neg(piece))), t.constant(-2.0)), t.neg(t.sum(piece)))
            terms.append(t.add(spread, t.constant(width)))  # log(b - a) - 2 softplus(-v) - v
        elif transform == densities.SIMPLEX:  # PyMC's: x = softmax(v, -sum v)
            constrained[name] = reported[name] = _simplex(t, piece, terms)
        elif transform == densities.ORDERED:  # x_0 = v_0, x_k = x_(k-1) + exp(v_k)
            values = [t.element(piece, 0)]
            for k in range(1, piece.shape[0]):
                values.append(t.add(values[-1], t.exp(t.element(piece, k))))
            constrained[name] = reported[name] = t.join(values) if len(values) > 1 else values[0]
            if len(values) > 1:
                terms.append(t.sum(t.piece(piece, 1, len(values) - 1)))  # the Jacobian: sum v_1..
        else:
            constrained[name] = piece

    mus: dict = {}  # a sheared coefficient's name -> what moves its prior's location
    # Collapsed with one factor, its likelihood reads theta (the sampled fixed coefficients).
    from_rows = model.collapsed is None or not model.collapsed[2].one
    eta = _linear(t, model.mean, constrained, reported, terms if density else None, mus, rows=from_rows)
    if from_rows and eta.shape != (model.design.n_obs,):
        eta = t.add(eta, t.constant(np.zeros(model.design.n_obs)))
    # The family's parameters: constants, and part formulas through their inverse links (zi
    # and hu stay on the log-odds scale); logs: the log of those with a log link.
    params = {parameter: constrained[parameter] for parameter in model.constants}
    if model.thresholds:  # an ordinal model's, reported one by one too
        params["thresholds"] = constrained["thresholds"]
        for k, name in enumerate(model.thresholds):
            reported[name] = t.element(constrained["thresholds"], k)
    logs = {}
    for parameter, (predictor, inverse) in model.parts.items():
        linear = _linear(t, predictor, constrained, reported, terms if density else None, mus)
        params[parameter] = linear
        if inverse == "log":
            logs[parameter], params[parameter] = linear, t.exp(linear)
    if model.se is not None:  # sigma per row: the known SE, or sqrt(sigma^2 + se^2)
        se, with_sigma = model.se
        sigma = t.constant(se)
        if with_sigma:
            sigma = t.sqrt(t.add(t.sqr(params["sigma"]), t.constant(se**2)))
        params["sigma"] = sigma
        logs.pop("sigma", None)
    if model.collapsed is not None:
        L = _collapsed_factor(t, model, constrained, reported)
    if not density:
        return None, reported
    for name, *_ in variables:
        if name in model.variables and model.variables[name][1] is None:
            continue  # centred rows, a nested child's u, QR's theta: written with the predictor
        terms.append(
            densities.prior(t, constrained[name], *tables[name], mu=mus.get(name), logit=unconstrained[name])
        )
    if model.collapsed is not None:
        terms.append(woodbury.log_likelihood(t, model.collapsed[2], eta, L, params["sigma"]))
    else:
        terms.append(densities.likelihood(t, model, eta, params, logs))
    return t.total(terms), reported


def _simplex(t: Tape, v: Var, terms: list) -> Var:
    """The simplex x = softmax(v, -sum v) of PyMC's SimplexTransform; its log-Jacobian, log N +
    N s - N logsumexp(v + s, 0) with s = sum v and N the simplex's size, added to ``terms``."""
    size = v.shape[0] + 1
    total = t.sum(v)
    full = t.join([v, t.neg(total)])
    normaliser = t.logsumexp([t.element(full, k) for k in range(size)])
    shifted = t.add(v, total)
    spread = t.logsumexp([t.constant(np.zeros(1))] + [t.element(shifted, k) for k in range(size - 1)])
    jacobian = t.mul(t.sub(total, spread), t.constant(float(size)))
    terms.append(t.add(jacobian, t.constant(float(np.log(size)))))
    return t.exp(t.sub(full, normaliser))


def _linear(t: Tape, pred: _Predictor, constrained: dict, reported: dict, terms: list | None, mus: dict,
            rows=True):  # fmt: skip
    """One linear predictor (a vector of rows, or one number where it has no row-varying
    part) from the constrained values: fixed and group effects and offsets; the log-densities
    of centred effects are added to ``terms`` (None: the expansion, which reports the group
    and fixed effects) and what shears a sampled coefficient to ``mus``."""
    # Each mo(x)'s transform at the rows, for its own effect and a (mo(x) | g) term's.
    monotonic = bases.monotonic_rows(t, pred.bases, constrained) if rows else {}
    # The slopes first where nothing shears them: a centred term may be drawn around them.
    b = None
    if pred.slopes is not None and pred.slopes[2] is None and pred.qr is None:
        b = _slopes(t, pred, constrained, reported, None)
    intercept = None if pred.intercept is None else constrained[pred.intercept[0]]
    if pred.nesting is not None:
        eta = _nested(t, pred, b, constrained, reported, terms)
    else:
        eta, shifts = _group_effects(t, pred, constrained, reported, terms, b, monotonic)
        if pred.slopes is not None:
            n_slopes = len(pred.slopes[1])
            if b is None:
                shift = t.join([shifts.get(j, t.constant(np.zeros(1))) for j in range(n_slopes)])
            if pred.qr is not None:  # b = R*^-1 theta - shift, b ~ its priors, / |det R*|
                R_inverse, log_det, (code, table) = pred.qr
                b = t.sub(t.matvec(R_inverse, constrained[pred.slopes[0]]), shift)
                reported[pred.b_name] = b
                if terms is not None:
                    terms.append(t.sub(densities.prior(t, b, code, table), t.constant(log_det)))
            elif b is None:  # sheared: b = u / scale - shift, u ~ prior(location + shift) scaled
                mus[pred.slopes[0]] = t.mul(shift, t.constant(pred.slopes[2]))
                b = _slopes(t, pred, constrained, reported, shift)
            if rows:
                xb = t.matvec(pred.Xc, b)
                eta = xb if eta is None else t.add(eta, xb)
        if pred.intercept is not None:
            if pred.intercept[1]:  # sheared
                mus[pred.intercept[0]] = shifts["Intercept"]
                intercept = t.sub(intercept, shifts["Intercept"])
            eta = intercept if eta is None else t.add(eta, intercept)
    if rows and pred.bases:
        eta = bases.add(t, pred.bases, eta, constrained, reported, terms, monotonic)
    if not rows:  # theta: the centred intercept and the slopes (no group effects here)
        pieces = [v for v in (intercept, b) if v is not None]
        eta = None if not pieces else pieces[0] if len(pieces) == 1 else t.join(pieces)
    elif pred.offset is not None:
        offset = t.constant(pred.offset)
        eta = offset if eta is None else t.add(eta, offset)
    if eta is None and rows:
        eta = t.constant(np.zeros(1))
    if terms is not None:  # the log-density: no reported-only values
        return eta
    pieces = []
    for kind, j in pred.fixef_order:
        if kind == "b":
            pieces.append(t.element(b, j))
        elif b is not None:
            pieces.append(t.sub(intercept, t.dot(b, t.constant(pred.center))))
        else:
            pieces.append(intercept)
    if pieces:
        reported[pred.fixef_name] = t.join(pieces)
    return eta


def _slopes(t: Tape, pred: _Predictor, constrained: dict, reported: dict, shift: Var | None) -> Var:
    """b from the sampled slopes (per SD of their predictors), less the shear ``shift``."""
    name, mult, _ = pred.slopes
    b = constrained[name]
    if not np.all(mult == 1.0):
        b = t.mul(b, t.constant(mult))
    if shift is not None:
        b = t.sub(b, shift)
    reported[pred.b_name] = b
    return b


def _vine(t: Tape, term: _Term, sds: list, cpc: Var):
    """The covariance factor F (F[j][k], k <= j) of an unstructured term and its reported
    correlations (builder's Unstructured.factor: the Cholesky factor of the correlations
    from the C-vine's partial correlations 2 cpc - 1, the rows scaled by the SDs)."""
    from itertools import combinations

    p = term.p
    partial = t.sub(t.mul(cpc, t.constant(2.0)), t.constant(1.0))
    L = [[None] * p for _ in range(p)]  # None on the diagonal of row 0: 1
    left = [None] * p  # 1 - the sum of squares so far, per row (None: 1)
    for k, (i, j) in enumerate(combinations(range(p), 2)):
        z = t.element(partial, k)
        L[j][i] = z if left[j] is None else t.mul(z, t.sqrt(left[j]))
        square = t.sqr(L[j][i])
        left[j] = t.sub(t.constant(1.0), square) if left[j] is None else t.sub(left[j], square)
        if i == j - 1:
            L[j][j] = t.sqrt(left[j])

    def entry(i, k):
        return sds[i] if i == 0 and k == 0 else t.mul(sds[i], L[i][k])

    F = [[entry(j, k) for k in range(j + 1)] for j in range(p)]
    cors = []
    for row, col in [(a, c) for a in range(p) for c in range(a)]:  # cor_pairs: row > col
        total = None
        for k in range(col + 1):
            product = L[row][0] if k == 0 and col == 0 else t.mul(L[row][k], L[col][k])
            total = product if total is None else t.add(total, product)
        cors.append(total)
    return F, cors


def _one_correlation(t: Tape, term: _Term, sds: list, rho: Var):
    """The covariance factor F (F[j][k], k <= j) and reported correlations of a cs() or ar1()
    term (spec.covariance's CompoundSymmetry, AR1): cs, the Cholesky factor of (1 - rho) I +
    rho 1 1^T by the usual recursion; ar1, L[i][0] = rho^i and L[i][k] = rho^(i-k)
    sqrt(1 - rho^2). Its rows are scaled by the SDs."""
    p = term.p
    one = t.constant(1.0)
    if term.structure == "cs":
        L = [[None] * p for _ in range(p)]
        for j in range(p):
            for k in range(j + 1):
                total = one if j == k else rho
                for m in range(k):
                    total = t.sub(total, t.mul(L[j][m], L[k][m]))
                L[j][k] = t.sqrt(total) if j == k else t.div(total, L[k][k])
        cors = [rho for i in range(p) for _ in range(i)]
    else:
        powers = [one, rho]
        for _ in range(2, p):
            powers.append(t.mul(powers[-1], rho))
        rest = t.sqrt(t.sub(one, t.sqr(rho)))
        L = [
            [powers[j - k] if k == 0 else t.mul(powers[j - k], rest) for k in range(j + 1)] for j in range(p)
        ]
        cors = [powers[i - j] for i in range(p) for j in range(i)]
    return [[t.mul(sds[j], L[j][k]) for k in range(j + 1)] for j in range(p)], cors


def _factor(t: Tape, term, constrained: dict) -> tuple[list, list | None, list]:
    """A term's SDs (one value each), its covariance factor F (F[j][k], k <= j; None where
    diagonal; rr(): p x rank, lower trapezoidal) and its reported correlations."""
    if term.structure == "rr":
        return _loadings(t, term, constrained)
    sd = constrained[term.sd_raw]
    sds = [sd] if term.p == 1 else [t.element(sd, j) for j in range(term.p)]
    if term.structure == "us":
        return sds, *_vine(t, term, sds, constrained[term.correlation])
    if term.structure in ("cs", "ar1"):
        return sds, *_one_correlation(t, term, sds, constrained[term.correlation])
    return sds, None, []


def _loadings(t: Tape, term, constrained: dict) -> tuple[list, list, list]:
    """rr()'s loadings Lambda (p x rank, lower trapezoidal, the diagonal positive) as F, and the
    SDs and correlations Sigma = Lambda Lambda^T implies (spec.covariance.ReducedRank)."""
    diagonal_name, below_name = term.correlation
    p, rank = term.p, term.latent
    F = [[None] * min(j + 1, rank) for j in range(p)]
    for k in range(rank):
        F[k][k] = t.element(constrained[diagonal_name], k)
    below = [(i, j) for j in range(rank) for i in range(j + 1, p)]
    for n, (i, j) in enumerate(below):
        F[i][j] = t.element(constrained[below_name], n)

    def covariance(i, j):
        total = None
        for k in range(min(i, j, rank - 1) + 1):
            product = t.sqr(F[i][k]) if i == j else t.mul(F[i][k], F[j][k])
            total = product if total is None else t.add(total, product)
        return total

    sds = [t.sqrt(covariance(j, j)) for j in range(p)]
    cors = [t.div(covariance(i, j), t.mul(sds[i], sds[j])) for i in range(p) for j in range(i)]
    return sds, F, cors


def _sd_value(t: Tape, term, constrained: dict, sds: list) -> Var:
    """A term's reported SDs: its sampled SD variable (rr(): those its loadings imply)."""
    if term.sd_raw is not None:
        return constrained[term.sd_raw]
    return sds[0] if len(sds) == 1 else t.join(sds)


def _applied(t: Tape, columns: list, F, sds: list) -> list:
    """The columns of u F^T (diagonal F: u sd) for the columns of u (F may have fewer columns
    than rows: rr())."""
    if F is None:
        return [t.mul(u, sd) for u, sd in zip(columns, sds, strict=True)]
    out = []
    for j in range(len(F)):
        total = None
        for k in range(len(F[j])):
            product = t.mul(columns[k], F[j][k])
            total = product if total is None else t.add(total, product)
        out.append(total)
    return out


def _group_effects(t: Tape, pred: _Predictor, constrained: dict, reported: dict, terms: list | None, b,
                   monotonic: dict):  # fmt: skip
    """The group effects' part of the linear predictor and the shear shifts (name -> Var)
    (bayesmm.model.builder._random_part); their log-densities where centred are added to
    ``terms`` (None: the expansion, which reports r_, sd_ and cor_ of each grouping factor).

    Each term's effects are columns of length levels: non-centred, r = H w F^T; centred,
    r = H [z F^T; v - m], the rows of v Normal(m, F F^T) with m = (H around)[1:]
    (around: what a one-column term is drawn around)."""
    effects: dict[int, list] = {}  # term position -> its columns of effects
    cors: dict[int, list] = {}
    sd_values: dict[int, Var] = {}  # term position -> its reported SDs

    def effects_of(i: int) -> list:
        if i in effects:
            return effects[i]
        term = pred.terms[i]
        p, levels = term.p, term.levels
        sds, F, cors[i] = _factor(t, term, constrained)
        sd_values[i] = _sd_value(t, term, constrained, sds)
        if term.v is None:  # non-centred
            w = [t.column(constrained[term.z], c, term.latent) for c in range(term.latent)]
            effects[i] = _applied(t, [_level_basis(t, u, levels) for u in w], F, sds)
            if term.level_factor is not None:  # gr(cov = A): L_A r, MVN(0, Sigma (x) A)
                effects[i] = [t.matvec(term.level_factor, r) for r in effects[i]]
            return effects[i]
        z = [t.column(constrained[term.z], c, p) for c in range(p)]
        mean_row = _applied(t, z, F, sds)
        rows = [t.column(constrained[term.v], c, p) for c in range(p)]
        m = None
        around = [t.gather(effects_of(j)[0], parents) for j, parents in term.around]
        if term.within is not None:
            found, values = term.within
            around.append(t.matvec(values, t.join([t.element(b, j) for j in found])))
        if around:
            total = around[0]
            for other in around[1:]:
                total = t.add(total, other)
            m = t.piece(_level_basis(t, total, levels), 1, levels - 1)
            rows = [t.sub(rows[0], m)]
        if terms is not None:  # the rows' density, Normal(0, F F^T) each
            n = levels - 1
            if F is None:
                solved = [t.div(r, s) for r, s in zip(rows, sds, strict=True)]
                diagonal = sds
            else:  # F^-1 r by forward substitution
                solved = []
                for j in range(p):
                    acc = rows[j]
                    for k in range(j):
                        acc = t.sub(acc, t.mul(F[j][k], solved[k]))
                    solved.append(t.div(acc, F[j][j]))
                diagonal = [F[j][j] for j in range(p)]
            for j in range(p):
                squares = t.mul(t.sumsq(solved[j]), t.constant(-0.5))
                terms.append(t.add(squares, t.mul(t.log(diagonal[j]), t.constant(-float(n)))))
            terms.append(t.constant(-0.5 * n * p * densities.LOG_2PI))
        effects[i] = [_level_basis(t, t.join([mean_row[c], rows[c]]), levels) for c in range(p)]
        return effects[i]

    eta = None
    shifts: dict = {}
    has_intercept = pred.intercept is not None
    for r_name, sd_name, cor_name, positions in pred.groups.values():
        columns, sds, correlations = [], [], []
        for i in positions:
            term = pred.terms[i]
            r = effects_of(i)
            columns += r
            sds.append(sd_values[i])
            correlations += cors[i]
            # The mean effect of each column, which shears the intercept and the varying slopes.
            sheared = has_intercept or term.shears
            means = [t.mul(t.sum(r_c), t.constant(1.0 / term.levels)) for r_c in r] if sheared else []
            if has_intercept:  # the intercept's shift: sum_c mean(r[:, c]) mean(Z[:, c])
                for c, mean in enumerate(means):
                    weight = float(term.column_means[c])
                    part = mean if weight == 1.0 else t.mul(mean, t.constant(weight))
                    before = shifts.get("Intercept")
                    shifts["Intercept"] = part if before is None else t.add(before, part)
            for c, j in term.shears:
                shifts[j] = means[c] if j not in shifts else t.add(shifts[j], means[c])
            for c, r_c in enumerate(r):
                rows_r = t.gather(r_c, term.codes)
                if isinstance(term.columns[c], str):  # mo(x): its transform, sampled
                    rows_r = t.mul(rows_r, monotonic[term.columns[c]])
                elif term.columns[c] is not None:
                    rows_r = t.mul(rows_r, t.constant(term.columns[c]))
                eta = rows_r if eta is None else t.add(eta, rows_r)
        if terms is None:  # the expansion: the grouping factor's reported values
            reported[r_name] = columns[0] if len(columns) == 1 else t.interleave(columns)
            reported[sd_name] = sds[0] if len(sds) == 1 else t.join(sds)
            if correlations:
                reported[cor_name] = t.join(correlations)
    return eta, shifts


def _nested(t: Tape, pred: _Predictor, b: Var | None, constrained: dict, reported: dict, terms: list | None):
    """The linear predictor of a nested pair (bayesmm.model.builder._nested_marginal_part),
    with the log-density of each child level's whole linear predictor u added to ``terms``
    (None: the expansion, which reports both terms' effects instead)."""
    nest = pred.nesting
    u = constrained[nest.u]
    mean = None if pred.intercept is None else constrained[pred.intercept[0]]
    if nest.found:
        level_part = t.matvec(nest.values, t.join([t.element(b, j) for j in nest.found]))
        mean = level_part if mean is None else t.add(mean, level_part)
    e = u if mean is None else t.sub(u, mean)
    var_c, var_p = (t.sqr(constrained[name]) for name in nest.sd_raw)
    sums = t.scatter_add(e, nest.up, nest.count.size)
    spread = t.add(var_c, t.mul(t.constant(nest.count), var_p))
    if terms is not None:
        n_inner, n_outer = nest.up.size, nest.count.size
        quadratic = t.div(t.sub(t.sumsq(e), t.mul(var_p, t.sum(t.div(t.sqr(sums), spread)))), var_c)
        log_det = t.add(t.mul(t.log(var_c), t.constant(float(n_inner - n_outer))), t.sum(t.log(spread)))
        terms.append(t.mul(t.add(quadratic, log_det), t.constant(-0.5)))
        terms.append(t.constant(-0.5 * n_inner * densities.LOG_2PI))
    else:
        scale = t.sqrt(t.div(t.mul(var_c, var_p), spread))
        r_outer = t.add(t.div(t.mul(var_p, sums), spread), t.mul(constrained[nest.xi], scale))
        r_inner = t.sub(e, t.gather(r_outer, nest.up))
        for r_name, sd_name, sd_raw, r in zip(nest.r, nest.sd, nest.sd_raw, (r_inner, r_outer), strict=True):
            reported[r_name], reported[sd_name] = r, constrained[sd_raw]
    eta = t.gather(u, nest.codes)
    if nest.within:
        slopes = t.join([t.element(b, j) for j in nest.within])
        eta = t.add(eta, t.matvec(pred.Xc[:, nest.within], slopes))
    return eta


# -- the programs -----------------------------------------------------------------------------


def why_not(pymc_model, source) -> str | None:
    """Why the template does not write the model's programs (None: it does)."""
    try:
        _programs(source, pymc_model)
    except Unsupported as reason:
        return str(reason)
    return None


def program(pymc_model, source) -> tuple[engine.Program, engine.Program] | None:
    """The engine's log-density and expansion programs of ``pymc_model`` (the sampled model of
    bayesmm's ``source``) written from the design, or None where the template does not cover
    the model (it then takes the translated graph)."""
    if source is None:
        return None
    try:
        return _programs(source, pymc_model)[:2]
    except Unsupported:
        return None


@dataclasses.dataclass(frozen=True)
class Written:
    """A model's programs written from its design alone (no PyMC model): the log-density and
    expansion programs, the trace's dims and coordinates, and the free variables' support
    points on the unconstrained scale by value name (bayesmm.inference.layout)."""

    logp: engine.Program
    expand: engine.Program
    dims: dict
    coords: dict
    support: dict


def written(source) -> Written | None:
    """The programs of bayesmm's ``source`` with the trace laid out from the design, as PyMC's
    model would lay it out (bayesmm.inference.layout), or None where the template does not
    cover the model."""
    try:
        logp, expand, variables, model, labelled = _programs(source)
        names, shapes = logp.layout["names"], map(tuple, logp.layout["shapes"])
        dims = {name: labelled[name][1] for name in names if name in labelled and labelled[name][1]}
        pairs = [(name, value) for name, value, *_ in variables]
        dims = layout.with_value_dims(dims, pairs, dict(zip(names, shapes, strict=True)))
        support = layout.support_points(model, source, variables)
    except Unsupported:
        return None
    return Written(logp, expand, dims, layout.coords(source), support)


def _design_variables(model: _Model, labelled: dict) -> tuple[list[tuple], list[list]]:
    """The free variables in the template's order with PyMC's value names and transforms, and
    their values' shapes (``labelled``: bayesmm.inference.layout.labels)."""
    out, shapes, start = [], [], 0
    for name, (_, _, size) in model.variables.items():
        code, table, transform = _prior(model, name)
        if name not in labelled:
            raise Unsupported(f"the layout of {name}")
        shape = (size,) if transform == densities.SIMPLEX else labelled[name][0]
        if int(np.prod(shape, dtype=int)) != size:
            raise Unsupported(f"{name} has {size} values, not the shape {shape}")
        out.append((name, layout.value_name(name, transform), start, size, code, table, transform))
        shapes.append(list(shape))
        start += size
    return out, shapes


def _programs(source, pymc_model=None) -> tuple:
    """The log-density and expansion programs, the free variables, the template's model and
    the design's labels of the trace (bayesmm.inference.layout.labels; None with
    ``pymc_model``); the trace laid out as ``pymc_model``'s (checked against it), or from the
    design."""
    model = _Model(source)
    labelled = None
    if pymc_model is None:
        labelled = layout.labels(model)
        variables, shapes = _design_variables(model, labelled)
    else:
        shapes = [list(s) for s in engine._value_shapes(pymc_model)]
        variables = _densities(model, pymc_model, shapes)
    n_dim = int(sum(v[3] for v in variables))
    value_names = [v[1] for v in variables]

    # The log-density and its gradient.
    t = Tape(n_dim)
    x = {value: t.x(start, (size,)) for _, value, start, size, *_ in variables}
    logp, _ = _write(t, model, variables, x, density=True)
    gradient = t.backward(logp, list(x.values()), n_dim)
    logp_program = engine.finish(t, [logp.view, gradient])

    # The expansion: the point, then every other variable of the trace (PyMC's order).
    e = Tape(n_dim)
    x = {value: Var(View(start, (size,), (1,)), False) for _, value, start, size, *_ in variables}
    _, reported = _write(e, model, variables, x, density=False)
    if pymc_model is None:
        free = {v[0] for v in variables}
        remaining = [v[0] for v in variables if v[1] != v[0]] + [n for n in reported if n not in free]
        missing = [n for n in remaining if n not in labelled]
        if missing:
            raise Unsupported(f"the layout of {missing}")
        remaining = [(n, labelled[n][0]) for n in remaining]
    else:
        remaining = [(v.name, engine._named_shape(pymc_model, v))
                     for v in pymc_model.unobserved_value_vars if v.name not in value_names]  # fmt: skip
    pieces = [Var(View(0, (n_dim,), (1,)), False)] if n_dim else []
    for name, shape in remaining:
        if name not in reported:
            raise Unsupported(f"the trace's {name}")
        value = reported[name]
        size = int(np.prod(value.shape, dtype=int))
        if any(s is None for s in shape) or int(np.prod(shape, dtype=int)) != size:
            raise Unsupported(f"the trace's {name} has shape {shape}")
        shapes.append([int(s) for s in shape])
        pieces.append(value)
    expanded = e.join(pieces)
    expand_program = engine.finish(e, [expanded.view])

    names = value_names + [name for name, _ in remaining]
    sizes = [int(np.prod(s, dtype=int)) for s in shapes]
    bounds = np.cumsum([0, *sizes])
    program_layout = {
        "n_dim": n_dim, "n_expanded": int(bounds[-1]), "n_free": len(variables), "names": names,
        "slices": [[int(a), int(b)] for a, b in zip(bounds[:-1], bounds[1:], strict=True)],
        "shapes": shapes,
        "reparameterized": [value for name, value, *_ in variables if value != name],
    }  # fmt: skip
    logp_out = engine.Program(*logp_program, program_layout)
    return logp_out, engine.Program(*expand_program, program_layout), variables, model, labelled


# -- the switch ------------------------------------------------------------------------------------


def enabled() -> bool:
    """Whether the template writes the programs of the models it covers: ``BAYESMM_TEMPLATE=0``
    sends them to the translated graph (e.g. to measure it)."""
    return os.environ.get("BAYESMM_TEMPLATE", "1") != "0"
