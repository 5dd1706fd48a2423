"""Node paths: built, read, keyed and seeded in one place (``core/paths.py``)."""

import json

import pytest

from recursive_clusters.core.paths import (
    NodePath,
    PathError,
    is_noise_leaf,
    is_path,
    leaf_sort_key,
)

TREE = "0123456789abcdef"


def test_a_path_knows_its_parent_index_level_and_depth():
    node = NodePath("root.3.1")
    assert (node.parent, node.index, node.level, node.depth) == ("root.3", 1, 3, 2)
    assert NodePath("root").level == 1 and NodePath("root").depth == 0
    assert NodePath("root").child(3).child(1) == node and node.noise_leaf == "root.3.1.noise"
    assert json.dumps({node: [node.child(0)]}) == '{"root.3.1": ["root.3.1.0"]}'  # a plain str
    for bad in (lambda: NodePath("root").parent, lambda: NodePath("root").index):
        with pytest.raises(PathError):
            bad()


def test_partition_keys_round_trip_and_name_their_tree():
    key = NodePath("root.3.1").partition_key(TREE)
    assert key == f"{TREE}:root.3.1"
    assert NodePath.from_partition_key(key) == (TREE, "root.3.1")
    assert key.startswith(NodePath("root.3").descendants_key_prefix(TREE))
    assert key.startswith(NodePath("root").descendants_key_prefix(TREE))
    assert not key.startswith(NodePath("root.3.1").descendants_key_prefix(TREE))
    assert (
        not NodePath("root.31")
        .partition_key(TREE)
        .startswith(NodePath("root.3").descendants_key_prefix(TREE))
    )
    for bad in (
        lambda: NodePath("root").partition_key(TREE),
        lambda: NodePath("root.1").partition_key("a:b"),
    ):
        with pytest.raises(PathError):
            bad()
    for not_a_key in ("3.1", ":root.3", "abc:3.1", "abc:root.3/.."):
        with pytest.raises(PathError):
            NodePath.from_partition_key(not_a_key)


def test_a_seed_depends_on_the_path_and_the_global_seed_only():
    seeds = {NodePath(p).seed(42) for p in ("root", "root.1", "root.2", "root.1.2")}
    assert len(seeds) == 4
    assert NodePath("root.1").seed(42) == NodePath("root.1").seed(42) != NodePath("root.1").seed(7)


def test_leaves_sort_in_tree_order_with_noise_last():
    leaves = ["root.noise", "root.10", "root.2.noise", "root.2.1", "root.2.0"]
    ordered = sorted(leaves, key=leaf_sort_key)
    assert ordered == ["root.2.0", "root.2.1", "root.2.noise", "root.10", "root.noise"]
    assert [is_noise_leaf(leaf) for leaf in ordered] == [False, False, True, False, True]
    assert is_path("root.2.1") and not is_path("root.2.noise") and not is_path("../root")
