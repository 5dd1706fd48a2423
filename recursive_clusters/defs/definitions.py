"""The Dagster code location: assets for every tree level, batch scoring, sensors, jobs."""

import os

from dagster import Definitions, in_process_executor

from recursive_clusters.core.settings import Settings, load_settings
from recursive_clusters.defs.assets.batches import scored_batches
from recursive_clusters.defs.assets.explanations import build_explanation_assets
from recursive_clusters.defs.assets.levels import build_level_assets
from recursive_clusters.defs.assets.report import build_report_asset
from recursive_clusters.defs.assets.scoring import scored_table
from recursive_clusters.defs.assets.source import build_source_table, features
from recursive_clusters.defs.assets.tree import build_tree_asset
from recursive_clusters.defs.jobs import build_jobs
from recursive_clusters.defs.keys import (
    GROW_TREE_JOB,
    PUBLISH_TREE_JOB,
    SCORE_BATCHES_JOB,
    TREE_STORAGE_RESOURCE,
    level_job_name,
)
from recursive_clusters.defs.resources import SETTINGS_ENV, TreeStoreResource
from recursive_clusters.defs.schedules import build_recluster_schedules
from recursive_clusters.defs.sensors import build_batch_sensor, build_growth_sensor
from recursive_clusters.defs.tree_status import build_tree_failure_sensor


def build_definitions(settings: Settings, storage: TreeStoreResource | None = None) -> Definitions:
    """Everything the code location holds, for a tree of ``settings.recursion.max_depth``.

    The depth fixes how many level assets exist; every other setting is read per tree from
    its manifest. Runs execute in one process (``in_process_executor``): parallelism comes
    from sibling batches running as separate runs, not from a process per step.
    """
    max_depth = settings.recursion.max_depth
    levels = {
        level: build_level_assets(level) + build_explanation_assets(level)
        for level in range(1, max_depth + 1)
    }
    tree = build_tree_asset(max_depth)
    report = build_report_asset(max_depth)
    jobs = build_jobs(
        {level: [a.key for a in assets] for level, assets in levels.items()},
        [tree.key, report.key],
    )
    level_jobs = {level: jobs[level_job_name(level)] for level in range(2, max_depth + 1)}
    return Definitions(
        assets=[
            build_source_table(max_depth),
            features,
            *(a for assets in levels.values() for a in assets),
            tree,
            report,
            scored_table,
            scored_batches,
        ],
        jobs=list(jobs.values()),
        sensors=[
            build_growth_sensor(max_depth, level_jobs, jobs[PUBLISH_TREE_JOB]),
            build_batch_sensor(jobs[SCORE_BATCHES_JOB], jobs[GROW_TREE_JOB]),
            build_tree_failure_sensor(
                [jobs[GROW_TREE_JOB], *level_jobs.values(), jobs[PUBLISH_TREE_JOB]],
                node_jobs=list(level_jobs.values()),
            ),
        ],
        schedules=build_recluster_schedules(
            jobs[GROW_TREE_JOB],
            settings.schedule_cron or Settings.model_fields["schedule_cron"].default,
        ),
        resources={TREE_STORAGE_RESOURCE: storage or TreeStoreResource()},
        executor=in_process_executor,
    )


defs = build_definitions(load_settings(os.environ.get(SETTINGS_ENV)))
