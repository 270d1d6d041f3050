"""The collector paused around a fit and skipped at exit (bayesmm.inference.collector)."""

import gc
import os
import subprocess
import sys
import textwrap

import pytest

import bayesmm as bm
from bayesmm.inference.collector import paused, pausing


@pytest.fixture
def collector_on():
    was = gc.isenabled()
    gc.enable()
    yield
    (gc.enable if was else gc.disable)()


def test_paused_restores_the_state_also_after_an_error(collector_on):
    with paused():
        assert not gc.isenabled()
        with paused():  # inner pause leaves re-enabling to the outer one
            pass
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(ZeroDivisionError), paused():
        raise ZeroDivisionError
    assert gc.isenabled()
    gc.disable()  # a caller that turned the collector off keeps it off
    with paused():
        pass
    assert not gc.isenabled()


def test_a_model_is_built_with_the_collector_paused_and_restored(collector_on, monkeypatch):
    import bayesmm.api

    seen = []
    real = bayesmm.api.resolve_priors

    def probe(*args, **kwargs):
        seen.append(gc.isenabled())
        return real(*args, **kwargs)

    monkeypatch.setattr(bayesmm.api, "resolve_priors", probe)
    model = bm.Model("Reaction ~ Days + (Days | Subject)", bm.datasets.load("sleepstudy"))
    assert seen == [False] and gc.isenabled()
    assert model.design.n_obs == 180
    assert pausing(gc.isenabled)() is False
    gc.disable()
    bm.Model("Reaction ~ Days + (1 | Subject)", bm.datasets.load("sleepstudy"))
    assert not gc.isenabled()


EXIT = textwrap.dedent(
    """
    import atexit, gc, weakref

    gc.disable()  # no automatic collection finds the cycle below before exit

    class Finalized:
        def __del__(self):
            print("cycle finalized", flush=True)

    # Registered before bayesmm's hook, so it runs after it (atexit is last in, first out).
    atexit.register(lambda: print("frozen", gc.get_freeze_count() > 1000, flush=True))
    import bayesmm.inference.collector
    import pandas

    kept = pandas.DataFrame({"a": [1.0]})
    weakref.finalize(kept, print, "weakref finalizer ran", flush=True)
    cycle = Finalized()
    cycle.me = cycle
    del cycle  # young garbage in a cycle: collected before the freeze
    """
)


def test_objects_alive_at_exit_are_frozen_and_exit_finalizers_still_run():
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(bm.__file__))}
    out = subprocess.run([sys.executable, "-c", EXIT], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "frozen True" in lines
    assert "weakref finalizer ran" in lines
    assert "cycle finalized" in lines  # the young collection before the freeze found it


def test_a_fit_runs_with_the_collector_paused(collector_on, monkeypatch):
    import bayesmm.inference.nuts

    seen = []

    def probe(**settings):  # stop before anything compiles
        seen.append(gc.isenabled())
        raise RuntimeError("stop")

    monkeypatch.setattr(bayesmm.inference.nuts, "_check_settings", probe)
    model = bm.Model("Reaction ~ Days + (1 | Subject)", bm.datasets.load("sleepstudy"))
    with pytest.raises(RuntimeError, match="stop"):
        model.fit()
    assert seen == [False] and gc.isenabled()
