"""Incoming batches, one partition each: routed through the current tree and checked for drift."""

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    asset,
)

from recursive_clusters.core.data import InputError
from recursive_clusters.core.drift import measure_drift
from recursive_clusters.defs.keys import (
    BATCH_PARTITIONS,
    DRIFT_CHECK,
    SCORED_BATCHES,
    SCORING_GROUP,
    TREE_ASSET,
)
from recursive_clusters.defs.resources import TreeStoreResource
from recursive_clusters.io.batches import load_batch
from recursive_clusters.trees.scoring import route, tree_features


def _scores(batch: str, tree_id: str, ids: pd.Series, routed: pd.DataFrame) -> pd.DataFrame:
    """The rows of the ``scored_rows`` view: ids as text, so batches of any id type union."""
    return pd.DataFrame(
        {
            "batch": batch,
            "generation": tree_id,
            "id": ids.astype(str).to_numpy(),
            "leaf": routed["path"].to_numpy(),
            "confidence": routed["confidence"].to_numpy(),
            "confident": routed["confident"].to_numpy(),
        }
    )


@asset(
    key=SCORED_BATCHES,
    group_name=SCORING_GROUP,
    deps=[TREE_ASSET],
    partitions_def=BATCH_PARTITIONS,
    description="Each incoming batch (batches.path) routed through the current tree: rows in "
    "DuckDB's scored_rows view (batch, id, leaf, confidence), leaf shares, and a drift check "
    "against the tree's training rows.",
    check_specs=[
        AssetCheckSpec(
            DRIFT_CHECK,
            asset=SCORED_BATCHES,
            description="The batch fits the tree: node-share PSI, share of rows not "
            "confidently placed and the top SHAP drivers' PSI within the drift.* thresholds. "
            "drift.consecutive_batches failures in a row launch a re-clustering.",
        )
    ],
)
def scored_batches(
    context: AssetExecutionContext, tree_storage: TreeStoreResource
) -> MaterializeResult:
    batch = context.partition_key
    live = tree_storage.new_tree_settings()
    store = tree_storage.store()
    tree_id = store.require_current()
    settings = store.tree_settings(tree_id)
    id_column = settings.input.id_column
    raw = load_batch(live.batches, batch, id_column)
    if id_column is not None and id_column not in raw.columns:
        raise InputError(
            f"batch {batch!r} has no id column {id_column!r} (the tree's input.id_column); "
            "add it so that the scores can be joined back to the rows"
        )
    source = f"batch {batch!r} of batches.path {live.batches.path!r}"
    features, kept = tree_features(store, tree_id, raw, source)
    if not kept.any():
        raise InputError(
            f"batch {batch!r}: none of its {len(raw)} rows is left after the tree's "
            f"input.non_finite policy ({settings.input.non_finite!r})"
        )
    routed = route(store, tree_id, settings, features)
    ids = raw[id_column][kept] if id_column else pd.Series(kept.nonzero()[0])
    target = store.write_scored_batch(batch, _scores(batch, tree_id, ids, routed))
    drift = measure_drift(store.read_drift_baseline(tree_id), routed, features, live.drift)
    shares = routed["path"].value_counts(normalize=True).rename_axis("leaf")
    figures = {k: v for k, v in drift.as_dict().items() if k != "reasons" and v is not None}
    return MaterializeResult(
        metadata={
            "generation": tree_id,
            "rows": len(routed),
            "rows_dropped": int((~kept).sum()),
            "low_confidence_share": drift.low_confidence_share,
            "drifting": drift.drifting,
            "drift_reasons": "; ".join(drift.reasons) or "none",
            "node_psi": drift.node_psi,
            "scores": MetadataValue.path(str(target)),
            "leaf_shares": MetadataValue.md(
                shares.reset_index(name="share").round(4).to_markdown(index=False)
            ),
        },
        check_results=[
            AssetCheckResult(
                check_name=DRIFT_CHECK,
                passed=not drift.drifting,
                severity=AssetCheckSeverity.WARN,
                description="; ".join(drift.reasons)
                or (
                    f"fits tree {tree_id}"
                    if drift.judged
                    else f"{drift.n_rows} rows: fewer than drift.min_rows, scored, not judged"
                ),
                metadata={"batch": batch, "generation": tree_id, **figures},
            )
        ],
    )
