"""The growth sensor, called as the daemon calls it, grows and then publishes a tree."""

import yaml
from dagster import (
    AddDynamicPartitionsRequest,
    DagsterInstance,
    DeleteDynamicPartitionsRequest,
    build_sensor_context,
)

from recursive_clusters.assets.common import THREADS_TAG
from recursive_clusters.cli import main
from recursive_clusters.core.parallelism import SIBLING_RUNS_ENV, available_cores
from recursive_clusters.core.settings import parse_settings
from recursive_clusters.definitions import build_definitions
from recursive_clusters.growth import chunks
from recursive_clusters.jobs import GROW_TREE_JOB, PUBLISH_TREE_JOB
from recursive_clusters.resources import TreeStorage
from recursive_clusters.runner import ensure_dagster_home
from recursive_clusters.sensors import default_parallel_runs
from recursive_clusters_tests.conftest import TEST_SETTINGS, planted_table


def _tick(defs, instance, cursor):
    sensor = defs.resolve_sensor_def("tree_growth_sensor")
    context = build_sensor_context(
        instance=instance,
        cursor=cursor,
        definitions=defs,
        resources={"tree_storage": defs.resources["tree_storage"]},
    )
    return sensor(context)


def _apply(instance, result) -> None:
    for request in result.dynamic_partitions_requests:
        if isinstance(request, AddDynamicPartitionsRequest):
            instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)
        elif isinstance(request, DeleteDynamicPartitionsRequest):
            for key in request.partition_keys:
                instance.delete_dynamic_partition(request.partitions_def_name, key)


def test_sensor_adds_children_runs_them_then_publishes(dagster_home, tmp_path, planted_csv):
    ensure_dagster_home(dagster_home)
    settings_path = tmp_path / "settings.yaml"
    data = {**TEST_SETTINGS, "input": {**TEST_SETTINGS["input"], "path": str(planted_csv)}}
    settings_path.write_text(yaml.safe_dump(data))
    settings = parse_settings(data)
    storage = TreeStorage(base_dir=str(tmp_path / "trees"), settings_path=str(settings_path))
    defs = build_definitions(settings, storage)
    with DagsterInstance.get() as instance:
        first = _tick(defs, instance, None)
        assert not first.run_requests  # a new sensor starts watching from now
        assert defs.resolve_job_def(GROW_TREE_JOB).execute_in_process(instance=instance).success

        grow = _tick(defs, instance, first.cursor)
        (add,) = grow.dynamic_partitions_requests
        assert add.partitions_def_name == "level_2_nodes"
        assert add.partition_keys == ["0", "1", "2"]
        ranges = [
            (
                r.tags["dagster/asset_partition_range_start"],
                r.tags["dagster/asset_partition_range_end"],
            )
            for r in grow.run_requests
        ]
        assert ranges == [("0", "1"), ("2", "2")]  # two sibling batches, one per core
        # ...each with its share of the cores, so the two do not oversubscribe them
        assert {r.tags[THREADS_TAG] for r in grow.run_requests} == {
            str(max(1, available_cores() // 2))
        }
        assert {r.job_name for r in grow.run_requests} == {"level_2_nodes"}

        _apply(instance, grow)
        for request in grow.run_requests:
            job = defs.resolve_job_def(request.job_name)
            assert job.execute_in_process(instance=instance, tags=request.tags).success

        publish = _tick(defs, instance, grow.cursor)
        assert [r.job_name for r in publish.run_requests] == [PUBLISH_TREE_JOB]
        assert not publish.dynamic_partitions_requests
        job = defs.resolve_job_def(PUBLISH_TREE_JOB)
        assert job.execute_in_process(instance=instance, tags=publish.run_requests[0].tags).success
        assert storage.store().current() is not None
        assert not _tick(defs, instance, _tick(defs, instance, publish.cursor).cursor).run_requests


def test_reclustering_prunes_partitions_of_the_old_tree(
    grown_tree, tmp_path, settings_file, monkeypatch
):
    monkeypatch.setenv("DAGSTER_HOME", str(grown_tree))
    smaller = tmp_path / "two_tops.csv"
    planted_table(seed=1, n_top=2).to_csv(smaller, index=False)
    assert main(["run", "--input", str(smaller), "--config", str(settings_file)]) == 0
    with DagsterInstance.get() as instance:
        assert sorted(instance.get_dynamic_partitions("level_2_nodes")) == ["0", "1"]
    store = TreeStorage().store()
    current = store.require_current()
    assert len(store.read_table(current, "assignments")) == 440
    manifest = store.manifest(current)
    assert manifest["previous_generation"] != current
    assert manifest["ari_vs_previous"] is not None  # the two tables share ids u0000..u0439
    previous = manifest["previous_generation"]
    assert len(store.read_table(previous, "assignments")) == 660  # still queryable
    report = (store.tree_dir(current) / "report.html").read_text()
    assert "Compared with the previous tree" in report and previous in report


def test_a_deployment_can_ask_for_one_run_per_node(monkeypatch):
    """On Kubernetes (a pod per run) siblings need not share a run: the env var says so."""
    monkeypatch.delenv(SIBLING_RUNS_ENV, raising=False)
    assert default_parallel_runs() == min(2, available_cores())
    monkeypatch.setenv(SIBLING_RUNS_ENV, "1000")
    assert default_parallel_runs() == 1000
    assert chunks(["0", "1", "2"], default_parallel_runs()) == [["0"], ["1"], ["2"]]
