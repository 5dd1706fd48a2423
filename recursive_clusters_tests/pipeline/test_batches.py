"""Incoming batches through the real sensors on a real instance: scored, checked for drift,
and re-clustered only when the data keeps drifting."""

import duckdb
import numpy as np
import pandas as pd
from dagster import AssetCheckKey, DagsterInstance
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from recursive_clusters.defs.keys import (
    DRIFT_CHECK,
    GROW_TREE_JOB,
    SCORE_BATCHES_JOB,
    SCORED_BATCHES,
    TREE_ID_TAG,
    TRIGGER_TAG,
)
from recursive_clusters_tests.conftest import planted_table
from recursive_clusters_tests.pipeline.ticks import first_tree, grow_until_quiet, setup, tick

QUIET_BATCHES = 20


def _data() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Training rows of two top clusters, a pool of fresh rows of the same two, and rows of a
    third top cluster the first tree never sees."""
    table = planted_table(per_sub=400)
    seen = table[table["segment"] != "top2"]
    order = seen.groupby("true_leaf").cumcount()
    return seen[order < 110], seen[order >= 110], table[table["segment"] == "top2"]


def _score_new_batches(defs, instance) -> list:
    """One batch-sensor tick, its partitions added and its scoring runs executed; the tick's
    other run requests are returned."""
    result = tick(defs, instance, None, "batch_sensor")
    for request in result.dynamic_partitions_requests:
        instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)
    others = []
    for request in result.run_requests:
        if request.job_name != SCORE_BATCHES_JOB:
            others.append(request)
            continue
        job = defs.resolve_job_def(SCORE_BATCHES_JOB)
        result = job.execute_in_process(instance=instance, partition_key=request.partition_key)
        assert result.success
    return others


def _drift_check(instance, batch: str):
    key = AssetCheckKey(SCORED_BATCHES, DRIFT_CHECK)
    records = instance.event_log_storage.get_asset_check_execution_history(key, limit=100)
    (record,) = [  # once per batch
        r
        for r in records
        if r.event.dagster_event.event_specific_data.metadata["batch"].value == batch
    ]
    return record


def test_quiet_batches_are_scored_and_drift_reclusters_once(dagster_home, tmp_path):
    training, pool, unseen = _data()
    folder = tmp_path / "batches"
    folder.mkdir()
    overrides = {
        "batches": {"path": str(folder)},
        "drift": {"consecutive_batches": 2},
    }
    defs, storage = setup(dagster_home, tmp_path, training, **overrides)
    store = storage.store()
    rng = np.random.default_rng(0)
    with DagsterInstance.get() as instance:
        first, cursor = first_tree(defs, instance)
        quiet = np.array_split(rng.permutation(len(pool)), QUIET_BATCHES)
        for number, rows in enumerate(quiet):
            pool.iloc[rows].to_parquet(folder / f"2026-11-{number + 1:02d}.parquet")
        assert not _score_new_batches(defs, instance)  # all scored, no re-clustering
        assert len(instance.get_dynamic_partitions("batches")) == QUIET_BATCHES
        for number in range(QUIET_BATCHES):
            check = _drift_check(instance, f"2026-11-{number + 1:02d}.parquet")
            assert check.status == AssetCheckExecutionRecordStatus.SUCCEEDED
        with duckdb.connect(str(store.catalog_path), read_only=True) as connection:
            rows, batches = connection.execute(
                "SELECT count(*), count(DISTINCT batch) FROM scored_rows"
            ).fetchone()
        assert (rows, batches) == (len(pool), QUIET_BATCHES)

        # batches holding a cluster the tree never saw: flagged at their first tick
        halves = [unseen.iloc[: len(unseen) // 2], unseen.iloc[len(unseen) // 2 :]]
        for number, half in enumerate(halves):
            name = f"2026-12-{number + 1:02d}.csv"
            half.to_csv(folder / name, index=False)
            assert not _score_new_batches(defs, instance)  # scored in the run of this tick
            check = _drift_check(instance, name)
            assert check.status == AssetCheckExecutionRecordStatus.FAILED
            evaluation = check.event.dagster_event.event_specific_data
            assert evaluation.severity.value == "WARN"
            assert "moved" in evaluation.description
            asked = _score_new_batches(defs, instance)  # the next tick reads the streak
            assert len(asked) == number  # the second in a row re-clusters, the first does not

        (recluster,) = asked
        assert recluster.job_name == GROW_TREE_JOB
        assert "2026-12-01.csv, 2026-12-02.csv" in recluster.tags[TRIGGER_TAG]
        job = defs.resolve_job_def(GROW_TREE_JOB)
        run = job.execute_in_process(instance=instance, tags=recluster.tags)
        second = instance.get_run_by_id(run.run_id).tags[TREE_ID_TAG]
        assert not _score_new_batches(defs, instance)  # while it grows: not launched again
        grow_until_quiet(defs, instance, cursor)
        assert store.current() == second != first
        manifest = store.manifest(second)
        assert manifest["trigger"] == recluster.tags[TRIGGER_TAG]
        assert len(manifest["batches_included"]) == QUIET_BATCHES + 2

        # the new tree has a branch for the new cluster: almost all of its rows, few others
        assignments = store.read_table(second, "assignments").set_index("user_id")
        branch = assignments["leaf_path"].str.split(".").str[:2].str.join(".")
        new_rows = branch.loc[unseen["user_id"]].value_counts(normalize=True)
        assert new_rows.iloc[0] > 0.9
        others = branch.drop(index=unseen["user_id"])
        assert (others == new_rows.index[0]).mean() < 0.02
        assert not _score_new_batches(defs, instance)  # the new tree has no drift streak
