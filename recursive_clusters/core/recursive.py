"""The recursive zoom-in as a scikit-learn estimator, usable without Dagster.

The Dagster assets call the same per-node step (``cluster_node``) one partition at a time;
``RecursiveClusterer.fit`` runs the whole tree in-process, which is what the tests and the
bare benchmark compare the pipeline against.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from recursive_clusters.core.acceptance import (
    Candidates,
    PerturbedRun,
    SplitEvidence,
    assess_split,
    perturbed_runs,
)
from recursive_clusters.core.clustering import (
    NodeClustering,
    assign_noise_to_nearest,
    cluster_embedding,
)
from recursive_clusters.core.embedding import fit_layout
from recursive_clusters.core.explain import NodeModels, train_classifiers
from recursive_clusters.core.paths import ROOT, NodePath
from recursive_clusters.core.predict import route_rows
from recursive_clusters.core.settings import Settings, parse_settings
from recursive_clusters.core.tree import NodeOutcome, SplitDecision, assign_leaves, decide_split


@dataclass(frozen=True)
class NodeResult:
    """Everything computed for one node of the tree."""

    path: NodePath
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
            "level": self.path.level,
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
            "zoom_into": [str(self.path.child(k)) for k in self.decision.zoom_into],
            "child_outcomes": {str(k): v for k, v in self.decision.child_outcomes.items()},
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
    path = NodePath(path)
    seed = path.seed(settings.random_state)
    started = time.perf_counter()
    layout = fit_layout(matrix, settings.embedding, seed)
    laid_out = time.perf_counter()
    runs = perturbed_runs(layout, matrix, settings, seed)
    perturbed = time.perf_counter()
    node = finish_node(layout.coordinates, rows, path, settings, matrix, runs)
    node.seconds.update(embed=laid_out - started, perturb=perturbed - laid_out)
    return node


def finish_node(
    embedding: np.ndarray,
    rows: np.ndarray,
    path: str,
    settings: Settings,
    matrix: np.ndarray | None = None,
    runs: list[PerturbedRun] | None = None,
) -> NodeResult:
    """Cluster an already computed embedding and decide the split (the second asset step).

    Given the node's ``matrix`` and its perturbed ``runs`` (``perturbed_runs``) and with
    ``acceptance.enabled``, ``assess_split`` chooses and tests one of its clusterings at
    ``acceptance.granularities`` (each made when the test first needs it); without them, any
    clustering with two or more children splits.
    """
    started = time.perf_counter()
    path = NodePath(path)
    seed = path.seed(settings.random_state)
    tested = matrix is not None and runs is not None and settings.acceptance.enabled
    evidence = None
    if tested:
        candidates = Candidates(embedding, settings, seed)
        clustering = candidates[0]  # the node's own clustering: timed apart from the test
        seconds = {"cluster": time.perf_counter() - started}
        started = time.perf_counter()
        evidence = assess_split(matrix, embedding, candidates, settings, seed, runs)
        clustering = candidates[evidence.choice]
        seconds["accept"] = time.perf_counter() - started
    else:
        clustering = cluster_embedding(embedding, settings.clustering, seed)
        seconds = {"cluster": time.perf_counter() - started}
    decision = decide_split(clustering, path.level, settings, evidence)
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


# The flat parameters of ``RecursiveClusterer`` and the setting each one overrides.
_FLAT_PARAMETERS = {
    "min_cluster_size": ("clustering", "min_cluster_size"),
    "max_depth": ("recursion", "max_depth"),
    "n_neighbors": ("embedding", "n_neighbors"),
    "confidence_threshold": ("explanation", "confidence_threshold"),
    "random_state": (None, "random_state"),
}


class RecursiveClusterer(ClusterMixin, BaseEstimator):
    """Recursive UMAP + HDBSCAN as a scikit-learn estimator: ``fit`` builds the whole cluster
    tree of ``X``, the same tree the Dagster pipeline grows node by node.

    The main parameters are flat (``min_cluster_size``, ``max_depth``, ``n_neighbors``,
    ``confidence_threshold``, ``random_state``); each one left at None keeps its value in
    ``settings`` (a ``Settings``, the defaults when None), which holds every other knob.
    With ``explain=True`` the per-node routers are trained too, and ``predict`` sends new
    rows down the tree by them alone (no UMAP/HDBSCAN), as ``recursive-clusters predict`` does.

    Attributes after ``fit``: ``nodes_`` (path -> NodeResult), ``tree_`` (one row per node),
    ``assignments_`` (one row per input row), ``labels_`` (leaf path per row), ``timings_``
    (seconds spent embedding, laying out the perturbed runs, clustering and testing
    splits, over all nodes),
    ``feature_names_in_``, and with ``explain`` ``models_`` (path -> NodeModels of each
    split node).
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        min_cluster_size: float | None = None,
        max_depth: int | None = None,
        n_neighbors: int | None = None,
        confidence_threshold: float | None = None,
        explain: bool = False,
        random_state: int | None = None,
    ) -> None:
        self.settings = settings
        self.min_cluster_size = min_cluster_size
        self.max_depth = max_depth
        self.n_neighbors = n_neighbors
        self.confidence_threshold = confidence_threshold
        self.explain = explain
        self.random_state = random_state

    def resolved_settings(self) -> Settings:
        """``settings`` with the flat parameters laid over it, validated (a bad value raises
        ``SettingsError`` naming the setting)."""
        data = (self.settings or Settings()).model_dump()
        for parameter, (section, key) in _FLAT_PARAMETERS.items():
            value = getattr(self, parameter)
            if value is not None:
                (data[section] if section else data)[key] = value
        return parse_settings(data, source="RecursiveClusterer parameters")

    def fit(self, X: np.ndarray | pd.DataFrame, y: None = None) -> RecursiveClusterer:
        settings = self.resolved_settings()
        self.feature_names_in_ = _feature_names(X)
        matrix = np.asarray(X, dtype=np.float64)
        require_enough_rows(len(matrix), settings)
        nodes: dict[str, NodeResult] = {}
        pending = [(NodePath(ROOT), np.arange(len(matrix)))]
        while pending:
            path, rows = pending.pop(0)
            node = cluster_node(matrix[rows], rows, path, settings)
            nodes[path] = node
            pending.extend((path.child(k), child_rows(node, k)) for k in node.decision.zoom_into)
        self.nodes_ = nodes
        self.timings_ = {
            step: sum(node.seconds.get(step, 0.0) for node in nodes.values())
            for step in ("embed", "perturb", "cluster", "accept")
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
        if self.explain:
            self.models_ = self._train_routers(matrix, settings)
        elif hasattr(self, "models_"):
            del self.models_  # routers of an earlier fit do not fit this tree
        return self

    def _train_routers(self, matrix: np.ndarray, settings: Settings) -> dict[str, NodeModels]:
        """The classifiers of every split node, on the original features of its rows."""
        models = {}
        for path, node in self.nodes_.items():
            if not node.decision.accepted:
                continue
            features = pd.DataFrame(matrix[node.rows], columns=self.feature_names_in_)
            models[path] = train_classifiers(
                features,
                node.clustering.labels,
                settings.explanation,
                path.seed(settings.random_state),
            )
        return models

    def predict(self, X: np.ndarray | pd.DataFrame) -> np.ndarray:
        """The node each row of ``X`` ends in, by the routers alone: a leaf, or the node where
        no child reaches ``confidence_threshold`` (see ``route_rows``)."""
        return self.route(X)["path"].to_numpy()

    def route(self, X: np.ndarray | pd.DataFrame) -> pd.DataFrame:
        """``predict`` with each row's confidence and the child taken at each level."""
        check_is_fitted(self, "nodes_")
        if not hasattr(self, "models_"):
            raise NotFittedError("predict needs the routers: fit with explain=True.")
        columns = _feature_names(X) if isinstance(X, pd.DataFrame) else self.feature_names_in_
        threshold = self.resolved_settings().explanation.confidence_threshold
        routers = {path: models.routing for path, models in self.models_.items()}
        return route_rows(np.asarray(X), columns, routers.get, threshold)

    def fit_predict(self, X: np.ndarray | pd.DataFrame, y: None = None) -> np.ndarray:
        return self.fit(X).labels_


def _feature_names(X: np.ndarray | pd.DataFrame) -> list[str]:
    """Column names of a frame; ``x0``, ``x1``, ... for an array."""
    if isinstance(X, pd.DataFrame):
        return [str(c) for c in X.columns]
    return [f"x{i}" for i in range(np.shape(X)[1])]
