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
    SensorDefinition,
    run_failure_sensor,
)

from recursive_clusters.defs.dagster_internals import (
    RUN_FAILURE_REASON_TAG,
    WILL_RETRY_TAG,
    RunFailureReason,
    UnresolvedAssetJobDefinition,
    auto_reexecution_should_retry_run,
)
from recursive_clusters.defs.keys import (
    FAILURE_SENSOR,
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


def build_tree_failure_sensor(jobs: Sequence[UnresolvedAssetJobDefinition]) -> SensorDefinition:
    """Watches the tree's jobs; a failed run (that will not be retried) fails its tree."""

    @run_failure_sensor(
        name=FAILURE_SENSOR,
        monitored_jobs=list(jobs),
        default_status=DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=5,
        description="Marks a tree failed, and fails the tree_complete check of cluster_tree "
        "naming the node and error, when one of its runs fails.",
    )
    def tree_failure_sensor(
        context: RunFailureSensorContext, tree_storage: TreeStoreResource
    ) -> None:
        run = context.dagster_run
        tree_id = run.tags.get(TREE_ID_TAG)
        if not tree_id or will_be_retried(context.instance, run):
            return  # no tree was started yet (the failed run says why), or it will be retried
        report_tree_failure(
            context.instance, tree_storage.store(), tree_id, _failure_reason(context)
        )

    return tree_failure_sensor
