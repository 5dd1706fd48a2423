"""The zoom-in decision for one node, and the final row-to-leaf table."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from recursive_clusters.core.clustering import NOISE, NodeClustering
from recursive_clusters.core.paths import NOISE_NAME, ROOT, NodePath
from recursive_clusters.core.settings import RecursionSettings, Settings

if TYPE_CHECKING:
    from recursive_clusters.core.acceptance import SplitEvidence


@dataclass(frozen=True)
class SplitDecision:
    """Whether a node's clustering becomes children, why, and which children are zoomed into."""

    accepted: bool
    reason: str
    zoom_into: tuple[int, ...] = field(default_factory=tuple)
    child_outcomes: dict[int, str] = field(default_factory=dict)  # why each child zooms or not


def decide_split(
    clustering: NodeClustering,
    level: int,
    settings: Settings,
    evidence: SplitEvidence | None = None,
) -> SplitDecision:
    """The one rule, shared by the assets, the sensor, the CLI and ``RecursiveClusterer``.

    A node splits when HDBSCAN finds at least two clusters and the acceptance test (its
    ``evidence``, when given) does not reject them; otherwise it is a leaf and the reason is
    recorded. A child is zoomed into when the tree may grow one more level and the child
    holds at least ``min_node_size`` rows and ``min_child_fraction`` of the node.
    """
    n_rows = len(clustering.labels)
    if clustering.n_children == 0:
        return SplitDecision(False, "no cluster found: every row is noise")
    if clustering.n_children == 1:
        return SplitDecision(False, "a single cluster: nothing to split")
    if evidence is not None and not evidence.accepted:
        return SplitDecision(False, evidence.reason)
    why = f"; {evidence.reason}" if evidence is not None else ""
    recursion = settings.recursion
    outcomes = {
        k: _child_outcome(size, n_rows, level, recursion)
        for k, size in clustering.child_sizes().items()
    }
    zoom_into = tuple(k for k, outcome in outcomes.items() if outcome == ZOOMED_INTO)
    if level >= recursion.max_depth:
        reason = f"split into {clustering.n_children}; depth limit reached{why}"
    else:
        reason = f"split into {clustering.n_children}; zooming into {len(zoom_into)}{why}"
    return SplitDecision(True, reason, zoom_into, outcomes)


ZOOMED_INTO = "zoomed into"


def _child_outcome(size: int, n_rows: int, level: int, recursion: RecursionSettings) -> str:
    """Whether a child of an accepted split is clustered in turn, or why it stays a leaf."""
    if level >= recursion.max_depth:
        return f"leaf: depth limit ({recursion.max_depth}) reached"
    if size < recursion.min_node_size:
        return f"leaf: fewer than min_node_size={recursion.min_node_size} rows"
    if size < recursion.min_child_fraction * n_rows:
        return f"leaf: under min_child_fraction={recursion.min_child_fraction:g} of its parent"
    return ZOOMED_INTO


@dataclass(frozen=True)
class NodeOutcome:
    """What the tree assembly needs of one clustered node."""

    rows: np.ndarray  # row numbers (into the prepared table) of the node's rows
    labels: np.ndarray  # child label per row, NOISE for noise
    accepted: bool
    confidence: np.ndarray | None = None  # per row: HDBSCAN membership, or the noise vote
    noise_assigned: np.ndarray | None = None  # per row: HDBSCAN noise given a child after


def assign_leaves(n_rows: int, nodes: Mapping[str, NodeOutcome], max_depth: int) -> pd.DataFrame:
    """One row per input row: its leaf path, whether it is noise, its label per level, its
    confidence (the weakest membership on its path) and whether HDBSCAN called it noise at
    some level before it was given a child (``noise_assigned``).

    Noise rows of a split node end at ``<node>.noise``; rows of a node whose split was
    rejected end at the node itself.
    """
    leaf = np.full(n_rows, ROOT, dtype=object)
    levels = np.full((n_rows, max_depth), None, dtype=object)
    is_noise = np.zeros(n_rows, dtype=bool)
    confidence = np.ones(n_rows)
    noise_assigned = np.zeros(n_rows, dtype=bool)
    pending = [ROOT] if ROOT in nodes else []
    while pending:
        path = NodePath(pending.pop())
        node = nodes[path]
        if not node.accepted:
            continue
        level = path.level
        if node.confidence is not None:
            confidence[node.rows] = np.minimum(confidence[node.rows], node.confidence)
        if node.noise_assigned is not None:
            noise_assigned[node.rows] |= np.asarray(node.noise_assigned, dtype=bool)
        for label in np.unique(node.labels):
            rows = node.rows[node.labels == label]
            if label == NOISE:
                leaf[rows] = path.noise_leaf
                levels[rows, level - 1] = NOISE_NAME
                is_noise[rows] = True
                confidence[rows] = 0.0
                continue
            child = path.child(label)
            leaf[rows] = child
            levels[rows, level - 1] = str(int(label))
            if child in nodes:
                pending.append(child)
    table = pd.DataFrame({"row": np.arange(n_rows), "leaf_path": leaf, "is_noise": is_noise})
    for depth in range(max_depth):
        table[f"level_{depth + 1}"] = pd.Series(levels[:, depth], dtype=object)
    table["confidence"] = np.round(confidence, 4)
    table["noise_assigned"] = noise_assigned
    return table


def pending_nodes(records: Mapping[str, Mapping]) -> list[str]:
    """Nodes a tree still has to cluster: zoomed into by a parent, but with no record yet."""
    if ROOT not in records:
        return [ROOT]
    wanted = {child for record in records.values() for child in record.get("zoom_into", [])}
    return sorted(wanted - set(records))
