"""Many fits of one model structure: serially, in local processes, or on a Dask cluster.

Simulation workflows (bayesmm.workflows.sbc, bayesmm.workflows.power) and fit.simplify()
(bayesmm.results.simplify) hand over a list of tasks, each a picklable function and its
arguments; every process (or Dask worker) rewrites a model's graph the first time and reuses
it for the tasks after (bayesmm.inference.sampling keeps it per process). Results come back in the
order of the tasks, and bayesmm's engine runs the same code in every process, so a seed
gives the same results whichever way they ran.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed

__all__ = ["run_tasks"]


def _check(processes, client) -> None:
    if processes is not None and client is not None:
        raise ValueError("give processes= (local processes) or client= (a Dask client), not both")
    if processes is not None and (
        isinstance(processes, bool) or not isinstance(processes, int) or processes < 1
    ):
        raise ValueError(
            f"processes must be a whole number, 1 or more (or None to run serially); got {processes!r}"
        )
    if client is not None and not hasattr(client, "submit"):
        raise TypeError(f"client must be a dask.distributed.Client, got {type(client).__name__}")


def run_tasks(function: Callable, tasks: list[tuple], *, processes: int | None = None, client=None,
              progressbar: bool = True, desc: str = "fits") -> list:  # fmt: skip
    """``[function(*task) for task in tasks]``, serially, in ``processes`` local processes
    (started fresh: PyMC and numba do not survive a fork), or on ``client``'s Dask workers;
    with a progress bar over the tasks as they finish."""
    _check(processes, client)
    bar = _bar(len(tasks), progressbar, desc)
    try:
        if client is not None:
            from distributed import as_completed as dask_completed

            futures = [client.submit(function, *task, pure=False) for task in tasks]
            for _ in dask_completed(futures):
                bar.update(1)
            return client.gather(futures)
        if processes is not None and processes > 1:
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=processes, mp_context=context) as pool:
                futures = [pool.submit(function, *task) for task in tasks]
                for _ in as_completed(futures):
                    bar.update(1)
                return [f.result() for f in futures]
        results = []
        for task in tasks:
            results.append(function(*task))
            bar.update(1)
        return results
    finally:
        bar.close()


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _bar(total: int, show: bool, desc: str):
    if not show:
        return _NoBar()
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover
        return _NoBar()
    return tqdm(total=total, desc=desc, unit="fit")
