"""Grow the tree: turn new node materializations into child partitions and runs.

One planner serves the daemon's sensor and the CLI, so both grow the same tree. It reads
which children to zoom into from each node's stored record (decided in the core by
``decide_split``), prunes partitions of an older tree under that node, adds the children's
partition keys, and asks for one run per batch of siblings (a partition-key range), so that
a batch pays the fixed cost of a run once. When no node of a tree is pending, it asks for
the publishing run (assignments, and what else depends on the whole tree), once every
split node is also explained.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from dagster import (
    AddDynamicPartitionsRequest,
    AssetKey,
    AssetRecordsFilter,
    DagsterInstance,
    DeleteDynamicPartitionsRequest,
    RunRequest,
)
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from recursive_clusters.assets.common import GENERATION_TAG, THREADS_TAG, level_partitions
from recursive_clusters.assets.explanations import shap_key
from recursive_clusters.assets.levels import clusters_key
from recursive_clusters.core.parallelism import threads_per_run
from recursive_clusters.core.tree import (
    ROOT,
    partition_key,
    path_from_partition_key,
    pending_nodes,
)
from recursive_clusters.storage import TreeStore

EVENTS_PER_TICK = 1000


@dataclass
class GrowthPlan:
    """What to apply to the instance and what to run; the cursor is the last event seen."""

    dynamic_partitions_requests: list[AddDynamicPartitionsRequest | DeleteDynamicPartitionsRequest]
    run_requests: list[RunRequest]
    cursor: str
    added_keys: dict[int, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class NodeEvent:
    """A node clustered (it may grow children) or explained (its tree may be complete)."""

    storage_id: int
    level: int
    path: str
    generation: str
    run_id: str
    clustered: bool


def _watched(max_depth: int) -> list[tuple[int, AssetKey, bool]]:
    return [
        (level, key, key == clusters_key(level))
        for level in range(1, max_depth + 1)
        for key in (clusters_key(level), shap_key(level))
    ]


def latest_storage_id(instance: DagsterInstance, max_depth: int) -> int:
    """The newest watched materialization id: where a fresh sensor starts watching."""
    newest = 0
    for _, key, _ in _watched(max_depth):
        result = instance.fetch_materializations(key, limit=1)
        if result.records:
            newest = max(newest, result.records[0].storage_id)
    return newest


def new_node_events(instance: DagsterInstance, after: int, max_depth: int) -> list[NodeEvent]:
    events = []
    for level, key, clustered in _watched(max_depth):
        result = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=key, after_storage_id=after),
            limit=EVENTS_PER_TICK,
            ascending=True,
        )
        for record in result.records:
            metadata = record.asset_materialization.metadata
            if "generation" not in metadata:
                continue
            events.append(
                NodeEvent(
                    storage_id=record.storage_id,
                    level=level,
                    path=path_from_partition_key(record.partition_key),
                    generation=str(metadata["generation"].value),
                    run_id=record.run_id,
                    clustered=clustered,
                )
            )
    return sorted(events, key=lambda event: event.storage_id)


def chunks(keys: Sequence[str], parts: int) -> list[list[str]]:
    """``keys`` in at most ``parts`` consecutive batches of (nearly) equal size."""
    size = -(-len(keys) // max(1, min(parts, len(keys))))
    return [list(keys[start : start + size]) for start in range(0, len(keys), size)]


def plan_growth(
    instance: DagsterInstance,
    store: TreeStore,
    cursor: str | None,
    max_depth: int,
    level_jobs: Mapping[int, str],
    publish_job: str,
    accept_run: Callable[[str], bool] = lambda run_id: True,
    parallel_runs: int = 2,
) -> GrowthPlan:
    """Plan the next step of every tree with new node materializations since ``cursor``.

    The siblings of a level are split into at most ``parallel_runs`` runs, one per core the
    run queue lets run side by side, and each run is given its share of the cores.
    """
    after = int(cursor) if cursor else 0
    seen = new_node_events(instance, after, max_depth)
    newest = max([after, *(e.storage_id for e in seen)])  # skipped runs are passed too
    events = [e for e in seen if accept_run(e.run_id)]
    keys = {
        level: list(instance.get_dynamic_partitions(level_partitions(level).name))
        for level in range(2, max_depth + 1)
    }
    existing = {level: set(level_keys) for level, level_keys in keys.items()}
    deleted: dict[int, list[str]] = {level: [] for level in keys}
    added: dict[int, list[tuple[str, str]]] = {level: [] for level in keys}
    for event in events:
        record = store.node_record(event.generation, event.path)
        if record is None or not event.clustered:
            continue
        prefix = "" if event.path == ROOT else partition_key(event.path) + "."
        for level in range(event.level + 1, max_depth + 1):
            stale = [k for k in keys[level] if k.startswith(prefix) and k in existing[level]]
            keys[level] = [key for key in keys[level] if not key.startswith(prefix)]
            deleted[level] += stale
            added[level] = [(k, g) for k, g in added[level] if not k.startswith(prefix)]
        for child in record["zoom_into"]:
            key = partition_key(child)
            keys[event.level + 1].append(key)
            added[event.level + 1].append((key, event.generation))

    partition_requests: list = []
    for level in keys:
        if deleted[level]:
            partition_requests.append(
                level_partitions(level).build_delete_request(sorted(set(deleted[level])))
            )
    run_requests = []
    for level in keys:
        if not added[level]:
            continue
        partition_requests.append(
            level_partitions(level).build_add_request([k for k, _ in added[level]])
        )
        for generation in dict.fromkeys(g for _, g in added[level]):
            batch = [k for k, g in added[level] if g == generation]
            for chunk in chunks(batch, parallel_runs):
                run_requests.append(
                    RunRequest(
                        run_key=f"{generation}:{level}:{chunk[0]}..{chunk[-1]}:{newest}",
                        job_name=level_jobs[level],
                        tags={
                            GENERATION_TAG: generation,
                            ASSET_PARTITION_RANGE_START_TAG: chunk[0],
                            ASSET_PARTITION_RANGE_END_TAG: chunk[-1],
                            THREADS_TAG: str(threads_per_run(parallel_runs)),
                        },
                    )
                )
    growing = {g for level in added for _, g in added[level]}
    for generation in dict.fromkeys(e.generation for e in events):
        if generation in growing or pending_nodes(store.node_records(generation)):
            continue
        if store.unexplained_nodes(generation):
            continue
        run_requests.append(
            RunRequest(
                run_key=f"publish:{generation}:{newest}",
                job_name=publish_job,
                tags={GENERATION_TAG: generation},
            )
        )
    return GrowthPlan(
        dynamic_partitions_requests=partition_requests,
        run_requests=run_requests,
        cursor=str(newest),
        added_keys={level: [k for k, _ in pairs] for level, pairs in added.items() if pairs},
    )
