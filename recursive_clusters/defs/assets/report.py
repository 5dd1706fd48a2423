"""The published tree as one self-contained HTML report, for readers who never open Dagster."""

from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    MaterializeResult,
    MetadataValue,
    asset,
)

from recursive_clusters.defs.assets.common import every_level_deps, resolve_tree_id
from recursive_clusters.defs.keys import TREE_ASSET, TREE_GROUP, TREE_REPORT, shap_key
from recursive_clusters.defs.resources import TreeStoreResource
from recursive_clusters.io.store import ASSIGNMENTS_TABLE, REPORT_HTML
from recursive_clusters.report import leaf_summary, write_report


def build_report_asset(max_depth: int) -> AssetsDefinition:
    """The report asset; it reads the files every level wrote, up to ``max_depth`` levels."""

    @asset(
        name=TREE_REPORT.path[-1],
        group_name=TREE_GROUP,
        deps=[TREE_ASSET, *every_level_deps(shap_key, max_depth)],
        description=f"Self-contained HTML report of the published cluster tree (up to "
        f"{max_depth} levels): tree, maps, child profiles, classifier quality, SHAP drivers. "
        "cluster_tree writes it before the tree becomes current; this writes it for a tree "
        "that was not published.",
    )
    def tree_report(
        context: AssetExecutionContext, tree_storage: TreeStoreResource
    ) -> MaterializeResult:
        store = tree_storage.store()
        tree_id = resolve_tree_id(context, store)
        target = store.tree_dir(tree_id) / REPORT_HTML
        if not target.is_file():  # a published tree's was written before it became current
            target = write_report(store, tree_id)
        leaves = leaf_summary(store.read_table(tree_id, ASSIGNMENTS_TABLE))
        return MaterializeResult(
            metadata={
                "generation": tree_id,
                "report": MetadataValue.path(str(target)),
                "summary": MetadataValue.md(leaves.to_markdown(index=False)),
                "nodes": len(store.node_records(tree_id)),
            }
        )

    return tree_report
