"""How many threads one process may use, so parallel runs share the cores instead of
oversubscribing them (two runs of two BLAS/XGBoost threads each on two cores thrash)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

# Deployment overrides (docs/deployment.md): threads of every run, e.g. a Kubernetes pod's CPU
# request; and how many runs a level's siblings are split into (large: one run per node).
THREADS_ENV = "RECURSIVE_CLUSTERS_THREADS"
SIBLING_RUNS_ENV = "RECURSIVE_CLUSTERS_SIBLING_RUNS"


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers restrict), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def threads_per_run(parallel_runs: int, cores: int | None = None) -> int:
    """Each of ``parallel_runs`` runs side by side gets an equal share of the cores (>= 1)."""
    return max(1, (cores or available_cores()) // max(1, parallel_runs))


@contextmanager
def limited_threads(threads: int) -> Iterator[None]:
    """Cap the native thread pools (BLAS, OpenMP) used inside the block at ``threads``.

    XGBoost and HDBSCAN take their thread count as a parameter; this covers what does not
    (numpy's BLAS in PCA and SVD, OpenMP in scikit-learn).
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads):
        yield


def count_from_env(name: str) -> int | None:
    """A positive whole number from environment variable ``name`` (None when unset)."""
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"Environment variable {name} must be a whole number >= 1, not {value!r}")
    return int(value)


@contextmanager
def single_threaded_blas() -> Iterator[None]:
    """BLAS on one thread inside the block, for the steps that decide the tree.

    A multi-threaded BLAS sums in an order that depends on its thread count, and UMAP turns
    the last-bit differences of a PCA into another layout: measured on MNIST, the same seed
    gave trees of leaf purity 0.72 on one BLAS thread and 0.80 on two. One thread makes the
    tree the same whatever the cores (the CLI's, a UI run's share, another machine's); the
    PCA of 70,000 x 784 rows takes 0.9 s on one thread.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield
