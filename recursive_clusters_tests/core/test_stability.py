"""Perturbation stability: clear blobs survive subsampling, results repeat for a seed."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from recursive_clusters.core.clustering import embed_and_cluster
from recursive_clusters.core.settings import Settings
from recursive_clusters.core.stability import StabilityResult, assess_stability, jaccard_band

SEED = 7


def settings_with_runs(runs: int) -> Settings:
    return Settings.model_validate({"explanation": {"stability_runs": runs}})


@pytest.fixture(scope="module")
def node() -> tuple[np.ndarray, np.ndarray]:
    """Well-separated blobs, and the node's own clustering of them as the reference."""
    matrix, _ = make_blobs(n_samples=300, n_features=20, centers=3, cluster_std=1.0, random_state=3)
    _, clustering = embed_and_cluster(matrix, settings_with_runs(2), SEED)
    assert clustering.n_children == 3
    return matrix, clustering.labels


@pytest.fixture(scope="module")
def result(node) -> StabilityResult:
    matrix, labels = node
    return assess_stability(matrix, labels, settings_with_runs(2), SEED)


def test_separated_blobs_are_stable(result):
    assert result.runs == 2
    assert sorted(result.child_jaccard) == [0, 1, 2]
    assert all(value > 0.85 for value in result.child_jaccard.values())
    assert set(result.child_band.values()) == {"stable"}
    assert result.mean_ari > 0.9


def test_same_seed_same_result(node, result):
    matrix, labels = node
    assert assess_stability(matrix, labels, settings_with_runs(2), SEED) == result


def test_a_planted_split_of_one_blob_dissolves(node):
    """Cutting a blob in half at random is no structure: both halves score low."""
    matrix, labels = node
    planted = labels.copy()
    blob = np.flatnonzero(labels == 0)
    planted[np.random.default_rng(0).permutation(blob)[: len(blob) // 2]] = 3
    result = assess_stability(matrix, planted, settings_with_runs(1), SEED)
    assert result.child_jaccard[0] < 0.6 and result.child_jaccard[3] < 0.6
    assert result.child_band[0] == result.child_band[3] == "dissolved"
    assert math.isnan(result.mean_ari)  # one run: nothing to compare it with


def test_no_runs(node):
    matrix, labels = node
    result = assess_stability(matrix, labels, settings_with_runs(0), SEED)
    assert result.child_jaccard == {} and result.child_band == {}
    assert math.isnan(result.mean_ari) and result.runs == 0


@pytest.mark.parametrize(
    ("value", "band"),
    [(0.2, "dissolved"), (0.6, "weak"), (0.7, "weak"), (0.75, "patterns"), (0.85, "stable"),
     (1.0, "stable"), (math.nan, "dissolved")],
)  # fmt: skip
def test_jaccard_band(value, band):
    assert jaccard_band(value) == band
