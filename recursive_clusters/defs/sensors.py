"""The sensors: one grows each tree after a level-1 launch, one watches incoming batches."""

from collections.abc import Mapping

from dagster import (
    DefaultSensorStatus,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from recursive_clusters.core.parallelism import SIBLING_RUNS_ENV, available_cores, count_from_env
from recursive_clusters.defs.batch_watch import plan_batches
from recursive_clusters.defs.dagster_internals import UnresolvedAssetJobDefinition
from recursive_clusters.defs.growth import latest_storage_id, plan_growth
from recursive_clusters.defs.keys import BATCH_SENSOR, DRIVER_TAG, GROWTH_SENSOR
from recursive_clusters.defs.resources import TreeStoreResource
from recursive_clusters.defs.tree_status import report_tree_failure


def default_parallel_runs() -> int:
    """How many runs a level's siblings are split into: ``$RECURSIVE_CLUSTERS_SIBLING_RUNS``
    (a deployment with a run per pod sets it high: one run per node), else as many as run side
    by side here: one per core, up to the run queue's ``max_concurrent_runs: 2``."""
    return count_from_env(SIBLING_RUNS_ENV) or min(2, available_cores())


def build_growth_sensor(
    max_depth: int,
    level_jobs: Mapping[int, UnresolvedAssetJobDefinition],
    publish_job: UnresolvedAssetJobDefinition,
) -> SensorDefinition:
    @sensor(
        name=GROWTH_SENSOR,
        jobs=[*level_jobs.values(), publish_job],
        minimum_interval_seconds=5,
        default_status=DefaultSensorStatus.RUNNING,
        description="Adds the child partitions of each newly clustered node and runs them; "
        "publishes the tree when no node is pending.",
    )
    def tree_growth_sensor(context: SensorEvaluationContext, tree_storage: TreeStoreResource):
        if context.cursor is None:
            start = latest_storage_id(context.instance, max_depth)
            return SensorResult(cursor=str(start), skip_reason=SkipReason("Started watching."))

        def launched_by_daemon(run_id: str) -> bool:
            run = context.instance.get_run_by_id(run_id)
            return run is not None and run.tags.get(DRIVER_TAG) != "cli"

        plan = plan_growth(
            context.instance,
            tree_storage.store(),
            context.cursor,
            max_depth,
            {level: job.name for level, job in level_jobs.items()},
            publish_job.name,
            accept_run=launched_by_daemon,
            parallel_runs=default_parallel_runs(),
        )
        store = tree_storage.store()
        for tree_id, reason in plan.failures.items():
            context.log.error(f"tree {tree_id}: {reason}")
            report_tree_failure(context.instance, store, tree_id, reason)
        return SensorResult(
            run_requests=plan.run_requests,
            dynamic_partitions_requests=plan.dynamic_partitions_requests,
            cursor=plan.cursor,
        )

    return tree_growth_sensor


def build_batch_sensor(
    score_job: UnresolvedAssetJobDefinition, grow_job: UnresolvedAssetJobDefinition
) -> SensorDefinition:
    @sensor(
        name=BATCH_SENSOR,
        jobs=[score_job, grow_job],
        minimum_interval_seconds=15,
        default_status=DefaultSensorStatus.RUNNING,
        description="Adds a scored_batches partition for every new file (or DuckDB batch) in "
        "batches.path and scores it; launches a re-clustering when drift.consecutive_batches "
        "batches in a row drift from the current tree.",
    )
    def batch_sensor(context: SensorEvaluationContext, tree_storage: TreeStoreResource):
        plan = plan_batches(
            context.instance, tree_storage.store(), tree_storage.new_tree_settings()
        )
        if not plan.run_requests:
            return SkipReason(plan.skip_reason)
        return SensorResult(
            run_requests=plan.run_requests,
            dynamic_partitions_requests=plan.dynamic_partitions_requests,
        )

    return batch_sensor
