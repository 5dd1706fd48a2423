"""Parallel sibling runs and a node failing mid-tree lose nothing and mix nothing."""

import subprocess
import sys

import pandas as pd
import pytest
import yaml
from dagster import (
    AssetCheckKey,
    DagsterInstance,
    DagsterRunStatus,
    build_run_status_sensor_context,
)
from dagster._core.events import JobFailureData, RunFailureReason
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from sqlalchemy.exc import OperationalError

from recursive_clusters.core.paths import NodePath
from recursive_clusters.core.settings import parse_settings
from recursive_clusters.defs.assets import common, levels
from recursive_clusters.defs.dagster_internals import WILL_RETRY_TAG
from recursive_clusters.defs.definitions import build_definitions
from recursive_clusters.defs.growth import plan_growth
from recursive_clusters.defs.keys import (
    ATTEMPT_TAG,
    FAILURE_SENSOR,
    GROW_TREE_JOB,
    PUBLISH_TREE_JOB,
    TREE_ASSET,
    TREE_COMPLETE_CHECK,
    TREE_ID_TAG,
    level_job_name,
)
from recursive_clusters.defs.resources import TreeStoreResource
from recursive_clusters.defs.runner import _apply, ensure_dagster_home
from recursive_clusters_tests.conftest import TEST_SETTINGS, planted_table

N_TOPS = 4
TREE = "0123456789abcdef"  # a tree id, as a launch makes one

RUN_ONE_PARTITION = """
import sys, yaml
from dagster import DagsterInstance
from recursive_clusters.core.settings import parse_settings
from recursive_clusters.defs.definitions import build_definitions
from recursive_clusters.defs.resources import TreeStoreResource
settings_path, storage_dir, key, tree_id = sys.argv[1:5]
settings = parse_settings(yaml.safe_load(open(settings_path)))
storage = TreeStoreResource(base_dir=storage_dir, settings_path=settings_path)
defs = build_definitions(settings, storage)
with DagsterInstance.get() as instance:
    result = defs.resolve_job_def("level_2_nodes").execute_in_process(
        instance=instance, partition_key=key,
        tags={"recursive_clusters/generation": tree_id}, raise_on_error=False,
    )
sys.exit(0 if result.success else 1)
"""


@pytest.fixture
def rooted_tree(dagster_home, tmp_path):
    """A tree whose root is clustered into four qualifying children, not grown further."""
    ensure_dagster_home(dagster_home)
    data = tmp_path / "four_tops.parquet"
    table = planted_table(seed=3, n_top=N_TOPS)
    table.to_parquet(data)
    raw = {**TEST_SETTINGS, "input": {**TEST_SETTINGS["input"], "path": str(data)}}
    settings_path = tmp_path / "settings.yaml"
    settings_path.write_text(yaml.safe_dump(raw))
    storage = TreeStoreResource(base_dir=str(tmp_path / "trees"), settings_path=str(settings_path))
    defs = build_definitions(parse_settings(raw), storage)
    with DagsterInstance.get() as instance:
        result = defs.resolve_job_def(GROW_TREE_JOB).execute_in_process(instance=instance)
        tree_id = instance.get_run_by_id(result.run_id).tags[TREE_ID_TAG]
        plan = plan_growth(
            instance, storage.store(), None, 2, {2: level_job_name(2)}, PUBLISH_TREE_JOB
        )
        _apply(instance, plan.dynamic_partitions_requests)
        keys = instance.get_dynamic_partitions("level_2_nodes")
    assert len(keys) >= N_TOPS
    return defs, storage, tree_id, settings_path, table, list(keys)


def _paths(keys: list[str]) -> list[str]:
    return [NodePath.from_partition_key(key)[1] for key in keys]


def _publish(defs, tree_id) -> bool:
    with DagsterInstance.get() as instance:
        job = defs.resolve_job_def(PUBLISH_TREE_JOB)
        return job.execute_in_process(
            instance=instance, tags={TREE_ID_TAG: tree_id}, raise_on_error=False
        ).success


def test_four_sibling_partitions_in_parallel_processes(rooted_tree):
    defs, storage, tree_id, settings_path, table, keys = rooted_tree
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                RUN_ONE_PARTITION,
                str(settings_path),
                storage.base_dir,
                str(key),
                tree_id,
            ],  # fmt: skip
        )
        for key in keys
    ]
    assert [worker.wait(timeout=300) for worker in workers] == [0] * len(keys)
    assert _publish(defs, tree_id)
    store = storage.store()
    assignments = store.read_table(tree_id, "assignments")
    assert len(assignments) == len(table)
    assert sorted(assignments["user_id"]) == sorted(table["user_id"])
    assert {f"root.{label}" for label in assignments["level_1"].dropna()} >= set(_paths(keys))
    assert set(store.node_records(tree_id)) == {"root", *_paths(keys)}
    assert not list(store.tree_dir(tree_id).rglob(".*.tmp*"))


def test_a_failing_node_leaves_the_others_intact_and_a_relaunch_completes(rooted_tree, monkeypatch):
    defs, storage, tree_id, _, table, keys = rooted_tree
    real_fit_layout = levels.fit_layout

    def fit_layout_failing_on_node_two(matrix, settings, seed, placed=None):
        if seed == NodePath("root.2").seed(42):
            raise RuntimeError("injected failure in node root.2")
        return real_fit_layout(matrix, settings, seed, placed)

    monkeypatch.setattr(levels, "fit_layout", fit_layout_failing_on_node_two)
    job = defs.resolve_job_def(level_job_name(2))
    tags = {
        TREE_ID_TAG: tree_id,
        "dagster/asset_partition_range_start": keys[0],
        "dagster/asset_partition_range_end": keys[-1],
    }
    with DagsterInstance.get() as instance:
        failed = job.execute_in_process(instance=instance, tags=tags, raise_on_error=False)
    assert not failed.success
    store = storage.store()
    embedded = {p.parent.name for p in store.tree_dir(tree_id).glob("nodes/*/embedding.parquet")}
    assert embedded == {"root", *(path for path in _paths(keys) if path != "root.2")}
    assert not list(store.tree_dir(tree_id).rglob(".*.tmp*"))
    assert not _publish(defs, tree_id)  # incomplete trees are never published
    assert store.current() is None

    monkeypatch.setattr(levels, "fit_layout", real_fit_layout)
    with DagsterInstance.get() as instance:
        assert job.execute_in_process(instance=instance, tags=tags).success
    assert _publish(defs, tree_id)
    assignments = store.read_table(tree_id, "assignments")
    assert len(assignments) == len(table) and assignments["user_id"].is_unique
    assert not pd.isna(assignments["leaf_path"]).any()


def test_two_runs_with_different_inputs_on_one_instance_at_the_same_time(
    dagster_home, tmp_path, settings_file
):
    """Their trees' partition keys never collide: both complete, one of them is current."""
    ensure_dagster_home(dagster_home)
    inputs = []
    for seed, n_top in ((5, 3), (6, 2)):
        path = tmp_path / f"input_{seed}.parquet"
        planted_table(seed=seed, n_top=n_top).to_parquet(path)
        inputs.append(path)
    command = [
        sys.executable,
        "-m",
        "recursive_clusters.cli",
        "run",
        "--config",
        str(settings_file),
    ]
    workers = [
        subprocess.Popen([*command, "--input", str(path)], stderr=subprocess.PIPE, text=True)
        for path in inputs
    ]
    errors = [worker.communicate(timeout=600)[1] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], "\n".join(errors)
    store = TreeStoreResource().store()
    trees = [p.name for p in (store.base_dir / "trees").iterdir()]
    assert len(trees) == 2 and {store.status(t) for t in trees} == {"complete"}
    assert store.current() in trees
    sizes = sorted(len(store.read_table(t, "assignments")) for t in trees)
    assert sizes == [440, 660]


def test_a_failed_node_run_fails_the_tree_where_users_look(rooted_tree, monkeypatch):
    """The failure sensor marks the tree failed and fails ``tree_complete``, naming the node
    and the error; nothing is published."""
    defs, storage, tree_id, _, _, keys = rooted_tree

    def fit_layout_failing(matrix, settings, seed, placed=None):
        raise RuntimeError("injected failure")

    monkeypatch.setattr(levels, "fit_layout", fit_layout_failing)
    tags = {
        TREE_ID_TAG: tree_id,
        "dagster/asset_partition_range_start": keys[0],
        "dagster/asset_partition_range_end": keys[-1],
    }
    with DagsterInstance.get() as instance:
        job = defs.resolve_job_def(level_job_name(2))
        failed = job.execute_in_process(instance=instance, tags=tags, raise_on_error=False)
        assert not failed.success
        context = build_run_status_sensor_context(
            sensor_name="tree_failure_sensor",
            dagster_event=failed.get_run_failure_event(),
            dagster_instance=instance,
            dagster_run=failed.dagster_run,
            resources={"tree_storage": storage},
        )
        defs.resolve_sensor_def("tree_failure_sensor")(context)
        key = AssetCheckKey(TREE_ASSET, TREE_COMPLETE_CHECK)
        check = instance.event_log_storage.get_latest_asset_check_execution_by_key([key])[key]
        assert check.status == AssetCheckExecutionRecordStatus.FAILED
        error = check.event.dagster_event.event_specific_data.metadata["error"].value
    store = storage.store()
    assert store.status(tree_id) == "failed" and store.current() is None
    assert "root.0" in error and "injected failure" in error
    assert store.manifest(tree_id)["failure"] == error


@pytest.mark.parametrize(
    ("why", "reason", "tree_fails"),
    [
        ("Celery worker worker-1@host does not answer", None, False),
        ("a node raised", RunFailureReason.STEP_FAILURE, True),
    ],
)
def test_a_failed_run_seen_before_its_retry_tag_is_judged_as_run_retries_will(
    dagster_home, tmp_path, why, reason, tree_fails
):
    """Dagster stores a run's failure before it tags the run ``will_retry``. A failure-sensor
    tick in between must not fail a tree whose run will be launched again (its worker died),
    and still fails it for a node's error (not retried: ``retry_on_asset_or_op_failure`` is
    off in our ``dagster.yaml``)."""
    ensure_dagster_home(dagster_home)
    storage = TreeStoreResource(base_dir=str(tmp_path / "trees"))
    store = storage.store()
    store.begin_tree(TREE, {})
    defs = build_definitions(parse_settings(TEST_SETTINGS), storage)
    with DagsterInstance.get() as instance:
        run = instance.create_run_for_job(
            job_def=defs.resolve_job_def(level_job_name(2)),
            tags={TREE_ID_TAG: TREE},
            status=DagsterRunStatus.STARTED,
        )
        event = instance.report_run_failed(run, why, JobFailureData(None, reason, None))
        failed = instance.get_run_by_id(run.run_id)
        assert failed.tags[WILL_RETRY_TAG] == str(not tree_fails).lower()
        as_the_sensor_may_see_it = failed.with_tags(
            {key: value for key, value in failed.tags.items() if key != WILL_RETRY_TAG}
        )
        context = build_run_status_sensor_context(
            sensor_name=FAILURE_SENSOR,
            dagster_event=event,
            dagster_instance=instance,
            dagster_run=as_the_sensor_may_see_it,
            resources={"tree_storage": storage},
        )
        defs.resolve_sensor_def(FAILURE_SENSOR)(context)
    assert store.status(TREE) == ("failed" if tree_fails else "building")


def test_a_node_waits_out_a_lost_database_connection_and_raises_anything_else(monkeypatch):
    """A Postgres restart drops a run's connections: the node's reads of the instance are
    tried again (the distributed test restarts the server mid-growth); any other database
    error, e.g. a full disk, is raised at once."""
    monkeypatch.setattr(common, "STORAGE_RETRY_SECONDS", 0)
    calls = []

    def restarting() -> str:
        calls.append("restarting")
        if len(calls) < 3:
            lost = Exception("server closed the connection unexpectedly")
            raise OperationalError("SELECT", {}, lost, connection_invalidated=True)
        return "keys"

    def full() -> str:
        calls.append("full")
        raise OperationalError("INSERT", {}, Exception("database or disk is full"))

    assert common.with_storage_retries(restarting) == "keys" and len(calls) == 3
    with pytest.raises(OperationalError, match="disk is full"):
        common.with_storage_retries(full)
    assert calls.count("full") == 1


def test_a_node_run_that_lost_its_database_is_run_again_not_failed(rooted_tree, monkeypatch):
    """A Postgres restart can drop the connection inside Dagster's own code while a node run
    stores its output: the failure sensor asks for the same batch again (at most 3 tries)
    instead of failing the tree; the node was never wrong."""
    defs, storage, tree_id, _, _, keys = rooted_tree

    def fit_layout_losing_the_database(matrix, settings, seed, placed=None):
        lost = Exception("server closed the connection unexpectedly")
        raise OperationalError("SELECT", {}, lost, connection_invalidated=True)

    monkeypatch.setattr(levels, "fit_layout", fit_layout_losing_the_database)
    tags = {
        TREE_ID_TAG: tree_id,
        "dagster/asset_partition_range_start": keys[0],
        "dagster/asset_partition_range_end": keys[-1],
    }
    with DagsterInstance.get() as instance:
        job = defs.resolve_job_def(level_job_name(2))
        failed = job.execute_in_process(instance=instance, tags=tags, raise_on_error=False)
        context = build_run_status_sensor_context(
            sensor_name=FAILURE_SENSOR,
            dagster_event=failed.get_run_failure_event(),
            dagster_instance=instance,
            dagster_run=failed.dagster_run,
            resources={"tree_storage": storage},
        )
        again = defs.resolve_sensor_def(FAILURE_SENSOR)(context)
    assert again.job_name == level_job_name(2)
    assert {k: again.tags[k] for k in tags} == tags and again.tags[ATTEMPT_TAG] == "2"
    assert storage.store().status(tree_id) == "building"
