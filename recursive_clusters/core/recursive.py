"""The recursive zoom-in as a scikit-learn-style estimator, usable without Dagster.

The Dagster assets call the same per-node step (``cluster_node``) one partition at a time;
``RecursiveClusterer.fit`` runs the whole tree in-process, which is what the tests and the
bare benchmark compare the pipeline against.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from recursive_clusters.core.acceptance import SplitEvidence, assess_split
from recursive_clusters.core.clustering import (
    NodeClustering,
    assign_noise_to_nearest,
    cluster_embedding,
)
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
    evidence: SplitEvidence | None = None  # None: the split was not tested
    noise_assigned: np.ndarray | None = None  # rows HDBSCAN called noise, given a child after
    seconds: dict[str, float] = field(default_factory=dict)  # time per step, for benchmarks

    def _noise_assigned_by_child(self) -> dict[str, int]:
        """Rows each child received from the noise: a child that received far more than its
        share is swallowing its neighbours' edges (reported per leaf, never hidden)."""
        if self.noise_assigned is None or not self.noise_assigned.any():
            return {}
        received = self.clustering.labels[self.noise_assigned]
        return {str(k): int(np.sum(received == k)) for k in range(self.clustering.n_children)}

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
            "noise_assigned": int(self.noise_assigned.sum())
            if self.noise_assigned is not None
            else 0,
            "noise_assigned_by_child": self._noise_assigned_by_child(),
            "persistence": [round(float(p), 6) for p in self.clustering.persistence],
            "split_accepted": self.decision.accepted,
            "reason": self.decision.reason,
            "zoom_into": [child_path(self.path, k) for k in self.decision.zoom_into],
            "acceptance": dict(self.evidence.scores) if self.evidence else {},
            "child_stability": (
                {str(k): v for k, v in self.evidence.child_stability.items()}
                if self.evidence
                else {}
            ),
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
    started = time.perf_counter()
    embedding = embed(matrix, settings.embedding, node_seed(settings.random_state, path))
    embed_seconds = time.perf_counter() - started
    node = finish_node(embedding, rows, path, settings, matrix)
    node.seconds["embed"] = embed_seconds
    return node


def finish_node(
    embedding: np.ndarray,
    rows: np.ndarray,
    path: str,
    settings: Settings,
    matrix: np.ndarray | None = None,
) -> NodeResult:
    """Cluster an already computed embedding and decide the split (the second asset step).

    Given the node's ``matrix`` and with ``acceptance.enabled``, the node is clustered at each
    of ``acceptance.granularities`` and ``assess_split`` chooses and tests one; without it,
    any clustering with two or more children splits.
    """
    started = time.perf_counter()
    seed = node_seed(settings.random_state, path)
    tested = matrix is not None and settings.acceptance.enabled
    granularities = settings.acceptance.granularities if tested else [1.0]
    candidates = [
        cluster_embedding(embedding, settings.clustering.at_granularity(factor), seed)
        for factor in granularities
    ]
    clustering = candidates[0]
    seconds = {"cluster": time.perf_counter() - started}
    evidence = None
    if tested:
        started = time.perf_counter()
        evidence = assess_split(matrix, embedding, candidates, settings, seed)
        clustering = candidates[evidence.choice]
        seconds["accept"] = time.perf_counter() - started
    decision = decide_split(clustering, path_level(path), settings, evidence)
    noise_assigned = np.zeros(len(rows), dtype=bool)
    if decision.accepted and settings.clustering.noise_policy == "assign_nearest":
        labels, noise_assigned, share = assign_noise_to_nearest(
            embedding, clustering.labels, settings.clustering.noise_assign_distance
        )
        probabilities = np.where(noise_assigned, share, clustering.probabilities)
        clustering = replace(clustering, labels=labels, probabilities=probabilities)
    return NodeResult(
        path, rows, embedding, clustering, decision, evidence, noise_assigned, seconds
    )


def child_rows(node: NodeResult, child: int) -> np.ndarray:
    """The original row numbers of one child of a node."""
    return node.rows[node.clustering.labels == child]


class RecursiveClusterer:
    """Recursive UMAP + HDBSCAN: fit builds the whole cluster tree of ``X``.

    Attributes after ``fit``: ``nodes_`` (path -> NodeResult), ``tree_`` (one row per node),
    ``assignments_`` (one row per input row), ``labels_`` (leaf path per row) and
    ``timings_`` (seconds spent embedding, clustering and testing splits, over all nodes).
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
        self.timings_ = {
            step: sum(node.seconds.get(step, 0.0) for node in nodes.values())
            for step in ("embed", "cluster", "accept")
        }
        self.tree_ = pd.DataFrame([node.summary() for node in nodes.values()])
        outcomes = {
            path: NodeOutcome(
                node.rows,
                node.clustering.labels,
                node.decision.accepted,
                node.clustering.probabilities,
                node.noise_assigned,
            )
            for path, node in nodes.items()
        }
        self.assignments_ = assign_leaves(len(matrix), outcomes, settings.recursion.max_depth)
        self.labels_ = self.assignments_["leaf_path"].to_numpy()
        return self

    def fit_predict(self, X: np.ndarray | pd.DataFrame, y: None = None) -> np.ndarray:
        return self.fit(X).labels_
