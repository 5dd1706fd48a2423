"""The finished tree: every input row assigned to its leaf, published as the current tree."""

import json

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from recursive_clusters.assets.common import every_level_deps, open_tree
from recursive_clusters.assets.levels import clusters_key
from recursive_clusters.core.compare import compare_trees
from recursive_clusters.core.drift import fit_baseline, top_drivers
from recursive_clusters.core.paths import ROOT, is_noise_leaf
from recursive_clusters.core.settings import Settings
from recursive_clusters.core.tree import NodeOutcome, assign_leaves, pending_nodes
from recursive_clusters.core.tree_checks import CheckOutcome, blocking_failures, tree_checks
from recursive_clusters.io.store import COMPARISON_JSON, TreeStore
from recursive_clusters.names import leaf_names, name_tree, names_warnings
from recursive_clusters.report import write_report
from recursive_clusters.resources import TreeStorage
from recursive_clusters.scoring import predict_agreement, route_training_rows

TREE_ASSET = AssetKey("cluster_tree")
# Passes when a tree is published; the failure sensor fails it, naming the tree, the node and
# the error, when a tree cannot be grown or published (``tree_status.report_tree_failure``).
TREE_COMPLETE_CHECK = "tree_complete"


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


def _roc_aucs(store: TreeStore, generation: str, records: dict[str, dict]) -> list[float]:
    return [
        float(auc)
        for path, record in records.items()
        if record["split_accepted"]
        for auc in store.read_node_table(generation, path, "classifier_metrics")["roc_auc"]
    ]


def _watched_drivers(
    store: TreeStore, generation: str, records: dict[str, dict], settings: Settings
) -> list[str]:
    """The root's top SHAP drivers, whose distribution each new batch is compared on."""
    if not records[ROOT]["split_accepted"]:
        return []
    drivers = store.read_node_table(generation, ROOT, "drivers")
    return top_drivers(drivers, settings.drift.top_drivers)


def _check_result(outcome: CheckOutcome, generation: str) -> AssetCheckResult:
    return AssetCheckResult(
        check_name=outcome.name,
        passed=outcome.passed,
        severity=AssetCheckSeverity(outcome.severity),
        description=outcome.description,
        metadata={"generation": generation, "value": outcome.value},
    )


def build_tree_asset(max_depth: int):
    """The assignments asset, depending on every level so lineage shows the whole tree."""
    deps = every_level_deps(clusters_key, max_depth)

    @asset(
        name=TREE_ASSET.path[-1],
        group_name="tree",
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
        context: AssetExecutionContext, tree_storage: TreeStorage
    ) -> MaterializeResult:
        store, generation, settings = open_tree(context, tree_storage)
        records = store.node_records(generation)
        missing = pending_nodes(records)
        if missing:
            raise Failure(
                description=f"Tree {generation} is not complete: nodes {missing} are not "
                "clustered yet. Materialize their partitions, then this asset."
            )
        outcomes = {}
        for path, record in records.items():
            labels = store.read_labels(generation, path)
            outcomes[path] = NodeOutcome(
                labels["row"].to_numpy(),
                labels["label"].to_numpy(),
                record["split_accepted"],
                labels["probability"].to_numpy(),
                labels["noise_assigned"].to_numpy(),
            )
        ids = store.read_table(generation, "ids")
        table = assign_leaves(len(ids), outcomes, settings.recursion.max_depth)
        table = table.drop(columns="row")  # an id column may be called "row"
        table.insert(0, ids.columns[0], ids.iloc[:, 0].to_numpy())
        leaves = table["leaf_path"].value_counts().sort_index()
        noise_groups = leaves.index.map(is_noise_leaf).to_numpy(dtype=bool)
        summary = {  # counted as the report counts them: noise groups are not leaves
            "n_rows": len(table),
            "n_nodes": len(records),
            "n_leaves": int((~noise_groups).sum()),
            "n_noise_groups": int(noise_groups.sum()),
            "noise_fraction": float(table["is_noise"].mean()),
        }
        previous = store.current()
        comparison_metadata = {}
        if previous not in (None, generation):
            id_column = table.columns[0]
            before = store.read_table(previous, "assignments")
            comparison = compare_trees(
                before.set_index(before.columns[0])["leaf_path"],
                table.set_index(id_column)["leaf_path"],
            )
            store.write_text(
                generation, COMPARISON_JSON, json.dumps({"previous": previous, **comparison})
            )
            summary.update(previous_generation=previous, ari_vs_previous=comparison["ari"])
            changes = pd.DataFrame(comparison["changes"], columns=["previous", "current", "change"])
            comparison_metadata = {
                "previous_generation": previous,
                "ari_vs_previous": comparison["ari"],
                "changes_vs_previous": MetadataValue.md(
                    changes[changes["change"] != "kept"].to_markdown(index=False)
                ),
            }
        prior = previous if previous != generation else None
        names = name_tree(store, generation, prior)
        for warning in names_warnings(store, generation, names, prior):
            context.log.warning(warning)
        table["leaf_name"] = leaf_names(names, table["leaf_path"]).to_numpy()
        rows, sample, routed = route_training_rows(store, generation, settings)
        drivers = _watched_drivers(store, generation, records, settings)
        store.write_drift_baseline(generation, fit_baseline(routed, sample, drivers))
        outcomes = tree_checks(
            table,
            records,
            _roc_aucs(store, generation, records),
            predict_agreement(store, generation, table, rows, routed),
            summary.get("ari_vs_previous"),
            settings.checks,
        )
        blocking = blocking_failures(outcomes)
        if blocking:
            target = store.write_table(generation, "assignments", table)
            reason = "ERROR checks failed: " + "; ".join(o.description for o in blocking)
            store.mark_failed(generation, reason)
            context.log.error(f"tree {generation} not published ({reason}); {previous} stays")
        else:
            target = store.publish(
                generation, table, summary, before_switch=lambda: write_report(store, generation)
            )
        return MaterializeResult(
            check_results=[
                *(_check_result(outcome, generation) for outcome in outcomes),
                AssetCheckResult(
                    check_name=TREE_COMPLETE_CHECK,
                    passed=not blocking,
                    severity=AssetCheckSeverity.ERROR,
                    metadata={
                        "generation": generation,
                        "n_leaves": summary["n_leaves"],
                        "current_tree": generation if not blocking else (previous or "none"),
                    },
                    description=None
                    if not blocking
                    else f"not published: {reason}; the current tree stays {previous}",
                ),
            ],
            metadata={
                "generation": generation,
                "published": not blocking,
                **summary,
                **{f"check_{o.name}": o.value for o in outcomes if o.value is not None},
                "assignments": MetadataValue.path(str(target)),
                "catalog": MetadataValue.path(str(store.catalog_path)),
                **comparison_metadata,
                "leaves": MetadataValue.md(
                    leaves.rename_axis("leaf_path")
                    .reset_index(name="rows")
                    .assign(name=lambda t: leaf_names(names, t["leaf_path"]))
                    .to_markdown(index=False)
                ),
            },
        )

    return cluster_tree
