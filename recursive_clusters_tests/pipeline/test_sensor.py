"""The growth sensor, evaluated with the daemon's checks, grows and publishes every tree."""

import shutil

import yaml
from dagster import (
    AssetCheckKey,
    AssetKey,
    DagsterInstance,
    DagsterRunStatus,
    build_schedule_context,
)
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from recursive_clusters.cli import main
from recursive_clusters.core.parallelism import SIBLING_RUNS_ENV, available_cores
from recursive_clusters.core.paths import NodePath
from recursive_clusters.defs import growth
from recursive_clusters.defs.growth import chunks
from recursive_clusters.defs.keys import (
    GROW_TREE_JOB,
    PUBLISH_TREE_JOB,
    THREADS_TAG,
    TREE_ASSET,
    TREE_COMPLETE_CHECK,
    TREE_ID_TAG,
)
from recursive_clusters.defs.resources import TreeStoreResource
from recursive_clusters.defs.runner import _apply
from recursive_clusters.defs.sensors import default_parallel_runs
from recursive_clusters_tests.conftest import TEST_SETTINGS, planted_table
from recursive_clusters_tests.pipeline.ticks import (
    first_tree,
    grow_until_quiet,
    launch,
    setup,
    tick,
)


def _assert_current_tree_is_what_the_ui_shows(instance, store, tree_id, n_rows, label=""):
    assert store.current() == tree_id, f"{label}: tree {tree_id} is not current"
    assert store.status(tree_id) == "complete"
    assert len(store.read_table(tree_id, "assignments")) == n_rows
    nodes = {path for path in store.node_records(tree_id) if path != "root"}
    keys = set(instance.get_dynamic_partitions("level_2_nodes"))
    assert keys == {NodePath(path).partition_key(tree_id) for path in nodes}
    assert instance.get_materialized_partitions(AssetKey("clusters_l2")) >= keys
    check = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [AssetCheckKey(TREE_ASSET, TREE_COMPLETE_CHECK)]
    )[AssetCheckKey(TREE_ASSET, TREE_COMPLETE_CHECK)]
    assert check.status == AssetCheckExecutionRecordStatus.SUCCEEDED


def test_sensor_adds_children_runs_them_then_publishes(dagster_home, tmp_path):
    defs, storage = setup(dagster_home, tmp_path, planted_table())
    with DagsterInstance.get() as instance:
        first = tick(defs, instance, None)
        assert not first.run_requests  # a new sensor starts watching from now
        tree_id = launch(defs, instance)

        grow = tick(defs, instance, first.cursor)
        (add,) = grow.dynamic_partitions_requests
        assert add.partitions_def_name == "level_2_nodes"
        keys = [f"{tree_id}:root.{child}" for child in range(3)]
        assert add.partition_keys == keys
        ranges = [
            (
                r.tags["dagster/asset_partition_range_start"],
                r.tags["dagster/asset_partition_range_end"],
            )
            for r in grow.run_requests
        ]
        assert ranges == [(keys[0], keys[1]), (keys[2], keys[2])]  # two batches, one per core
        # ...each with its share of the cores, so the two do not oversubscribe them
        assert {r.tags[THREADS_TAG] for r in grow.run_requests} == {
            str(max(1, available_cores() // 2))
        }
        assert {r.job_name for r in grow.run_requests} == {"level_2_nodes"}

        _apply(instance, grow.dynamic_partitions_requests)
        for request in grow.run_requests:
            job = defs.resolve_job_def(request.job_name)
            assert job.execute_in_process(instance=instance, tags=request.tags).success

        publish = tick(defs, instance, grow.cursor)
        assert [r.job_name for r in publish.run_requests] == [PUBLISH_TREE_JOB]
        assert not publish.dynamic_partitions_requests
        job = defs.resolve_job_def(PUBLISH_TREE_JOB)

        # The daemon creates the publish run; a node of the tree materializes again before
        # it starts (a batch's last node, a re-run by hand): no second publish of that tree.
        queued = instance.create_run_for_job(
            job, tags=publish.run_requests[0].tags, status=DagsterRunStatus.NOT_STARTED
        )
        late = defs.resolve_job_def(grow.run_requests[-1].job_name)
        assert late.execute_in_process(instance=instance, tags=grow.run_requests[-1].tags).success
        while_queued = tick(defs, instance, publish.cursor)
        assert while_queued.cursor != publish.cursor  # it saw the late materialization
        assert not while_queued.run_requests
        instance.delete_run(queued.run_id)  # run in-process below instead

        assert job.execute_in_process(instance=instance, tags=publish.run_requests[0].tags).success
        assert grow_until_quiet(defs, instance, publish.cursor) is not None
        _assert_current_tree_is_what_the_ui_shows(instance, storage.store(), tree_id, 660)


def test_every_relaunch_grows_and_publishes_a_new_tree(dagster_home, tmp_path):
    """First tree, the same again, new settings, new data, then two launches in a row: each
    ends with a published current tree whose partitions are the only ones the UI shows."""
    defs, storage = setup(dagster_home, tmp_path, planted_table())
    store = storage.store()
    with DagsterInstance.get() as instance:
        cursor = tick(defs, instance, None).cursor
        trees = []
        for label, data, overrides in [
            ("first tree", planted_table(), {}),
            ("same data and settings", planted_table(), {}),
            ("new settings", planted_table(), {"random_state": 7}),
            ("new data", planted_table(seed=1, n_top=2), {}),
        ]:
            defs, _ = setup(dagster_home, tmp_path, data, **overrides)
            tree_id = launch(defs, instance)
            cursor = grow_until_quiet(defs, instance, cursor)
            _assert_current_tree_is_what_the_ui_shows(instance, store, tree_id, len(data), label)
            trees.append(tree_id)
        assert len(set(trees)) == len(trees), f"a relaunch reused a tree id: {trees}"
        assert trees[0][:8] == trees[1][:8]  # same data and settings: same content prefix
        assert store.manifest(trees[1])["previous_generation"] == trees[0]
        assert store.status(trees[0]) == "complete"  # replaced, its files kept

        first, second = launch(defs, instance), launch(defs, instance)  # two in a row
        cursor = grow_until_quiet(defs, instance, cursor)
        assert {store.status(first), store.status(second)} == {"complete"}
        _assert_current_tree_is_what_the_ui_shows(instance, store, store.current(), 440)
        assert store.current() in (first, second)


def test_a_schedule_tick_grows_and_publishes_a_new_tree(dagster_home, tmp_path):
    """The schedule's tick, evaluated with Dagster's own checks, launches ``grow_tree``; the
    sensor grows and publishes the tree it starts, beside the one launched before."""
    defs, storage = setup(dagster_home, tmp_path, planted_table(), schedule_cron="0 3 * * *")
    store = storage.store()
    schedule = defs.resolve_schedule_def("recluster_schedule")
    with DagsterInstance.get() as instance:
        first, cursor = first_tree(defs, instance)
        scheduled_tick = schedule.evaluate_tick(build_schedule_context(instance=instance))
        (request,) = scheduled_tick.run_requests
        job = defs.resolve_job_def(schedule.job_name)
        result = job.execute_in_process(instance=instance, tags=request.tags)
        scheduled = instance.get_run_by_id(result.run_id).tags[TREE_ID_TAG]
        grow_until_quiet(defs, instance, cursor)
        assert scheduled != first
        _assert_current_tree_is_what_the_ui_shows(instance, store, scheduled, 660, "schedule")


def test_a_tree_that_cannot_grow_fails_its_check_and_keeps_the_previous_tree(
    dagster_home, tmp_path
):
    defs, storage = setup(dagster_home, tmp_path, planted_table())
    store = storage.store()
    with DagsterInstance.get() as instance:
        good, cursor = first_tree(defs, instance)
        broken = launch(defs, instance)
        (store.node_dir(broken, "root") / "node.json").write_text("{ not json")
        result = tick(defs, instance, cursor)
        assert not result.run_requests
        assert store.status(broken) == "failed"
        assert "root" in store.manifest(broken)["failure"]
        assert store.current() == good
        key = AssetCheckKey(TREE_ASSET, TREE_COMPLETE_CHECK)
        check = instance.event_log_storage.get_latest_asset_check_execution_by_key([key])[key]
        assert check.status == AssetCheckExecutionRecordStatus.FAILED
        evaluation = check.event.dagster_event.event_specific_data
        assert evaluation.metadata["generation"].value == broken
        assert good in evaluation.metadata["what_now"].value


def test_a_tree_failing_an_error_check_is_not_published_and_says_so(dagster_home, tmp_path):
    defs, storage = setup(dagster_home, tmp_path, planted_table())
    store = storage.store()
    with DagsterInstance.get() as instance:
        good, cursor = first_tree(defs, instance)
        strict = {  # any noise at all is an ERROR: HDBSCAN leaves some on these blobs
            "checks": {"max_noise_share_warn": 0.0, "max_noise_share_error": 0.0},
            "clustering": {**TEST_SETTINGS["clustering"], "noise_policy": "keep"},
        }
        defs, _ = setup(dagster_home, tmp_path, planted_table(), **strict)
        rejected = launch(defs, instance)
        grow_until_quiet(defs, instance, cursor)
        assert store.current() == good and store.status(rejected) == "failed"
        assert "noise" in store.manifest(rejected)["failure"]
        checks = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            [AssetCheckKey(TREE_ASSET, name) for name in ("noise_share", TREE_COMPLETE_CHECK)]
        )
        for key, record in checks.items():
            assert record.status == AssetCheckExecutionRecordStatus.FAILED, key
            evaluation = record.event.dagster_event.event_specific_data
            assert evaluation.severity.value == "ERROR"
        keys = set(instance.get_dynamic_partitions("level_2_nodes"))
        assert keys and {key.split(":")[0] for key in keys} == {good}


def test_reclustering_by_the_cli_prunes_partitions_of_the_old_tree(
    grown_tree, tmp_path, settings_file, monkeypatch
):
    home = tmp_path / "dagster_home"  # a copy: the shared grown tree stays current for others
    shutil.copytree(grown_tree, home)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    smaller = tmp_path / "two_tops.csv"
    planted_table(seed=1, n_top=2).to_csv(smaller, index=False)
    assert main(["run", "--input", str(smaller), "--config", str(settings_file)]) == 0
    store = TreeStoreResource().store()
    current = store.require_current()
    with DagsterInstance.get() as instance:
        assert sorted(instance.get_dynamic_partitions("level_2_nodes")) == [
            f"{current}:root.0",
            f"{current}:root.1",
        ]
    assert len(store.read_table(current, "assignments")) == 440
    manifest = store.manifest(current)
    assert manifest["previous_generation"] != current
    assert manifest["ari_vs_previous"] is not None  # the two tables share ids u0000..u0439
    previous = manifest["previous_generation"]
    assert len(store.read_table(previous, "assignments")) == 660  # still queryable
    report = (store.tree_dir(current) / "report.html").read_text()
    assert "compared with the previous one" in report
    assert f"Previous tree <code>{previous}" in report


def test_a_level_with_more_events_than_one_tick_reads_grows_every_node(
    dagster_home, tmp_path, monkeypatch
):
    """The planner reads ``EVENTS_PER_TICK`` events per asset (1 here; 1,000 for a level of
    2,000 nodes, whose ``clusters`` events land at once). The cursor stops at the last event
    read, so the nodes past it still grow their children, and the CLI keeps planning while
    events wait; the tree then has every level-3 node and is published."""
    monkeypatch.setattr(growth, "EVENTS_PER_TICK", 1)
    data = tmp_path / "planted.parquet"
    planted_table().to_parquet(data)
    settings = {**TEST_SETTINGS, "recursion": {"max_depth": 3, "min_node_size": 50}}
    config = tmp_path / "settings.yaml"
    config.write_text(yaml.safe_dump(settings))
    assert main(["run", "--input", str(data), "--config", str(config)]) == 0
    store = TreeStoreResource().store()
    tree_id = store.require_current()
    records = store.node_records(tree_id)
    zoomed = {child for record in records.values() for child in record["zoom_into"]}
    assert {path for path in zoomed if NodePath(path).level == 3}, "no level-3 node planted"
    assert zoomed <= set(records), f"never clustered: {sorted(zoomed - set(records))}"
    with DagsterInstance.get() as instance:
        keys = set(instance.get_dynamic_partitions("level_3_nodes"))
    assert keys == {NodePath(p).partition_key(tree_id) for p in zoomed if NodePath(p).level == 3}


def test_a_deployment_can_ask_for_one_run_per_node(monkeypatch):
    """On Kubernetes (a pod per run) siblings need not share a run: the env var says so."""
    monkeypatch.delenv(SIBLING_RUNS_ENV, raising=False)
    assert default_parallel_runs() == min(2, available_cores())
    monkeypatch.setenv(SIBLING_RUNS_ENV, "1000")
    assert default_parallel_runs() == 1000
    assert chunks(["0", "1", "2"], default_parallel_runs()) == [["0"], ["1"], ["2"]]


def test_sibling_batches_are_balanced_by_rows():
    """Batches that run side by side hold about the same rows, so they end together; every
    key stays in order, in exactly one batch, and no batch is empty."""
    keys = [f"root.{i}" for i in range(7)]
    rows = [13_000, 2_000, 9_000, 8_000, 3_000, 6_000, 4_000]  # by count: 32,000 vs 13,000
    assert chunks(keys, 2, rows) == [keys[:3], keys[3:]]  # 24,000 vs 21,000
    assert chunks(keys, 2) == [keys[:4], keys[4:]]  # without rows: by count, as before
    assert chunks(keys[:3], 3, [1, 1, 10_000]) == [[k] for k in keys[:3]]
    assert chunks(keys[:4], 3, [1, 1, 1, 10_000]) == [keys[:2], [keys[2]], [keys[3]]]


def test_a_tree_deeper_than_the_loaded_code_location_is_refused_at_launch(dagster_home, tmp_path):
    """The code location is the one source of how deep trees grow: a settings file edited to a
    deeper tree after it was loaded is refused at launch, before anything is computed."""
    defs, storage = setup(dagster_home, tmp_path, planted_table())  # loaded with 2 levels
    deeper = {**TEST_SETTINGS["recursion"], "max_depth": 3}
    setup(dagster_home, tmp_path, planted_table(), recursion=deeper)  # the file, edited
    with DagsterInstance.get() as instance:
        result = defs.resolve_job_def(GROW_TREE_JOB).execute_in_process(
            instance=instance, raise_on_error=False
        )
    assert not result.success
    (failure,) = [event for event in result.all_events if event.is_step_failure]
    message = failure.step_failure_data.user_failure_data.description
    assert "recursion.max_depth is 3" in message and "loaded with 2 levels" in message
    assert "reload" in message
    assert storage.store().latest_started() is None  # no tree was begun
