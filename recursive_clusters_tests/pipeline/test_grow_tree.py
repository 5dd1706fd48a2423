"""The whole tree grown through the real Dagster jobs on a persistent SQLite instance."""

import os

import pandas as pd
import pytest
from dagster import AssetKey, AssetRecordsFilter, DagsterInstance, RunsFilter
from sklearn.metrics import adjusted_rand_score

from recursive_clusters.cli import main
from recursive_clusters.core.parallelism import available_cores
from recursive_clusters.defs import runner
from recursive_clusters.defs.keys import TREE_ID_TAG
from recursive_clusters.defs.resources import TreeStoreResource
from recursive_clusters.io.store import TreeStore


def _store(home) -> TreeStore:
    return TreeStore(home / "recursive_clusters")


@pytest.fixture
def on_grown_instance(grown_tree, monkeypatch) -> DagsterInstance:
    monkeypatch.setenv("DAGSTER_HOME", str(grown_tree))
    with DagsterInstance.get() as instance:
        yield instance


def test_every_node_is_a_partition_and_every_row_is_assigned(
    grown_tree, planted_csv, on_grown_instance
):
    store = _store(grown_tree)
    tree_id = store.require_current()
    records = store.node_records(tree_id)
    assert set(records) == {"root", "root.0", "root.1", "root.2"}
    instance = on_grown_instance
    keys = [f"{tree_id}:root.{child}" for child in range(3)]  # tree id, then node path
    assert sorted(instance.get_dynamic_partitions("level_2_nodes")) == keys
    assert instance.get_materialized_partitions(AssetKey("clusters_l2")) == set(keys)
    assignments = store.read_table(tree_id, "assignments")
    source = pd.read_csv(planted_csv)
    assert len(assignments) == len(source)
    assert assignments["user_id"].is_unique
    assert list(assignments.columns) == [
        *("user_id", "leaf_path", "is_noise", "level_1", "level_2"),
        *("confidence", "noise_assigned", "leaf_name"),
    ]
    assert assignments["confidence"].between(0, 1).all()
    assert (assignments.loc[assignments["is_noise"], "confidence"] == 0).all()
    truth = source.set_index("user_id").loc[assignments["user_id"], "true_leaf"]
    clustered = ~assignments["is_noise"].to_numpy()
    assert adjusted_rand_score(truth[clustered], assignments["leaf_path"][clustered]) > 0.85


def test_nodes_carry_metadata_and_explanations(grown_tree, on_grown_instance):
    store = _store(grown_tree)
    tree_id = store.require_current()
    for child in range(3):
        partition = f"{tree_id}:root.{child}"
        records = on_grown_instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey("clusters_l2"), asset_partitions=[partition]),
            limit=1,
        ).records
        metadata = records[0].asset_materialization.metadata
        assert metadata["node"].value == f"root.{child}"
        for key in ("rows", "children", "noise_fraction", "embedding_plot"):
            assert key in metadata
        assert "parameters" not in metadata  # the tree's settings are shown once, on its source
        shap = on_grown_instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey("shap_l2"), asset_partitions=[partition]),
            limit=1,
        ).records[0]
        plots = [v for k, v in shap.asset_materialization.metadata.items() if "shap" in k]
        assert all("data:image/png;base64," in str(plot.value) for plot in plots)
    metrics = store.read_node_table(tree_id, "root", "classifier_metrics")
    assert metrics["roc_auc"].median() > 0.95
    assert (store.models_dir(tree_id) / "root" / "router.json").is_file()
    assert not store.unexplained_nodes(tree_id)


def test_export_writes_assignments(grown_tree, tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(grown_tree))
    assert main(["export", "--output", str(tmp_path / "out")]) == 0
    exported = pd.read_parquet(tmp_path / "out" / "assignments.parquet")
    assert exported["leaf_path"].str.match(r"^root(\.\d+)*(\.noise)?$").all()


def test_same_seed_gives_the_same_tree(
    grown_tree, planted_csv, settings_file, dagster_home, monkeypatch
):
    """...also when a level's sibling batches run side by side in worker processes (as the
    CLI runs trees of 20,000 rows and more, one process per core) instead of one after
    another in the CLI's process (as ``grown_tree`` ran them)."""
    monkeypatch.setattr(runner, "SIDE_BY_SIDE_FROM_ROWS", 0)
    assert main(["run", "--input", str(planted_csv), "--config", str(settings_file)]) == 0
    first, second = _store(grown_tree).require_current(), _store(dagster_home).require_current()
    assert first != second and first[:8] == second[:8]  # a new tree, of the same content
    pd.testing.assert_frame_equal(
        _store(grown_tree).read_table(first, "assignments"),
        _store(dagster_home).read_table(second, "assignments"),
    )
    with DagsterInstance.get() as instance:
        level_2 = instance.get_runs(
            RunsFilter(job_name="level_2_nodes", tags={TREE_ID_TAG: second})
        )
        processes = {
            entry.dagster_event.pid
            for run in level_2
            for entry in instance.all_logs(run.run_id)
            if entry.dagster_event is not None and entry.dagster_event.pid is not None
        }
    if available_cores() >= 2:
        assert len(level_2) == 2 and len(processes) == 2 and os.getpid() not in processes


def test_side_by_side_needs_a_big_tree_and_the_memory_for_every_worker(grown_tree, monkeypatch):
    """Workers pay off from 20,000 rows. Each reads only its batch's rows and a level's nodes
    are disjoint, so the CLI and the workers together need the tree's estimated peak plus
    each worker's fixed cost, not one peak each."""
    storage = TreeStoreResource(base_dir=str(grown_tree / "recursive_clusters"))
    tree_id = storage.store().require_current()
    assert not runner._side_by_side_fits(storage, tree_id, 2)  # 660 rows
    monkeypatch.setattr(runner, "SIDE_BY_SIDE_FROM_ROWS", 0)
    monkeypatch.setattr(runner, "machine_memory_bytes", lambda: 24 * 2**30)
    assert runner._side_by_side_fits(storage, tree_id, 2)
    monkeypatch.setattr(runner, "machine_memory_bytes", lambda: 4 * 2**30)  # 1.5 + 2 x 1.5 GB
    assert not runner._side_by_side_fits(storage, tree_id, 2)
    # a table estimated at 16 GB (10,000,000 x 50) runs side by side in 24 GB: 16 + 2 x 1.5
    monkeypatch.setattr(runner, "estimate_peak_bytes", lambda rows, columns: 16 * 2**30)
    monkeypatch.setattr(runner, "machine_memory_bytes", lambda: 24 * 2**30)
    assert runner._side_by_side_fits(storage, tree_id, 2)
    monkeypatch.setattr(runner, "machine_memory_bytes", lambda: 18 * 2**30)
    assert not runner._side_by_side_fits(storage, tree_id, 2)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--input", "missing.csv"], "missing.csv"),
        (["--feature-columns", "f0,segment"], "segment"),
        (["--feature-columns", "f0,nope"], "nope"),
        (["--id-column", "segment"], "segment"),
    ],
)
def test_bad_input_is_named_and_loses_nothing(
    grown_tree, planted_csv, settings_file, arguments, message, monkeypatch, capsys
):
    monkeypatch.setenv("DAGSTER_HOME", str(grown_tree))
    store = _store(grown_tree)
    before = store.require_current()
    started_before = store.latest_started()
    full = ["run", "--input", str(planted_csv), "--config", str(settings_file), *arguments]
    if arguments[0] == "--input":
        full = ["run", "--config", str(settings_file), *arguments]
    assert main(full) == 2
    assert message in capsys.readouterr().err
    assert store.require_current() == before
    assert len(store.read_table(before, "assignments")) == 660
    # a tree begun before the input was found bad says so (it had stayed "building")
    begun = store.latest_started()
    if begun != started_before:
        manifest = store.manifest(begun)
        assert manifest["status"] == "failed" and message in manifest["failure"]


def test_non_finite_values_name_the_column(dagster_home, tmp_path, settings_file, capsys):
    from recursive_clusters_tests.conftest import planted_table

    table = planted_table()
    table.loc[5, "f3"] = float("nan")
    path = tmp_path / "nan.parquet"
    table.to_parquet(path)
    assert main(["run", "--input", str(path), "--config", str(settings_file)]) == 2
    assert "f3" in capsys.readouterr().err


def test_too_few_rows_for_min_cluster_size(dagster_home, tmp_path, settings_file, capsys):
    from recursive_clusters_tests.conftest import planted_table

    path = tmp_path / "small.csv"
    planted_table().head(9).to_csv(path, index=False)
    assert main(["run", "--input", str(path), "--config", str(settings_file)]) == 2
    assert "min_cluster_size" in capsys.readouterr().err


def test_duplicate_ids_are_reported(dagster_home, tmp_path, settings_file, capsys):
    from recursive_clusters_tests.conftest import planted_table

    table = planted_table()
    table.loc[7, "user_id"] = table.loc[3, "user_id"]
    path = tmp_path / "dupes.csv"
    table.to_csv(path, index=False)
    assert main(["run", "--input", str(path), "--config", str(settings_file)]) == 2
    assert "u0003" in capsys.readouterr().err


def test_storage_resource_defaults_under_dagster_home(dagster_home):
    assert TreeStoreResource().base_dir == str(dagster_home / "recursive_clusters")


def test_predict_agrees_with_the_tree_on_its_own_rows(
    grown_tree, planted_csv, tmp_path, monkeypatch
):
    monkeypatch.setenv("DAGSTER_HOME", str(grown_tree))
    output = tmp_path / "scores.parquet"
    assert main(["predict", "--input", str(planted_csv), "--output", str(output)]) == 0
    scores = pd.read_parquet(output).set_index("user_id")
    store = _store(grown_tree)
    tree = store.read_table(store.require_current(), "assignments").set_index("user_id")
    in_leaf = ~tree["is_noise"]
    agreement = (scores.loc[tree.index[in_leaf], "path"] == tree.loc[in_leaf, "leaf_path"]).mean()
    assert agreement >= 0.9


def test_predict_names_missing_columns(grown_tree, planted_csv, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DAGSTER_HOME", str(grown_tree))
    broken = tmp_path / "broken.csv"
    pd.read_csv(planted_csv).drop(columns=["f2", "f5"]).to_csv(broken, index=False)
    assert main(["predict", "--input", str(broken), "--output", str(tmp_path / "x.parquet")]) == 2
    error = capsys.readouterr().err
    assert "f2" in error and "f5" in error
