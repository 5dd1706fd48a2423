"""A real (small) tree for the report's tests: grown by the core (``RecursiveClusterer``,
classifiers, SHAP and stability) and written through ``TreeStore`` exactly as the assets write
it, without Dagster; its column names, values, ids and source are hostile HTML."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import make_blobs

from recursive_clusters.core.explain import explain_with_shap, train_classifiers
from recursive_clusters.core.paths import NodePath
from recursive_clusters.core.plots import embedding_scatter, shap_beeswarm
from recursive_clusters.core.recursive import RecursiveClusterer
from recursive_clusters.core.settings import parse_settings
from recursive_clusters.io.store import EMBEDDING_PNG, TreeStore, shap_png

TREE_ID = "0123456789abcdef"
EVIL_COLUMN = "<img src=x onerror=alert(1)>"
EVIL_VALUE = "<b>x</b>"
EVIL_FEATURE = "<script>alert(2)</script>f0"
EVIL_SOURCE = "/data/<evil> & co.parquet"
SETTINGS = parse_settings(
    {
        "input": {"path": EVIL_SOURCE, "id_column": "id", "profile_columns": [EVIL_COLUMN]},
        "clustering": {"min_cluster_size": 0.1, "min_cluster_size_floor": 10},
        "recursion": {"max_depth": 2, "min_node_size": 60},
        "explanation": {"shap_sample_per_child": 30},
    }
)


def planted_blobs() -> tuple[pd.DataFrame, np.ndarray]:
    """Three groups far apart, each of two sub-groups that only a zoom-in separates."""
    axes = np.eye(6)
    centres = np.vstack(
        [20.0 * axes[top] + 1.5 * sign * axes[3 + top] for top in range(3) for sign in (-1, 1)]
    )
    x, blob = make_blobs(n_samples=300, centers=centres, cluster_std=1.0, random_state=0)
    features = pd.DataFrame(x, columns=[EVIL_FEATURE, "f1", "f2", "f3", "f4", "f5"])
    return features, blob


def grow_report_tree(directory: Path) -> tuple[TreeStore, pd.DataFrame]:
    """A tree grown by the core and stored as the assets store it; its assignments."""
    store = TreeStore(directory)
    features, blob = planted_blobs()
    ids = pd.Series([f"id<{i}>&'" for i in range(len(features))], name="id")
    profile = pd.DataFrame(
        {
            EVIL_COLUMN: np.where(blob < 2, EVIL_VALUE, "plain"),
            "income": np.linspace(1000.0, 5000.0, len(features)) + 500.0 * blob,
        }
    )
    store.begin_tree(
        TREE_ID,
        {
            "generation": TREE_ID,
            "settings": SETTINGS.model_dump(mode="json"),
            "data_fingerprint": "feedfacecafebeef",
            "source": EVIL_SOURCE,
            "started_at": "2026-01-02T03:04:05+00:00",
            "n_rows": len(features),
        },
    )
    store.write_table(TREE_ID, "features", features)
    store.write_table(TREE_ID, "ids", ids.to_frame())
    store.write_table(TREE_ID, "profile", profile)
    matrix = features.to_numpy()
    clusterer = RecursiveClusterer(SETTINGS).fit(matrix)
    for path, node in clusterer.nodes_.items():
        labels = node.clustering.labels
        seed = NodePath(path).seed(SETTINGS.random_state)
        x, y = node.embedding.T
        store.write_embedding(TREE_ID, path, pd.DataFrame({"row": node.rows, "x": x, "y": y}))
        record = {**node.summary(), "generation": TREE_ID}
        if node.decision.accepted:
            node_features = features.iloc[node.rows].reset_index(drop=True)
            models = train_classifiers(node_features, labels, SETTINGS.explanation, seed)
            explanation = explain_with_shap(
                models, node_features, labels, node.rows, SETTINGS.explanation, seed
            )
            store.write_node_table(TREE_ID, path, "classifier_metrics", models.metrics)
            store.write_node_table(TREE_ID, path, "drivers", explanation.drivers)
            for child in sorted(models.one_vs_all):
                plot = shap_beeswarm(explanation.shap_values, child)
                store.write_node_png(TREE_ID, path, shap_png(child), plot)
        labels_table = pd.DataFrame(
            {"row": node.rows, "label": labels, "probability": node.clustering.probabilities}
        )
        store.write_node(TREE_ID, path, labels_table, record)
        plot = embedding_scatter(node.embedding, labels, title=path)
        store.write_node_png(TREE_ID, path, EMBEDDING_PNG, plot)
    assignments = clusterer.assignments_.drop(columns="row")
    assignments.insert(0, "id", ids.to_numpy())
    store.publish(TREE_ID, assignments, {"n_nodes": len(clusterer.nodes_)})
    return store, assignments
