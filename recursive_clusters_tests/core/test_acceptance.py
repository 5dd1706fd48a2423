"""The split-acceptance rule: real clusters pass, a Gaussian blob's islands do not."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_blobs

from recursive_clusters.core import acceptance
from recursive_clusters.core.acceptance import (
    Candidates,
    PerturbedRun,
    SplitEvidence,
    assess_split,
    jaccard_band,
    match_children,
    mean_pairwise_ari,
    null_reference,
    perturbed_runs,
)
from recursive_clusters.core.clustering import NodeClustering, cluster_embedding
from recursive_clusters.core.embedding import fit_layout
from recursive_clusters.core.recursive import RecursiveClusterer, finish_node
from recursive_clusters.core.settings import Settings, SettingsError, parse_settings
from recursive_clusters.core.synthetic import gaussian_blob, planted_hierarchy
from recursive_clusters.core.tree import decide_split

SEED = 11
SETTINGS = Settings()


Node = tuple[np.ndarray, np.ndarray, NodeClustering, list[PerturbedRun]]


def _node(matrix: np.ndarray, seed: int) -> Node:
    """A node's matrix, layout, clustering and perturbed runs, as ``cluster_node`` makes them."""
    layout = fit_layout(matrix, SETTINGS.embedding, seed)
    clustering = cluster_embedding(layout.coordinates, SETTINGS.clustering, seed)
    runs = perturbed_runs(layout, matrix, SETTINGS, seed)
    return matrix, layout.coordinates, clustering, runs


@pytest.fixture(scope="module")
def blobs() -> Node:
    """Three well-separated blobs: structure that any rule must accept."""
    matrix, _ = make_blobs(n_samples=450, n_features=10, centers=3, random_state=3)
    node = _node(matrix, SEED)
    assert node[2].n_children == 3
    return node


@pytest.fixture(scope="module")
def blob() -> Node:
    """One Gaussian on which UMAP + HDBSCAN nonetheless reports two or more clusters."""
    for seed in range(5):
        node = _node(gaussian_blob(600, 10, seed), seed)
        if node[2].n_children >= 2:
            return node
    pytest.fail("no seed made HDBSCAN split the blob: the test premise no longer holds")


def _clustering(sizes: list[int], noise: int = 0) -> NodeClustering:
    labels = np.concatenate([np.full(size, k) for k, size in enumerate(sizes)] + [[-1] * noise])
    return NodeClustering(
        labels=labels.astype(np.int64),
        probabilities=np.ones(len(labels)),
        persistence=np.full(len(sizes), 0.5),
        min_cluster_size=15,
    )


@pytest.fixture
def no_extra_runs(monkeypatch):
    """Fail if the rule embeds anything: the cheap rejections must not."""

    def forbidden(*args, **kwargs):
        raise AssertionError("an extra embed+cluster run was made")

    monkeypatch.setattr(acceptance, "embed", forbidden)


def test_clear_structure_is_accepted(blobs):
    matrix, embedding, clustering, runs = blobs
    evidence = assess_split(matrix, embedding, clustering, SETTINGS, SEED, runs)
    assert evidence.accepted, evidence.reason
    assert evidence.reason.startswith("stable sub-structure")
    assert sorted(evidence.child_stability) == [0, 1, 2]
    assert min(evidence.child_stability.values()) > 0.9
    scores = evidence.scores
    assert scores["validity"] > max(scores["null_validity"], 0) + 0.3
    assert scores["persistence"] > scores["null_persistence"] + 0.3
    json.dumps(scores, allow_nan=False)  # stored as JSON and shown as Dagster metadata


def test_the_finest_reproducible_granularity_is_kept(blobs):
    """A partition that the perturbed runs cannot find again (here: labels dealt at random
    across the blobs) does not make the node a leaf when a coarser one is reproducible."""
    matrix, embedding, clustering, runs = blobs
    rng = np.random.default_rng(0)
    unstable = NodeClustering(
        labels=rng.permutation(np.arange(len(matrix)) % 4),
        probabilities=np.ones(len(matrix)),
        persistence=np.full(4, 0.5),
        min_cluster_size=clustering.min_cluster_size,
    )
    settings = parse_settings({"acceptance": {"granularities": [1.0, 2.5]}})
    evidence = assess_split(matrix, embedding, [unstable, clustering], settings, SEED, runs)
    assert evidence.accepted and evidence.choice == 1, evidence.reason
    assert evidence.scores["granularity"] == 2.5
    assert evidence.scores["stability_1x"] < 0.5 < evidence.scores["stability_2.5x"]
    alone = assess_split(matrix, embedding, [unstable], settings, SEED, runs)
    assert not alone.accepted and "at any granularity" in alone.reason


def test_coarser_granularities_are_clustered_only_when_needed(blobs, monkeypatch):
    """Blobs reproducible at 1x: HDBSCAN never runs at 2.5x or 5x (the costliest), and the
    verdict is the one the eagerly clustered candidates give."""
    matrix, embedding, _, runs = blobs
    eager = [
        cluster_embedding(embedding, SETTINGS.clustering.at_granularity(factor), SEED)
        for factor in SETTINGS.acceptance.granularities
    ]
    sizes = []
    real = acceptance.cluster_embedding

    def recording(points, settings, seed=0):
        sizes.append(settings.min_cluster_size)
        return real(points, settings, seed)

    monkeypatch.setattr(acceptance, "cluster_embedding", recording)
    lazy = Candidates(embedding, SETTINGS, SEED)
    evidence = assess_split(matrix, embedding, lazy, SETTINGS, SEED, runs)
    assert evidence.accepted and evidence.choice == 0
    assert set(sizes) == {SETTINGS.clustering.min_cluster_size}
    assert evidence == assess_split(matrix, embedding, eager, SETTINGS, SEED, runs)


def test_dbcv_decides_when_the_backend_reports_no_persistence(blobs, monkeypatch):
    monkeypatch.setattr(acceptance, "persistence", lambda clustering: float("nan"))
    matrix, embedding, clustering, runs = blobs
    evidence = assess_split(matrix, embedding, clustering, SETTINGS, SEED, runs)
    assert evidence.accepted and "DBCV" in evidence.reason
    assert "persistence" not in evidence.reason and "persistence" not in evidence.scores


def test_same_seed_same_evidence(blobs):
    matrix, embedding, clustering, runs = blobs
    first = assess_split(matrix, embedding, clustering, SETTINGS, SEED, runs)
    assert assess_split(matrix, embedding, clustering, SETTINGS, SEED, runs) == first


def test_a_gaussian_blob_is_rejected_with_its_numbers(blob):
    matrix, embedding, clustering, runs = blob
    evidence = assess_split(matrix, embedding, clustering, SETTINGS, SEED, runs)
    assert not evidence.accepted
    assert evidence.reason.startswith("no stable sub-structure: ")
    assert any(char.isdigit() for char in evidence.reason)
    scores, rule = evidence.scores, SETTINGS.acceptance
    assert scores["stability"] < rule.min_stability or (
        scores["persistence"] < scores["null_persistence"] + rule.min_persistence_gain
    )
    json.dumps(evidence.scores, allow_nan=False)


@pytest.mark.parametrize(
    ("sizes", "words"), [([], "every row is noise"), ([200], "a single cluster")]
)
def test_no_or_one_child_is_rejected_cheaply(no_extra_runs, sizes, words):
    clustering = _clustering(sizes, noise=40)
    matrix = np.random.default_rng(0).normal(size=(len(clustering.labels), 5))
    evidence = assess_split(matrix, np.zeros((len(matrix), 2)), clustering, SETTINGS, SEED, [])
    assert not evidence.accepted and words in evidence.reason
    assert evidence.child_stability == {}
    assert evidence.scores["n_children"] == len(sizes)


def test_too_small_a_node_is_rejected_cheaply(no_extra_runs):
    clustering = _clustering([17, 16])  # a 26-row subsample cannot hold two clusters of 15
    matrix = np.random.default_rng(0).normal(size=(33, 5))
    evidence = assess_split(matrix, np.zeros((33, 2)), clustering, SETTINGS, SEED, [])
    assert not evidence.accepted and "too few" in evidence.reason


def test_perturbed_runs_lay_out_the_node_at_its_own_scale():
    """Each run holds 80% of the node's rows whatever its size (no 2,000-row cap: a split
    that only exists at the node's density is tested at it), from the node's own graph,
    the same for a seed; a backend without a graph re-embeds the same rows instead."""
    matrix, _ = make_blobs(n_samples=2600, n_features=6, centers=3, random_state=1)
    layout = fit_layout(matrix, SETTINGS.embedding, SEED)
    runs = perturbed_runs(layout, matrix, SETTINGS, SEED)
    assert len(runs) == SETTINGS.acceptance.stability_runs
    assert all(len(run.rows) == len(run.coordinates) == 2080 for run in runs)
    assert len({run.seed for run in runs}) == len(runs)
    assert not np.array_equal(runs[0].rows, runs[1].rows)
    again = perturbed_runs(layout, matrix, SETTINGS, SEED)
    for first, second in zip(runs, again, strict=True):
        np.testing.assert_array_equal(first.coordinates, second.coordinates)
    without_graph = dataclasses.replace(layout, reducer=object())
    rerun = perturbed_runs(without_graph, matrix, SETTINGS, SEED)
    np.testing.assert_array_equal(rerun[0].rows, runs[0].rows)
    assert rerun[0].coordinates.shape == runs[0].coordinates.shape


def test_no_perturbed_runs_when_untested(no_extra_runs):
    tiny = np.random.default_rng(0).normal(size=(33, 5))
    layout = fit_layout(tiny, SETTINGS.embedding, SEED)
    assert perturbed_runs(layout, tiny, SETTINGS, SEED) == []  # too small to hold 2 children
    matrix, _ = make_blobs(n_samples=200, n_features=5, centers=2, random_state=0)
    layout = fit_layout(matrix, SETTINGS.embedding, SEED)
    off = parse_settings({"acceptance": {"enabled": False}})
    assert perturbed_runs(layout, matrix, off, SEED) == []
    assert len(perturbed_runs(layout, matrix, SETTINGS, SEED)) == SETTINGS.acceptance.stability_runs


def test_a_child_found_at_another_granularity_is_not_lost():
    reference = np.repeat([0, 1, 2, 3], 10)  # groups: {0}, {1}, {2, 3}
    perturbed = np.repeat([5, 6, 7, 7], 10)  # 0 found as is, 1 as two pieces, 2 and 3 merged
    perturbed[10:15] = 8
    best, nested = match_children(reference, perturbed, 4)
    np.testing.assert_allclose(best, [1.0, 0.5, 0.5, 0.5])
    np.testing.assert_allclose(nested, [1.0, 1.0, 1.0, 1.0])


def test_noise_and_a_merge_of_everything_reproduce_nothing():
    reference = np.repeat([0, 1], 10)
    _, nested = match_children(reference, np.full(20, -1), 2)
    np.testing.assert_allclose(nested, [0.0, 0.0])
    _, nested = match_children(reference, np.zeros(20, dtype=int), 2)
    np.testing.assert_allclose(nested, [0.0, 0.0])
    straddling = np.repeat([0, 1, 0, 1], 5)  # each found cluster is half of each child
    best, nested = match_children(reference, straddling, 2)
    np.testing.assert_allclose(best, [1 / 3, 1 / 3])
    np.testing.assert_allclose(nested, [0.0, 0.0])


def test_null_reference_matches_mean_and_covariance_even_when_singular():
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(60, 3)) @ rng.normal(size=(3, 8)) + 5.0  # rank 3 in 8 columns
    matrix[:, 0] = 2.0  # a constant column stays constant
    null = null_reference(matrix, 20_000, np.random.default_rng(1))
    assert null.shape == (20_000, 8)
    np.testing.assert_allclose(null.mean(axis=0), matrix.mean(axis=0), atol=0.1)
    np.testing.assert_allclose(np.cov(null.T), np.cov(matrix.T), atol=0.15 * np.abs(matrix).max())
    np.testing.assert_allclose(null[:, 0], 2.0)


def test_decide_split_follows_the_evidence():
    clustering = _clustering([300, 200])
    settings = parse_settings({"recursion": {"max_depth": 2, "min_node_size": 100}})
    rejected = SplitEvidence(False, "no stable sub-structure: test", {}, {})
    decision = decide_split(clustering, 1, settings, rejected)
    assert not decision.accepted and decision.reason == rejected.reason
    assert decision.zoom_into == ()
    accepted = SplitEvidence(True, "stable sub-structure: test", {}, {})
    decision = decide_split(clustering, 1, settings, accepted)
    assert decision.accepted and decision.zoom_into == (0, 1)
    assert decision.reason.endswith(accepted.reason)


def test_disabled_acceptance_keeps_the_old_rule(blob):
    matrix, embedding, _, _ = blob
    settings = parse_settings({"acceptance": {"enabled": False}})
    node = finish_node(embedding, np.arange(len(matrix)), "root", settings, matrix)
    assert node.evidence is None and node.decision.accepted
    assert node.summary()["acceptance"] == {} and node.summary()["child_stability"] == {}


def test_the_tree_of_a_blob_is_one_leaf_and_planted_leaves_are_found():
    blob_model = RecursiveClusterer(Settings()).fit(gaussian_blob(700, 12, 3))
    assert len(blob_model.nodes_) == 1
    root = blob_model.tree_.iloc[0]
    assert not root["split_accepted"] and root["reason"]
    assert set(blob_model.labels_) == {"root"}
    matrix, top, _ = planted_hierarchy(600, 10, 3, 1, 12, 0, 0)
    model = RecursiveClusterer(parse_settings({"recursion": {"max_depth": 2}})).fit(matrix)
    summary = model.tree_.set_index("path").loc["root"]
    assert summary["split_accepted"] and summary["reason"].count("stable sub-structure") == 1
    assert set(summary["child_stability"]) == {"0", "1", "2"}
    assert summary["acceptance"]["stability"] > 0.9
    assert len(model.nodes_) == 4  # the three planted clusters were tested and kept whole
    assert not any(node.decision.accepted for path, node in model.nodes_.items() if path != "root")


def test_settings_bounds_are_enforced():
    assert Settings().acceptance.enabled
    with pytest.raises(SettingsError, match="acceptance.min_stability"):
        parse_settings({"acceptance": {"min_stability": 1.5}})


@pytest.mark.parametrize(
    ("value", "band"),
    [(0.2, "dissolved"), (0.6, "weak"), (0.7, "weak"), (0.75, "patterns"), (0.85, "stable"),
     (1.0, "stable"), (math.nan, "dissolved")],
)  # fmt: skip
def test_jaccard_band(value, band):
    assert jaccard_band(value) == band


def test_mean_ari_between_runs_on_common_rows():
    first = pd.Series([0, 0, 1, 1], index=[0, 1, 2, 3])
    same = pd.Series([5, 5, 7, 7, 7], index=[0, 1, 2, 3, 9])
    assert mean_pairwise_ari([first, same]) == 1.0
