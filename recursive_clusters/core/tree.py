"""Cluster-tree paths, the zoom-in decision for one node, and the final row-to-leaf table."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from recursive_clusters.core.clustering import NOISE, NodeClustering
from recursive_clusters.core.settings import Settings

if TYPE_CHECKING:
    from recursive_clusters.core.acceptance import SplitEvidence

ROOT = "root"
NOISE_NAME = "noise"
_PATH_PATTERN = re.compile(r"^root(\.(0|[1-9][0-9]{0,5}))*$")


class PathError(ValueError):
    """A string that is not a cluster path (and so must never become a file name)."""


def validate_path(path: str) -> str:
    """Return ``path`` if it is ``root`` followed by ``.<child number>`` parts, else raise."""
    if not isinstance(path, str) or not _PATH_PATTERN.match(path):
        raise PathError(f"Not a cluster path: {path!r} (expected e.g. 'root' or 'root.3.1')")
    return path


def child_path(parent: str, child: int) -> str:
    return f"{parent}.{int(child)}"


def parent_and_index(path: str) -> tuple[str, int]:
    """The parent's path and this node's child number in it (the root has neither)."""
    if validate_path(path) == ROOT:
        raise PathError("The root has no parent.")
    parent, child = path.rsplit(".", 1)
    return parent, int(child)


def path_level(path: str) -> int:
    """The level at which a node is clustered: the root is level 1."""
    return validate_path(path).count(".") + 1


# Dynamic-partition keys of nodes at level >= 2 are ``<tree id>:<path>``, e.g.
# ``3fa2c1d09be47a10:root.3.1``. Why the tree id is in the key: successive trees (the same
# data again, new data, new settings) have nodes with the same paths. Keys that never collide
# across trees let a new tree add its partitions while the current tree's are still there,
# so no tick ever adds and deletes one key (Dagster's daemon refuses such a tick), and a user
# sees in the UI which tree each partition belongs to. Partitions of a tree are deleted once
# another tree has replaced it (see ``growth.plan_growth``).
PARTITION_KEY_SEPARATOR = ":"


def partition_key(tree_id: str, path: str) -> str:
    """Dynamic-partition key of a node at level >= 2 of tree ``tree_id``."""
    if validate_path(path) == ROOT:
        raise PathError("The root is not partitioned: it is the level-1 node.")
    if not tree_id or PARTITION_KEY_SEPARATOR in tree_id:
        raise PathError(f"Not a tree id for a partition key: {tree_id!r}")
    return f"{tree_id}{PARTITION_KEY_SEPARATOR}{path}"


def descendants_key_prefix(tree_id: str, path: str) -> str:
    """What the partition key of every node below ``path`` in tree ``tree_id`` starts with."""
    return f"{tree_id}{PARTITION_KEY_SEPARATOR}{validate_path(path)}."


def parse_partition_key(key: str) -> tuple[str, str]:
    """Inverse of ``partition_key``: the tree id and the node's path."""
    tree_id, separator, path = key.partition(PARTITION_KEY_SEPARATOR)
    if not separator or not tree_id:
        raise PathError(f"Not a node partition key: {key!r} (expected '<tree id>:root.3')")
    return tree_id, validate_path(path)


@dataclass(frozen=True)
class SplitDecision:
    """Whether a node's clustering becomes children, why, and which children are zoomed into."""

    accepted: bool
    reason: str
    zoom_into: tuple[int, ...] = field(default_factory=tuple)


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
    if level >= recursion.max_depth:
        return SplitDecision(True, f"split into {clustering.n_children}; depth limit reached{why}")
    zoom_into = tuple(
        k
        for k, size in clustering.child_sizes().items()
        if size >= recursion.min_node_size and size >= recursion.min_child_fraction * n_rows
    )
    reason = f"split into {clustering.n_children}; zooming into {len(zoom_into)}{why}"
    return SplitDecision(True, reason, zoom_into)


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
        path = pending.pop()
        node = nodes[path]
        if not node.accepted:
            continue
        depth = path_level(path)
        if node.confidence is not None:
            confidence[node.rows] = np.minimum(confidence[node.rows], node.confidence)
        if node.noise_assigned is not None:
            noise_assigned[node.rows] |= np.asarray(node.noise_assigned, dtype=bool)
        for label in np.unique(node.labels):
            rows = node.rows[node.labels == label]
            if label == NOISE:
                leaf[rows] = f"{path}.{NOISE_NAME}"
                levels[rows, depth - 1] = NOISE_NAME
                is_noise[rows] = True
                confidence[rows] = 0.0
                continue
            child = child_path(path, label)
            leaf[rows] = child
            levels[rows, depth - 1] = str(int(label))
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
