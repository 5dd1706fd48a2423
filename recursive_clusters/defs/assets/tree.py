"""The finished tree: a thin wrapper over ``trees.publish.publish_tree``, which assigns every
input row to its leaf and publishes the tree as current; here its outcome becomes Dagster's
materialization and check results."""

from pathlib import Path

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from recursive_clusters.core.tree_checks import CheckOutcome
from recursive_clusters.defs.assets.common import every_level_deps, open_tree
from recursive_clusters.defs.keys import TREE_ASSET, TREE_COMPLETE_CHECK, TREE_GROUP, clusters_key
from recursive_clusters.defs.resources import TreeStoreResource
from recursive_clusters.trees.names import leaf_names
from recursive_clusters.trees.publish import PublishOutcome, TreeNotComplete, publish_tree

TREE_CHECKS = {
    "noise_share": "Share of rows left as noise (thresholds: checks.max_noise_share_*).",
    "weakest_child_stability": "Lowest Jaccard of a child of an accepted split "
    "(checks.min_child_stability_warn).",
    "median_roc_auc": "Median held-out ROC AUC of the one-vs-all classifiers "
    "(checks.min_median_auc_*).",
    "predict_agreement": "Share of rows in a leaf that predict routes to the same leaf "
    "(checks.min_predict_agreement_*).",
    "ari_vs_previous": "ARI of the leaves with the previous tree's "
    "(checks.min_ari_vs_previous_warn); passes when there is no previous tree.",
}


def _check_result(outcome: CheckOutcome, tree_id: str) -> AssetCheckResult:
    return AssetCheckResult(
        check_name=outcome.name,
        passed=outcome.passed,
        severity=AssetCheckSeverity(outcome.severity),
        description=outcome.description,
        metadata={"generation": tree_id, "value": outcome.value},
    )


def _comparison_metadata(outcome: PublishOutcome) -> dict:
    if outcome.comparison is None:
        return {}
    changes = pd.DataFrame(outcome.comparison["changes"], columns=["previous", "current", "change"])
    return {
        "previous_generation": outcome.previous,
        "ari_vs_previous": outcome.comparison["ari"],
        "changes_vs_previous": MetadataValue.md(
            changes[changes["change"] != "kept"].to_markdown(index=False)
        ),
    }


def _materialization(outcome: PublishOutcome, catalog: Path) -> MaterializeResult:
    """The publish outcome as Dagster shows it: check results and metadata."""
    tree_id, summary, names = outcome.tree_id, outcome.summary, outcome.names
    return MaterializeResult(
        check_results=[
            *(_check_result(check, tree_id) for check in outcome.checks),
            AssetCheckResult(
                check_name=TREE_COMPLETE_CHECK,
                passed=outcome.published,
                severity=AssetCheckSeverity.ERROR,
                metadata={
                    "generation": tree_id,
                    "n_leaves": summary["n_leaves"],
                    "current_tree": tree_id if outcome.published else (outcome.previous or "none"),
                },
                description=None
                if outcome.published
                else f"not published: {outcome.failure}; the current tree stays {outcome.previous}",
            ),
        ],
        metadata={
            "generation": tree_id,
            "published": outcome.published,
            **summary,
            **{f"check_{o.name}": o.value for o in outcome.checks if o.value is not None},
            "assignments": MetadataValue.path(str(outcome.target)),
            "catalog": MetadataValue.path(str(catalog)),
            **_comparison_metadata(outcome),
            "leaves": MetadataValue.md(
                outcome.leaves.rename_axis("leaf_path")
                .reset_index(name="rows")
                .assign(name=lambda t: leaf_names(names, t["leaf_path"]))
                .to_markdown(index=False)
            ),
        },
    )


def build_tree_asset(max_depth: int):
    """The assignments asset, depending on every level so lineage shows the whole tree."""
    deps = every_level_deps(clusters_key, max_depth)

    @asset(
        name=TREE_ASSET.path[-1],
        group_name=TREE_GROUP,
        deps=deps,
        description="One row per input row: id, leaf path and name, noise flag, confidence and "
        "label per level.",
        check_specs=[
            AssetCheckSpec(
                TREE_COMPLETE_CHECK,
                asset=TREE_ASSET,
                description="The newest tree was grown and published; fails naming the tree, "
                "node and error when a tree could not be (the previous tree stays current).",
            ),
            *(
                AssetCheckSpec(name, asset=TREE_ASSET, description=description)
                for name, description in TREE_CHECKS.items()
            ),
        ],
    )
    def cluster_tree(
        context: AssetExecutionContext, tree_storage: TreeStoreResource
    ) -> MaterializeResult:
        store, tree_id, settings = open_tree(context, tree_storage)
        try:
            outcome = publish_tree(store, tree_id, settings)
        except TreeNotComplete as exc:
            raise Failure(description=str(exc)) from None
        for warning in outcome.warnings:
            context.log.warning(warning)
        if not outcome.published:
            context.log.error(
                f"tree {tree_id} not published ({outcome.failure}); {outcome.previous} stays"
            )
        return _materialization(outcome, store.catalog_path)

    return cluster_tree
