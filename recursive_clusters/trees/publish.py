"""Publish a grown tree: assemble every row's leaf, compare with the current tree, name the
clusters, fit the drift baseline, run the tree checks, then publish it or mark it failed.

No Dagster here: the ``cluster_tree`` asset calls :func:`publish_tree` and turns the outcome
into its materialization and check results (as hdbscan's estimator wraps a function).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from recursive_clusters.core.compare import compare_trees
from recursive_clusters.core.drift import fit_baseline, top_drivers
from recursive_clusters.core.paths import ROOT, is_noise_leaf
from recursive_clusters.core.settings import Settings
from recursive_clusters.core.tree import NodeOutcome, assign_leaves, pending_nodes
from recursive_clusters.core.tree_checks import CheckOutcome, blocking_failures, tree_checks
from recursive_clusters.io.store import (
    ASSIGNMENTS_TABLE,
    CLASSIFIER_METRICS_TABLE,
    COMPARISON_JSON,
    DRIVERS_TABLE,
    IDS_TABLE,
    TreeStore,
)
from recursive_clusters.report import write_report
from recursive_clusters.trees.names import leaf_names, name_tree, names_warnings
from recursive_clusters.trees.scoring import predict_agreement, route_training_rows


class TreeNotComplete(RuntimeError):
    """Some nodes of the tree are not clustered yet: it cannot be published."""


@dataclass
class PublishOutcome:
    """What publishing a tree did, for the caller to show (the asset's metadata and checks)."""

    tree_id: str
    table: pd.DataFrame  # the assignments: one row per input row
    summary: dict  # n_rows, n_nodes, n_leaves, n_noise_groups, noise_fraction (+ comparison)
    leaves: pd.Series  # rows per leaf path
    names: dict  # each node's and leaf's name (names.json)
    checks: list[CheckOutcome]
    target: Path  # the assignments file
    previous: str | None  # the tree that was current before
    comparison: dict | None = None  # compare_trees with ``previous``, when there was one
    warnings: list[str] = field(default_factory=list)  # names.yaml naming what does not exist
    failure: str | None = None  # why it was not published (blocking checks); None: published

    @property
    def published(self) -> bool:
        return self.failure is None


def fail_tree(store: TreeStore, tree_id: str, reason: str) -> bool:
    """Mark tree ``tree_id`` failed with ``reason``: the one place a tree is marked failed
    (blocking checks here, a failed run in the failure sensor; ``TreeStore.publish`` marks
    its own failed write). False when the tree was already published: a later failure does
    not unpublish it."""
    return store.mark_failed(tree_id, reason)


def _roc_aucs(store: TreeStore, tree_id: str, records: dict[str, dict]) -> list[float]:
    return [
        float(auc)
        for path, record in records.items()
        if record["split_accepted"]
        for auc in store.read_node_table(tree_id, path, CLASSIFIER_METRICS_TABLE)["roc_auc"]
    ]


def _watched_drivers(
    store: TreeStore, tree_id: str, records: dict[str, dict], settings: Settings
) -> list[str]:
    """The root's top SHAP drivers, whose distribution each new batch is compared on."""
    if not records[ROOT]["split_accepted"]:
        return []
    drivers = store.read_node_table(tree_id, ROOT, DRIVERS_TABLE)
    return top_drivers(drivers, settings.drift.top_drivers)


def assemble_assignments(
    store: TreeStore, tree_id: str, records: dict[str, dict], settings: Settings
) -> pd.DataFrame:
    """One row per input row: its id, leaf path, noise flag, confidence and label per level."""
    outcomes = {}
    for path, record in records.items():
        labels = store.read_labels(tree_id, path)
        outcomes[path] = NodeOutcome(
            labels["row"].to_numpy(),
            labels["label"].to_numpy(),
            record["split_accepted"],
            labels["probability"].to_numpy(),
            labels["noise_assigned"].to_numpy(),
        )
    ids = store.read_table(tree_id, IDS_TABLE)
    table = assign_leaves(len(ids), outcomes, settings.recursion.max_depth)
    table = table.drop(columns="row")  # an id column may be called "row"
    table.insert(0, ids.columns[0], ids.iloc[:, 0].to_numpy())
    return table


def publish_tree(store: TreeStore, tree_id: str, settings: Settings) -> PublishOutcome:
    """Assign every row of tree ``tree_id`` to its leaf and publish the tree as current,
    unless a blocking check fails: then it is marked failed and the previous tree stays.

    Raises :class:`TreeNotComplete` when nodes are still pending."""
    records = store.node_records(tree_id)
    missing = pending_nodes(records)
    if missing:
        raise TreeNotComplete(
            f"Tree {tree_id} is not complete: nodes {missing} are not "
            "clustered yet. Materialize their partitions, then this asset."
        )
    table = assemble_assignments(store, tree_id, records, settings)
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
    comparison = None
    if previous not in (None, tree_id):
        id_column = table.columns[0]
        before = store.read_table(previous, ASSIGNMENTS_TABLE)
        comparison = compare_trees(
            before.set_index(before.columns[0])["leaf_path"],
            table.set_index(id_column)["leaf_path"],
        )
        store.write_text(tree_id, COMPARISON_JSON, json.dumps({"previous": previous, **comparison}))
        # the manifest key keeps a tree id's former name (see defs/keys.py)
        summary.update(previous_generation=previous, ari_vs_previous=comparison["ari"])
    prior = previous if previous != tree_id else None
    names = name_tree(store, tree_id, prior)
    warnings = names_warnings(store, tree_id, names, prior)
    table["leaf_name"] = leaf_names(names, table["leaf_path"]).to_numpy()
    rows, sample, routed = route_training_rows(store, tree_id, settings)
    drivers = _watched_drivers(store, tree_id, records, settings)
    store.write_drift_baseline(tree_id, fit_baseline(routed, sample, drivers))
    checks = tree_checks(
        table,
        records,
        _roc_aucs(store, tree_id, records),
        predict_agreement(store, tree_id, table, rows, routed),
        summary.get("ari_vs_previous"),
        settings.checks,
    )
    blocking = blocking_failures(checks)
    failure = None
    if blocking:
        target = store.write_table(tree_id, ASSIGNMENTS_TABLE, table)
        failure = "ERROR checks failed: " + "; ".join(o.description for o in blocking)
        fail_tree(store, tree_id, failure)
    else:
        target = store.publish(
            tree_id, table, summary, before_switch=lambda: write_report(store, tree_id)
        )
    return PublishOutcome(
        tree_id=tree_id,
        table=table,
        summary=summary,
        leaves=leaves,
        names=names,
        checks=checks,
        target=target,
        previous=previous,
        comparison=comparison,
        warnings=warnings,
        failure=failure,
    )
