"""Embed one node's rows into 2-D with UMAP, after an optional PCA for wide data."""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA

from recursive_clusters.core.optional import import_backend
from recursive_clusters.core.parallelism import single_threaded_blas
from recursive_clusters.core.settings import EmbeddingSettings


def reduce_width(matrix: np.ndarray, settings: EmbeddingSettings, seed: int) -> np.ndarray:
    """PCA to ``pca_components`` when the data is wider than ``pca_above_columns``.

    UMAP's neighbour search costs grow with the width; 50 principal components keep the
    neighbourhoods of typical tabular and image data while cutting that cost.
    """
    n_rows, n_cols = matrix.shape
    if n_cols <= settings.pca_above_columns:
        return matrix
    n_components = min(settings.pca_components, n_rows - 1, n_cols)
    with single_threaded_blas():
        return PCA(n_components=n_components, random_state=seed).fit_transform(matrix)


def umap_estimator(backend: str, n_rows: int, settings: EmbeddingSettings, seed: int):
    """An unfitted 2-D UMAP of the configured implementation: umap-learn on the CPU, or
    RAPIDS cuML's on a GPU (same parameters; seeded, though a GPU layout is only
    reproducible on the same hardware and library versions)."""
    parameters = {
        "n_components": 2,
        "n_neighbors": min(settings.n_neighbors, n_rows - 1),
        "min_dist": settings.min_dist,
        "metric": settings.metric,
        "random_state": seed,
        "init": "spectral" if n_rows > 20 else "random",
    }
    if backend == "cuml":
        return import_backend("cuml.manifold", "embedding.backend").UMAP(**parameters)
    import umap  # imported lazily: it costs seconds and triggers numba compilation

    return umap.UMAP(n_jobs=1, **parameters)  # a seed makes umap-learn single-threaded anyway


def embed(matrix: np.ndarray, settings: EmbeddingSettings, seed: int) -> np.ndarray:
    """UMAP 2-D coordinates (float32, one row per input row), deterministic for a seed.

    Above ``fit_sample_size`` rows UMAP learns the layout from a sample and places the rest
    with ``transform``: the fit's cost grows faster than linearly, the transform's does not.
    """
    n_rows = matrix.shape[0]
    if n_rows < 4:
        raise ValueError(f"Cannot embed {n_rows} rows: UMAP needs at least 4.")
    reduced = reduce_width(np.asarray(matrix, dtype=np.float32), settings, seed)
    reducer = umap_estimator(settings.backend, n_rows, settings, seed)
    with single_threaded_blas():  # the spectral initialisation is BLAS work too
        if n_rows <= settings.fit_sample_size:
            return reducer.fit_transform(reduced).astype(np.float32)
        sample = np.random.default_rng(seed).choice(n_rows, settings.fit_sample_size, replace=False)
        rest = np.setdiff1d(np.arange(n_rows), sample)
        coordinates = np.empty((n_rows, 2), dtype=np.float32)
        coordinates[sample] = reducer.fit_transform(reduced[sample])
        coordinates[rest] = reducer.transform(reduced[rest])
    return coordinates
