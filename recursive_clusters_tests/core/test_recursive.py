"""The per-node steps, the split rule, the tree assembly and the estimator on planted data."""

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.datasets import make_blobs
from sklearn.exceptions import NotFittedError
from sklearn.metrics import adjusted_rand_score, homogeneity_score

from recursive_clusters.core.clustering import (
    NOISE,
    NodeClustering,
    assign_noise_to_nearest,
    canonical_labels,
    cluster_embedding,
)
from recursive_clusters.core.embedding import embed
from recursive_clusters.core.paths import NOISE_NAME, NodePath
from recursive_clusters.core.recursive import RecursiveClusterer
from recursive_clusters.core.settings import (
    ClusteringSettings,
    EmbeddingSettings,
    SettingsError,
    parse_settings,
)
from recursive_clusters.core.synthetic import nested_grid_hierarchy, planted_hierarchy
from recursive_clusters.core.tree import NodeOutcome, assign_leaves, decide_split, pending_nodes
from recursive_clusters_tests.conftest import TEST_SETTINGS, planted_table

FEATURES = [f"f{i}" for i in range(8)]


@pytest.fixture(scope="module")
def planted():
    table = planted_table()
    return table[FEATURES].to_numpy(), table["true_leaf"].to_numpy()


@pytest.fixture(scope="module")
def fitted(planted):
    matrix, _ = planted
    return RecursiveClusterer(parse_settings(TEST_SETTINGS)).fit(matrix)


def test_min_cluster_size_is_relative_with_a_floor_or_absolute():
    relative = ClusteringSettings(min_cluster_size=0.02, min_cluster_size_floor=15)
    assert relative.resolve_min_cluster_size(10_000) == 200
    assert relative.resolve_min_cluster_size(300) == 15
    assert ClusteringSettings(min_cluster_size=40).resolve_min_cluster_size(10_000) == 40


def test_big_nodes_are_clustered_on_a_sample_with_the_same_granularity():
    """Above clustering.fit_sample_size HDBSCAN sees a sample (its cost grows with
    min_samples neighbours per row); the other rows follow their nearest sampled row."""
    embedding, _ = make_blobs(5000, 2, centers=4, cluster_std=1.0, random_state=0)
    whole = cluster_embedding(embedding, ClusteringSettings(min_cluster_size=0.1), seed=1)
    settings = ClusteringSettings(min_cluster_size=0.1, fit_sample_size=1000)
    sampled = cluster_embedding(embedding, settings, seed=1)
    assert sampled.min_cluster_size == 100  # 10% of the 1000 sampled rows
    assert len(sampled.labels) == len(embedding) == len(sampled.probabilities)
    assert sampled.n_children == whole.n_children
    both = (whole.labels != NOISE) & (sampled.labels != NOISE)
    assert adjusted_rand_score(whole.labels[both], sampled.labels[both]) > 0.95
    assert np.array_equal(sampled.labels, cluster_embedding(embedding, settings, seed=1).labels)
    assert ClusteringSettings(min_samples=500).resolve_min_samples(50) == 49


def test_clusters_are_numbered_by_size_whatever_hdbscan_called_them():
    labels, old_of_new = canonical_labels(np.array([1, 1, 2, 0, 0, -1, 2, 0, 2]))
    assert old_of_new.tolist() == [2, 0, 1]  # 2 and 0 hold three rows; 2 holds an earlier row
    assert labels.tolist().count(NOISE) == 1
    assert sorted(set(labels.tolist()) - {NOISE}) == [0, 1, 2]
    assert np.sum(labels == 2) == 2


def _clustering(sizes: list[int], noise: int = 0) -> NodeClustering:
    labels = np.concatenate([np.full(size, k) for k, size in enumerate(sizes)] + [[-1] * noise])
    return NodeClustering(
        labels=labels.astype(np.int64),
        probabilities=np.ones(len(labels)),
        persistence=np.ones(len(sizes)),
        min_cluster_size=10,
    )


@pytest.mark.parametrize(
    ("sizes", "level", "accepted", "zoom_into"),
    [
        ([], 1, False, ()),
        ([300], 1, False, ()),
        ([300, 200, 50], 1, True, (0, 1)),  # 50 rows: below min_node_size
        ([300, 200], 2, True, ()),  # depth limit
    ],
)
def test_split_rule(sizes, level, accepted, zoom_into):
    settings = parse_settings({"recursion": {"max_depth": 2, "min_node_size": 100}})
    decision = decide_split(_clustering(sizes, noise=5), level, settings)
    assert decision.accepted is accepted and decision.zoom_into == zoom_into
    assert decision.reason


def test_min_child_fraction_also_limits_zooming():
    settings = parse_settings(
        {"recursion": {"max_depth": 3, "min_node_size": 10, "min_child_fraction": 0.3}}
    )
    decision = decide_split(_clustering([700, 200, 100, 5]), 1, settings)
    assert decision.zoom_into == (0,)
    assert decision.child_outcomes == {  # why each child zooms or not, recorded once, here
        0: "zoomed into",
        1: "leaf: under min_child_fraction=0.3 of its parent",
        2: "leaf: under min_child_fraction=0.3 of its parent",
        3: "leaf: fewer than min_node_size=10 rows",
    }
    deepest = decide_split(_clustering([700, 200]), 3, settings)
    assert set(deepest.child_outcomes.values()) == {"leaf: depth limit (3) reached"}


def test_leaves_noise_and_levels_are_assigned():
    nodes = {
        "root": NodeOutcome(np.arange(6), np.array([0, 0, 0, 1, 1, -1]), True),
        "root.0": NodeOutcome(np.array([0, 1, 2]), np.array([0, 1, -1]), True),
    }
    table = assign_leaves(6, nodes, max_depth=2)
    assert table["confidence"].tolist() == [1.0, 1.0, 0.0, 1.0, 1.0, 0.0]  # noise: 0
    assert table["leaf_path"].tolist() == [
        "root.0.0", "root.0.1", "root.0.noise", "root.1", "root.1", "root.noise",
    ]  # fmt: skip
    assert table["is_noise"].tolist() == [False, False, True, False, False, True]
    assert table["level_2"].tolist() == ["0", "1", "noise", None, None, None]


def test_a_rejected_split_keeps_its_rows_at_the_node():
    nodes = {"root": NodeOutcome(np.arange(4), np.array([0, 0, -1, -1]), False)}
    assert set(assign_leaves(4, nodes, max_depth=2)["leaf_path"]) == {"root"}


def test_pending_nodes_are_the_missing_zoom_targets():
    records = {"root": {"zoom_into": ["root.0", "root.1"]}, "root.0": {"zoom_into": []}}
    assert pending_nodes(records) == ["root.1"]
    assert pending_nodes({}) == ["root"]


def test_estimator_recovers_the_planted_leaves(fitted, planted):
    _, truth = planted
    clustered = ~fitted.assignments_["is_noise"].to_numpy()
    assert clustered.mean() > 0.9
    assert adjusted_rand_score(truth[clustered], fitted.labels_[clustered]) > 0.85
    assert set(fitted.tree_["path"]) == {"root", "root.0", "root.1", "root.2"}


def test_a_nested_grid_is_found_level_by_level():
    """The generator of the wide distributed tree (a cluster: a quarter of a group, at least
    11 rows). A root cluster never joins two groups, though it may hold a piece of one (UMAP
    lays a group's leaves out as strings, and HDBSCAN cuts some); the leaves are found once
    a group is zoomed into."""
    matrix, planted = nested_grid_hierarchy(branching=9, levels=2, rows_per_leaf=20, seed=0)
    settings = {
        "clustering": {"min_cluster_size": 1 / 36, "min_cluster_size_floor": 11, "min_samples": 10},
        "recursion": {"max_depth": 2, "min_node_size": 10},
        "acceptance": {"enabled": False},
    }
    fitted = RecursiveClusterer(parse_settings(settings)).fit(matrix)
    level_1 = fitted.assignments_["level_1"].to_numpy()
    clustered = level_1 != NOISE_NAME
    assert clustered.mean() > 0.9
    assert homogeneity_score(planted[clustered, 0], level_1[clustered]) > 0.99
    assert adjusted_rand_score(planted[:, 1], fitted.labels_) > 0.8
    assert len(set(fitted.labels_)) >= 0.8 * 9 * 9


def test_same_seed_same_tree(fitted, planted):
    matrix, _ = planted
    again = RecursiveClusterer(parse_settings(TEST_SETTINGS)).fit(matrix)
    assert (again.labels_ == fitted.labels_).all()


def test_a_later_fit_in_the_same_process_names_equal_clusters_the_same():
    """Six equal, well-separated blobs: UMAP lays the pieces of their k-NN graph out with
    ARPACK, whose random state carries over to the next fit in a process and moves the
    pieces. The partition stays; the names must too (they went by place in the layout)."""
    matrix, _ = make_blobs(n_samples=600, n_features=300, centers=6, cluster_std=8, random_state=0)
    first, second = (RecursiveClusterer(random_state=3).fit(matrix) for _ in range(2))
    assert first.nodes_["root"].clustering.n_children == 6
    assert (first.labels_ == second.labels_).all()


def test_shuffled_rows_give_the_same_tree_up_to_relabelling(fitted, planted):
    matrix, _ = planted
    order = np.random.default_rng(7).permutation(len(matrix))
    shuffled = RecursiveClusterer(parse_settings(TEST_SETTINGS)).fit(matrix[order])
    back = np.empty_like(shuffled.labels_)
    back[order] = shuffled.labels_
    assert len(shuffled.tree_) == len(fitted.tree_)
    assert adjusted_rand_score(fitted.labels_, back) > 0.95


def test_too_few_rows_names_the_parameter():
    with pytest.raises(ValueError, match="min_cluster_size"):
        RecursiveClusterer(parse_settings({"clustering": {"min_cluster_size": 50}})).fit(
            np.random.default_rng(0).normal(size=(20, 3))
        )


def test_large_nodes_fit_umap_on_a_sample_and_transform_the_rest(planted):
    matrix, truth = planted
    tall = np.vstack([matrix] * 2) + np.random.default_rng(0).normal(0, 0.01, (1320, 8))
    sampled = embed(tall, EmbeddingSettings(fit_sample_size=1000), NodePath("root").seed(42))
    assert sampled.shape == (1320, 2) and np.isfinite(sampled).all()
    labels = cluster_embedding(sampled, ClusteringSettings(min_cluster_size=0.1)).labels
    top = np.array([leaf.split(".")[0] for leaf in np.concatenate([truth, truth])])
    assert adjusted_rand_score(top[labels >= 0], labels[labels >= 0]) > 0.9


def test_pca_before_umap_keeps_the_clusters_of_wide_data():
    """The quality check of the PCA shortcut: on 300 columns the clusters found after PCA to
    50 components are those found on every column, and the planted ones."""
    matrix, tops, _ = planted_hierarchy(
        1500, 300, n_top=4, n_sub=3, top_separation=20.0, sub_separation=4.5, seed=3
    )
    clustering = ClusteringSettings(min_cluster_size=0.05)
    seed = NodePath("root").seed(42)
    reduced = cluster_embedding(embed(matrix, EmbeddingSettings(), seed), clustering).labels
    every_column = EmbeddingSettings(pca_above_columns=300)
    full = cluster_embedding(embed(matrix, every_column, seed), clustering).labels
    both = (reduced != NOISE) & (full != NOISE)
    assert adjusted_rand_score(reduced[both], full[both]) > 0.9
    assert adjusted_rand_score(tops[reduced != NOISE], reduced[reduced != NOISE]) > 0.9


def test_fast_hdbscan_backend_agrees_with_hdbscan(planted):
    matrix, _ = planted
    embedding = embed(matrix, EmbeddingSettings(), NodePath("root").seed(42))
    reference = cluster_embedding(embedding, ClusteringSettings(min_cluster_size=0.1))
    fast = cluster_embedding(
        embedding, ClusteringSettings(min_cluster_size=0.1, backend="fast_hdbscan")
    )
    assert fast.n_children == reference.n_children
    assert adjusted_rand_score(reference.labels, fast.labels) > 0.9


def test_noise_close_to_a_cluster_joins_it_and_far_noise_stays():
    rng = np.random.default_rng(0)
    embedding = np.vstack([rng.normal(0, 0.1, (50, 2)), rng.normal(5, 0.1, (50, 2))])
    embedding = np.vstack([embedding, [[0.05, 0.05], [2.5, 2.5]]])
    labels = np.array([0] * 50 + [1] * 50 + [NOISE, NOISE])
    new, assigned, share = assign_noise_to_nearest(embedding, labels, max_spacings=3.0)
    assert new[100] == 0 and assigned[100] and share[100] == 1.0
    assert new[101] == NOISE and not assigned[101] and share[101] == 0.0
    assert (new[:100] == labels[:100]).all() and assigned.sum() == 1


def test_noise_goes_to_the_child_most_of_its_neighbours_are_in_not_the_biggest():
    """A vote of the nearest clustered rows: noise at the edge of a small cluster beside a
    big one joins the small one (nearest-centroid reassignment would inflate the big one)."""
    rng = np.random.default_rng(1)
    big = rng.normal(0, 1.0, (500, 2))
    small = rng.normal([3.2, 0], 0.15, (40, 2))
    edge = rng.normal([3.0, 0], 0.05, (5, 2))
    embedding = np.vstack([big, small, edge])
    labels = np.array([0] * 500 + [1] * 40 + [NOISE] * 5)
    new, assigned, share = assign_noise_to_nearest(embedding, labels, max_spacings=5.0)
    assert assigned[-5:].all() and (new[-5:] == 1).all()
    assert (share[-5:] > 0.5).all()


def test_the_estimator_follows_scikit_learn_conventions():
    """get_params/set_params/clone work; flat parameters override the settings they name."""
    model = RecursiveClusterer(parse_settings(TEST_SETTINGS), max_depth=1, random_state=7)
    params = model.get_params()
    assert params["max_depth"] == 1 and params["explain"] is False
    twin = clone(model).set_params(min_cluster_size=0.2)
    resolved = twin.resolved_settings()
    assert resolved.recursion.max_depth == 1 and resolved.random_state == 7
    assert resolved.clustering.min_cluster_size == 0.2
    assert resolved.clustering.min_cluster_size_floor == 10  # the rest from the settings
    assert model.resolved_settings().clustering.min_cluster_size == 0.1  # clone is a copy
    with pytest.raises(SettingsError, match="recursion.max_depth"):
        RecursiveClusterer(max_depth=0).fit(np.zeros((50, 2)))


def test_predict_routes_new_rows_by_the_routers_alone(planted):
    """With explain=True the estimator keeps each split node's router; predict sends rows
    down the tree without UMAP/HDBSCAN, matching columns by name."""
    matrix, _ = planted
    frame = pd.DataFrame(matrix, columns=FEATURES)
    model = RecursiveClusterer(parse_settings(TEST_SETTINGS), explain=True).fit(frame)
    assert set(model.models_) == set(model.tree_.loc[model.tree_["split_accepted"], "path"])
    placed = ~model.assignments_["is_noise"].to_numpy()
    predicted = model.predict(frame)
    assert np.mean(predicted[placed] == model.labels_[placed]) > 0.95
    reordered = frame[FEATURES[::-1]]
    assert np.array_equal(model.predict(reordered), predicted)
    routed = model.route(frame.iloc[:5])
    assert {"path", "confidence", "confident", "level_1"} <= set(routed.columns)
    with pytest.raises(NotFittedError, match="explain=True"):  # a refit drops old routers
        model.set_params(explain=False, max_depth=1).fit(matrix).predict(matrix)
    with pytest.raises(NotFittedError):
        RecursiveClusterer().predict(matrix)
