"""Embed one node's rows into 2-D with UMAP, after an optional PCA for wide data."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Layout:
    """A node's UMAP layout and the fitted UMAP it came from, so the split test can lay the
    node's own k-NN graph out again (``relayout``) instead of re-embedding from scratch."""

    coordinates: np.ndarray  # (rows, 2) float32, one per input row
    reducer: object  # the fitted UMAP: its fuzzy k-NN graph ``graph_`` spans ``graph_rows``
    graph_rows: np.ndarray  # input row of each graph vertex (all rows, or the fitted sample)
    graph_data: np.ndarray  # the (reduced) features of those rows, as UMAP saw them

    @property
    def has_graph(self) -> bool:
        """Whether the backend exposes the graph (umap-learn does; cuML's may not)."""
        return getattr(self.reducer, "graph_", None) is not None

    def relayout(self, vertices: np.ndarray, seed: int) -> np.ndarray:
        """A new layout of the graph vertices ``vertices`` (positions in ``graph_rows``) with
        a new seed: UMAP's own optimisation (epochs, spectral start, a/b, repulsion) on the
        node's fuzzy k-NN graph restricted to them. The neighbourhoods stay those of the whole
        node, so a split that only exists at the node's own density is tested at it; the cost
        is the layout alone (measured: 3 s on 9,400 of MNIST's 11,800 4s and 9s, against
        31 s for the node's own fit and 9.4 s for a re-embedding of the same rows)."""
        sub = copy.copy(self.reducer)  # the fitted UMAP with the restricted graph, unchanged
        sub.graph_ = self.reducer.graph_.tocsr()[vertices][:, vertices]
        # umap-learn's own step from graph to layout (its hook for subclasses, as
        # ParametricUMAP uses it), so the re-layout follows the node's fit in every parameter,
        # the number of epochs included: umap-learn gives a graph of up to 10,000 vertices 500
        # and a larger one 200, so a node of 11,000 rows would otherwise be re-laid out with
        # 2.5 times the optimisation of its own layout.
        epochs = self.reducer.n_epochs or (500 if len(self.graph_rows) <= 10_000 else 200)
        with single_threaded_blas():
            coordinates, _ = sub._fit_embed_data(
                self.graph_data[vertices], epochs, "spectral", np.random.RandomState(seed)
            )
        return np.asarray(coordinates, dtype=np.float32)


def embed(matrix: np.ndarray, settings: EmbeddingSettings, seed: int) -> np.ndarray:
    """UMAP 2-D coordinates (float32, one row per input row), deterministic for a seed."""
    return fit_layout(matrix, settings, seed).coordinates


def fit_layout(
    matrix: np.ndarray,
    settings: EmbeddingSettings,
    seed: int,
    placed: Callable[[int], None] | None = None,
) -> Layout:
    """UMAP 2-D coordinates of ``matrix``'s rows and the fitted UMAP, deterministic for a seed.

    Above ``fit_sample_size`` rows UMAP learns the layout from a sample and places the rest
    (``place_rows``): the fit's cost grows faster than linearly, the placement's does not.
    ``placed(n)`` is called after each chunk of ``n`` placed rows, for progress reports
    (``placed(0)`` first, as the placement begins).
    """
    n_rows = matrix.shape[0]
    if n_rows < 4:
        raise ValueError(f"Cannot embed {n_rows} rows: UMAP needs at least 4.")
    reducer = umap_estimator(settings.backend, n_rows, settings, seed)
    if n_rows <= settings.fit_sample_size:
        reduced = reduce_width(np.asarray(matrix, dtype=np.float32), settings, seed)
        with single_threaded_blas():  # the spectral initialisation is BLAS work too
            coordinates = reducer.fit_transform(reduced).astype(np.float32)
        return Layout(coordinates, reducer, np.arange(n_rows), reduced)
    sample = np.random.default_rng(seed).choice(n_rows, settings.fit_sample_size, replace=False)
    rest = np.setdiff1d(np.arange(n_rows), sample)
    coordinates = np.empty((n_rows, 2), dtype=np.float32)
    if matrix.shape[1] > settings.pca_above_columns:
        # PCA is fitted on every row (as below the sample size); one float32 copy of the node
        reduced = reduce_width(np.asarray(matrix, dtype=np.float32), settings, seed)

        def rows_of(rows: np.ndarray) -> np.ndarray:
            return reduced[rows]

    else:  # narrow: rows are converted chunk by chunk, never the whole node at once

        def rows_of(rows: np.ndarray) -> np.ndarray:
            return np.asarray(matrix[rows], dtype=np.float32)

    fitted = rows_of(sample)
    with single_threaded_blas():
        coordinates[sample] = reducer.fit_transform(fitted)
        method = placement_method(settings, n_rows)
        if placed is not None:
            placed(0)  # the placement begins: the fit's time is not the placement's
        for start in range(0, len(rest), PLACEMENT_CHUNK_ROWS):
            chunk = rest[start : start + PLACEMENT_CHUNK_ROWS]
            coordinates[chunk] = place_rows(reducer, rows_of(chunk), method)
            if placed is not None:
                placed(len(chunk))
    return Layout(coordinates, reducer, sample, fitted)


def rows_to_place(n_rows: int, settings: EmbeddingSettings) -> int:
    """How many of a node's ``n_rows`` rows are placed on the layout of its fit sample."""
    return max(0, n_rows - settings.fit_sample_size)


# Rows placed at once: bounds the placement's memory; a node of up to this many rows past its
# fit sample is placed in one call, as before chunking (umap-learn's transform seeds each call
# alike, so chunks would lay out a smaller node differently).
PLACEMENT_CHUNK_ROWS = 250_000


def placement_method(settings: EmbeddingSettings, n_rows: int) -> str:
    """How the rows past the fit sample are placed: ``settings.placement``, where "auto" is
    UMAP's own transform up to ``neighbour_placement_above`` rows and "neighbours" above."""
    if settings.backend == "cuml":  # cuML's UMAP has no graph mode: its transform runs on a GPU
        return "transform"
    if settings.placement != "auto":
        return settings.placement
    return "neighbours" if n_rows > settings.neighbour_placement_above else "transform"


def place_rows(reducer, rows: np.ndarray, method: str) -> np.ndarray:
    """2-D positions of new rows on a fitted UMAP's layout.

    "transform": umap-learn's ``transform``: the rows' fuzzy k-NN memberships in the fitted
    sample (its search index), their weighted mean position, then 30 epochs of layout
    optimisation per row. "neighbours": the same memberships and weighted mean, without the
    optimisation, which is ~85% of the transform's time (measured on 100,000 planted rows:
    16 s against 119 s); the rows land among the sampled rows they are nearest to, which is
    all that clustering them needs.
    """
    if method == "transform":
        return np.asarray(reducer.transform(rows), dtype=np.float32)
    graph_mode = copy.copy(reducer)
    graph_mode.transform_mode = "graph"
    memberships = graph_mode.transform(rows).tocsr()
    memberships.eliminate_zeros()
    return weighted_mean_positions(memberships, reducer.embedding_)


def weighted_mean_positions(memberships, embedding: np.ndarray) -> np.ndarray:
    """Each row's position: the membership-weighted mean of its sampled neighbours' positions,
    or the position of a neighbour it coincides with (membership 1). umap-learn's
    ``init_graph_transform`` computes the same in a Python loop over the rows (~100 us each:
    most of the placement's time); here one sparse product does it."""
    sums = np.asarray(memberships.sum(axis=1), dtype=np.float64).ravel()
    with np.errstate(invalid="ignore", divide="ignore"):  # a row without neighbours: NaN
        positions = (memberships @ embedding.astype(np.float64)) / sums[:, None]
    exact = memberships.copy()
    exact.data = (exact.data == 1).astype(np.int8)
    exact.eliminate_zeros()
    coinciding = np.flatnonzero(np.diff(exact.indptr))
    positions[coinciding] = embedding[exact.indices[exact.indptr[coinciding]]]
    return positions.astype(np.float32)
