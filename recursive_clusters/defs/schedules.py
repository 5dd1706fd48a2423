"""Re-clustering on a schedule: a new tree from the current input and settings."""

from __future__ import annotations

from dagster import DefaultScheduleStatus, ScheduleDefinition

from recursive_clusters.defs.dagster_internals import UnresolvedAssetJobDefinition
from recursive_clusters.defs.keys import RECLUSTER_SCHEDULE

# Cron strings are read in this zone, whatever the machine's clock says.
SCHEDULE_TIMEZONE = "UTC"


def build_recluster_schedules(
    job: UnresolvedAssetJobDefinition, cron: str
) -> list[ScheduleDefinition]:
    """``grow_tree`` on ``schedule_cron`` (default Sunday 03:00 UTC). Always defined and
    stopped until a user switches it on (the UI's Automation page, or ``dagster schedule
    start recluster_schedule``), as Dagster's own schedules are: a user who opens the UI to
    schedule re-clustering finds it there, and nothing re-clusters unasked."""
    return [
        ScheduleDefinition(
            name=RECLUSTER_SCHEDULE,
            job=job,
            cron_schedule=cron,
            execution_timezone=SCHEDULE_TIMEZONE,
            default_status=DefaultScheduleStatus.STOPPED,
            description=f"Re-clusters the configured input as a new tree on `{cron}` "
            f"({SCHEDULE_TIMEZONE}; `schedule_cron` in the settings file named by "
            "$RECURSIVE_CLUSTERS_CONFIG). Stopped until you switch it on. The growth sensor "
            "grows and publishes the tree, then removes the replaced tree's partitions.",
        )
    ]
