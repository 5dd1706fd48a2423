"""The level factory: per tree level, an embedding asset and a clusters asset.

Level 1 clusters the whole table (unpartitioned); level N >= 2 has one dynamic partition per
node zoomed into (key = ``<tree id>:<path>``, see ``core/paths.py``). A run may
cover a range of sibling partitions (``BackfillPolicy.single_run``), so the fixed cost of a
process (imports, numba compilation) is paid once per batch, not once per node.
"""

import numpy as np
import pandas as pd
from dagster import (
    AllPartitionMapping,
    AssetDep,
    AssetExecutionContext,
    AssetsDefinition,
    MaterializeResult,
    MetadataValue,
    asset,
)

from recursive_clusters.core.acceptance import perturbed_runs
from recursive_clusters.core.embedding import fit_layout, placement_method, rows_to_place
from recursive_clusters.core.parallelism import limited_threads
from recursive_clusters.core.paths import NodePath
from recursive_clusters.core.plots import embedding_scatter
from recursive_clusters.core.progress import RowProgress
from recursive_clusters.core.recursive import finish_node, require_enough_rows
from recursive_clusters.defs.assets.common import (
    for_each_node,
    level_asset_options,
    load_matrix,
    node_paths,
    open_tree,
    png_markdown,
    progress_reporter,
    run_rows,
    run_threads,
)
from recursive_clusters.defs.keys import FEATURES, clusters_key, embedding_key
from recursive_clusters.defs.resources import TreeStoreResource
from recursive_clusters.io.store import EMBEDDING_PNG, TreeStore


def node_rows(store: TreeStore, tree_id: str, path: NodePath, n_rows: int) -> np.ndarray:
    """The original rows of a node: all rows at the root, else one cluster of the parent."""
    if path.is_root:
        return np.arange(n_rows)
    return np.asarray(store.child_rows(tree_id, path.parent, path.index), dtype=np.int64)


def _upstream_dep(level: int) -> AssetDep:
    if level == 1:
        return AssetDep(FEATURES)
    if level == 2:
        return AssetDep(clusters_key(1))
    return AssetDep(clusters_key(level - 1), partition_mapping=AllPartitionMapping())


def build_level_assets(level: int) -> list[AssetsDefinition]:
    """The embedding and clusters assets of one level of the tree."""
    common = level_asset_options(level)

    @asset(
        name=embedding_key(level).path[-1],
        deps=[_upstream_dep(level)],
        description=f"UMAP 2-D embedding of each level-{level} node's own rows.",
        **common,
    )
    def embedding_asset(
        context: AssetExecutionContext, tree_storage: TreeStoreResource
    ) -> MaterializeResult:
        store, tree_id, settings = open_tree(context, tree_storage)
        threads = run_threads(context)
        paths = node_paths(context)
        matrix = load_matrix(store, tree_id, run_rows(store, tree_id, paths))
        if level == 1:
            require_enough_rows(len(matrix.table), settings)
        rows_of = {path: node_rows(store, tree_id, path, len(matrix.table)) for path in paths}
        report = progress_reporter(context)
        placing = RowProgress(
            f"level {level}: rows placed on their node's layout",
            sum(rows_to_place(len(rows), settings.embedding) for rows in rows_of.values()),
            report,
        )

        def embed_node(path: NodePath) -> dict[str, object]:
            rows = rows_of[path]
            seed = path.seed(settings.random_state)
            if rows_to_place(len(rows), settings.embedding):
                report(
                    f"level {level}: {path}: UMAP fitted on {settings.embedding.fit_sample_size:,}"
                    f" of {len(rows):,} rows, the rest placed by "
                    f"{placement_method(settings.embedding, len(rows))}"
                )
            with limited_threads(threads):
                node_matrix = matrix.node_part(rows)  # made once for both steps
                layout = fit_layout(node_matrix, settings.embedding, seed, placing.advance)
                runs = perturbed_runs(layout, node_matrix, settings, seed)
            coordinates = layout.coordinates
            store.write_perturbed_runs(tree_id, path, runs)
            store.write_embedding(
                tree_id,
                path,
                pd.DataFrame({"row": rows, "x": coordinates[:, 0], "y": coordinates[:, 1]}),
            )
            return {
                "generation": tree_id,
                "node": path,
                "rows": len(rows),
                "seed": seed,
                "n_neighbors": min(settings.embedding.n_neighbors, len(rows) - 1),
                "min_dist": settings.embedding.min_dist,
            }

        return for_each_node(context, tree_id, embed_node)

    @asset(
        name=clusters_key(level).path[-1],
        deps=[embedding_key(level)],
        description=f"HDBSCAN clusters of each level-{level} node and its zoom-in decision.",
        **common,
    )
    def clusters_asset(
        context: AssetExecutionContext, tree_storage: TreeStoreResource
    ) -> MaterializeResult:
        store, tree_id, settings = open_tree(context, tree_storage)
        threads = run_threads(context)
        matrix = load_matrix(store, tree_id, run_rows(store, tree_id, node_paths(context)))

        def cluster_node(path: NodePath) -> dict[str, object]:
            embedded = store.read_embedding(tree_id, path)
            coordinates = embedded[["x", "y"]].to_numpy()
            rows = embedded["row"].to_numpy()
            runs = store.read_perturbed_runs(tree_id, path)
            with limited_threads(threads):
                node_matrix = matrix.node_part(rows)
                node = finish_node(coordinates, rows, path, settings, node_matrix, runs)
            labels = pd.DataFrame(
                {
                    "row": node.rows,
                    "label": node.clustering.labels,
                    "probability": node.clustering.probabilities,
                    "noise_assigned": node.noise_assigned,
                }
            )
            record = {**node.summary(), "generation": tree_id}
            store.write_node(tree_id, path, labels, record)
            plot = embedding_scatter(
                coordinates,
                node.clustering.labels,
                title=f"{path}: {node.clustering.n_children} clusters",
            )
            store.write_node_png(tree_id, path, EMBEDDING_PNG, plot)
            return {
                "generation": tree_id,
                "node": path,
                "rows": record["n_rows"],
                "children": record["n_children"],
                "noise_fraction": record["noise_fraction"],
                "noise_assigned": record["noise_assigned"],
                "noise_assigned_by_child": MetadataValue.json(record["noise_assigned_by_child"]),
                "granularity": record["acceptance"].get("granularity", 1.0),
                "split_accepted": record["split_accepted"],
                "reason": record["reason"],
                "zoom_into": ", ".join(record["zoom_into"]) or "none",
                "min_cluster_size": record["min_cluster_size"],
                "child_sizes": MetadataValue.json(record["child_sizes"]),
                "child_stability": MetadataValue.json(record["child_stability"]),
                "acceptance": MetadataValue.json(record["acceptance"]),
                "embedding_plot": png_markdown(plot, path),
            }

        return for_each_node(context, tree_id, cluster_node)

    return [embedding_asset, clusters_asset]
