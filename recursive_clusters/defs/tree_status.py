"""A tree that cannot be grown or published says so where users look.

Growth happens in sensor ticks and many runs; a failure in any of them would otherwise show
only on one run's page or in the sensor's tick history, while the tree stays "building" for
good. Here the tree's manifest is marked failed (so ``status``, the CLI and the next publish
see it) and the ``tree_complete`` check of ``cluster_tree`` fails in the UI's Checks tab,
naming the tree, the node and the error. The previous tree stays current.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from dagster import (
    AssetCheckEvaluation,
    AssetCheckSeverity,
    DagsterInstance,
    DagsterRun,
    DefaultSensorStatus,
    MetadataValue,
    RunFailureSensorContext,
    RunRequest,
    SensorDefinition,
    run_failure_sensor,
)
from dagster_shared.error import SerializableErrorInfo

from recursive_clusters.defs.dagster_internals import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    RUN_FAILURE_REASON_TAG,
    WILL_RETRY_TAG,
    RunFailureReason,
    UnresolvedAssetJobDefinition,
    auto_reexecution_should_retry_run,
)
from recursive_clusters.defs.keys import (
    ATTEMPT_TAG,
    FAILURE_SENSOR,
    THREADS_TAG,
    TREE_ASSET,
    TREE_COMPLETE_CHECK,
    TREE_ID_TAG,
)
from recursive_clusters.defs.resources import TreeStoreResource
from recursive_clusters.io.store import StorageError, TreeStore
from recursive_clusters.trees.publish import fail_tree


def report_tree_failure(
    instance: DagsterInstance, store: TreeStore, tree_id: str, reason: str
) -> None:
    """Mark tree ``tree_id`` failed and fail the ``tree_complete`` check with ``reason``.

    A tree already published is left as it is: a later failed run of it (a partition
    re-run by hand, the report) does not unpublish it, and its run says what failed."""
    with contextlib.suppress(StorageError, OSError):  # files gone or the disk full: the check
        # still says what happened
        if not fail_tree(store, tree_id, reason):
            return
    current = store.current()
    instance.report_runless_asset_event(
        AssetCheckEvaluation(
            asset_key=TREE_ASSET,
            check_name=TREE_COMPLETE_CHECK,
            passed=False,
            severity=AssetCheckSeverity.ERROR,
            metadata={
                "generation": tree_id,
                "error": MetadataValue.text(reason),
                "current_tree": current or "none",
                "what_now": MetadataValue.text(
                    f"Tree {tree_id} will not be published; "
                    + (f"tree {current} stays current." if current else "no tree is current.")
                    + " Fix the cause and launch grow_tree again."
                ),
            },
        )
    )


def _failure_reason(context: RunFailureSensorContext) -> str:
    """The failed steps' errors (they name the failed nodes), else the run's own message."""
    steps = [
        f"{event.step_key}: {event.event_specific_data.error.message.strip()}"
        for event in context.get_step_failure_events()
        if event.event_specific_data and event.event_specific_data.error
    ]
    job = context.dagster_run.job_name
    details = "; ".join(steps) or context.failure_event.message or "the run failed"
    return f"run {context.dagster_run.run_id[:8]} ({job}) failed: {details}"


def will_be_retried(instance: DagsterInstance, run: DagsterRun) -> bool:
    """Whether ``run_retries`` launches the failed ``run`` again (its retry then grows the tree).

    Dagster stores a run's failure before it tags the run ``will_retry``, so a sensor tick in
    between sees a failed run with no tag (seen in CI: a worker killed mid-run, its retry
    succeeded, and the tree had been failed meanwhile). Untagged, the run is judged by the
    rule the tag would record."""
    tagged = run.tags.get(WILL_RETRY_TAG)
    if tagged is not None:
        return tagged == "true"
    if not instance.run_retries_enabled:
        return False
    reason = run.tags.get(RUN_FAILURE_REASON_TAG)
    return auto_reexecution_should_retry_run(
        instance, run, RunFailureReason(reason) if reason else None
    )


# A run whose steps all died of a dropped connection to the instance's database (a Postgres
# restart: Dagster's own code reads the run's partitions while it stores a node's output) is
# run again, at most this many times, instead of failing its tree: the node was never wrong.
LOST_DATABASE_RUNS = 3
LOST_CONNECTION_MESSAGES = (
    "server closed the connection",
    "terminating connection",
    "could not connect to server",
    "the database system is",
)
KEPT_TAGS = (
    TREE_ID_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    ASSET_PARTITION_RANGE_END_TAG,
    THREADS_TAG,
)


def died_of_lost_database(context: RunFailureSensorContext) -> bool:
    """Whether every failed step of the run failed on a dropped database connection."""
    errors = [
        event.event_specific_data.error
        for event in context.get_step_failure_events()
        if event.event_specific_data and event.event_specific_data.error
    ]
    return bool(errors) and all(_lost_connection(error) for error in errors)


def _lost_connection(error: SerializableErrorInfo | None) -> bool:
    while error is not None:
        if error.cls_name == "OperationalError" and any(
            text in error.message for text in LOST_CONNECTION_MESSAGES
        ):
            return True
        error = error.cause
    return False


def build_tree_failure_sensor(
    jobs: Sequence[UnresolvedAssetJobDefinition], node_jobs: Sequence[UnresolvedAssetJobDefinition]
) -> SensorDefinition:
    """Watches the tree's jobs; a failed run (that will not be retried) fails its tree, except
    a run of ``node_jobs`` that died of a lost database connection: it is run again."""
    again = {job.name for job in node_jobs}

    @run_failure_sensor(
        name=FAILURE_SENSOR,
        monitored_jobs=list(jobs),
        request_jobs=list(node_jobs),
        default_status=DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=5,
        description="Marks a tree failed, and fails the tree_complete check of cluster_tree "
        "naming the node and error, when one of its runs fails (a node run that lost its "
        "database connection is run again instead).",
    )
    def tree_failure_sensor(
        context: RunFailureSensorContext, tree_storage: TreeStoreResource
    ) -> RunRequest | None:
        run = context.dagster_run
        tree_id = run.tags.get(TREE_ID_TAG)
        if not tree_id or will_be_retried(context.instance, run):
            return None  # no tree was started yet (the failed run says why), or it will be retried
        attempt = int(run.tags.get(ATTEMPT_TAG, "1"))
        if (
            run.job_name in again
            and attempt < LOST_DATABASE_RUNS
            and died_of_lost_database(context)
        ):
            return RunRequest(
                run_key=f"again:{run.run_id}",
                job_name=run.job_name,
                tags={
                    **{key: run.tags[key] for key in KEPT_TAGS if key in run.tags},
                    ATTEMPT_TAG: str(attempt + 1),
                },
            )
        report_tree_failure(
            context.instance, tree_storage.store(), tree_id, _failure_reason(context)
        )
        return None

    return tree_failure_sensor
