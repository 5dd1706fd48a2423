"""A level's sibling batches, run side by side in worker processes, as the daemon runs them.

The CLI grows a tree from one process. UMAP with a seed uses one core, so a level run as one
batch kept the other cores idle through its layouts (the 60,000 MNIST digits: levels 2 and
3 took 214 of 448 s). Here each batch (``plan_growth`` makes one per core) executes in a
worker process of its own, against the same instance, with its share of the cores.
"""

from __future__ import annotations

import multiprocessing
import pickle
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

POLL_SECONDS = 0.2


@dataclass(frozen=True)
class Batch:
    """One run of a level's job over a range of sibling partitions."""

    job_name: str
    tags: dict[str, str]
    run_id: str
    label: str


class SiblingRuns:
    """A pool of ``processes`` workers (spawned at the first batch, once per tree) that
    execute batches with the definitions the CLI's settings file builds."""

    def __init__(self, base_dir: str, settings_path: str, processes: int) -> None:
        self._arguments = (base_dir, settings_path)
        self.processes = processes
        self._pool = None

    def run(
        self, batches: Sequence[Batch], done: Callable[[Batch, float], None]
    ) -> list[tuple[Batch, BaseException]]:
        """Execute ``batches`` side by side until all have ended; ``done(batch, seconds)`` as
        each succeeds. Returns the failed ones with their errors (a failed batch does not
        stop the others: their nodes are kept for a re-run)."""
        if self._pool is None:
            context = multiprocessing.get_context("spawn")  # a fork would copy open storages
            self._pool = context.Pool(self.processes, initializer=_leave_interrupts_to_parent)
        started = time.perf_counter()
        pending = {
            self._pool.apply_async(_execute, (*self._arguments, batch)): batch for batch in batches
        }
        failures = []
        while pending:
            for result in [r for r in pending if r.ready()]:
                batch = pending.pop(result)
                error = _rebuilt(result.get())
                if error is None:
                    done(batch, time.perf_counter() - started)
                else:
                    failures.append((batch, error))
            time.sleep(POLL_SECONDS)  # a Ctrl-C in the parent interrupts this wait
        return failures

    def stop(self) -> None:
        """End the workers now (Ctrl-C): their runs stop where they are (files are written
        whole or not at all). SIGKILL, as ``Pool.terminate``'s SIGTERM may be ignored: a
        Dagster run maps SIGTERM to SIGINT's handler and leaves it so, and a worker ignores
        SIGINT between runs."""
        if self._pool is not None:
            for worker in multiprocessing.active_children():  # the pool's: we start no other
                worker.kill()
            self._pool.terminate()
            self._pool.join()
            self._pool = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool.join()
            self._pool = None


def _leave_interrupts_to_parent() -> None:
    """Ctrl-C reaches the whole terminal's process group: the parent stops the workers and
    marks the tree, so a worker between runs ignores it (Dagster's own handler still takes
    it inside a run, which then ends as interrupted)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _execute(base_dir: str, settings_path: str, batch: Batch) -> list[BaseException] | None:
    """In a worker: the batch's run. None when it succeeded, else its error and the errors
    that caused it (``__cause__`` does not survive pickling), each one picklable."""
    from dagster import DagsterInstance

    from recursive_clusters.core.settings import load_settings
    from recursive_clusters.defs.assets.common import free_run_memory
    from recursive_clusters.defs.definitions import build_definitions
    from recursive_clusters.defs.resources import TreeStoreResource
    from recursive_clusters.defs.runner import QUIET_CONSOLE

    try:
        storage = TreeStoreResource(base_dir=base_dir, settings_path=settings_path)
        defs = build_definitions(load_settings(settings_path), storage)
        with DagsterInstance.get() as instance:
            defs.resolve_job_def(batch.job_name).execute_in_process(
                instance=instance, tags=batch.tags, run_config=QUIET_CONSOLE, run_id=batch.run_id
            )
    except BaseException as exc:  # an interrupted run too: the parent says what stopped
        return [_picklable(link) for link in _causes(exc)]
    finally:
        free_run_memory()  # the next batch reads its own rows
    return None


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    while exc is not None and exc not in chain:
        chain.append(exc)
        exc = exc.__cause__
    return chain


def _picklable(exc: BaseException) -> BaseException:
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc


def _rebuilt(chain: list[BaseException] | None) -> BaseException | None:
    """The worker's error with its causes linked again, for the CLI's one-line message."""
    if not chain:
        return None
    for outer, inner in zip(chain, chain[1:], strict=False):
        outer.__cause__ = inner
    return chain[0]
