"""Where simulations run: in this process, a local process pool, or a dask.distributed cluster.

Every backend runs the same function on the same batches of simulation numbers and the
rows are sorted afterwards, so the result does not depend on the backend or the number of
workers: each simulation's random stream comes from its number alone
(:func:`~evalkit.diagnose.simulate.simulation_streams`) and BLAS runs on one thread in
every worker (a multi-threaded BLAS may sum in a different order, changing the last bits).
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING

from ..errors import EvalkitError
from ..methods import get_method
from .simulate import diagnosed, truth_for

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")

_limits = None


def pin_blas() -> None:
    """One BLAS thread in this process (threadpoolctl when installed; else the environment,
    which a worker started with ``spawn`` reads before numpy loads)."""
    global _limits
    for name in THREAD_VARIABLES:
        os.environ[name] = "1"
    if _limits is None:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            return
        _limits = threadpool_limits(limits=1)


def fit_draw(draw, sim: int, analyses=None) -> list[dict]:
    """Fit every analysis of the plan (or those numbered in ``analyses``) to one simulated
    dataset: one row per diagnosed estimate."""
    design = draw.design
    rows = []
    for index, spec in enumerate(design.analysis):
        if analyses is not None and index not in analyses:
            continue
        outcome = design.outcome(spec.outcome)
        base = {"sim": sim, "effect": draw.effect, "analysis": index, "method": spec.method, "outcome": spec.outcome}
        try:
            result = get_method(spec.method)(design, draw.data, spec, index)
        except EvalkitError as exc:
            rows.append({**base, "estimand": "(fit)", "scale": None, "estimate": None, "ci_low": None, "ci_high": None,
                         "p_value": None, "truth": None, "error": exc.what[:200]})
            continue
        durations = draw.truth.get(spec.outcome, {})
        shift = draw.truth.get("__shift__", {}).get(spec.outcome, 0.0)
        for estimate in result.estimates:
            if not diagnosed(estimate):
                continue
            truth = draw.truth.get((spec.outcome, estimate.estimand))
            if truth is None:
                truth = truth_for(outcome, estimate.estimand, estimate.scale, draw.effect, durations, shift)
            rows.append({**base, "estimand": estimate.estimand, "scale": estimate.scale,
                         "estimate": _number(estimate.estimate), "ci_low": _number(estimate.ci_low),
                         "ci_high": _number(estimate.ci_high), "p_value": _number(estimate.p_value),
                         "truth": truth, "error": None})
    return rows


def _number(x):
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) or math.isinf(x) else None


def run_batch(simulator, sims: list[int], effects: list[float], analyses=None) -> list[dict]:
    """Simulate and fit ``sims`` at every planted effect (the unit of work of every backend)."""
    pin_blas()
    rows = []
    for sim in sims:
        for draw in simulator.draws(sim, effects):
            rows += fit_draw(draw, sim, analyses)
    return rows


def batches(sims: list[int], workers: int) -> list[list[int]]:
    """Small batches: enough of them to keep every worker busy and show progress."""
    size = max(1, min(8, len(sims) // max(1, 4 * workers)))
    return [sims[i:i + size] for i in range(0, len(sims), size)]


# ----------------------------------------------------------------------------- local processes
_worker_simulator = None


def _init_worker(simulator) -> None:
    global _worker_simulator
    pin_blas()
    _worker_simulator = simulator


def _run_in_worker(sims, effects, analyses=None):
    return run_batch(_worker_simulator, sims, effects, analyses)


class LocalBackend:
    """This process (``workers=1``) or a pool of ``workers`` processes, started once and
    reused for every round of a diagnosis (the data are sent to each worker once)."""

    def __init__(self, simulator, workers: int = 1):
        self.simulator, self.workers = simulator, max(1, int(workers))
        self._pool: ProcessPoolExecutor | None = None

    def _start(self) -> ProcessPoolExecutor:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        try:
            import threadpoolctl  # noqa: F401

            method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        except ImportError:
            # without threadpoolctl the thread count must be in the environment before numpy loads
            for name in THREAD_VARIABLES:
                os.environ.setdefault(name, "1")
            method = "spawn"
        self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context(method),
                                         initializer=_init_worker, initargs=(self.simulator,))
        return self._pool

    def run(self, sims: list[int], effects: list[float], on_batch=None, analyses=None) -> list[dict]:
        """Rows of ``sims`` at ``effects``; ``on_batch(rows, n_sims)`` as each batch finishes."""
        rows: list[dict] = []
        if self.workers == 1:
            for batch in batches(sims, 1):
                got = run_batch(self.simulator, batch, effects, analyses)
                rows += got
                if on_batch:
                    on_batch(got, len(batch))
            return rows
        from concurrent.futures import as_completed

        pool = self._pool if self._pool is not None else self._start()
        futures = {pool.submit(_run_in_worker, batch, effects, analyses): len(batch)
                   for batch in batches(sims, self.workers)}
        for future in as_completed(futures):
            got = future.result()
            rows += got
            if on_batch:
                on_batch(got, futures[future])
        return rows

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None


def run_local(simulator, sims: list[int], effects: list[float], workers: int = 1, on_batch=None) -> list[dict]:
    backend = LocalBackend(simulator, workers)
    try:
        return backend.run(sims, effects, on_batch)
    finally:
        backend.close()


# ----------------------------------------------------------------------------- dask
def _dask():
    try:
        import dask.distributed as distributed
    except ImportError:
        raise EvalkitError("--backend dask", "dask is not installed",
                           'install the extra: python -m pip install "evalkit[dask]"') from None
    return distributed


class DaskBackend:
    """A dask.distributed cluster: an existing one at ``scheduler``, else a LocalCluster of
    ``workers`` single-threaded processes (closed with the backend)."""

    def __init__(self, simulator, workers: int = 2, scheduler: str | None = None):
        distributed = _dask()
        self.distributed, self.workers, self.cluster = distributed, max(1, int(workers)), None
        if scheduler:
            try:
                self.client = distributed.Client(scheduler, timeout="20s")
            except OSError as exc:
                raise EvalkitError("--scheduler", f"cannot reach the dask scheduler at {scheduler} ({exc})",
                                   "start it (dask scheduler) or check the address, e.g. tcp://10.0.0.5:8786") from None
            self.workers = max(1, len(self.client.scheduler_info().get("workers", {})) or self.workers)
        else:
            self.cluster = distributed.LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                                    dashboard_address=None, silence_logs=50)
            self.client = distributed.Client(self.cluster)
        self.shared = self.client.scatter(simulator, broadcast=True)

    def run(self, sims: list[int], effects: list[float], on_batch=None, analyses=None) -> list[dict]:
        jobs = batches(sims, self.workers)
        futures = [self.client.submit(run_batch, self.shared, batch, effects, analyses, pure=False) for batch in jobs]
        sizes = {f.key: len(b) for f, b in zip(futures, jobs)}
        rows: list[dict] = []
        for future in self.distributed.as_completed(futures):
            got = future.result()
            rows += got
            if on_batch:
                on_batch(got, sizes[future.key])
        return rows

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def open_backend(simulator, backend: str = "local", workers: int = 1, scheduler: str | None = None):
    if backend == "dask":
        return DaskBackend(simulator, workers, scheduler)
    return LocalBackend(simulator, workers)


def run_dask(simulator, sims, effects, workers: int = 2, scheduler: str | None = None, on_batch=None) -> list[dict]:
    backend = DaskBackend(simulator, workers, scheduler)
    try:
        return backend.run(sims, effects, on_batch)
    finally:
        backend.close()


__all__ = ["run_batch", "run_local", "run_dask", "open_backend", "LocalBackend", "DaskBackend", "fit_draw", "pin_blas", "batches"]
