"""Cluster one node's 2-D embedding with HDBSCAN and name the clusters canonically."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recursive_clusters.core.embedding import embed
from recursive_clusters.core.optional import import_backend
from recursive_clusters.core.settings import ClusteringSettings, Settings

NOISE = -1


@dataclass(frozen=True)
class NodeClustering:
    """HDBSCAN's result for one node, children numbered 0..k-1 by decreasing size."""

    labels: np.ndarray  # int, one per row, NOISE for noise
    probabilities: np.ndarray  # HDBSCAN membership strength per row
    persistence: np.ndarray  # HDBSCAN cluster persistence, indexed by child label
    min_cluster_size: int

    @property
    def n_children(self) -> int:
        return len(self.persistence)

    @property
    def noise_fraction(self) -> float:
        return float(np.mean(self.labels == NOISE)) if len(self.labels) else 0.0

    def child_sizes(self) -> dict[int, int]:
        return {k: int(np.sum(self.labels == k)) for k in range(self.n_children)}


def canonical_labels(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Renumber clusters by decreasing size, ties by the first row each holds, so names
    depend neither on HDBSCAN's own numbering nor on where UMAP put the clusters (umap-learn
    can place the pieces of a disconnected k-NN graph differently in a later fit in the same
    process: equal-sized blobs then swapped numbers when ties went by centroid). Returns
    (new labels, old label of each new one)."""
    found = [k for k in np.unique(labels) if k != NOISE]
    order = sorted(found, key=lambda k: (-int(np.sum(labels == k)), int(np.argmax(labels == k))))
    mapping = {old: new for new, old in enumerate(order)}
    relabelled = np.array([mapping.get(k, NOISE) for k in labels], dtype=np.int64)
    return relabelled, np.array(order, dtype=np.int64)


def hdbscan_estimator(backend: str, **parameters: object):
    """An unfitted HDBSCAN of the configured implementation (same parameters, same labels
    convention); the optional ones (fast_hdbscan, cuML on a GPU) are imported only here."""
    if backend == "fast_hdbscan":
        return import_backend("fast_hdbscan", "clustering.backend").HDBSCAN(**parameters)
    if backend == "cuml":
        return import_backend("cuml.cluster", "clustering.backend").HDBSCAN(**parameters)
    import hdbscan

    return hdbscan.HDBSCAN(core_dist_n_jobs=1, **parameters)


def cluster_embedding(
    embedding: np.ndarray, settings: ClusteringSettings, seed: int = 0
) -> NodeClustering:
    """HDBSCAN on a node's embedding with the minimum cluster size resolved for its size.

    A node smaller than the minimum cluster size cannot hold a cluster: it is all noise
    (the caller decides whether that is an error, as at the root, or a leaf). A node larger
    than ``settings.fit_sample_size`` is clustered on a sample (seeded by ``seed``) and the
    other rows take the label of their nearest sampled row.
    """
    n_rows = embedding.shape[0]
    sample = None
    if n_rows > settings.fit_sample_size:
        rng = np.random.default_rng(seed)
        sample = np.sort(rng.choice(n_rows, settings.fit_sample_size, replace=False))
    fitted = embedding if sample is None else embedding[sample]
    min_size = settings.resolve_min_cluster_size(len(fitted))
    if len(fitted) < max(min_size, 2):
        return NodeClustering(
            labels=np.full(n_rows, NOISE, dtype=np.int64),
            probabilities=np.zeros(n_rows),
            persistence=np.zeros(0),
            min_cluster_size=min_size,
        )
    clusterer = hdbscan_estimator(
        settings.backend,
        min_cluster_size=min_size,
        min_samples=settings.resolve_min_samples(len(fitted)),
        cluster_selection_method=settings.cluster_selection_method,
    ).fit(fitted.astype(np.float64))
    raw_labels = np.asarray(clusterer.labels_)
    probabilities = np.asarray(clusterer.probabilities_, dtype=float)
    if sample is not None:
        raw_labels, probabilities = extend_to_nearest(embedding, sample, raw_labels, probabilities)
    labels, old_of_new = canonical_labels(raw_labels)
    n_found = int(labels.max()) + 1
    persistence = np.asarray(
        getattr(clusterer, "cluster_persistence_", np.full(n_found, np.nan)), dtype=float
    )
    return NodeClustering(
        labels=labels,
        probabilities=probabilities,
        persistence=persistence[old_of_new] if len(old_of_new) else np.zeros(0),
        min_cluster_size=min_size,
    )


def extend_to_nearest(
    embedding: np.ndarray, sample: np.ndarray, labels: np.ndarray, probabilities: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Labels (and membership strengths) of every row from a clustered sample of the rows:
    each row takes those of its nearest sampled row in the 2-D embedding (noise stays noise)."""
    from sklearn.neighbors import KDTree

    nearest = KDTree(embedding[sample]).query(embedding, k=1, return_distance=False)[:, 0]
    return labels[nearest], probabilities[nearest]


def embed_and_cluster(
    matrix: np.ndarray, settings: Settings, seed: int
) -> tuple[np.ndarray, NodeClustering]:
    """One node's whole procedure: UMAP to 2-D, then HDBSCAN on the result."""
    embedding = embed(matrix, settings.embedding, seed)
    return embedding, cluster_embedding(embedding, settings.clustering, seed)


NOISE_VOTERS = 10  # clustered neighbours that vote on a noise row's child


def assign_noise_to_nearest(
    embedding: np.ndarray, labels: np.ndarray, max_spacings: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Give noise rows the child most of their nearest clustered rows belong to, when close.

    "Close": the nearest clustered row is at most ``max_spacings`` times the median distance
    between a clustered row and its nearest clustered neighbour, so the rule scales with each
    node's embedding and rows far from every cluster stay noise. A vote of the
    ``NOISE_VOTERS`` nearest clustered rows, not the nearest centroid, so a big cluster does
    not swallow the noise at the edges of its smaller neighbours. Returns the new labels, a
    mask of the rows that were noise and got a child, and their vote share (the confidence of
    the assignment; 0 elsewhere).
    """
    from sklearn.neighbors import NearestNeighbors

    labels = np.asarray(labels)
    clustered = labels != NOISE
    assigned = np.zeros(len(labels), dtype=bool)
    share = np.zeros(len(labels))
    if clustered.sum() < 2 or clustered.all():
        return labels.copy(), assigned, share
    neighbours = NearestNeighbors(n_neighbors=2).fit(embedding[clustered])
    spacing = float(np.median(neighbours.kneighbors(embedding[clustered])[0][:, 1]))
    noise_rows = np.flatnonzero(~clustered)
    voters = min(NOISE_VOTERS, int(clustered.sum()))
    distance, nearest = neighbours.kneighbors(embedding[noise_rows], n_neighbors=voters)
    votes = labels[clustered][nearest]  # (noise rows, voters)
    found = np.unique(labels[clustered])
    counts = (votes[:, :, None] == found[None, None, :]).sum(axis=1)
    winner = found[counts.argmax(axis=1)]
    close = distance[:, 0] <= max_spacings * spacing
    new_labels = labels.copy()
    new_labels[noise_rows[close]] = winner[close]
    assigned[noise_rows[close]] = True
    share[noise_rows[close]] = counts.max(axis=1)[close] / voters
    return new_labels, assigned, share
