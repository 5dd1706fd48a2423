"""Whether a node's clustering is structure of the data or an artefact of UMAP + HDBSCAN.

UMAP's 2-D layout of structure-free data breaks into islands and HDBSCAN reports them as
clusters; every zoom-in of the recursion is one more chance to. A split is accepted only when

1. it is reproducible: laying out a subsample of the node's rows again with a new seed and
   re-clustering it finds the children again (clusterboot's Jaccard, up to nesting: on
   hierarchical data HDBSCAN picks the groups in one run and their sub-clusters in the next,
   which is not instability), and
2. it is better separated than what the very same procedure finds in structure-free data the
   node could have been: a Gaussian with the node's mean and covariance (the null reference of
   the gap statistic and SigClust), measured by HDBSCAN's cluster persistence (DBCV is
   reported too, and decides only for a backend without persistence).

The perturbed runs are made at the node's own scale: each lays out ``subsample_fraction`` of
the rows UMAP was fitted on, on the node's own fuzzy k-NN graph restricted to them
(``Layout.relayout``), so every row keeps the neighbourhood it had in the node. A small sample
re-embedded on its own would not test the same thing: its 15 nearest neighbours reach much
further, and a split that exists at the node's density can vanish (MNIST's 4s and 9s: the
13,763-row node of the 70,000 digits scored Jaccard 0.64 on 2,000-row samples; the 11,791
training 4s and 9s score 0.95-0.97 on their own graph).

The node is clustered at each of ``acceptance.granularities`` (multiples of the minimum
cluster size); the finest reproducible partition is kept and tested against the null. A node
with no reproducible partition, or whose kept one fails the null test, is a leaf, with the
decisive numbers in the reason. The extra cost is ``stability_runs`` layouts of the node's
graph (re-clustered at each granularity the test reaches) and, if one passes, one null run
per node on at most ``acceptance.max_rows`` rows.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components
from sklearn.metrics import adjusted_rand_score

from recursive_clusters.core.clustering import NOISE, NodeClustering, cluster_embedding
from recursive_clusters.core.embedding import Layout, embed, reduce_width
from recursive_clusters.core.parallelism import single_threaded_blas
from recursive_clusters.core.settings import Settings

REJECTED = "no stable sub-structure"
ACCEPTED = "stable sub-structure"
_MIN_CLUSTER_SAMPLE = 3  # DBCV's core distances need a few rows of a cluster in the sample


@dataclass(frozen=True)
class SplitEvidence:
    """The verdict on one node's clustering and the figures behind it."""

    accepted: bool
    reason: str  # short, human readable, with the decisive numbers
    scores: dict[str, float]  # JSON-serialisable floats
    child_stability: dict[int, float]  # per child Jaccard up to nesting; empty if not computed
    choice: int = 0  # which candidate clustering (granularity) the verdict is about


@dataclass(frozen=True)
class PerturbedRun:
    """One perturbed layout of a node: the node's rows it holds (positions in the node) and
    their coordinates, laid out with ``seed`` (which also seeds the run's clustering)."""

    rows: np.ndarray
    coordinates: np.ndarray
    seed: int


def subsample_size(n_rows: int, settings: Settings) -> int:
    """Rows in each perturbed run of a node of ``n_rows`` rows: ``subsample_fraction`` of the
    rows its UMAP is fitted on (all of them, up to ``embedding.fit_sample_size``)."""
    fitted = min(n_rows, settings.embedding.fit_sample_size)
    return round(settings.acceptance.subsample_fraction * fitted)


def too_small_to_test(sample_rows: int, settings: Settings) -> bool:
    """A subsample that cannot hold two clusters of the minimum size cannot reproduce a split."""
    return sample_rows < 2 * settings.clustering.resolve_min_cluster_size(sample_rows)


def perturbed_runs(
    layout: Layout, matrix: np.ndarray, settings: Settings, seed: int
) -> list[PerturbedRun]:
    """``acceptance.stability_runs`` layouts of a ``subsample_fraction`` subsample of the rows
    the node's UMAP was fitted on, each with its own seed, on the node's own k-NN graph.
    None of them when acceptance is off or the node is too small to test.

    Without a graph (a backend that does not expose one) each subsample is embedded again
    from ``matrix`` (the node's rows) instead: the same rows, at a higher cost.
    """
    acceptance = settings.acceptance
    n_fitted = len(layout.graph_rows)
    size = subsample_size(len(layout.coordinates), settings)
    if not acceptance.enabled or too_small_to_test(size, settings):
        return []
    rng = np.random.default_rng(seed)
    runs = []
    for _ in range(acceptance.stability_runs):
        vertices = np.sort(rng.choice(n_fitted, size=size, replace=False))
        run_seed = int(rng.integers(2**31 - 1))
        rows = layout.graph_rows[vertices]
        coordinates = (
            layout.relayout(vertices, run_seed)
            if layout.has_graph
            else embed(matrix[rows], settings.embedding, run_seed)
        )
        runs.append(PerturbedRun(rows, coordinates, run_seed))
    return runs


class Candidates(Sequence[NodeClustering]):
    """A node's HDBSCAN partitions at ``acceptance.granularities``, finest first, each made
    the first time it is asked for: ``assess_split`` stops at the first reproducible one, and
    the coarser ones (a larger minimum cluster size and min_samples: on a 20,000-row sample
    HDBSCAN took 2.9 s at 1x, 10 s at 2.5x and 20 s at 5x) are then never clustered."""

    def __init__(self, embedding: np.ndarray, settings: Settings, seed: int) -> None:
        self._embedding, self._settings, self._seed = embedding, settings, seed
        self._made: dict[int, NodeClustering] = {}

    def __len__(self) -> int:
        return len(self._settings.acceptance.granularities)

    def __getitem__(self, index: int) -> NodeClustering:  # type: ignore[override]
        factor = self._settings.acceptance.granularities[index]  # IndexError ends iteration
        if index not in self._made:
            clustering = self._settings.clustering.at_granularity(factor)
            self._made[index] = cluster_embedding(self._embedding, clustering, self._seed)
        return self._made[index]


def match_children(
    reference: np.ndarray, perturbed: np.ndarray, n_children: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per reference child, on the rows of one perturbed run: the best-match Jaccard
    (clusterboot) and the Jaccard up to nesting.

    Up to nesting, children and perturbed clusters that mostly (more than half) lie inside one
    another form a block, and a child scores its block's Jaccard: a child that the perturbed
    run split into pieces, or merged with whole siblings, was found at another granularity,
    not lost. A block that takes in every child reproduces no split at all and scores 0, as
    does a child that became noise.
    """
    found = np.unique(perturbed[perturbed != NOISE])
    in_child = reference[:, None] == np.arange(n_children)[None, :]
    in_found = perturbed[:, None] == found[None, :]
    overlap = in_child.T.astype(np.int64) @ in_found.astype(np.int64)
    child_sizes, found_sizes = in_child.sum(axis=0), in_found.sum(axis=0)
    union = child_sizes[:, None] + found_sizes[None, :] - overlap
    best = (overlap / np.maximum(union, 1)).max(axis=1, initial=0.0)

    linked = overlap > 0.5 * np.minimum(child_sizes[:, None], found_sizes[None, :])
    adjacency = np.zeros((n_children + len(found),) * 2, dtype=bool)
    adjacency[:n_children, n_children:] = linked
    _, block = connected_components(csr_matrix(adjacency), directed=False)
    child_block, found_block = block[:n_children], block[n_children:]
    present = child_sizes > 0
    nested = np.zeros(n_children)
    for label in np.unique(child_block[present]):
        members = child_block == label
        if members[present].all():
            continue
        rows = in_child[:, members].any(axis=1)
        matched = in_found[:, found_block == label].any(axis=1)
        nested[members] = np.sum(rows & matched) / max(np.sum(rows | matched), 1)
    return best, nested


def null_reference(matrix: np.ndarray, n_rows: int, rng: np.random.Generator) -> np.ndarray:
    """``n_rows`` draws of a Gaussian with the mean and covariance of ``matrix``'s rows.

    Drawn along the principal axes of the centred rows (mean + z * s / sqrt(n - 1) @ Vt), which
    stays exact when the covariance is singular (more columns than rows, constant pixels).
    """
    mean = matrix.mean(axis=0)
    with single_threaded_blas():  # the SVD and the product: a threaded BLAS sums in its order
        _, singular, axes = np.linalg.svd(matrix - mean, full_matrices=False)
        scales = singular / math.sqrt(max(len(matrix) - 1, 1))
        return mean + (rng.standard_normal((n_rows, len(scales))) * scales) @ axes


def validity(
    embedding: np.ndarray, labels: np.ndarray, rng: np.random.Generator, cap: int
) -> float:
    """DBCV (Moulavi et al. 2014) of a clustering of an embedding, noise counted against it.

    Computed on at most ``cap`` rows (it costs the square of a cluster's size). Fewer than two
    clusters is no separation: 0.
    """
    from hdbscan.validity import validity_index  # lazy, as in clustering: a heavy import

    if len(labels) > cap:
        keep = np.sort(rng.choice(len(labels), size=cap, replace=False))
        embedding, labels = embedding[keep], labels[keep]
    labels = np.array(labels, dtype=np.int64)
    found, counts = np.unique(labels[labels != NOISE], return_counts=True)
    labels[np.isin(labels, found[counts < _MIN_CLUSTER_SAMPLE])] = NOISE
    if np.sum(counts >= _MIN_CLUSTER_SAMPLE) < 2:
        return 0.0
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        value = float(validity_index(np.asarray(embedding, dtype=np.float64), labels))
    return value if math.isfinite(value) else 0.0


def jaccard_band(value: float) -> str:
    """Hennig's (fpc clusterboot) reading of a child's mean Jaccard: below 0.6 it dissolved;
    0.85 and above it is highly stable. An undefined value counts as dissolved."""
    if value >= 0.85:
        return "stable"
    if value >= 0.75:
        return "patterns"
    if value >= 0.6:
        return "weak"
    return "dissolved"


def mean_pairwise_ari(runs: list[pd.Series]) -> float:
    """Mean ARI between every two perturbed runs, on the rows both subsamples hold (noise is
    one more label): how much the node's whole partition moves between runs."""
    values = []
    for i, first in enumerate(runs):
        for second in runs[i + 1 :]:
            common = first.index.intersection(second.index)
            values.append(adjusted_rand_score(first.loc[common], second.loc[common]))
    return float(np.mean(values))


def persistence(clustering: NodeClustering) -> float:
    """HDBSCAN's cluster persistence averaged over the children, weighted by their sizes:
    the share of the density range over which the clusters stay apart (0 without any; NaN
    when the backend does not report it, as fast_hdbscan)."""
    sizes = np.array(list(clustering.child_sizes().values()), dtype=float)
    if not sizes.sum():
        return 0.0
    return float(np.average(clustering.persistence, weights=sizes))


def _rounded(values: dict[str, float]) -> dict[str, float]:
    """JSON-ready scores: plain floats, the undefined ones (NaN) left out."""
    return {key: round(float(value), 6) for key, value in values.items() if math.isfinite(value)}


def _stability(
    labels: np.ndarray, n_children: int, runs: list[tuple[np.ndarray, np.ndarray]]
) -> tuple[np.ndarray, np.ndarray, list[pd.Series]]:
    """Per child: mean best-match Jaccard and mean Jaccard up to nesting over perturbed runs
    (``runs``: subsample rows and the labels found on them), and each run's labels."""
    best, nested = np.zeros(n_children), np.zeros(n_children)
    for rows, perturbed in runs:
        run_best, run_nested = match_children(labels[rows], perturbed, n_children)
        best, nested = best + run_best / len(runs), nested + run_nested / len(runs)
    return best, nested, [pd.Series(perturbed, index=rows) for rows, perturbed in runs]


def _weighted(values: np.ndarray, clustering: NodeClustering) -> float:
    sizes = np.array([clustering.child_sizes()[k] for k in range(len(values))], dtype=float)
    return float(np.average(values, weights=sizes))


def assess_split(
    matrix: np.ndarray,
    embedding: np.ndarray,
    candidates: Sequence[NodeClustering] | NodeClustering,
    settings: Settings,
    seed: int,
    runs: list[PerturbedRun],
) -> SplitEvidence:
    """Test one node's clusterings (``matrix``: its rows, ``embedding``: their UMAP layout;
    ``candidates``: HDBSCAN's partitions of it at ``acceptance.granularities``, finest first,
    as ``Candidates`` makes them when asked; a single one is the finest alone; ``runs``: the
    node's ``perturbed_runs``) and choose the one the node keeps.

    Why several granularities: at the finest one HDBSCAN may cut a real two-way split into
    unstable fragments (measured on handwritten digits: {4, 9} into 5 pieces and 32% noise);
    rejecting the node then loses the stable coarse split underneath. Each candidate is
    re-clustered, at its own granularity, on the same perturbed layouts (so the extra cost
    is HDBSCAN on 2-D points), and the finest candidate whose children are reproducible is
    kept; the node is a leaf only when none is.

    Deterministic for a seed. A split that fails the stability test is rejected without the
    null run, so a structure-free node usually costs no more than its perturbed layouts.
    """
    if isinstance(candidates, NodeClustering):
        candidates = [candidates]
    acceptance = settings.acceptance
    first = candidates[0]
    scores: dict[str, float] = {
        "n_children": first.n_children,
        "noise_fraction": first.noise_fraction,
        "persistence": persistence(first),
    }
    finest_split = next((i for i, c in enumerate(candidates) if c.n_children >= 2), None)
    if finest_split is None:
        what = "every row is noise" if first.n_children == 0 else "a single cluster"
        return SplitEvidence(False, f"{REJECTED}: {what}", _rounded(scores), {})

    sample_rows = subsample_size(len(embedding), settings)
    scores["sample_rows"] = sample_rows
    if too_small_to_test(sample_rows, settings):
        smallest = settings.clustering.resolve_min_cluster_size(sample_rows)
        reason = (
            f"{REJECTED}: {len(embedding)} rows are too few to test a split "
            f"(a {sample_rows}-row subsample holds < 2 clusters of {smallest})"
        )
        return SplitEvidence(False, reason, _rounded(scores), {})

    rng = np.random.default_rng(seed)
    # Finest first, stopping at the first reproducible one: a coarser candidate (HDBSCAN with
    # a larger minimum cluster size, the costliest to run) is only clustered when needed.
    tried: dict[int, tuple[np.ndarray, np.ndarray, list[pd.Series]]] = {}
    weighted: dict[int, float] = {}
    for index in range(finest_split, len(candidates)):
        candidate = candidates[index]
        if candidate.n_children < 2:
            continue
        granularity = settings.clustering.at_granularity(acceptance.granularities[index])
        found = [
            (run.rows, cluster_embedding(run.coordinates, granularity, run.seed).labels)
            for run in runs
        ]
        tried[index] = _stability(np.asarray(candidate.labels), candidate.n_children, found)
        weighted[index] = _weighted(tried[index][1], candidate)
        scores[f"stability_{acceptance.granularities[index]:g}x"] = weighted[index]
        if weighted[index] >= acceptance.min_stability:
            break
    stable = [i for i in tried if weighted[i] >= acceptance.min_stability]
    stabilities = ", ".join(
        f"{acceptance.granularities[i]:g}x: {candidates[i].n_children} children, "
        f"Jaccard {weighted[i]:.2f}"
        for i in tried
    )
    choice = stable[0] if stable else max(tried, key=weighted.__getitem__)
    clustering = candidates[choice]
    labels = np.asarray(clustering.labels)
    best, nested, run_labels = tried[choice]
    scores.update(
        n_children=clustering.n_children,
        noise_fraction=clustering.noise_fraction,
        persistence=persistence(clustering),
        granularity=acceptance.granularities[choice],
        stability=_weighted(nested, clustering),
        stability_min=float(nested.min()),
        jaccard_best_match=_weighted(best, clustering),
    )
    if len(run_labels) >= 2:
        scores["mean_ari"] = mean_pairwise_ari(run_labels)
    child_stability = {k: round(float(value), 6) for k, value in enumerate(nested)}
    stability_text = (
        f"{acceptance.granularities[choice]:g}x min cluster size: Jaccard "
        f"{scores['stability']:.2f} up to nesting (min child {nested.min():.2f})"
    )
    if not stable:
        reason = (
            f"{REJECTED}: children not reproducible under subsampling at any granularity "
            f"({stabilities}; needs {acceptance.min_stability:.2f})"
        )
        return SplitEvidence(False, reason, _rounded(scores), child_stability, choice)

    # Wide data: the null has the moments of the node's own PCA projection (the space UMAP
    # saw), taken from the last perturbed run's rows, and at most max_rows rows.
    reduced = reduce_width(np.asarray(matrix, dtype=np.float32), settings.embedding, seed)
    null_rows = min(sample_rows, acceptance.max_rows)
    null_matrix = null_reference(reduced[runs[-1].rows], null_rows, rng)
    null_seed = int(rng.integers(2**31 - 1))
    null_embedding = embed(null_matrix, settings.embedding, null_seed)
    null_clustering = cluster_embedding(
        null_embedding,
        settings.clustering.at_granularity(acceptance.granularities[choice]),
        null_seed,
    )
    scores["validity"] = validity(embedding, labels, rng, acceptance.max_rows)
    scores["null_validity"] = validity(
        null_embedding, null_clustering.labels, rng, acceptance.max_rows
    )
    scores["null_persistence"] = persistence(null_clustering)
    scores["null_children"] = null_clustering.n_children
    scores["null_noise_fraction"] = null_clustering.noise_fraction
    # HDBSCAN's persistence decides; DBCV stands in when the backend has none (fast_hdbscan).
    # DBCV is shown either way, but it under-rates touching clusters of a UMAP layout (planted
    # sub-clusters 4 sd apart: DBCV 0.02-0.14, persistence 0.19-0.43 against nulls' <= 0.11).
    # A null DBCV below 0 is no separation, not a lower bar.
    checks = {
        "persistence": (
            scores["persistence"],
            scores["null_persistence"],
            acceptance.min_persistence_gain,
        ),
        "DBCV": (
            scores["validity"],
            max(scores["null_validity"], 0.0),
            acceptance.min_validity_gain,
        ),
    }
    checks = {name: c for name, c in checks.items() if math.isfinite(c[0] + c[1])}
    separation_text = ", ".join(
        f"{name} {observed:.2f} vs null {null:.2f}" for name, (observed, null, _) in checks.items()
    )
    decisive = next(iter(checks))
    observed, null, gain = checks[decisive]
    if observed < null + gain:
        reason = (
            f"{REJECTED}: no better separated than a structure-free Gaussian of its size and "
            f"covariance ({separation_text}; needs +{gain:.2f} {decisive} over the null)"
        )
        return SplitEvidence(False, reason, _rounded(scores), child_stability, choice)
    reason = f"{ACCEPTED}: {stability_text}; {separation_text}"
    return SplitEvidence(True, reason, _rounded(scores), child_stability, choice)
