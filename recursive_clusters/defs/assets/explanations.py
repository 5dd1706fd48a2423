"""Per-level explanation assets: classifiers (router + one-vs-all) and SHAP per tree node.

Both share the clusters' partitions, so a node's explanation is a partition beside its
clustering, and run in the same batch run as its clustering.
"""

import numpy as np
import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    MaterializeResult,
    MetadataValue,
    asset,
)

from recursive_clusters.core.explain import explain_with_shap, train_classifiers
from recursive_clusters.core.paths import NodePath
from recursive_clusters.core.plots import mean_images, shap_beeswarm, shap_pixel_map
from recursive_clusters.core.settings import Settings
from recursive_clusters.defs.assets.common import (
    HeldRows,
    for_each_node,
    level_asset_options,
    node_paths,
    open_tree,
    png_markdown,
    read_features,
    run_rows,
    run_threads,
)
from recursive_clusters.defs.keys import classifiers_key, clusters_key, shap_key
from recursive_clusters.defs.resources import TreeStoreResource
from recursive_clusters.io.models import load_node_models, save_node_models
from recursive_clusters.io.store import (
    CLASSIFIER_METRICS_TABLE,
    DRIVERS_TABLE,
    MEAN_IMAGES_PNG,
    PIXELS_TABLE,
    SHAP_TABLE,
    TreeStore,
    shap_pixels_png,
    shap_png,
)


def _node_table(store: TreeStore, tree_id: str, path: str, features: HeldRows[pd.DataFrame]):
    """The node's rows of the original features, their child labels and row numbers."""
    labels = store.read_labels(tree_id, path)
    rows = labels["row"].to_numpy()
    return features.node_part(rows), labels["label"].to_numpy(), rows


def _leaf_metadata(record: dict) -> dict[str, object]:
    return {
        "generation": record["generation"],
        "node": record["path"],
        "explained": False,
        "reason": f"leaf: {record['reason']}",
    }


def _explain_node(
    store: TreeStore,
    tree_id: str,
    path: NodePath,
    features: HeldRows[pd.DataFrame],
    pixels: pd.DataFrame | None,
    settings: Settings,
) -> dict[str, object]:
    """SHAP values, drivers and plots of one split node; its metadata, every plot inline."""
    node_features, labels, rows = _node_table(store, tree_id, path, features)
    models = load_node_models(store.models_dir(tree_id) / path)
    explanation = explain_with_shap(
        models, node_features, labels, rows, settings.explanation, path.seed(settings.random_state)
    )
    store.write_node_table(tree_id, path, SHAP_TABLE, explanation.shap_values)
    store.write_node_table(tree_id, path, DRIVERS_TABLE, explanation.drivers)
    children = sorted(int(k) for k in np.unique(labels) if k >= 0)
    metadata: dict[str, object] = {
        "generation": tree_id,
        "node": path,
        "explained": True,
        "drivers": MetadataValue.md(explanation.drivers.round(4).to_markdown(index=False)),
        "rows_explained": int(explanation.shap_values["row"].nunique()),
    }
    for k in children:
        plot = shap_beeswarm(explanation.shap_values, k)
        store.write_node_png(tree_id, path, shap_png(k), plot)
        metadata[f"shap_child_{k}"] = png_markdown(plot, f"{path.child(k)} SHAP")
    if pixels is not None:
        image_shape = settings.input.image_shape
        node_pixels = pixels.iloc[rows].reset_index(drop=True)
        plot = mean_images(node_pixels, labels, image_shape)
        store.write_node_png(tree_id, path, MEAN_IMAGES_PNG, plot)
        metadata["mean_images"] = png_markdown(plot, f"{path} mean images")
        for k in children:
            plot = shap_pixel_map(explanation.shap_values, k, list(pixels.columns), image_shape)
            store.write_node_png(tree_id, path, shap_pixels_png(k), plot)
            metadata[f"shap_pixels_{k}"] = png_markdown(plot, f"{path.child(k)} SHAP pixels")
    return metadata


def build_explanation_assets(level: int) -> list[AssetsDefinition]:
    """The classifiers and SHAP assets of one level."""
    common = level_asset_options(level)

    @asset(
        name=classifiers_key(level).path[-1],
        deps=[clusters_key(level)],
        description=f"XGBoost router and one-vs-all models of each level-{level} node's "
        "children, trained on the original features, with held-out quality.",
        **common,
    )
    def classifiers_asset(
        context: AssetExecutionContext, tree_storage: TreeStoreResource
    ) -> MaterializeResult:
        store, tree_id, settings = open_tree(context, tree_storage)
        features = read_features(store, tree_id, run_rows(store, tree_id, node_paths(context)))

        def train_node(path: NodePath) -> dict[str, object]:
            record = store.node_record(tree_id, path)
            if not record["split_accepted"]:
                return _leaf_metadata(record)
            node_features, labels, _ = _node_table(store, tree_id, path, features)
            models = train_classifiers(
                node_features,
                labels,
                settings.explanation,
                path.seed(settings.random_state),
                n_jobs=run_threads(context),
            )
            save_node_models(models, store.models_dir(tree_id) / path)
            metrics = models.metrics
            store.write_node_table(tree_id, path, CLASSIFIER_METRICS_TABLE, metrics)
            return {
                "generation": tree_id,
                "node": path,
                "explained": True,
                "router_accuracy": round(models.router_accuracy, 4),
                "median_roc_auc": round(float(metrics["roc_auc"].median()), 4),
                "metrics": MetadataValue.md(metrics.round(4).to_markdown(index=False)),
                "models_dir": MetadataValue.path(str(store.models_dir(tree_id) / path)),
            }

        return for_each_node(context, tree_id, train_node)

    @asset(
        name=shap_key(level).path[-1],
        deps=[classifiers_key(level)],
        description=f"SHAP values, top drivers and plots of each level-{level} node's "
        "children (mean images too for image data).",
        **common,
    )
    def shap_asset(
        context: AssetExecutionContext, tree_storage: TreeStoreResource
    ) -> MaterializeResult:
        store, tree_id, settings = open_tree(context, tree_storage)
        features = read_features(store, tree_id, run_rows(store, tree_id, node_paths(context)))
        pixels = store.read_table(tree_id, PIXELS_TABLE) if settings.input.image_shape else None

        def explain_node(path: NodePath) -> dict[str, object]:
            record = store.node_record(tree_id, path)
            if not record["split_accepted"]:
                return _leaf_metadata(record)
            return _explain_node(store, tree_id, path, features, pixels, settings)

        return for_each_node(context, tree_id, explain_node)

    return [classifiers_asset, shap_asset]
