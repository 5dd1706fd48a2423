"""Sensor ticks as the daemon evaluates them, on a real instance: shared by pipeline tests."""

import pandas as pd
import yaml
from dagster import build_sensor_context

from recursive_clusters.core.settings import parse_settings
from recursive_clusters.defs.definitions import build_definitions
from recursive_clusters.defs.keys import GROW_TREE_JOB, TREE_ID_TAG
from recursive_clusters.defs.resources import TreeStoreResource
from recursive_clusters.defs.runner import _apply, ensure_dagster_home
from recursive_clusters_tests.conftest import TEST_SETTINGS


def tick(defs, instance, cursor, sensor_name: str = "tree_growth_sensor"):
    """One tick as the daemon evaluates it: ``evaluate_tick`` applies Dagster's own checks of
    a tick's result (e.g. no key both added and deleted), which calling the function skips."""
    sensor = defs.resolve_sensor_def(sensor_name)
    context = build_sensor_context(
        instance=instance,
        instance_ref=instance.get_ref(),  # as the daemon's: pending partitions resolve
        cursor=cursor,
        definitions=defs,
        resources={"tree_storage": defs.resources["tree_storage"]},
    )
    return sensor.evaluate_tick(context)


def setup(dagster_home, tmp_path, data: pd.DataFrame, **overrides):
    """Definitions over a temporary store whose settings file starts trees on ``data``."""
    ensure_dagster_home(dagster_home)
    path = tmp_path / "input.parquet"
    data.to_parquet(path)
    raw = {**TEST_SETTINGS, "input": {**TEST_SETTINGS["input"], "path": str(path)}, **overrides}
    settings_path = tmp_path / "settings.yaml"
    settings_path.write_text(yaml.safe_dump(raw))
    storage = TreeStoreResource(base_dir=str(tmp_path / "trees"), settings_path=str(settings_path))
    return build_definitions(parse_settings(raw), storage), storage


def grow_until_quiet(defs, instance, cursor: str) -> str:
    """Tick, apply the tick's partition requests and run its runs, as the daemon does, until
    a tick asks for nothing more; returns the cursor."""
    for _ in range(20):
        result = tick(defs, instance, cursor)
        cursor = result.cursor
        _apply(instance, result.dynamic_partitions_requests)
        if not result.run_requests:
            return cursor
        for request in result.run_requests:
            job = defs.resolve_job_def(request.job_name)
            assert job.execute_in_process(instance=instance, tags=request.tags).success
    raise AssertionError("the tree never stopped growing")


def launch(defs, instance) -> str:
    """``grow_tree`` as the UI or the schedule launches it (no CLI tag): a new tree's id."""
    result = defs.resolve_job_def(GROW_TREE_JOB).execute_in_process(instance=instance)
    return instance.get_run_by_id(result.run_id).tags[TREE_ID_TAG]


def first_tree(defs, instance) -> tuple[str, str]:
    """A sensor that started watching, then one tree launched and grown until published:
    the tree's id and the sensor's cursor."""
    cursor = tick(defs, instance, None).cursor
    tree_id = launch(defs, instance)
    return tree_id, grow_until_quiet(defs, instance, cursor)
