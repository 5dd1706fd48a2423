"""The multi-machine set-up, run here the way it runs on many (``deploy/``).

One cluster for the module (``deploy/cluster-up.sh``): the instance on Postgres, runs launched
as Celery tasks through the run queue onto two workers, each in its own network namespace
and host name, reaching Postgres and Redis over the bridge's address; tree files on one shared
folder. Trees are launched as the UI launches them (GraphQL), grown by the daemon's sensor and
published; the tests then break a part (Postgres restarted, a worker killed) while a tree
grows and check that it still completes, and that the replaced trees' partitions are gone;
a wide tree of many small nodes grows, publishes and loses its partitions when replaced.
Skipped, saying why, only where root, Debian's postgresql/redis-server or network
namespaces are missing (``.ci/run`` installs the packages).
"""

from __future__ import annotations

import os
import shutil
import time
import urllib.error
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from dagster import DagsterEventType, DagsterRunStatus, EventRecordsFilter

from recursive_clusters.core.paths import NodePath
from recursive_clusters.core.synthetic import nested_grid_hierarchy
from recursive_clusters.defs.dagster_internals import WILL_RETRY_TAG
from recursive_clusters.defs.keys import (
    GROWTH_SENSOR,
    TREE_ID_TAG,
    WORKER_TAG,
    level_partitions_name,
)
from recursive_clusters.io.store import TreeStore
from recursive_clusters_tests.conftest import TEST_SETTINGS, planted_table
from recursive_clusters_tests.distributed.cluster import (
    LocalCluster,
    skip_reason,
    start_cluster,
)
from recursive_clusters_tests.e2e.test_browser import (
    RUNS_QUERY,
    SENSOR_QUERY,
    _launch_grow_tree,
    _wait_for_sensor_cursor,
)

pytestmark = pytest.mark.distributed

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts" / "distributed"
TREE_TIMEOUT_S = 900
LEVEL_2_JOB = level_partitions_name(2)
# The small planted tree (3 top clusters of 2 sub-clusters): 3 level-2 nodes, 2 sibling runs.
PLANTED_SETTINGS = {**TEST_SETTINGS, "recursion": {"max_depth": 3, "min_node_size": 150}}
# A wide tree at a small cost per node (nested_grid_hierarchy): ``branching`` groups of
# ``branching`` leaves of 20 rows, 1 + b + b * b planted nodes. CI grows b = 12 (157 planted
# nodes: 3 minutes); ``RECURSIVE_CLUSTERS_WIDE_BRANCHING=54`` grows thousands (2,776 of
# 2,971 planted, in 49 minutes on 2 cores: more than CI's budget; docs/benchmarks.md). A
# cluster is a quarter of a group at the root and 11 rows below, so a 20-row leaf does not
# split again; the split test is off (shallow compute).
WIDE_BRANCHING = int(os.environ.get("RECURSIVE_CLUSTERS_WIDE_BRANCHING", "12"))
WIDE_SETTINGS = {
    "input": {"id_column": "row_id"},
    "clustering": {
        "min_cluster_size": 1 / (4 * WIDE_BRANCHING),
        "min_cluster_size_floor": 11,
        "min_samples": 10,
    },
    "recursion": {"max_depth": 3, "min_node_size": 10},
    "acceptance": {"enabled": False},
    "explanation": {"shap_sample_per_child": 10},
}
WIDE_TREE_TIMEOUT_S = 900 + 2 * WIDE_BRANCHING**2


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, request) -> Iterator[LocalCluster]:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    data = tmp_path_factory.mktemp("distributed")
    data.chmod(0o755)
    for parent in data.parents:  # the workers' processes read the settings and input
        if str(parent).startswith("/tmp/pytest-of-"):
            parent.chmod(0o755)
    planted_table().to_parquet(data / "planted.parquet")
    settings = data / "settings.yaml"
    _use_settings(settings, PLANTED_SETTINGS, data / "planted.parquet")
    failed_before = request.session.testsfailed
    started = start_cluster(settings, workers=2)
    try:
        yield started
    finally:
        if request.session.testsfailed > failed_before:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            for log in (started.root / "logs").glob("*.log"):
                shutil.copy(log, ARTIFACTS / log.name)
        started.down()
        shutil.rmtree(started.root, ignore_errors=True)


def _use_settings(path: Path, settings: dict, table: Path) -> None:
    """The settings the next launched tree starts with (read at launch, by the worker)."""
    raw = {**settings, "input": {**settings["input"], "path": str(table)}}
    path.write_text(yaml.safe_dump(raw))


def _launch(cluster: LocalCluster, settings: dict, table: str) -> str:
    """``grow_tree`` launched from the UI; returns the launching run's id."""
    _use_settings(cluster.settings, settings, cluster.settings.parent / table)
    _wait_for_sensor_cursor(cluster)
    return _launch_grow_tree(cluster)


def _tree_of_run(cluster: LocalCluster, run_id: str, timeout_s: float = 600) -> str:
    """The tree a launch started (the tag its run sets once its input is read)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        cluster.ensure_alive()
        with cluster.instance() as instance:
            run = instance.get_run_by_id(run_id)
        assert run is not None
        if TREE_ID_TAG in run.tags:
            return run.tags[TREE_ID_TAG]
        assert run.status not in {DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}, run
        time.sleep(2)
    raise AssertionError(f"run {run_id} never started a tree:\n{cluster.log_tail()}")


def _wait_until_published(
    cluster: LocalCluster, tree_id: str, while_waiting=lambda: None, timeout_s=TREE_TIMEOUT_S
) -> None:
    """Until the tree is current and none of its runs is still going (the publish run writes
    ``current.json`` before it ends); at once, with the reason, if the tree was failed."""
    deadline = time.monotonic() + timeout_s
    store = TreeStore(cluster.trees)
    while True:
        cluster.ensure_alive()
        while_waiting()
        runs = cluster.runs_of_tree(tree_id)
        if cluster.current_tree() == tree_id and all(run.is_finished for run in runs):
            return
        summary = [(run.job_name, run.status.value, run.tags.get(WILL_RETRY_TAG)) for run in runs]
        assert store.status(tree_id) != "failed", (
            f"tree {tree_id} failed: {store.manifest(tree_id).get('failure')}; its runs: "
            f"{summary}\n{cluster.log_tail()}"
        )
        assert time.monotonic() < deadline, (
            f"tree {tree_id} not published in {timeout_s} s; its runs: {summary}\n"
            f"{cluster.log_tail()}"
        )
        time.sleep(3)


def _a_started_run(cluster: LocalCluster, tree_id: str, job: str, step: str, timeout_s=600):
    """A run of ``job`` for the tree that is executing ``step`` on a worker."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        cluster.ensure_alive()
        for run in cluster.runs_of_tree(tree_id):
            if run.job_name != job or run.status is not DagsterRunStatus.STARTED:
                continue
            if WORKER_TAG in run.tags and step in _started_steps(cluster, run.run_id):
                return run
        time.sleep(1)
    raise AssertionError(f"no {job} run of {tree_id} started {step}:\n{cluster.log_tail()}")


def _started_steps(cluster: LocalCluster, run_id: str) -> set[str]:
    with cluster.instance() as instance:
        records = instance.get_event_records(
            EventRecordsFilter(event_type=DagsterEventType.STEP_START), limit=1000
        )
    return {r.event_log_entry.step_key for r in records if r.event_log_entry.run_id == run_id}


def _node_keys(cluster: LocalCluster) -> list[str]:
    """Every node partition key on the instance, at every level below the root."""
    depth = PLANTED_SETTINGS["recursion"]["max_depth"]  # the code location's levels
    with cluster.instance() as instance:
        return [
            key
            for level in range(2, depth + 1)
            for key in instance.get_dynamic_partitions(level_partitions_name(level))
        ]


def _wait_for_only_partitions_of(cluster: LocalCluster, tree_id: str, timeout_s=300) -> None:
    """Once a tree is published the sensor deletes the partitions of the trees it replaced,
    at every level (the daemon deletes them one by one: seconds for thousands)."""
    deadline = time.monotonic() + timeout_s
    while True:
        keys = _node_keys(cluster)
        others = {NodePath.from_partition_key(key)[0] for key in keys} - {tree_id}
        if not others and keys:
            return
        assert time.monotonic() < deadline, f"partitions of replaced trees left: {others}"
        time.sleep(3)


def _assert_complete(cluster: LocalCluster, tree_id: str, rows: int) -> list[str]:
    """Every file of the tree readable and every node recorded; its leaves, sorted."""
    tree_dir = cluster.trees / "trees" / tree_id
    node_dirs = [d for d in (tree_dir / "nodes").iterdir() if not d.name.startswith(".")]
    unrecorded = [d.name for d in node_dirs if not (d / "node.json").is_file()]
    assert not unrecorded, f"nodes without their record (half-written): {unrecorded}"
    for table in tree_dir.rglob("*.parquet"):
        if not table.name.startswith("."):
            pd.read_parquet(table)  # a half-written Parquet file does not read
    leaves = pd.read_parquet(tree_dir / "assignments.parquet")
    assert len(leaves) == rows, f"{len(leaves)} rows assigned of {rows}"
    publishes = [
        run
        for run in cluster.runs_of_tree(tree_id)
        if run.job_name == "publish_tree" and run.status is DagsterRunStatus.SUCCESS
    ]
    assert len(publishes) == 1, f"tree {tree_id} published {len(publishes)} times"
    return sorted(leaves["leaf_path"].unique())


@pytest.fixture(scope="module")
def first_tree(cluster) -> dict:
    """The planted tree, launched from the UI and grown on the workers."""
    run_id = _launch(cluster, PLANTED_SETTINGS, "planted.parquet")
    tree_id = _tree_of_run(cluster, run_id)
    _wait_until_published(cluster, tree_id)
    leaves = _assert_complete(cluster, tree_id, len(planted_table()))
    workers = {run.tags.get(WORKER_TAG) for run in cluster.runs_of_tree(tree_id)}
    return {"tree": tree_id, "leaves": leaves, "workers": workers}


def test_a_ui_launch_grows_a_tree_on_two_workers(cluster, first_tree):
    runs = cluster.runs_of_tree(first_tree["tree"])
    assert all(run.status is DagsterRunStatus.SUCCESS for run in runs), runs
    workers = first_tree["workers"]
    assert None not in workers, "a run without the worker it ran on"
    hosts = {worker.split("@")[1] for worker in workers}
    assert len(hosts) >= 2, f"every run ran on {hosts}"
    with cluster.instance() as instance:
        said = [
            record.event_log_entry.dagster_event.message
            for record in instance.get_event_records(
                EventRecordsFilter(event_type=DagsterEventType.ENGINE_EVENT), limit=2000
            )
            if record.event_log_entry.run_id == runs[0].run_id
        ]
    assert any(f"Celery worker {runs[0].tags[WORKER_TAG]}" in message for message in said)
    assert len(first_tree["leaves"]) >= 6, first_tree["leaves"]


def test_postgres_restarted_during_growth_loses_nothing(cluster, first_tree):
    tree_id = _tree_of_run(cluster, _launch(cluster, PLANTED_SETTINGS, "planted.parquet"))
    _a_started_run(cluster, tree_id, LEVEL_2_JOB, "embedding_l2")
    cluster.restart_postgres()
    _wait_until_published(cluster, tree_id)
    assert _assert_complete(cluster, tree_id, len(planted_table())) == first_tree["leaves"]
    _wait_for_only_partitions_of(cluster, tree_id)
    with cluster.instance() as instance:
        launcher = instance.run_launcher
        for worker in first_tree["workers"]:
            assert launcher.worker_answers(worker), f"{worker} did not recover"
    _webserver_recovers(cluster)


def _node_keys_of(cluster: LocalCluster, tree_id: str) -> int:
    """The tree's partition keys on the instance, every level below the root."""
    return sum(NodePath.from_partition_key(key)[0] == tree_id for key in _node_keys(cluster))


def test_a_wide_tree_grows_publishes_and_its_partitions_go_when_replaced(cluster, first_tree):
    table = cluster.settings.parent / "wide.parquet"
    features, _ = nested_grid_hierarchy(WIDE_BRANCHING, levels=2, rows_per_leaf=20, seed=0)
    wide = pd.DataFrame(features, columns=["x", "y"])
    wide.insert(0, "row_id", np.arange(len(wide)))
    wide.to_parquet(table)
    started = time.monotonic()
    tree_id = _tree_of_run(cluster, _launch(cluster, WIDE_SETTINGS, table.name))
    _wait_until_published(cluster, tree_id, timeout_s=WIDE_TREE_TIMEOUT_S)
    grown_s = time.monotonic() - started
    _assert_complete(cluster, tree_id, len(wide))
    nodes = len(TreeStore(cluster.trees).node_records(tree_id))
    partitions = 1 + _node_keys_of(cluster, tree_id)  # the root (level 1) has no key
    print(f"wide tree, branching {WIDE_BRANCHING}: {partitions} partitions in {grown_s:.0f} s")
    assert partitions == nodes, f"{partitions} partitions for {nodes} clustered nodes"
    planted_nodes = 1 + WIDE_BRANCHING + WIDE_BRANCHING**2
    assert partitions >= 0.6 * planted_nodes, f"{partitions} of {planted_nodes} planted nodes"

    replacing = _tree_of_run(cluster, _launch(cluster, PLANTED_SETTINGS, "planted.parquet"))
    _wait_until_published(cluster, replacing)
    _wait_for_only_partitions_of(cluster, replacing)
    assert _node_keys_of(cluster, tree_id) == 0, "the replaced tree's partitions were kept"


RUN_EVENTS_QUERY = """
query RunEvents($runId: ID!) {
  logsForRun(runId: $runId, limit: 1) { __typename }
}
"""


def _webserver_recovers(cluster: LocalCluster, tries: int = 10) -> None:
    """The webserver answers again, from each of the instance's storages, after Postgres
    restarted. Each storage (runs, schedules, event log) keeps its own pooled connection
    (``optimize_for_webserver``), not checked before use, so the first request that reaches
    each one after a restart may fail (500) while SQLAlchemy drops the dead connection: a
    launch that was the first to write events failed so."""
    selector = {"repositoryLocationName": "recursive_clusters", "repositoryName": "__repository__"}
    failures = []
    for _ in range(tries):
        try:
            runs = cluster.graphql(RUNS_QUERY)["runsOrError"]["results"]
            cluster.graphql(SENSOR_QUERY, {"selector": {**selector, "sensorName": GROWTH_SENSOR}})
            cluster.graphql(RUN_EVENTS_QUERY, {"runId": runs[0]["runId"]})
            return
        except urllib.error.HTTPError as error:
            failures.append(error.code)
            time.sleep(1)
    raise AssertionError(f"the webserver still fails after Postgres restarted: {failures}")


def test_a_worker_killed_mid_run_is_noticed_and_the_tree_completes(cluster, first_tree):
    previous = cluster.current_tree()
    tree_id = _tree_of_run(cluster, _launch(cluster, PLANTED_SETTINGS, "planted.parquet"))
    victim = _a_started_run(cluster, tree_id, LEVEL_2_JOB, "embedding_l2")
    worker = victim.tags[WORKER_TAG]
    cluster.kill_worker(int(worker.split("@")[0].removeprefix("worker-")))

    def previous_stays_current() -> None:
        assert cluster.current_tree() in {previous, tree_id}

    _wait_until_published(cluster, tree_id, while_waiting=previous_stays_current)
    with cluster.instance() as instance:
        killed = instance.get_run_by_id(victim.run_id)
        retries = [
            run
            for run in cluster.runs_of_tree(tree_id)
            if run.tags.get("dagster/parent_run_id") == victim.run_id
        ]
    assert killed.status is DagsterRunStatus.FAILURE, killed.status
    assert retries and retries[0].status is DagsterRunStatus.SUCCESS, retries
    assert retries[0].tags[WORKER_TAG] != worker
    assert _assert_complete(cluster, tree_id, len(planted_table())) == first_tree["leaves"]
    _wait_for_only_partitions_of(cluster, tree_id)
    cluster.up(2)  # the killed worker back, for the next test
