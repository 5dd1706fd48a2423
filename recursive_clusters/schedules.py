"""Re-clustering on a schedule: a new tree generation from the current input and settings."""

from __future__ import annotations

from dagster import DefaultScheduleStatus, ScheduleDefinition
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition


def build_recluster_schedule(
    job: UnresolvedAssetJobDefinition, cron: str | None
) -> ScheduleDefinition:
    """Runs ``grow_tree`` on ``cron``; off unless the settings give ``schedule_cron``."""
    return ScheduleDefinition(
        name="recluster_schedule",
        job=job,
        cron_schedule=cron or "0 3 * * 1",
        default_status=DefaultScheduleStatus.RUNNING if cron else DefaultScheduleStatus.STOPPED,
        description="Re-clusters the whole tree anew (a new generation); the growth sensor "
        "prunes partitions the new tree lacks.",
    )
