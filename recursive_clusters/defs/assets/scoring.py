"""Scheduled scoring: a new table assigned to the current tree's leaves by the routers."""

from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue, asset
from pydantic import Field

from recursive_clusters.core.settings import InputSettings
from recursive_clusters.defs.keys import SCORING_GROUP, TREE_ASSET
from recursive_clusters.defs.resources import TreeStoreResource
from recursive_clusters.io.store import SCORED_TABLE_PARQUET, output_file, write_parquet
from recursive_clusters.trees.scoring import score_file


class ScoringConfig(Config):
    """Which table to score and where to write the result."""

    path: str = Field(description="Parquet, CSV or DuckDB file of new rows.")
    table: str | None = Field(None, description="Table name inside a DuckDB file.")
    output: str | None = Field(
        None, description="Where to write the scores (Parquet); default: beside the tree."
    )


@asset(
    group_name=SCORING_GROUP,
    deps=[TREE_ASSET],
    description="New rows routed to a leaf of the current tree by its classifiers alone.",
)
def scored_table(
    context: AssetExecutionContext, config: ScoringConfig, tree_storage: TreeStoreResource
) -> MaterializeResult:
    store = tree_storage.store()
    tree_id = store.require_current()
    target = output_file(
        config.output or store.tree_dir(tree_id) / SCORED_TABLE_PARQUET,
        "output",
        inputs=[config.path],
    )
    scores = score_file(store, InputSettings(path=config.path, table=config.table))
    write_parquet(target, scores)
    reached = scores["path"].value_counts().rename_axis("path").reset_index(name="rows")
    return MaterializeResult(
        metadata={
            "generation": tree_id,
            "rows": len(scores),
            "confident_share": float(scores["confident"].mean()) if len(scores) else 0.0,
            "output": MetadataValue.path(str(target)),
            "paths": MetadataValue.md(reached.to_markdown(index=False)),
        }
    )
