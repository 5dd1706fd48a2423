"""A run's steps share one read of the tree's feature table, never a stale one, and a run of
some nodes reads only their rows."""

import gc

import numpy as np
import pandas as pd
import pytest

from recursive_clusters.defs.assets.common import HeldRows, free_run_memory, read_features
from recursive_clusters.io.store import StorageError, TreeStore

TREE_ID = "0123456789abcdef"


def test_features_are_read_once_per_file_and_again_when_it_changes(tmp_path):
    store = TreeStore(tmp_path)
    with pytest.raises(StorageError, match="Missing table 'features'"):
        read_features(store, TREE_ID)
    store.write_table(TREE_ID, "features", pd.DataFrame({"a": [1.0, 2.0]}))
    first = read_features(store, TREE_ID)
    assert read_features(TreeStore(tmp_path), TREE_ID) is first  # another step, same read
    store.write_table(TREE_ID, "features", pd.DataFrame({"a": [3.0, 4.0, 5.0]}))
    assert read_features(store, TREE_ID).table["a"].tolist() == [3.0, 4.0, 5.0]
    free_run_memory()
    assert read_features(store, TREE_ID) is not first


def test_a_run_of_some_nodes_holds_only_their_rows_and_finds_each_nodes_part(tmp_path):
    store = TreeStore(tmp_path)
    store.write_table(TREE_ID, "features", pd.DataFrame({"a": np.arange(10.0) * 10}))
    held = read_features(store, TREE_ID, np.array([1, 4, 5, 8]))
    assert held.table["a"].tolist() == [10.0, 40.0, 50.0, 80.0]
    assert read_features(store, TREE_ID, np.array([1, 4, 5, 8])) is held
    assert held.node_part(np.array([4, 8]))["a"].tolist() == [40.0, 80.0]
    assert held.node_part(np.array([1, 4, 5, 8])) is held.table  # a batch of one node: no copy
    with pytest.raises(StorageError, match="not among the rows its run read"):
        held.node_part(np.array([4, 6]))
    with pytest.raises(StorageError, match="not among the rows its run read"):
        held.node_part(np.array([9]))


def test_the_whole_table_is_the_roots_part_without_a_copy():
    matrix = np.arange(12.0).reshape(6, 2)
    held = HeldRows(matrix)
    assert held.node_part(np.arange(6)) is matrix
    assert held.node_part(np.array([2, 3])).tolist() == [[4.0, 5.0], [6.0, 7.0]]


def test_a_finished_steps_table_caught_in_a_reference_cycle_is_freed_between_runs():
    """A step that kept an exception (a library's way) leaves its frame, and the table in
    it, in a cycle; the collector may not look for one for a long time."""
    freed = []

    class Table:
        def __del__(self):
            freed.append(True)

    def step() -> None:
        table = Table()  # noqa: F841  (held by the frame, as a step's matrix is)
        try:
            raise ValueError("a library's internal retry")
        except ValueError as error:
            kept = error  # noqa: F841  frame -> error -> traceback -> frame

    gc.disable()
    try:
        step()
        assert not freed
        free_run_memory()
        assert freed
    finally:
        gc.enable()
