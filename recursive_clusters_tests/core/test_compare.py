"""Comparing two trees names kept, split, merged, vanished and appeared leaves."""

import pandas as pd

from recursive_clusters.core.compare import compare_trees


def _leaves(spec: dict[str, int]) -> pd.Series:
    paths = [path for path, count in spec.items() for _ in range(count)]
    return pd.Series(paths, index=[f"id{i}" for i in range(len(paths))])


def test_identical_trees_keep_every_leaf():
    tree = _leaves({"root.0": 50, "root.1": 30})
    result = compare_trees(tree, tree.rename(lambda i: i))
    assert result["ari"] == 1.0
    assert {c["change"] for c in result["changes"]} == {"kept"}


def test_split_and_merge_are_named():
    previous = _leaves({"root.0": 60, "root.1": 20, "root.2": 20})
    current = _leaves({"root.0": 30, "root.1": 30, "root.2": 40})
    result = compare_trees(previous, current)
    changes = {c["previous"]: (c["change"], c["current"]) for c in result["changes"]}
    assert changes == {
        "root.0": ("split", "root.0, root.1"),
        "root.1": ("merged", "root.2"),
        "root.2": ("merged", "root.2"),
    }
    assert 0 < result["ari"] < 1


def test_scattered_leaves_vanish_and_new_ones_appear():
    scattered = ["d1", "d2", "d3", "d4", "d5", "d6"]
    previous = pd.Series(["a"] * 10 + ["c"] * 6 + scattered)
    current = pd.Series(["x"] * 10 + ["p", "q", "r", "s", "t", "u"] + ["n"] * 6)
    result = compare_trees(previous, current)
    changes = {(c["previous"], c["current"]): c["change"] for c in result["changes"]}
    assert changes[("a", "x")] == "kept"
    assert changes[("c", "")] == "vanished"
    assert changes[("", "n")] == "appeared"


def test_only_common_ids_are_compared():
    previous = _leaves({"root.0": 10})
    current = pd.Series(["root.0"] * 5, index=[f"other{i}" for i in range(5)])
    assert compare_trees(previous, current) == {"common_rows": 0, "ari": None, "changes": []}
