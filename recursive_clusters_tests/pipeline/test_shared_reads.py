"""A run's steps share one read of the tree's feature table, and never a stale one."""

import pandas as pd
import pytest

from recursive_clusters.defs.assets.common import read_features
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
    assert read_features(store, TREE_ID)["a"].tolist() == [3.0, 4.0, 5.0]
