"""A large tree's files, written quickly for the report's size and opening time.

70,000 rows in 31 clustered nodes (the root, 5 children, 25 grandchildren), every file in
the format the assets write (embeddings, labels, records, classifier metrics, SHAP drivers
and plots, assignments), with synthetic values: growing such a tree for real takes minutes,
and the report's size depends on the shape of the tree, not on how the numbers were found.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from recursive_clusters.core.plots import embedding_scatter, shap_beeswarm
from recursive_clusters.core.settings import parse_settings
from recursive_clusters.io.store import EMBEDDING_PNG, TreeStore, shap_png

TREE_ID = "feedfacecafebeef"
FANOUT = 5
N_FEATURES = 50


def _record(path: str, level: int, rows: int, children: dict[int, int], split: bool) -> dict:
    return {
        "path": path,
        "level": level,
        "n_rows": rows,
        "min_cluster_size": max(15, rows // 50),
        "n_children": len(children),
        "child_sizes": {str(k): v for k, v in children.items()},
        "noise_fraction": 0.0,
        "noise_assigned": 0,
        "noise_assigned_by_child": {str(k): 0 for k in children},
        "persistence": [0.5] * len(children),
        "split_accepted": split,
        "reason": "split into 5 (synthetic)" if split else "no stable sub-structure (synthetic)",
        "zoom_into": [f"{path}.{k}" for k in children] if split and level < 3 else [],
        "acceptance": {"jaccard": 0.9} if split else {},
        "child_stability": {str(k): 0.9 for k in children} if split else {},
        "generation": TREE_ID,
    }


def write_large_tree(directory: Path, n_rows: int = 70_000, seed: int = 0) -> TreeStore:
    """Write the tree under ``directory`` and publish it; returns its store."""
    rng = np.random.default_rng(seed)
    store = TreeStore(directory)
    settings = parse_settings(
        {"input": {"path": "synthetic.parquet", "id_column": "user_id",
                   "profile_columns": ["country", "age"]}, "recursion": {"max_depth": 3}}
    )  # fmt: skip
    store.begin_tree(
        TREE_ID,
        {"generation": TREE_ID, "settings": settings.model_dump(mode="json"),
         "source": "synthetic.parquet", "n_rows": n_rows,
         "started_at": "2026-01-01T00:00:00+00:00"},
    )  # fmt: skip
    features = pd.DataFrame(
        rng.normal(size=(n_rows, N_FEATURES)).astype(np.float32),
        columns=[f"feature_{i}" for i in range(N_FEATURES)],
    )
    store.write_table(TREE_ID, "features", features)
    store.write_table(
        TREE_ID, "ids", pd.DataFrame({"user_id": [f"u{i:07d}" for i in range(n_rows)]})
    )
    store.write_table(
        TREE_ID,
        "profile",
        pd.DataFrame({"country": rng.choice(["DE", "FR", "SE", "US"], n_rows),
                      "age": rng.integers(18, 80, n_rows)}),
    )  # fmt: skip
    leaf = np.full(n_rows, "root", dtype=object)

    def grow(path: str, rows: np.ndarray, level: int) -> None:
        split = level < 3
        labels = np.sort(rng.integers(FANOUT, size=len(rows))) if split else np.zeros(len(rows))
        labels = labels.astype(int)
        centres = rng.normal(scale=8.0, size=(FANOUT, 2))
        embedding = centres[labels] + rng.normal(size=(len(rows), 2))
        store.write_embedding(
            TREE_ID,
            path,
            pd.DataFrame({"row": rows, "x": embedding[:, 0], "y": embedding[:, 1]}),
        )
        children = {k: int((labels == k).sum()) for k in range(FANOUT)} if split else {}
        labels_table = pd.DataFrame(
            {"row": rows, "label": labels if split else -1, "probability": 1.0,
             "noise_assigned": False}
        )  # fmt: skip
        plot = embedding_scatter(embedding, labels if split else np.full(len(rows), -1), path)
        store.write_node_png(TREE_ID, path, EMBEDDING_PNG, plot)
        if split:
            metrics = pd.DataFrame({"child": list(children), "n_test": list(children.values())})
            metrics = metrics.assign(roc_auc=0.99, precision=0.95, recall=0.94, f1=0.945)
            store.write_node_table(TREE_ID, path, "classifier_metrics", metrics)
            drivers = pd.DataFrame(
                [{"child": k, "feature": f"feature_{(k * 7 + r) % N_FEATURES}",
                  "mean_abs_shap": 1.0 / (r + 1), "direction": "higher" if r % 2 else "lower",
                  "rank": r + 1} for k in children for r in range(10)]
            )  # fmt: skip
            store.write_node_table(TREE_ID, path, "drivers", drivers)
            for k in children:
                shap = pd.DataFrame(
                    {"child": k, "feature": np.repeat(drivers["feature"][:10].to_numpy(), 200),
                     "value": rng.normal(size=2000), "feature_value": rng.normal(size=2000)}
                )  # fmt: skip
                store.write_node_png(TREE_ID, path, shap_png(k), shap_beeswarm(shap, k))
        store.write_node(
            TREE_ID, path, labels_table, _record(path, level, len(rows), children, split)
        )
        if not split:
            leaf[rows] = path
            return
        for k in children:
            grow(f"{path}.{k}", rows[labels == k], level + 1)

    grow("root", np.arange(n_rows), 1)
    assignments = pd.DataFrame(
        {"user_id": [f"u{i:07d}" for i in range(n_rows)], "leaf_path": leaf, "is_noise": False,
         "confidence": rng.uniform(0.5, 1.0, n_rows).round(4), "noise_assigned": False}
    )  # fmt: skip
    store.publish(TREE_ID, assignments, {"n_nodes": len(store.node_records(TREE_ID))})
    return store
