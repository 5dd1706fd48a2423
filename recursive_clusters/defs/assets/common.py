"""Small pieces every asset module shares: partitions per level, the tree id, metadata."""

from __future__ import annotations

import base64
import time
import warnings
from collections.abc import Callable
from functools import lru_cache
from typing import TypeVar

import numpy as np
import pandas as pd
from dagster import (
    AllPartitionMapping,
    AssetDep,
    AssetExecutionContext,
    AssetKey,
    BackfillPolicy,
    BetaWarning,
    Failure,
    MaterializeResult,
    MetadataValue,
)
from sqlalchemy.exc import DBAPIError

from recursive_clusters.core.data import FeaturePreprocessor
from recursive_clusters.core.parallelism import THREADS_ENV, available_cores, count_from_env
from recursive_clusters.core.paths import ROOT, NodePath
from recursive_clusters.core.settings import Settings
from recursive_clusters.defs.keys import (
    DRIVER_TAG,
    THREADS_TAG,
    TREE_ID_TAG,
    level_group,
    level_partitions,
)
from recursive_clusters.defs.resources import TreeStoreResource
from recursive_clusters.io.store import FEATURES_TABLE, PREPROCESSOR_JSON, TreeStore, read_parquet

# ``backfill_policy`` (one run per batch of siblings) is a deliberate choice: its beta warning,
# repeated for every level asset, would bury the console's progress lines.
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=BetaWarning)


def every_level_deps(key_of_level: Callable[[int], AssetKey], max_depth: int) -> list[AssetDep]:
    """Depend on one asset of every level (all partitions of the deeper ones): for assets
    that read the whole tree, so the lineage shows it."""
    return [AssetDep(key_of_level(1))] + [
        AssetDep(key_of_level(level), partition_mapping=AllPartitionMapping())
        for level in range(2, max_depth + 1)
    ]


def level_asset_options(level: int) -> dict[str, object]:
    """Partitions, batching and group shared by every asset of one tree level."""
    partitions_def = level_partitions(level)
    return {
        "partitions_def": partitions_def,
        "backfill_policy": BackfillPolicy.single_run() if partitions_def else None,
        "group_name": level_group(level),
    }


def open_tree(
    context: AssetExecutionContext, tree_storage: TreeStoreResource
) -> tuple[TreeStore, str, Settings]:
    """The store, the tree this run belongs to and that tree's frozen settings."""
    store = tree_storage.store()
    tree_id = resolve_tree_id(context, store)
    return store, tree_id, tree_storage.tree_settings(tree_id)


T = TypeVar("T")
STORAGE_TRIES = 10
STORAGE_RETRY_SECONDS = 3.0


def with_storage_retries(call: Callable[[], T]) -> T:
    """``call`` (a read or write of the Dagster instance from a node's code), tried again
    while its database is unreachable: a Postgres restart drops the connections a run holds
    (measured: a few seconds), and without this the node failed for good, as if its input
    were bad ("server closed the connection unexpectedly" reading the run's partition keys).
    Only lost connections are retried; any other error is raised at once."""
    for attempt in range(STORAGE_TRIES):
        try:
            return call()
        except DBAPIError as exc:
            if not exc.connection_invalidated or attempt == STORAGE_TRIES - 1:
                raise
            time.sleep(STORAGE_RETRY_SECONDS)
    raise AssertionError("unreachable")


def partition_keys(context: AssetExecutionContext) -> list[str]:
    """The run's partition keys (read from the instance for a range)."""
    return list(with_storage_retries(lambda: context.partition_keys))


def node_paths(context: AssetExecutionContext) -> list[NodePath]:
    """The tree nodes this run computes: the root, or one per partition in the run's range."""
    if not _is_partitioned(context):
        return [NodePath(ROOT)]
    return [NodePath.from_partition_key(key)[1] for key in partition_keys(context)]


def _is_partitioned(context: AssetExecutionContext) -> bool:
    return context.has_partition_key or context.has_partition_key_range


def run_threads(context: AssetExecutionContext) -> int:
    """Threads this run may use: ``$RECURSIVE_CLUSTERS_THREADS`` where the deployment sets it
    (a run per pod), else the share of the cores the growth planner gave it (sibling batches
    side by side on one machine), else every core (a run launched alone, e.g. from the UI)."""
    tag = context.run.tags.get(THREADS_TAG, "")
    from_tag = int(tag) if tag.isdigit() and int(tag) > 0 else None
    return count_from_env(THREADS_ENV) or from_tag or available_cores()


def resolve_tree_id(context: AssetExecutionContext, store: TreeStore) -> str:
    """The tree this run belongs to: named by its partition keys (so a partition launched by
    hand from the UI computes its own tree's node), else by the run's tag, else the tree most
    recently started."""
    if _is_partitioned(context):
        trees = {NodePath.from_partition_key(key)[0] for key in partition_keys(context)}
        if len(trees) > 1:
            raise Failure(description=f"One run must not mix nodes of trees {sorted(trees)}.")
        return trees.pop()
    run = with_storage_retries(lambda: context.instance.get_run_by_id(context.run_id))
    tree_id = (run.tags if run else {}).get(TREE_ID_TAG) or store.latest_started()
    if tree_id is None:
        raise Failure(
            description="No tree has been started: materialize `source_table` first "
            "(the `grow_tree` job does it)."
        )
    return tree_id


def read_features(store: TreeStore, tree_id: str) -> pd.DataFrame:
    """The tree's original feature columns (do not modify). A run's steps (embedding,
    clusters, classifiers, SHAP) execute in one process and share one read of the file."""
    path = store.table_path(tree_id, FEATURES_TABLE)
    if not path.is_file():
        return store.read_table(tree_id, FEATURES_TABLE)  # raises, naming the table
    stat = path.stat()
    return _read_parquet_once(str(path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=1)  # one table: a run serves one tree, whose files never change once written
def _read_parquet_once(path: str, modified_ns: int, size: int) -> pd.DataFrame:
    return read_parquet(path)


def load_matrix(store: TreeStore, tree_id: str) -> np.ndarray:
    """The prepared feature matrix (imputed/standardised as configured) of a tree."""
    features = read_features(store, tree_id)
    preprocessor = FeaturePreprocessor.from_json(store.read_text(tree_id, PREPROCESSOR_JSON))
    matrix, _ = preprocessor.transform(features)
    return matrix


TableLike = TypeVar("TableLike", np.ndarray, pd.DataFrame)


def node_part(table: TableLike, rows: np.ndarray) -> TableLike:
    """A node's rows of the matrix or the features: the table itself at the root (all rows in
    order), so the biggest node costs no copy of the table; a copy of the rows elsewhere."""
    if len(rows) == len(table) and np.array_equal(rows, np.arange(len(table))):
        return table
    if isinstance(table, pd.DataFrame):
        return table.iloc[rows].reset_index(drop=True)
    return table[rows]


def progress_reporter(context: AssetExecutionContext) -> Callable[[str], None]:
    """Where progress lines of long work go: the run's log in the UI, and the console too
    when the command line drives the run (it keeps Dagster's own console output quiet)."""
    on_console = context.run.tags.get(DRIVER_TAG) == "cli"

    def report(line: str) -> None:
        context.log.info(line)
        if on_console:
            print(f"    {line}", flush=True)

    return report


def png_markdown(png: bytes, caption: str) -> MetadataValue:
    """An image shown inline in the Dagster UI's metadata panel."""
    encoded = base64.b64encode(png).decode()
    return MetadataValue.md(f"![{caption}](data:image/png;base64,{encoded})")


def record_metadata(
    context: AssetExecutionContext, tree_id: str, path: str, metadata: dict[str, object]
) -> dict[str, object] | None:
    """Attach a node's metadata to its own partition; the root's is returned for the result."""
    if path == ROOT:
        return metadata
    context.add_asset_metadata(metadata, partition_key=NodePath(path).partition_key(tree_id))
    return None


# What a node's computation raises on its data (``InputError``, ``ExplanationError`` and
# ``PathError`` are ValueErrors, ``StorageError`` a RuntimeError); anything else is a bug.
NODE_ERRORS = (ValueError, RuntimeError)


def for_each_node(
    context: AssetExecutionContext,
    tree_id: str,
    step: Callable[[NodePath], dict[str, object]],
) -> MaterializeResult:
    """Run ``step`` (one node's work, returning its metadata) for every node of this run.

    The same for every per-level asset: each node's metadata goes to its own partition; a
    node that fails does not stop its siblings (their files are kept), and the run fails at
    the end naming every failed node and its error.
    """
    failures: dict[str, str] = {}
    result_metadata = None
    for path in node_paths(context):
        try:
            metadata = step(path)
        except NODE_ERRORS as exc:
            failures[path] = str(exc)
            continue
        result_metadata = record_metadata(context, tree_id, path, metadata) or result_metadata
    if failures:
        listed = "; ".join(f"{path}: {message}" for path, message in failures.items())
        raise Failure(description=f"{len(failures)} node(s) failed: {listed}")
    return MaterializeResult(metadata=result_metadata)
