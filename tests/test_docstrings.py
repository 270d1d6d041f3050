"""Every public function documents its parameters, what it returns and an example, and the
examples run: those that need no fit in the fast tier, the others against a fit of
sleepstudy. An example that shows output must produce it; one that shows none may print
anything (a table of posterior numbers)."""

import doctest
import inspect
import io
import re
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

import bayesmm as bm


def public_callables() -> dict[str, object]:
    """What a user reaches from ``bayesmm``: its functions and classes, the datasets'
    loader, and the public methods of Model, Fit, Prior, Family and the simulation
    workflows' results."""
    found = {f"bayesmm.{name}": getattr(bm, name) for name in bm.__all__}
    found = {name: obj for name, obj in found.items() if inspect.isfunction(obj) or inspect.isclass(obj)}
    found["bayesmm.datasets.load"] = bm.datasets.load
    for cls in (bm.Model, bm.Fit, bm.Prior, bm.Family, bm.SBCResult, bm.PowerResult, bm.MethodComparison,
                bm.MarginalMeans):
        for name, member in vars(cls).items():
            if not name.startswith("_") and inspect.isfunction(member):
                found[f"bayesmm.{cls.__name__}.{name}"] = member
    return found


PUBLIC = public_callables()
FITS = re.compile(r"\bfit\b|\.fit\(|compare_samplers")


def parameters(obj) -> list[str]:
    """The names a docstring must list: ``x`` and ``**kwargs`` as numpydoc writes them."""
    try:
        signature = inspect.signature(obj)
    except ValueError:  # exceptions without their own __init__
        return []
    names = []
    for name, p in signature.parameters.items():
        if name in ("self", "cls") or name.startswith("_"):
            continue
        stars = {p.VAR_POSITIONAL: "*", p.VAR_KEYWORD: "**"}.get(p.kind, "")
        names.append(stars + name)
    return names


def examples(name: str, obj) -> doctest.DocTest:
    return doctest.DocTestParser().get_doctest(inspect.getdoc(obj) or "", {}, name, None, 0)


def needs_a_fit(name: str) -> bool:
    """Whether the examples sample a model or use the namespace's fit."""
    return any(FITS.search(example.source) for example in examples(name, PUBLIC[name]).examples)


def test_the_api_is_found():
    # The inventory itself: a rename that hid everything would pass every test below.
    assert len(PUBLIC) >= 50
    for name in ["bayesmm.Fit.predict", "bayesmm.compare", "bayesmm.kfold", "bayesmm.datasets.load"]:
        assert name in PUBLIC


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_docstring_documents_parameters_returns_and_an_example(name):
    obj = PUBLIC[name]
    doc = inspect.getdoc(obj) or ""
    listed = parameters(obj)
    if listed:
        assert "\nParameters\n----------\n" in doc, name
        missing = [p for p in listed if f"\n{p}\n" not in doc]
        assert not missing, f"{name} does not document {missing}"
    if not inspect.isclass(obj):
        assert "\nReturns\n-------\n" in doc, name
    assert "\nExamples\n--------\n>>> " in doc, name
    for example in examples(name, obj).examples:
        compile(example.source, name, "exec")  # raises SyntaxError for a broken example


class ShownOutput(doctest.OutputChecker):
    """An example that shows no output may print anything; one that does must match it."""

    def check_output(self, want, got, optionflags):
        return not want or super().check_output(want, got, optionflags)


def run_examples(name: str, namespace: dict) -> None:
    test = examples(name, PUBLIC[name])
    test.globs = dict(namespace)
    flags = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS
    runner = doctest.DocTestRunner(checker=ShownOutput(), optionflags=flags)
    report = io.StringIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = runner.run(test, out=report.write, clear_globs=False)
    plt.close("all")
    assert result.attempted > 0, name
    assert result.failed == 0, report.getvalue()


@pytest.fixture(scope="module")
def namespace(sleepstudy):
    model = bm.Model("Reaction ~ Days + (Days | Subject)", sleepstudy)
    return {"bm": bm, "np": np, "pd": pd, "sleepstudy": sleepstudy, "model": model}


WITH_FIT = sorted(filter(needs_a_fit, PUBLIC))
WITHOUT_FIT = sorted(set(PUBLIC) - set(WITH_FIT))


@pytest.mark.parametrize("name", WITHOUT_FIT)
def test_examples_run(name, namespace, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_examples(name, namespace)


@pytest.mark.slow
@pytest.mark.parametrize("name", WITH_FIT)
def test_examples_with_a_fit_run(name, namespace, sleepstudy_fit, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_examples(name, {**namespace, "fit": sleepstudy_fit})


def test_an_example_that_prints_something_else_fails(namespace):
    # The checker is not a rubber stamp: shown output that differs is a failure.
    test = doctest.DocTestParser().get_doctest(">>> 1 + 1\n3\n", {}, "wrong", None, 0)
    runner = doctest.DocTestRunner(checker=ShownOutput())
    assert runner.run(test, out=lambda _: None).failed == 1
