"""The recursive zoom-in as a scikit-learn-style estimator, usable without Dagster.

The Dagster assets call the same per-node step (``cluster_node``) one partition at a time;
``RecursiveClusterer.fit`` runs the whole tree in-process, which is what the tests and the
bare benchmark compare the pipeline against.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recursive_clusters.core.clustering import NodeClustering, cluster_embedding
from recursive_clusters.core.embedding import embed, node_seed
from recursive_clusters.core.settings import Settings
from recursive_clusters.core.tree import (
    ROOT,
    NodeOutcome,
    SplitDecision,
    assign_leaves,
    child_path,
    decide_split,
    path_level,
)


@dataclass(frozen=True)
class NodeResult:
    """Everything computed for one node of the tree."""

    path: str
    rows: np.ndarray
    embedding: np.ndarray
    clustering: NodeClustering
    decision: SplitDecision

    def summary(self) -> dict[str, object]:
        """The node's record: stored as JSON, shown as Dagster metadata, read by the sensor."""
        return {
            "path": self.path,
            "level": path_level(self.path),
            "n_rows": int(len(self.rows)),
            "min_cluster_size": self.clustering.min_cluster_size,
            "n_children": self.clustering.n_children,
            "child_sizes": {str(k): v for k, v in self.clustering.child_sizes().items()},
            "noise_fraction": round(self.clustering.noise_fraction, 6),
            "persistence": [round(float(p), 6) for p in self.clustering.persistence],
            "split_accepted": self.decision.accepted,
            "reason": self.decision.reason,
            "zoom_into": [child_path(self.path, k) for k in self.decision.zoom_into],
        }


def require_enough_rows(n_rows: int, settings: Settings) -> None:
    """The whole table must be able to hold one cluster; say which parameter to change."""
    min_size = settings.clustering.resolve_min_cluster_size(n_rows)
    if n_rows < min_size:
        raise ValueError(
            f"{n_rows} rows is fewer than clustering.min_cluster_size={min_size}: "
            "lower clustering.min_cluster_size or provide more rows."
        )


def cluster_node(matrix: np.ndarray, rows: np.ndarray, path: str, settings: Settings) -> NodeResult:
    """Embed, cluster and decide for one node, given the matrix of its own rows only."""
    embedding = embed(matrix, settings.embedding, node_seed(settings.random_state, path))
    return finish_node(embedding, rows, path, settings)


def finish_node(
    embedding: np.ndarray, rows: np.ndarray, path: str, settings: Settings
) -> NodeResult:
    """Cluster an already computed embedding and decide the split (the second asset step)."""
    clustering = cluster_embedding(embedding, settings.clustering)
    decision = decide_split(clustering, path_level(path), settings)
    return NodeResult(path, rows, embedding, clustering, decision)


def child_rows(node: NodeResult, child: int) -> np.ndarray:
    """The original row numbers of one child of a node."""
    return node.rows[node.clustering.labels == child]


class RecursiveClusterer:
    """Recursive UMAP + HDBSCAN: fit builds the whole cluster tree of ``X``.

    Attributes after ``fit``: ``nodes_`` (path -> NodeResult), ``tree_`` (one row per node),
    ``assignments_`` (one row per input row) and ``labels_`` (leaf path per row).
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings

    def fit(self, X: np.ndarray | pd.DataFrame, y: None = None) -> RecursiveClusterer:
        settings = self.settings or Settings()
        matrix = np.asarray(X, dtype=np.float64)
        require_enough_rows(len(matrix), settings)
        nodes: dict[str, NodeResult] = {}
        pending = [(ROOT, np.arange(len(matrix)))]
        while pending:
            path, rows = pending.pop(0)
            node = cluster_node(matrix[rows], rows, path, settings)
            nodes[path] = node
            pending.extend(
                (child_path(path, k), child_rows(node, k)) for k in node.decision.zoom_into
            )
        self.nodes_ = nodes
        self.tree_ = pd.DataFrame([node.summary() for node in nodes.values()])
        outcomes = {
            path: NodeOutcome(node.rows, node.clustering.labels, node.decision.accepted)
            for path, node in nodes.items()
        }
        self.assignments_ = assign_leaves(len(matrix), outcomes, settings.recursion.max_depth)
        self.labels_ = self.assignments_["leaf_path"].to_numpy()
        return self

    def fit_predict(self, X: np.ndarray | pd.DataFrame, y: None = None) -> np.ndarray:
        return self.fit(X).labels_
