"""Backend selection: the settings choose the UMAP / HDBSCAN implementation; an optional one
that is not installed is a clear error naming the setting, and an installed one is called with
the same parameters and fed the same data as the CPU default.

RAPIDS cuML needs an NVIDIA GPU, so here a stand-in ``cuml`` package (wrapping the CPU
libraries, with cuML's module layout) takes its place to test the selection and the data path.
"""

import sys
from types import ModuleType

import hdbscan
import numpy as np
import pytest
import umap
from sklearn.metrics import adjusted_rand_score

from recursive_clusters.core.clustering import cluster_embedding
from recursive_clusters.core.embedding import embed, umap_estimator
from recursive_clusters.core.settings import ClusteringSettings, EmbeddingSettings
from recursive_clusters.core.synthetic import gaussian_mixture

BUILT_WITH: dict[str, list[dict]] = {"UMAP": [], "HDBSCAN": []}


def recording(estimator: type, name: str):
    """cuML's constructor stand-in: remember the parameters, build the CPU estimator."""

    def build(**parameters):
        BUILT_WITH[name].append(parameters)
        return estimator(**parameters)

    return build


@pytest.fixture
def stand_in_cuml(monkeypatch):
    package, manifold, cluster = (
        ModuleType("cuml"),
        ModuleType("cuml.manifold"),
        ModuleType("cuml.cluster"),
    )
    manifold.UMAP = recording(umap.UMAP, "UMAP")
    cluster.HDBSCAN = recording(hdbscan.HDBSCAN, "HDBSCAN")
    package.manifold, package.cluster = manifold, cluster
    for name, module in {
        "cuml": package,
        "cuml.manifold": manifold,
        "cuml.cluster": cluster,
    }.items():
        monkeypatch.setitem(sys.modules, name, module)
    for calls in BUILT_WITH.values():
        calls.clear()


@pytest.fixture
def not_installed(monkeypatch):
    """Make an optional package unimportable, whether or not this machine has it."""

    def hide(*names: str) -> None:
        for name in names:
            monkeypatch.setitem(sys.modules, name, None)

    return hide


def test_missing_cuml_names_the_setting(not_installed):
    not_installed("cuml", "cuml.manifold", "cuml.cluster")
    matrix = np.random.default_rng(0).normal(size=(50, 3))
    with pytest.raises(ValueError, match=r"embedding.backend 'cuml' needs the cuml package"):
        embed(matrix, EmbeddingSettings(backend="cuml"), seed=0)
    with pytest.raises(ValueError, match=r"clustering.backend 'cuml' needs the cuml package"):
        cluster_embedding(matrix[:, :2], ClusteringSettings(backend="cuml"))


def test_missing_fast_hdbscan_says_how_to_install_it(not_installed):
    not_installed("fast_hdbscan")
    with pytest.raises(ValueError, match=r"recursive_clusters\[fast\]"):
        cluster_embedding(np.zeros((40, 2)), ClusteringSettings(backend="fast_hdbscan"))


def test_cuml_umap_gets_the_cpu_parameters_and_every_row(stand_in_cuml):
    matrix, _ = gaussian_mixture(1200, 5, n_clusters=3, separation=10.0, seed=0)
    settings = EmbeddingSettings(backend="cuml", fit_sample_size=1000)
    coordinates = embed(matrix, settings, seed=7)
    (parameters,) = BUILT_WITH["UMAP"]
    cpu = umap_estimator("umap", len(matrix), EmbeddingSettings(), 7).get_params()
    assert parameters == {key: cpu[key] for key in parameters}  # same choices, minus n_jobs
    assert "n_jobs" not in parameters
    # the sampled fit + transform path runs through the chosen backend: every row is placed
    assert coordinates.shape == (1200, 2) and np.isfinite(coordinates).all()


def test_cuml_hdbscan_gets_the_cpu_parameters_and_labels(stand_in_cuml):
    matrix, _ = gaussian_mixture(600, 3, n_clusters=3, separation=10.0, seed=1)
    gpu = cluster_embedding(matrix[:, :2], ClusteringSettings(backend="cuml"))
    cpu = cluster_embedding(matrix[:, :2], ClusteringSettings())
    (parameters,) = BUILT_WITH["HDBSCAN"]
    assert parameters["min_cluster_size"] == cpu.min_cluster_size
    assert "core_dist_n_jobs" not in parameters
    assert adjusted_rand_score(cpu.labels, gpu.labels) == 1.0
    assert np.allclose(cpu.persistence, gpu.persistence)
