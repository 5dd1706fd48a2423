"""How much a node's children survive perturbation: subsample the rows, re-embed and
re-cluster with a new seed, and see whether each child is found again (Hennig's clusterboot,
as in R's fpc package, with subsampling instead of the bootstrap).

UMAP + HDBSCAN always returns clusters; a child that dissolves when a fifth of the rows or the
seed changes is an artefact of one run, not a structure of the data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations

import numpy as np
from sklearn.metrics import adjusted_rand_score

from recursive_clusters.core.clustering import NOISE, embed_and_cluster
from recursive_clusters.core.settings import Settings


@dataclass
class StabilityResult:
    """Per-child mean best-match Jaccard and its band, and the agreement between runs."""

    child_jaccard: dict[int, float]
    child_band: dict[int, str]
    mean_ari: float
    runs: int


def jaccard_band(value: float) -> str:
    """Hennig's (fpc clusterboot) reading of a mean Jaccard: below 0.6 the cluster has
    dissolved; 0.85 and above it is highly stable. An undefined value (the child never fell
    in a subsample) counts as dissolved."""
    if value >= 0.85:
        return "stable"
    if value >= 0.75:
        return "patterns"
    if value >= 0.6:
        return "weak"
    return "dissolved"


def _best_jaccard(reference: np.ndarray, perturbed: np.ndarray) -> float:
    """Jaccard of the reference child's rows with the perturbed cluster most like it.
    Noise is never a match: a child that became noise has dissolved."""
    best = 0.0
    for cluster in np.unique(perturbed[perturbed != NOISE]):
        inside = perturbed == cluster
        union = np.sum(reference | inside)
        best = max(best, float(np.sum(reference & inside) / union))
    return best


def assess_stability(
    matrix: np.ndarray, reference_labels: np.ndarray, settings: Settings, seed: int
) -> StabilityResult:
    """Re-cluster ``stability_runs`` subsamples of the node and compare with its children.

    Each run draws ``stability_sample_fraction`` of the rows without replacement and a new
    seed, both from ``seed`` + the run index, so results are reproducible. A child's score is
    the best-match Jaccard on the subsampled rows, averaged over the runs it appears in. The
    runs' mutual agreement is the mean pairwise adjusted Rand index on their common rows,
    noise counted as one more label.
    """
    explanation = settings.explanation
    runs = explanation.stability_runs
    reference_labels = np.asarray(reference_labels)
    children = sorted(int(k) for k in np.unique(reference_labels) if k != NOISE)
    if runs == 0:
        return StabilityResult(child_jaccard={}, child_band={}, mean_ari=math.nan, runs=0)

    n_rows = len(matrix)
    sample_size = round(explanation.stability_sample_fraction * n_rows)
    scores: dict[int, list[float]] = {k: [] for k in children}
    samples: list[tuple[np.ndarray, np.ndarray]] = []
    for run in range(runs):
        rng = np.random.default_rng(seed + run)
        rows = np.sort(rng.choice(n_rows, size=sample_size, replace=False))
        run_seed = int(rng.integers(2**31 - 1))
        _, clustering = embed_and_cluster(matrix[rows], settings, run_seed)
        samples.append((rows, clustering.labels))
        for child in children:
            reference = reference_labels[rows] == child
            if reference.any():
                scores[child].append(_best_jaccard(reference, clustering.labels))

    child_jaccard = {k: float(np.mean(v)) if v else math.nan for k, v in scores.items()}
    aris = []
    for (rows_a, labels_a), (rows_b, labels_b) in combinations(samples, 2):
        _, in_a, in_b = np.intersect1d(rows_a, rows_b, assume_unique=True, return_indices=True)
        if len(in_a):
            aris.append(adjusted_rand_score(labels_a[in_a], labels_b[in_b]))
    return StabilityResult(
        child_jaccard=child_jaccard,
        child_band={k: jaccard_band(v) for k, v in child_jaccard.items()},
        mean_ari=float(np.mean(aris)) if aris else math.nan,
        runs=runs,
    )
