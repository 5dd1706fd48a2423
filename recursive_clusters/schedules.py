"""Re-clustering on a schedule: a new tree from the current input and settings."""

from __future__ import annotations

from dagster import DefaultScheduleStatus, ScheduleDefinition

from recursive_clusters.dagster_internals import UnresolvedAssetJobDefinition


def build_recluster_schedules(
    job: UnresolvedAssetJobDefinition, cron: str | None
) -> list[ScheduleDefinition]:
    """``grow_tree`` on ``schedule_cron`` from the settings file; no schedule without one, so
    the UI never offers a cron that nobody chose."""
    if not cron:
        return []
    return [
        ScheduleDefinition(
            name="recluster_schedule",
            job=job,
            cron_schedule=cron,
            default_status=DefaultScheduleStatus.RUNNING,
            description=f"Re-clusters the configured input as a new tree on `{cron}` "
            "(`schedule_cron` in the settings file named by $RECURSIVE_CLUSTERS_CONFIG); the "
            "growth sensor grows and publishes it, then removes the replaced tree's partitions.",
        )
    ]
