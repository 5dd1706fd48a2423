"""Small pieces every asset module shares: partitions per level, the tree id, metadata."""

from __future__ import annotations

import base64
import gc
import hashlib
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

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
from recursive_clusters.io.store import (
    FEATURES_TABLE,
    PREPROCESSOR_JSON,
    StorageError,
    TreeStore,
    read_parquet,
    release_arrow_memory,
)

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


TableLike = TypeVar("TableLike", np.ndarray, pd.DataFrame)


@dataclass(frozen=True)
class HeldRows(Generic[TableLike]):
    """The rows of a tree's table that a run holds in memory: all of them (``rows`` None),
    or only those of its nodes (``rows``: their sorted row numbers). A batch of level-2
    siblings of a 10,000,000-row tree then holds its half, not the table: two workers side
    by side together hold about one table."""

    table: TableLike
    rows: np.ndarray | None = None

    def node_part(self, node_rows: np.ndarray) -> TableLike:
        """A node's rows: the held table itself when they are all of it in order (the root,
        or a batch of one node), so the biggest node costs no copy; a copy elsewhere."""
        positions = np.asarray(node_rows, dtype=np.int64)
        if self.rows is not None:
            positions = np.searchsorted(self.rows, positions)
            inside = positions < len(self.rows)
            if not inside.all() or not np.array_equal(self.rows[positions], node_rows):
                raise StorageError("a node's rows are not among the rows its run read")
        if len(positions) == len(self.table) and np.array_equal(
            positions, np.arange(len(self.table))
        ):
            return self.table
        if isinstance(self.table, pd.DataFrame):
            return self.table.iloc[positions].reset_index(drop=True)
        return self.table[positions]


def run_rows(store: TreeStore, tree_id: str, paths: list[NodePath]) -> np.ndarray | None:
    """The sorted rows this run's nodes cover; None (every row) when the root is among them.
    The nodes of one level are disjoint, so their rows together are at most the table."""
    if any(path.is_root for path in paths):
        return None
    parts = [store.child_rows(tree_id, path.parent, path.index) for path in paths]
    return np.sort(np.concatenate([np.asarray(p, dtype=np.int64) for p in parts]))


# One read of the features table, shared by a run's steps (embedding, clusters,
# classifiers, SHAP execute in one process): (file, its version, the rows) -> the frame.
_features_read: dict[tuple, HeldRows] = {}


def read_features(
    store: TreeStore, tree_id: str, rows: np.ndarray | None = None
) -> HeldRows[pd.DataFrame]:
    """The tree's original feature columns (do not modify), all rows or only ``rows``
    (sorted), read once for the run's steps."""
    path = store.table_path(tree_id, FEATURES_TABLE)
    if not path.is_file():
        return HeldRows(store.read_table(tree_id, FEATURES_TABLE))  # raises, naming the table
    stat = path.stat()
    digest = None if rows is None else hashlib.blake2b(rows.tobytes(), digest_size=16).digest()
    key = (str(path), stat.st_mtime_ns, stat.st_size, digest)
    if key not in _features_read:
        free_run_memory()  # before the read: never two tables at once
        if rows is None:
            _features_read[key] = HeldRows(read_parquet(path))
        else:
            _features_read[key] = HeldRows(
                store.read_table_rows(tree_id, FEATURES_TABLE, rows), rows
            )
    return _features_read[key]


def free_run_memory() -> None:
    """Free what a finished run held (the CLI between its runs, a worker between batches):
    its table read, and whatever of it is only reachable from a reference cycle."""
    _features_read.clear()
    free_unreachable()


def free_unreachable() -> None:
    """Collect reference cycles now, and give Arrow's freed memory back. A finished step's
    frames can stay caught in a cycle with their tables, and Python's collector counts
    objects, not bytes: measured, the CLI of a 10,000,000-row tree still held 6.7 GB of level
    1's matrices (found by a collection) while its workers grew level 2."""
    gc.collect()
    release_arrow_memory()


def load_matrix(
    store: TreeStore, tree_id: str, rows: np.ndarray | None = None
) -> HeldRows[np.ndarray]:
    """The prepared feature matrix (imputed/standardised as configured) of a tree, all rows
    or only ``rows``."""
    free_unreachable()  # an earlier step's matrix, if a cycle still holds it
    features = read_features(store, tree_id, rows)
    preprocessor = FeaturePreprocessor.from_json(store.read_text(tree_id, PREPROCESSOR_JSON))
    matrix, _ = preprocessor.transform(features.table)
    return HeldRows(matrix, features.rows)


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
