"""Jobs: grow a new tree from the input, compute one level's nodes, publish a finished tree."""

from dagster import AssetKey, AssetSelection, define_asset_job

from recursive_clusters.defs.dagster_internals import UnresolvedAssetJobDefinition
from recursive_clusters.defs.keys import (
    BATCH_PARTITIONS,
    FEATURES,
    GROW_TREE_JOB,
    PUBLISH_TREE_JOB,
    SCORE_BATCHES_JOB,
    SCORE_TABLE_JOB,
    SCORED_BATCHES,
    SCORED_TABLE,
    SOURCE_TABLE,
    level_job_name,
    level_partitions,
)


def build_jobs(
    level_assets: dict[int, list[AssetKey]], publish_assets: list[AssetKey]
) -> dict[str, UnresolvedAssetJobDefinition]:
    """``grow_tree`` (input + level 1), one job per deeper level, and ``publish_tree``."""
    jobs = {
        GROW_TREE_JOB: define_asset_job(
            GROW_TREE_JOB,
            selection=AssetSelection.assets(SOURCE_TABLE, FEATURES, *level_assets[1]),
            description="Start a new tree from the configured input and cluster its root; "
            "the growth sensor then zooms into every qualifying cluster and publishes the tree.",
        ),
        PUBLISH_TREE_JOB: define_asset_job(
            PUBLISH_TREE_JOB,
            selection=AssetSelection.assets(*publish_assets),
            description="Assign every row to its leaf and make the finished tree current.",
        ),
        SCORE_TABLE_JOB: define_asset_job(
            SCORE_TABLE_JOB,
            selection=AssetSelection.assets(SCORED_TABLE),
            description="Route a new table to the current tree's leaves (set its path in "
            "the launchpad config); schedule it to score new data regularly.",
        ),
        SCORE_BATCHES_JOB: define_asset_job(
            SCORE_BATCHES_JOB,
            selection=AssetSelection.assets(SCORED_BATCHES),
            partitions_def=BATCH_PARTITIONS,
            description="Score one incoming batch with the current tree and check it for "
            "drift; the batch sensor launches it for every new file in batches.path.",
        ),
    }
    for level, keys in level_assets.items():
        if level == 1:
            continue
        jobs[level_job_name(level)] = define_asset_job(
            level_job_name(level),
            selection=AssetSelection.assets(*keys),
            partitions_def=level_partitions(level),
            description=f"Embed, cluster and explain level-{level} nodes (a batch of siblings).",
        )
    return jobs
