"""Every name the code location gives Dagster, in one place: asset keys, check names, job,
sensor and schedule names, partitions definitions and run tags.

Asset modules, jobs, sensors and the planners (growth, batch_watch, tree_status, runner) read
names from here, so a planner never imports an asset module to learn one.
"""

from __future__ import annotations

from functools import cache

from dagster import AssetKey, DynamicPartitionsDefinition

# Assets of the input, the tree and scoring.
SOURCE_TABLE = AssetKey("source_table")
FEATURES = AssetKey("features")
TREE_ASSET = AssetKey("cluster_tree")
TREE_REPORT = AssetKey("tree_report")
SCORED_TABLE = AssetKey("scored_table")
SCORED_BATCHES = AssetKey("scored_batches")


def embedding_key(level: int) -> AssetKey:
    return AssetKey(f"embedding_l{level}")


def clusters_key(level: int) -> AssetKey:
    return AssetKey(f"clusters_l{level}")


def classifiers_key(level: int) -> AssetKey:
    return AssetKey(f"classifiers_l{level}")


def shap_key(level: int) -> AssetKey:
    return AssetKey(f"shap_l{level}")


# Asset groups (the UI's lineage view).
INPUT_GROUP = "input"
TREE_GROUP = "tree"
SCORING_GROUP = "scoring"


def level_group(level: int) -> str:
    return f"level_{level}"


# Asset checks.
# Passes when a tree is published; the failure sensor fails it, naming the tree, the node and
# the error, when a tree cannot be grown or published (``tree_status.report_tree_failure``).
TREE_COMPLETE_CHECK = "tree_complete"
DRIFT_CHECK = "drift"

# Partitions.
BATCH_PARTITIONS = DynamicPartitionsDefinition(name="batches")


def level_partitions_name(level: int) -> str:
    """The dynamic partitions of level N >= 2 (one key per node zoomed into); also the name
    of the job that computes them."""
    return f"level_{level}_nodes"


@cache
def level_partitions(level: int) -> DynamicPartitionsDefinition | None:
    """Level 1 is the root alone; level N >= 2 has one partition per node zoomed into."""
    if level == 1:
        return None
    return DynamicPartitionsDefinition(name=level_partitions_name(level))


# Jobs.
GROW_TREE_JOB = "grow_tree"
PUBLISH_TREE_JOB = "publish_tree"
SCORE_TABLE_JOB = "score_table"
SCORE_BATCHES_JOB = "score_batches"


def level_job_name(level: int) -> str:
    return level_partitions_name(level)


# Sensors and schedules.
GROWTH_SENSOR = "tree_growth_sensor"
BATCH_SENSOR = "batch_sensor"
RECLUSTER_SCHEDULE = "recluster_schedule"
FAILURE_SENSOR = "tree_failure_sensor"

# The resource key under which Definitions holds the tree store (assets take it as a
# parameter of this name).
TREE_STORAGE_RESOURCE = "tree_storage"

# Run tags this package sets and reads (Dagster's own tags it reads: dagster_internals).
# A tree's id was once called its "generation": the tag, the materialization metadata keys
# ("generation", "previous_generation") and the scored rows' column keep that spelling, so
# the runs, events and files of existing instances still read.
TREE_ID_TAG = "recursive_clusters/generation"
DRIVER_TAG = "recursive_clusters/driver"
THREADS_TAG = "recursive_clusters/threads"
TRIGGER_TAG = "recursive_clusters/trigger"  # why a tree was launched (e.g. drift in batches)
# a node run launched again after it lost its database connection: which try it is
ATTEMPT_TAG = "recursive_clusters/attempt"
WORKER_TAG = "recursive_clusters/worker"  # the Celery worker (name@host) a run executes on
