"""Hostile and broken input: a specific message, and the current tree is never touched."""

import numpy as np
import pandas as pd
import pytest
import yaml

from recursive_clusters.cli import main
from recursive_clusters.core.paths import NodePath, PathError
from recursive_clusters.io.store import StorageError, TreeStore, validate_tree_id
from recursive_clusters_tests.conftest import TEST_SETTINGS, planted_table


def _run(path, settings_file, *extra) -> int:
    return main(["run", "--input", str(path), "--config", str(settings_file), *extra])


def test_sql_hostile_and_unicode_names_survive_the_whole_pipeline(
    dagster_home, tmp_path, settings_file
):
    table = planted_table()
    hostile = {
        "user_id": 'id"; DROP TABLE assignments; --',
        "f0": "größe ünïcødé",
        "f1": "a'b\"c",
        "f2": "<script>alert(1)</script>",
        "segment": "sëgment 🙂",
    }
    table = table.rename(columns=hostile)
    path = tmp_path / "hostile.parquet"
    table.to_parquet(path)
    hostile_input = {
        "id_column": hostile["user_id"],
        "profile_columns": [hostile["segment"], "true_leaf"],
    }
    settings = {**TEST_SETTINGS, "input": hostile_input}
    config = tmp_path / "hostile.yaml"
    config.write_text(yaml.safe_dump(settings, allow_unicode=True))
    assert _run(path, config) == 0
    store = TreeStore(dagster_home / "recursive_clusters")
    assignments = store.read_table(store.require_current(), "assignments")
    assert assignments.columns[0] == hostile["user_id"]
    assert len(assignments) == len(table)


def test_structure_free_data_is_a_single_leaf_not_a_crash(dagster_home, tmp_path, settings_file):
    rng = np.random.default_rng(0)
    table = pd.DataFrame(rng.normal(size=(300, 5)), columns=[f"x{i}" for i in range(5)])
    path = tmp_path / "blob.csv"
    table.to_csv(path, index=False)
    config = tmp_path / "blob.yaml"
    config.write_text(yaml.safe_dump({"clustering": {"min_cluster_size": 0.5}}))
    assert _run(path, config) == 0
    store = TreeStore(dagster_home / "recursive_clusters")
    tree_id = store.require_current()
    record = store.node_record(tree_id, "root")
    assert record["split_accepted"] is False and record["reason"]
    assignments = store.read_table(tree_id, "assignments")
    assert set(assignments["leaf_path"]) == {"root"}


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"clustering": {"min_cluster_sise": 3}}, "clustering.min_cluster_sise"),
        ({"recursion": {"max_depth": 0}}, "recursion.max_depth"),
        ({"input": {"non_finite": "ignore"}}, "input.non_finite"),
        ({"embedding": {"n_neighbors": 1}}, "embedding.n_neighbors"),
    ],
)
def test_invalid_settings_name_the_key(
    dagster_home, tmp_path, planted_csv, settings, named, capsys
):
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump(settings))
    assert _run(planted_csv, config) == 2
    assert named in capsys.readouterr().err


@pytest.mark.parametrize(
    ("mutate", "named"),
    [
        (lambda t: t.iloc[:0], "empty"),
        (lambda t: t.iloc[:1], "1 row"),
        (lambda t: t.assign(f3=t["f3"].where(t.index != 4, np.inf)), "f3"),
        (lambda t: t.assign(user_id=None), "user_id"),
        (lambda t: t.assign(**{f"f{i}": 1.0 for i in range(8)}), "constant"),
    ],
)
def test_broken_tables_are_refused_by_name(
    dagster_home, tmp_path, settings_file, mutate, named, capsys
):
    path = tmp_path / "broken.parquet"
    mutate(planted_table()).to_parquet(path)
    assert _run(path, settings_file) == 2
    assert named in capsys.readouterr().err
    assert TreeStore(dagster_home / "recursive_clusters").current() is None


def test_duplicate_column_names_in_a_csv_are_refused(dagster_home, tmp_path, settings_file, capsys):
    path = tmp_path / "dupes.csv"
    path.write_text("user_id,a,a\nu1,1,2\nu2,3,4\n")
    assert _run(path, settings_file) == 2
    assert "a" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["../etc", "root/../x", "root.3/..", "root.-1", "ROOT", ""])
def test_partition_keys_never_become_arbitrary_paths(name, tmp_path):
    with pytest.raises(PathError):
        NodePath(name)
    with pytest.raises(PathError):
        NodePath.from_partition_key(f"0123456789abcdef:{name}")
    with pytest.raises(PathError):
        TreeStore(tmp_path).node_dir("0123456789abcdef", name)


@pytest.mark.parametrize("tree_id", ["../x", "abc", "0123456789abcdeg", "a/b"])
def test_tree_ids_never_become_arbitrary_paths(tree_id):
    with pytest.raises(StorageError):
        validate_tree_id(tree_id)


def test_written_files_are_readable_by_others_on_a_shared_volume(tmp_path):
    """Tree files, reports and predictions get the umask's mode, not a temporary file's 0600."""
    import os
    import stat

    from recursive_clusters.io.atomic import atomic_path
    from recursive_clusters.io.store import write_json

    previous = os.umask(0o022)
    try:
        write_json(tmp_path / "manifest.json", {"a": 1})
        with atomic_path(tmp_path / "report.html") as temporary:
            temporary.write_text("<html></html>")
    finally:
        os.umask(previous)
    for name in ("manifest.json", "report.html"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json", "report.html"]
