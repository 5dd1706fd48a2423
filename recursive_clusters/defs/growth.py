"""Grow the tree: turn new node materializations into child partitions and runs.

One planner serves the daemon's sensor and the CLI, so both grow the same tree. It reads
which children to zoom into from each node's stored record (decided in the core by
``decide_split``), adds the children's partition keys, and asks for one run per batch of
siblings (a partition-key range), so that a batch pays the fixed cost of a run once. When no
node of a tree is pending, it asks for the publishing run (assignments, and what else depends
on the whole tree), once every split node is also explained, and only once per tree. Once a
tree is published, the partitions of the trees it replaced are deleted, so the UI lists the
current tree's (and any tree still growing). Partition keys hold the tree id (``core.paths``),
so keys of two trees never collide and one plan never adds and deletes the same key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum

import numpy as np
from dagster import (
    AddDynamicPartitionsRequest,
    AssetKey,
    AssetRecordsFilter,
    DagsterInstance,
    DagsterRunStatus,
    DeleteDynamicPartitionsRequest,
    RunRequest,
    RunsFilter,
)

from recursive_clusters.core.parallelism import threads_per_run
from recursive_clusters.core.paths import ROOT, NodePath, PathError
from recursive_clusters.core.tree import pending_nodes
from recursive_clusters.defs.dagster_internals import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)
from recursive_clusters.defs.keys import (
    THREADS_TAG,
    TREE_ASSET,
    TREE_ID_TAG,
    clusters_key,
    level_partitions,
    shap_key,
)
from recursive_clusters.io.store import StorageError, TreeStore

EVENTS_PER_TICK = 1000


@dataclass
class GrowthPlan:
    """What to apply to the instance and what to run; the cursor is the last event seen.

    ``failures`` names each tree the planner could not grow or publish, and why: the caller
    marks those trees failed where users look (``tree_status.report_tree_failure``).
    ``more``: events wait past the cursor (more than one tick reads), so a plan with no run
    may still be followed by one.
    """

    dynamic_partitions_requests: list[AddDynamicPartitionsRequest | DeleteDynamicPartitionsRequest]
    run_requests: list[RunRequest]
    cursor: str
    failures: dict[str, str] = field(default_factory=dict)
    more: bool = False


class EventKind(Enum):
    CLUSTERED = "clustered"  # a node may grow children
    EXPLAINED = "explained"  # its tree may be complete
    PUBLISHED = "published"  # the trees it replaced may be cleaned up


@dataclass(frozen=True)
class NodeEvent:
    """A materialization of a watched asset for one node (or one tree, when published)."""

    storage_id: int
    level: int
    path: NodePath
    tree_id: str
    run_id: str
    kind: EventKind


def _watched(max_depth: int) -> list[tuple[int, AssetKey, EventKind]]:
    levels = [
        (level, key, kind)
        for level in range(1, max_depth + 1)
        for key, kind in (
            (clusters_key(level), EventKind.CLUSTERED),
            (shap_key(level), EventKind.EXPLAINED),
        )
    ]
    return [*levels, (1, TREE_ASSET, EventKind.PUBLISHED)]


def latest_storage_id(instance: DagsterInstance, max_depth: int) -> int:
    """The newest watched materialization id: where a fresh sensor starts watching."""
    newest = 0
    for _, key, _ in _watched(max_depth):
        result = instance.fetch_materializations(key, limit=1)
        if result.records:
            newest = max(newest, result.records[0].storage_id)
    return newest


def new_node_events(
    instance: DagsterInstance, after: int, max_depth: int
) -> tuple[list[NodeEvent], int, bool]:
    """The watched materializations after storage id ``after``, the id they are complete up
    to (the next cursor), and whether more wait past it.

    Each asset is read ``EVENTS_PER_TICK`` at a time. When one has more, the events of every
    asset are taken only up to the last id read of it: a cursor past that would skip the
    rest of it for good (a level of 2,000 nodes ends with 2,000 ``clusters`` events at once,
    whose children would never be grown)."""
    events = []
    newest, complete_up_to = after, None
    for level, key, kind in _watched(max_depth):
        result = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=key, after_storage_id=after),
            limit=EVENTS_PER_TICK,
            ascending=True,
        )
        if not result.records:
            continue
        last_read = result.records[-1].storage_id
        newest = max(newest, last_read)  # records skipped below are passed too
        if result.has_more:
            complete_up_to = min(last_read, complete_up_to or last_read)
        for record in result.records:
            metadata = record.asset_materialization.metadata
            if "generation" not in metadata:
                continue
            path = _path_of_partition(record.partition_key)
            if path is None:
                continue  # a partition of the key format before tree ids were part of it
            events.append(
                NodeEvent(
                    storage_id=record.storage_id,
                    level=level,
                    path=path,
                    tree_id=str(metadata["generation"].value),
                    run_id=record.run_id,
                    kind=kind,
                )
            )
    if complete_up_to is None:
        return sorted(events, key=lambda event: event.storage_id), newest, False
    events = [event for event in events if event.storage_id <= complete_up_to]
    return sorted(events, key=lambda event: event.storage_id), complete_up_to, True


def chunks(keys: Sequence[str], parts: int, rows: Sequence[int] | None = None) -> list[list[str]]:
    """``keys`` in at most ``parts`` consecutive batches: of (nearly) equal count, or, given
    each key's ``rows``, of (nearly) equal rows, so that batches run side by side end at
    about the same time (7 MNIST nodes of 2,000 to 13,000 rows split 4 + 3 by count took
    127 s and 71 s)."""
    parts = max(1, min(parts, len(keys)))
    if rows is None or parts == 1:
        size = -(-len(keys) // parts)
        return [list(keys[start : start + size]) for start in range(0, len(keys), size)]
    total = np.cumsum(rows, dtype=float)
    cuts = [0]
    for part in range(1, parts):
        target = total[-1] * part / parts
        # the batch boundary nearest the target (ties: the later one), leaving at least one
        # key for each batch still to come
        nearest = int(np.argmin(np.abs(total - target)[::-1]))
        cut = len(total) - nearest
        cut = min(max(cut, cuts[-1] + 1), len(keys) - (parts - part))
        cuts.append(cut)
    cuts.append(len(keys))
    return [list(keys[a:b]) for a, b in zip(cuts, cuts[1:], strict=False) if b > a]


def _replaced_trees(store: TreeStore, keys: Mapping[int, set[str]]) -> set[str | None]:
    """Trees with partitions that another tree has replaced: every tree but the current one
    that is complete (published before it) or failed. Trees still growing keep theirs, so
    two trees grown side by side on one instance do not remove each other's partitions."""
    current = store.current()
    trees = {_tree_of_key(k) for level_keys in keys.values() for k in level_keys}
    return {g for g in trees if g != current and (g is None or store.status(g) != "building")}


def _path_of_partition(key: str | None) -> NodePath | None:
    """The node a materialization is of: the root when unpartitioned (level 1); ``None`` for
    a key of the format before tree ids were part of it."""
    if key is None:
        return NodePath(ROOT)
    try:
        return NodePath.from_partition_key(key)[1]
    except PathError:
        return None


def _tree_of_key(key: str) -> str | None:
    """The tree a partition belongs to; ``None`` for a key of the format before tree ids were
    part of it (an instance used by an earlier version): such keys count as replaced."""
    try:
        return NodePath.from_partition_key(key)[0]
    except PathError:
        return None


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
    seen, newest, more = new_node_events(instance, after, max_depth)
    events = [e for e in seen if accept_run(e.run_id)]  # skipped runs are passed too
    existing = {
        level: set(instance.get_dynamic_partitions(level_partitions(level).name))
        for level in range(2, max_depth + 1)
    }
    added: dict[int, dict[str, str]] = {level: {} for level in existing}  # key -> its tree
    rows: dict[str, int] = {}  # key -> its node's rows, to balance the batches
    deleted: dict[int, set[str]] = {level: set() for level in existing}
    failures: dict[str, str] = {}
    if any(event.kind is EventKind.PUBLISHED for event in events):
        replaced = _replaced_trees(store, existing)
        for level, level_keys in existing.items():
            deleted[level] |= {k for k in level_keys if _tree_of_key(k) in replaced}
    for event in events:
        if event.kind is EventKind.CLUSTERED:
            try:
                _plan_children(store, event, max_depth, existing, added, deleted, rows)
            except (StorageError, PathError, OSError, ValueError, KeyError) as exc:
                failures[event.tree_id] = f"cannot grow node {event.path}: {exc}"

    partition_requests: list = []
    for level in existing:
        # A key added again (its node re-clustered with the same children) is kept, not
        # deleted: Dagster refuses a tick that adds and deletes the same key.
        stale = sorted(deleted[level] - set(added[level]))
        if stale:
            partition_requests.append(level_partitions(level).build_delete_request(stale))
    run_requests = []
    for level in existing:
        if not added[level]:
            continue
        # Keys are added tree by tree, so that each tree's keys are consecutive and a run's
        # partition range (first..last key of a batch) holds no key of another tree.
        by_tree = {
            tree_id: [k for k, g in added[level].items() if g == tree_id]
            for tree_id in dict.fromkeys(added[level].values())
        }
        ordered = [key for batch in by_tree.values() for key in batch]
        partition_requests.append(level_partitions(level).build_add_request(ordered))
        for tree_id, batch in by_tree.items():
            for chunk in chunks(batch, parallel_runs, [rows[key] for key in batch]):
                run_requests.append(
                    RunRequest(
                        run_key=f"{tree_id}:{level}:{chunk[0]}..{chunk[-1]}:{newest}",
                        job_name=level_jobs[level],
                        tags={
                            TREE_ID_TAG: tree_id,
                            ASSET_PARTITION_RANGE_START_TAG: chunk[0],
                            ASSET_PARTITION_RANGE_END_TAG: chunk[-1],
                            THREADS_TAG: str(threads_per_run(parallel_runs)),
                        },
                    )
                )
    growing = {g for level_keys in added.values() for g in level_keys.values()}
    node_events = [e for e in events if e.kind is not EventKind.PUBLISHED]
    for tree_id in dict.fromkeys(e.tree_id for e in node_events):
        if tree_id in growing or tree_id in failures:
            continue
        if store.status(tree_id) != "building":
            continue
        if pending_nodes(store.node_records(tree_id)) or store.unexplained_nodes(tree_id):
            continue
        if _publish_asked_for(instance, publish_job, tree_id):
            continue
        run_requests.append(
            RunRequest(
                run_key=f"publish:{tree_id}:{newest}",
                job_name=publish_job,
                tags={TREE_ID_TAG: tree_id},
            )
        )
    return GrowthPlan(
        dynamic_partitions_requests=partition_requests,
        run_requests=run_requests,
        cursor=str(newest),
        failures=failures,
        more=more,
    )


# A publish run in one of these states has published its tree or will (or fail it).
_PUBLISH_ASKED_FOR = [
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.SUCCESS,
]


def _publish_asked_for(instance: DagsterInstance, publish_job: str, tree_id: str) -> bool:
    """Whether tree ``tree_id`` already has a publish run queued, running or done.

    A late materialization of a complete tree (the last node of a batch run, a node re-run
    by hand) can land while its publish run waits in the queue; without this check the next
    tick asked for a second publish of the same tree. A failed or canceled publish does not
    count, so a later node event can ask again."""
    runs = instance.get_run_ids(
        RunsFilter(job_name=publish_job, tags={TREE_ID_TAG: tree_id}, statuses=_PUBLISH_ASKED_FOR),
        limit=1,
    )
    return bool(runs)


def _plan_children(
    store: TreeStore,
    event: NodeEvent,
    max_depth: int,
    existing: Mapping[int, set[str]],
    added: dict[int, dict[str, str]],
    deleted: dict[int, set[str]],
    rows: dict[str, int],
) -> None:
    """Add the partitions of a clustered node's children (and their ``rows``); a node
    clustered again (a retried run) first drops the partitions it had below it."""
    record = store.node_record(event.tree_id, event.path)
    if record is None:
        return
    below = event.path.descendants_key_prefix(event.tree_id)
    for level in range(event.level + 1, max_depth + 1):
        deleted[level] |= {k for k in existing[level] if k.startswith(below)}
        added[level] = {k: g for k, g in added[level].items() if not k.startswith(below)}
    children = record["zoom_into"]
    if children and event.level + 1 > max_depth:
        raise ValueError(
            f"the tree zooms into level {event.level + 1}, but this code location was loaded "
            f"with max_depth {max_depth}: reload it with the tree's settings"
        )
    for child in children:
        key = NodePath(child).partition_key(event.tree_id)
        added[event.level + 1][key] = event.tree_id
        rows[key] = int(record["child_sizes"][str(NodePath(child).index)])
