"""Fitted models shared between test modules: compiling a PyMC model costs seconds."""

import warnings

import matplotlib
import pytest

import bayesmm as bm

matplotlib.use("Agg")


def quiet_fit(model, **kwargs):
    kwargs.setdefault("progressbar", False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(**kwargs)


@pytest.fixture(scope="session")
def sleepstudy():
    return bm.datasets.load("sleepstudy")


@pytest.fixture(scope="session")
def sleepstudy_fit(sleepstudy):
    """Reaction ~ Days + (Days | Subject) with brms's setting: 4 chains x 1000 draws."""
    model = bm.Model("Reaction ~ Days + (Days | Subject)", sleepstudy)
    return quiet_fit(model, draws=1000, tune=1000, chains=4, random_seed=20261124)
