"""Thread shares: parallel runs split the cores, never below one thread each, and the tree
is the same with any number of threads."""

import numpy as np
import pytest
from sklearn.datasets import load_digits
from threadpoolctl import threadpool_info, threadpool_limits

from recursive_clusters.core.acceptance import null_reference
from recursive_clusters.core.embedding import embed
from recursive_clusters.core.parallelism import (
    THREADS_ENV,
    available_cores,
    count_from_env,
    limited_threads,
    threads_per_run,
)
from recursive_clusters.core.settings import Settings


def test_runs_side_by_side_share_the_cores():
    assert threads_per_run(2, cores=16) == 8
    assert threads_per_run(3, cores=16) == 5
    assert threads_per_run(1, cores=16) == 16
    assert threads_per_run(4, cores=2) == 1  # more runs than cores: one thread each
    assert threads_per_run(0, cores=2) == 2
    assert threads_per_run(2) == max(1, available_cores() // 2)


def test_limited_threads_caps_blas_inside_the_block_only():
    np.ones((2, 2)) @ np.ones((2, 2))  # make sure numpy's BLAS is loaded
    before = [pool["num_threads"] for pool in threadpool_info()]
    with limited_threads(1):
        assert all(pool["num_threads"] == 1 for pool in threadpool_info())
    assert [pool["num_threads"] for pool in threadpool_info()] == before


def test_deployment_counts_come_from_the_environment(monkeypatch):
    monkeypatch.delenv(THREADS_ENV, raising=False)
    assert count_from_env(THREADS_ENV) is None
    monkeypatch.setenv(THREADS_ENV, " 4 ")
    assert count_from_env(THREADS_ENV) == 4
    for bad in ("0", "-2", "two", "1.5"):
        monkeypatch.setenv(THREADS_ENV, bad)
        with pytest.raises(ValueError, match=rf"{THREADS_ENV} must be a whole number >= 1"):
            count_from_env(THREADS_ENV)


def test_the_layout_does_not_depend_on_the_blas_threads():
    """A run's share of the cores (the UI) or all of them (the CLI) gives the same tree: wide
    data goes through a PCA, whose multi-threaded BLAS sums in another order; UMAP turned
    those last bits into another layout (and on MNIST another tree) before it ran on one."""
    digits = load_digits().data
    wide = np.hstack([digits, digits @ np.random.default_rng(0).normal(size=(64, 200))])
    settings = Settings().embedding
    assert wide.shape[1] > settings.pca_above_columns  # the PCA path
    layouts, null_draws = [], []
    for threads in (1, 2):
        with threadpool_limits(limits=threads):
            layouts.append(embed(wide, settings, seed=5))
            null_draws.append(null_reference(wide[:300], 300, np.random.default_rng(1)))
    assert np.array_equal(*layouts)
    assert np.array_equal(*null_draws)
