"""Property-based tests of the core's bookkeeping over random small trees and tables."""

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from recursive_clusters.core.clustering import NOISE, canonical_labels
from recursive_clusters.core.compare import compare_trees
from recursive_clusters.core.paths import NodePath
from recursive_clusters.core.tree import NodeOutcome, assign_leaves

labels_strategy = st.lists(st.integers(min_value=-1, max_value=4), min_size=1, max_size=60)


@settings(max_examples=60, deadline=None)
@given(labels_strategy)
def test_canonical_labels_keep_the_partition_and_order_by_size(labels):
    labels = np.array(labels)
    new, _ = canonical_labels(labels)
    assert ((new == NOISE) == (labels == NOISE)).all()
    sizes = [np.sum(new == k) for k in range(new.max() + 1)]
    assert sizes == sorted(sizes, reverse=True)
    firsts = [int(np.argmax(new == k)) for k in range(new.max() + 1)]
    for k in range(len(sizes) - 1):  # equal sizes: the cluster with the earlier row first
        assert sizes[k] > sizes[k + 1] or firsts[k] < firsts[k + 1]
    for k in set(labels) - {NOISE}:
        assert len(set(new[labels == k])) == 1


@settings(max_examples=60, deadline=None)
@given(labels_strategy, labels_strategy, st.booleans())
def test_every_row_gets_exactly_one_valid_leaf(root_labels, child_labels, accepted):
    n = len(root_labels)
    root = np.array(root_labels)
    nodes = {"root": NodeOutcome(np.arange(n), root, accepted)}
    inside = np.flatnonzero(root == 0)
    if accepted and len(inside):
        sub = np.resize(np.array(child_labels), len(inside))
        nodes["root.0"] = NodeOutcome(inside, sub, True)
    table = assign_leaves(n, nodes, max_depth=3)
    assert len(table) == n and table["row"].tolist() == list(range(n))
    for leaf, noise in zip(table["leaf_path"], table["is_noise"], strict=True):
        NodePath(leaf.removesuffix(".noise"))
        assert noise == leaf.endswith(".noise")
    if not accepted:
        assert set(table["leaf_path"]) == {"root"}


@settings(max_examples=40, deadline=None)
@given(labels_strategy)
def test_a_tree_compared_with_itself_keeps_every_leaf(labels):
    leaves = pd.Series([f"root.{k}" for k in labels])
    result = compare_trees(leaves, leaves)
    assert result["common_rows"] == len(labels)
    assert {change["change"] for change in result["changes"]} == {"kept"}
