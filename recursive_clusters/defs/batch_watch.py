"""Watch the batch source: score each new batch, and re-cluster when batches keep drifting.

One planner serves the daemon's ``batch_sensor`` and the CLI's drift demo, as ``growth``
does for trees. A batch is scored by the tree current when it arrives; a re-clustering is
asked for once per current tree, when its ``drift.consecutive_batches`` newest batches all
drift, and not while another tree is still growing (that tree is already the answer).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dagster import AddDynamicPartitionsRequest, DagsterInstance, RunRequest

from recursive_clusters.core.settings import Settings
from recursive_clusters.defs.keys import (
    BATCH_PARTITIONS,
    GROW_TREE_JOB,
    SCORE_BATCHES_JOB,
    SCORED_BATCHES,
    TRIGGER_TAG,
)
from recursive_clusters.io.batches import list_batches
from recursive_clusters.io.store import TreeStore

SCORED_HISTORY = 500  # newest batch materializations read per tick to find the drift streak


@dataclass
class BatchPlan:
    """Partitions to add, runs to ask for, and what a tick with neither should say."""

    dynamic_partitions_requests: list[AddDynamicPartitionsRequest] = field(default_factory=list)
    run_requests: list[RunRequest] = field(default_factory=list)
    skip_reason: str | None = None


@dataclass(frozen=True)
class ScoredBatch:
    batch: str
    drifting: bool
    reasons: str


def scored_by(instance: DagsterInstance, tree_id: str) -> list[ScoredBatch]:
    """The batches tree ``tree_id`` scored, newest first, each once (its latest score)."""
    records = instance.fetch_materializations(
        SCORED_BATCHES, limit=SCORED_HISTORY, ascending=False
    ).records
    seen: dict[str, ScoredBatch] = {}
    for record in records:
        metadata = record.asset_materialization.metadata
        if record.partition_key in seen or "generation" not in metadata:
            continue
        if str(metadata["generation"].value) != tree_id:
            continue
        seen[record.partition_key] = ScoredBatch(
            record.partition_key,
            bool(metadata["drifting"].value),
            str(metadata["drift_reasons"].value),
        )
    return list(seen.values())


def drift_streak(instance: DagsterInstance, tree_id: str) -> list[ScoredBatch]:
    """The newest batches scored by tree ``tree_id`` that all drift, oldest first."""
    streak = []
    for scored in scored_by(instance, tree_id):
        if not scored.drifting:
            break
        streak.append(scored)
    return streak[::-1]


def plan_batches(instance: DagsterInstance, store: TreeStore, settings: Settings) -> BatchPlan:
    """What to do about the watched source now (``settings`` as the settings file reads)."""
    if not settings.batches.path:
        return BatchPlan(skip_reason="No batches.path in the settings: no batches are watched.")
    current = store.current()
    if current is None:
        return BatchPlan(skip_reason="No published tree yet: new batches wait for one.")
    plan = BatchPlan()
    known = set(instance.get_dynamic_partitions(BATCH_PARTITIONS.name))
    new = [name for name in list_batches(settings.batches) if name not in known]
    if new:
        plan.dynamic_partitions_requests.append(BATCH_PARTITIONS.build_add_request(new))
        plan.run_requests += [
            RunRequest(run_key=f"batch:{name}", job_name=SCORE_BATCHES_JOB, partition_key=name)
            for name in new
        ]
    streak = drift_streak(instance, current)
    needed = settings.drift.consecutive_batches
    growing = store.latest_started()
    if len(streak) >= needed and settings.drift.recluster:
        if growing not in (None, current) and store.status(growing) == "building":
            plan.skip_reason = f"Batches drift, but tree {growing} is still growing."
        else:
            names = ", ".join(s.batch for s in streak[-needed:])
            plan.run_requests.append(
                RunRequest(
                    run_key=f"drift:{current}",  # once per current tree
                    job_name=GROW_TREE_JOB,
                    tags={
                        TRIGGER_TAG: f"drift of tree {current} in {needed} batch(es) in a row "
                        f"({names}): {streak[-1].reasons}"
                    },
                )
            )
    if not plan.run_requests and plan.skip_reason is None:
        plan.skip_reason = (
            f"No new batch; {len(streak)} of the {needed} drifting batches in a row that "
            f"re-cluster tree {current}."
        )
    return plan
