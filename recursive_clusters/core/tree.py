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


def path_level(path: str) -> int:
    """The level at which a node is clustered: the root is level 1."""
    return validate_path(path).count(".") + 1


def partition_key(path: str) -> str:
    """Dynamic-partition key of a node at level >= 2: its path without ``root.``."""
    if validate_path(path) == ROOT:
        raise PathError("The root is not partitioned: it is the level-1 node.")
    return path[len(ROOT) + 1 :]


def path_from_partition_key(key: str | None) -> str:
    """Inverse of ``partition_key``; ``None`` (an unpartitioned level-1 asset) is the root."""
    return ROOT if key is None else validate_path(f"{ROOT}.{key}")


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


def assign_leaves(n_rows: int, nodes: Mapping[str, NodeOutcome], max_depth: int) -> pd.DataFrame:
    """One row per input row: its leaf path, whether it is noise, and its label per level.

    Noise rows of a split node end at ``<node>.noise``; rows of a node whose split was
    rejected end at the node itself.
    """
    leaf = np.full(n_rows, ROOT, dtype=object)
    levels = np.full((n_rows, max_depth), None, dtype=object)
    is_noise = np.zeros(n_rows, dtype=bool)
    pending = [ROOT] if ROOT in nodes else []
    while pending:
        path = pending.pop()
        node = nodes[path]
        if not node.accepted:
            continue
        depth = path_level(path)
        for label in np.unique(node.labels):
            rows = node.rows[node.labels == label]
            if label == NOISE:
                leaf[rows] = f"{path}.{NOISE_NAME}"
                levels[rows, depth - 1] = NOISE_NAME
                is_noise[rows] = True
                continue
            child = child_path(path, label)
            leaf[rows] = child
            levels[rows, depth - 1] = str(int(label))
            if child in nodes:
                pending.append(child)
    table = pd.DataFrame({"row": np.arange(n_rows), "leaf_path": leaf, "is_noise": is_noise})
    for depth in range(max_depth):
        table[f"level_{depth + 1}"] = pd.Series(levels[:, depth], dtype=object)
    return table


def pending_nodes(records: Mapping[str, Mapping]) -> list[str]:
    """Nodes a tree still has to cluster: zoomed into by a parent, but with no record yet."""
    if ROOT not in records:
        return [ROOT]
    wanted = {child for record in records.values() for child in record.get("zoom_into", [])}
    return sorted(wanted - set(records))
