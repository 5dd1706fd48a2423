"""Where trees live on disk: one Parquet/JSON file per artefact, written atomically.

Why files and not one DuckDB database for everything: DuckDB lets one process write a
database file at a time, and sibling nodes are computed by parallel runs. Every node writes
its own files (temporary name + ``os.replace``, so a reader never sees half a file), and the
DuckDB catalog (``catalog.duckdb``) holds views over those files plus the final assignments;
it is written once per finished tree, with retries when another process holds its lock.

Layout under ``base_dir``::

    trees/<tree_id>/manifest.json            settings, data fingerprint, status
    trees/<tree_id>/{source,features,ids,profile}.parquet, preprocessor.json
    trees/<tree_id>/nodes/<path>/embedding.parquet     (row, x, y)
    trees/<tree_id>/nodes/<path>/perturbed.parquet     (run, seed, position, x, y): the
                                                       split test's re-layouts
    trees/<tree_id>/nodes/<path>/labels.parquet        (row, label, probability)
    trees/<tree_id>/nodes/<path>/node.json             written last: the node is complete
    trees/<tree_id>/nodes/<path>/*.png, models/, explanation files
    trees/<tree_id>/assignments.parquet
    trees/<tree_id>/drift_baseline.json     training rows as the routers place them
    scored_batches/<batch>.parquet          each incoming batch, scored (batch, id, path, ...)
    building.json   the tree most recently started ({"generation": <tree_id>}: the JSON keys
                    and the catalog's trees.generation column keep a tree id's former name,
                    so stores written before the rename still read)
    current.json    the last tree completed: what export, report and predict read
    catalog.duckdb  views and tables for SQL users
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from recursive_clusters.core.acceptance import PerturbedRun
from recursive_clusters.core.drift import DriftBaseline
from recursive_clusters.core.paths import NodePath
from recursive_clusters.core.settings import Settings, parse_settings
from recursive_clusters.io.atomic import atomic_path, os_reason
from recursive_clusters.io.tables import sql_string

_TREE_ID_PATTERN = re.compile(r"^[0-9a-f]{8,40}$")


class StorageError(RuntimeError):
    """A tree, node or file that should exist does not, or the catalog stayed locked."""


# Documents of a tree beside its tables (``TreeStore.write_text``/``read_text``/``has_text``).
PREPROCESSOR_JSON = "preprocessor.json"  # the fitted imputation/scaling, to prepare new rows
FEATURES_REPORT_JSON = "features_report.json"  # columns used, converted and left out, and why
COMPARISON_JSON = "comparison.json"  # how the tree maps to the one it replaced
NAMES_JSON = "names.json"  # each node's and leaf's name and where it came from
REPORT_HTML = "report.html"
SCORED_TABLE_PARQUET = "scored_table.parquet"  # the score_table job's default output

# Tables of a tree (``TreeStore.write_table``/``read_table``), each ``<name>.parquet``.
ASSIGNMENTS_TABLE = "assignments"  # one row per input row: its leaf, path and confidence
SOURCE_ROWS_TABLE = "source"  # the input rows as read, snapshotted when the tree started
FEATURES_TABLE = "features"  # the validated feature matrix
IDS_TABLE = "ids"
PROFILE_TABLE = "profile"  # columns described per cluster, not clustered on
PIXELS_TABLE = "pixels"  # image inputs: the pixels, for mean images
# Tables of a node (``TreeStore.write_node_table``/``read_node_table``).
CLASSIFIER_METRICS_TABLE = "classifier_metrics"
DRIVERS_TABLE = "drivers"
SHAP_TABLE = "shap"

# The pictures of a node, by name (``TreeStore.node_png``).
EMBEDDING_PNG = "embedding"
MEAN_IMAGES_PNG = "mean_images"


def shap_png(child: int) -> str:
    return f"shap_child_{int(child)}"


def shap_pixels_png(child: int) -> str:
    return f"shap_pixels_{int(child)}"


def validate_tree_id(tree_id: str) -> str:
    if not isinstance(tree_id, str) or not _TREE_ID_PATTERN.match(tree_id):
        raise StorageError(f"Not a tree id: {tree_id!r}")
    return tree_id


def write_json(target: Path, payload: object) -> None:
    with atomic_path(target) as temporary:
        temporary.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str))


PARQUET_CHUNK_ROWS = 1_000_000  # rows converted to Arrow and written at once (a row group)


def write_parquet(target: Path, frame: pd.DataFrame) -> None:
    """``frame`` as Parquet, converted to Arrow a row group at a time: a whole conversion
    would hold a second copy of the table (4 GB for 10 million rows of 50 doubles)."""
    with atomic_path(target) as temporary:
        if len(frame) <= PARQUET_CHUNK_ROWS:
            frame.to_parquet(temporary, index=False)
            return
        schema = pa.Schema.from_pandas(frame.iloc[:PARQUET_CHUNK_ROWS], preserve_index=False)
        with pq.ParquetWriter(temporary, schema) as writer:
            for start in range(0, len(frame), PARQUET_CHUNK_ROWS):
                chunk = frame.iloc[start : start + PARQUET_CHUNK_ROWS]
                writer.write_table(pa.Table.from_pandas(chunk, schema, preserve_index=False))


def read_parquet(source: Path | str) -> pd.DataFrame:
    """A Parquet file as a frame, each column converted and its Arrow memory freed in turn:
    ``pd.read_parquet`` holds the Arrow table and the frame at once and then gathers the
    columns into one block, three copies of a big table (12 GB for 10 million x 50)."""
    return _frame_of(pq.read_table(source))


def _frame_of(table: pa.Table) -> pd.DataFrame:
    """``table`` (referenced nowhere else) as a frame, converted a column at a time with each
    column's Arrow memory freed as it goes and then given back to the system."""
    frame = table.to_pandas(split_blocks=True, self_destruct=True)
    release_arrow_memory()
    return frame


def release_arrow_memory() -> None:
    """Give the memory Arrow freed back to the system. Its allocator (mimalloc) keeps it for
    reuse, invisibly to anything else: measured, a 3,000,000 x 50 table read and dropped
    left 2.5 GB resident, and a 10,000,000-row tree's CLI held 12 GB while its workers
    grew level 2 side by side."""
    pa.default_memory_pool().release_unused()


def read_parquet_rows(source: Path, rows: np.ndarray) -> pd.DataFrame:
    """The rows at positions ``rows`` (sorted) of a Parquet file, read a row group at a time,
    so a sample of a big table costs the sample, not the table."""
    parquet = pq.ParquetFile(source)
    parts, start = [], 0
    for group in range(parquet.num_row_groups):
        size = parquet.metadata.row_group(group).num_rows
        inside = rows[(rows >= start) & (rows < start + size)] - start
        if len(inside):
            parts.append(parquet.read_row_group(group).take(pa.array(inside)))
        start += size
    if not parts:
        return parquet.schema_arrow.empty_table().to_pandas()
    table = pa.concat_tables(parts)
    parts.clear()  # the table alone holds the rows
    return _frame_of(table)


def output_file(output: str | Path, parameter: str, inputs: Sequence[str | None] = ()) -> Path:
    """The path a result may be written to: a file (not a directory) in an existing
    directory, and never one of ``inputs``: a user's own data is not overwritten."""
    target = Path(output).expanduser()
    if target.is_dir():
        raise StorageError(f"{parameter} {str(output)!r} is a directory; give a file path")
    if not target.parent.is_dir():
        raise StorageError(
            f"{parameter} {str(output)!r}: the directory {str(target.parent)!r} does not exist"
        )
    local = [source for source in inputs if source and "://" not in source]
    if target.exists() and any(Path(s).exists() and os.path.samefile(target, s) for s in local):
        raise StorageError(
            f"{parameter} {str(output)!r} is the input file: write the result elsewhere"
        )
    return target


def output_directory(output: str | Path, parameter: str) -> Path:
    """A directory results may be written into, made if missing."""
    target = Path(output).expanduser()
    if target.exists() and not target.is_dir():
        raise StorageError(f"{parameter} {str(output)!r} is a file; give a directory")
    target.mkdir(parents=True, exist_ok=True)
    return target


def read_json(source: Path) -> dict:
    if not source.is_file():
        raise StorageError(f"Missing file: {source}")
    return json.loads(source.read_text())


class TreeStore:
    """Reads and writes the files of every tree under one base directory."""

    def __init__(self, base_dir: str | Path) -> None:
        self.base_dir = Path(base_dir)
        if self.base_dir.exists() and not self.base_dir.is_dir():
            raise StorageError(
                f"Tree storage {self.base_dir} ($RECURSIVE_CLUSTERS_STORAGE or "
                "$DAGSTER_HOME/recursive_clusters) is a file; it must name a directory"
            )

    # -- trees ------------------------------------------------------------------------
    def tree_dir(self, tree_id: str) -> Path:
        return self.base_dir / "trees" / validate_tree_id(tree_id)

    def begin_tree(self, tree_id: str, manifest: dict) -> None:
        """Record a new tree as started (it is not current until ``publish``)."""
        write_json(self.tree_dir(tree_id) / "manifest.json", {**manifest, "status": "building"})
        write_json(self.base_dir / "building.json", {"generation": tree_id})

    def manifest(self, tree_id: str) -> dict:
        return read_json(self.tree_dir(tree_id) / "manifest.json")

    def tree_settings(self, tree_id: str) -> Settings:
        """The settings tree ``tree_id`` was started with, frozen in its manifest: every
        node of a tree uses them, whatever settings the code location holds now."""
        return parse_settings(
            self.manifest(tree_id)["settings"], source=f"manifest of tree {tree_id}"
        )

    # -- files beside the trees ----------------------------------------------------------
    def settings_file(self, settings: Settings) -> Path:
        """Where a settings file the CLI hands to the code location is kept, by fingerprint."""
        return self.base_dir / "settings" / f"{settings.fingerprint()}.yaml"

    @property
    def names_file(self) -> Path:
        """``names.yaml``: the names a user chose for one tree's paths."""
        return self.base_dir / "names.yaml"

    @property
    def demo_drift_dir(self) -> Path:
        """The drift demo's input table and batches (``run --drift``)."""
        return self.base_dir / "demo_drift"

    def status(self, tree_id: str) -> str:
        """``building``, ``complete`` or ``failed``; ``missing`` when the tree has no manifest."""
        source = self.tree_dir(tree_id) / "manifest.json"
        return read_json(source).get("status", "building") if source.is_file() else "missing"

    def mark_failed(self, tree_id: str, reason: str) -> bool:
        """Record why a tree that is still building will not complete. A published tree keeps
        its status (a later failure, e.g. of a report, does not unpublish it): False then."""
        manifest = self.manifest(tree_id)
        if manifest.get("status") == "building":
            failed_at = datetime.now(UTC).isoformat()
            write_json(
                self.tree_dir(tree_id) / "manifest.json",
                {**manifest, "status": "failed", "failure": reason, "failed_at": failed_at},
            )
        return manifest.get("status") != "complete"

    def latest_started(self) -> str | None:
        pointer = self.base_dir / "building.json"
        return read_json(pointer)["generation"] if pointer.is_file() else None

    def current(self) -> str | None:
        pointer = self.base_dir / "current.json"
        return read_json(pointer)["generation"] if pointer.is_file() else None

    def require_current(self) -> str:
        tree_id = self.current()
        if tree_id is None:
            raise StorageError(
                f"No finished tree under {self.base_dir}: run `recursive-clusters run` "
                "(or `demo`) first."
            )
        return tree_id

    # -- tables of a tree ----------------------------------------------------------------
    def table_path(self, tree_id: str, name: str) -> Path:
        return self.tree_dir(tree_id) / f"{name}.parquet"

    def write_table(self, tree_id: str, name: str, frame: pd.DataFrame) -> Path:
        target = self.table_path(tree_id, name)
        write_parquet(target, frame)
        return target

    def read_table(self, tree_id: str, name: str) -> pd.DataFrame:
        source = self.table_path(tree_id, name)
        if not source.is_file():
            raise StorageError(f"Missing table {name!r} of tree {tree_id}: {source}")
        return read_parquet(source)

    def table_shape(self, tree_id: str, name: str) -> tuple[int, int]:
        """(rows, columns) of one table of a tree, from the file's metadata (nothing read)."""
        source = self.table_path(tree_id, name)
        if not source.is_file():
            raise StorageError(f"Missing table {name!r} of tree {tree_id}: {source}")
        parquet = pq.ParquetFile(source)
        return parquet.metadata.num_rows, len(parquet.schema_arrow.names)

    def read_table_rows(self, tree_id: str, name: str, rows: np.ndarray) -> pd.DataFrame:
        """The rows at positions ``rows`` (sorted) of one table of a tree."""
        source = self.table_path(tree_id, name)
        if not source.is_file():
            raise StorageError(f"Missing table {name!r} of tree {tree_id}: {source}")
        return read_parquet_rows(source, np.asarray(rows))

    def write_text(self, tree_id: str, name: str, text: str) -> Path:
        target = self.tree_dir(tree_id) / name
        with atomic_path(target) as temporary:
            temporary.write_text(text)
        return target

    def has_text(self, tree_id: str, name: str) -> bool:
        return (self.tree_dir(tree_id) / name).is_file()

    def read_text(self, tree_id: str, name: str) -> str:
        source = self.tree_dir(tree_id) / name
        if not source.is_file():
            raise StorageError(f"Missing file {name!r} of tree {tree_id}: {source}")
        return source.read_text()

    def write_drift_baseline(self, tree_id: str, baseline: DriftBaseline) -> None:
        self.write_text(tree_id, "drift_baseline.json", baseline.to_json())

    def read_drift_baseline(self, tree_id: str) -> DriftBaseline:
        source = self.tree_dir(tree_id) / "drift_baseline.json"
        if not source.is_file():
            raise StorageError(
                f"Tree {tree_id} has no drift baseline ({source}): it was published by an "
                "earlier version; launch grow_tree to grow a tree that batches can be scored by"
            )
        return DriftBaseline.from_json(source.read_text())

    # -- incoming batches ----------------------------------------------------------------
    def scored_batch_path(self, batch: str) -> Path:
        """One file per batch key; the key is hashed into the name only when it is not a
        safe file name (keys come from users' file names or DuckDB values)."""
        safe = re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,150}", batch) is not None
        name = batch if safe else hashlib.sha256(batch.encode()).hexdigest()[:16]
        return self.base_dir / "scored_batches" / f"{name}.parquet"

    def write_scored_batch(self, batch: str, scores: pd.DataFrame) -> Path:
        """The batch's scores, then the ``scored_rows`` view over every scored batch."""
        target = self.scored_batch_path(batch)
        write_parquet(target, scores)
        pattern = sql_string(str(target.parent / "*.parquet"))
        self._with_catalog(
            lambda connection: connection.execute(
                'CREATE OR REPLACE VIEW "scored_rows" AS SELECT * FROM read_parquet('
                f"{pattern}, union_by_name = true)"
            )
        )
        return target

    # -- nodes -------------------------------------------------------------------------
    def node_dir(self, tree_id: str, path: str) -> Path:
        return self.tree_dir(tree_id) / "nodes" / NodePath(path)

    def write_embedding(self, tree_id: str, path: str, frame: pd.DataFrame) -> None:
        write_parquet(self.node_dir(tree_id, path) / "embedding.parquet", frame)

    def read_embedding(self, tree_id: str, path: str) -> pd.DataFrame:
        source = self.node_dir(tree_id, path) / "embedding.parquet"
        if not source.is_file():
            raise StorageError(f"Node {path} of tree {tree_id} has no embedding yet: {source}")
        return pd.read_parquet(source)

    def write_perturbed_runs(self, tree_id: str, path: str, runs: list[PerturbedRun]) -> None:
        """The split test's perturbed layouts of a node, made beside its embedding (while its
        k-NN graph is at hand) and re-clustered by the clusters step; none when untested."""
        frames = [
            pd.DataFrame(
                {
                    "run": number,
                    "seed": run.seed,
                    "position": run.rows,
                    "x": run.coordinates[:, 0],
                    "y": run.coordinates[:, 1],
                }
            )
            for number, run in enumerate(runs)
        ]
        empty = pd.DataFrame({"run": [], "seed": [], "position": [], "x": [], "y": []})
        frame = pd.concat(frames, ignore_index=True) if frames else empty
        write_parquet(self.node_dir(tree_id, path) / "perturbed.parquet", frame)

    def read_perturbed_runs(self, tree_id: str, path: str) -> list[PerturbedRun]:
        source = self.node_dir(tree_id, path) / "perturbed.parquet"
        if not source.is_file():
            raise StorageError(f"Node {path} of tree {tree_id} has no perturbed runs: {source}")
        frame = pd.read_parquet(source)
        return [
            PerturbedRun(
                run["position"].to_numpy(dtype=np.int64),
                run[["x", "y"]].to_numpy(dtype=np.float32),
                int(run["seed"].iloc[0]),
            )
            for _, run in frame.groupby("run", sort=True)
        ]

    def write_node(self, tree_id: str, path: str, labels: pd.DataFrame, record: dict) -> None:
        """Labels first, the JSON record last: a node with a record is complete."""
        node_dir = self.node_dir(tree_id, path)
        write_parquet(node_dir / "labels.parquet", labels)
        write_json(node_dir / "node.json", record)

    def read_labels(self, tree_id: str, path: str) -> pd.DataFrame:
        source = self.node_dir(tree_id, path) / "labels.parquet"
        if not source.is_file():
            raise StorageError(f"Node {path} of tree {tree_id} is not clustered yet: {source}")
        return pd.read_parquet(source)

    def child_rows(self, tree_id: str, parent: str, child: int) -> list[int]:
        """Row numbers of one child of ``parent``, selected in DuckDB from the parent's labels."""
        source = self.node_dir(tree_id, parent) / "labels.parquet"
        if not source.is_file():
            raise StorageError(f"Parent node {parent} of tree {tree_id} is not clustered yet.")
        with duckdb.connect() as connection:
            rows = connection.execute(
                "SELECT row FROM read_parquet(?) WHERE label = ? ORDER BY row",
                [str(source), int(child)],
            ).fetchall()
        return [row for (row,) in rows]

    def write_node_table(self, tree_id: str, path: str, name: str, frame: pd.DataFrame) -> None:
        write_parquet(self.node_dir(tree_id, path) / f"{name}.parquet", frame)

    def read_node_table(self, tree_id: str, path: str, name: str) -> pd.DataFrame:
        source = self.node_dir(tree_id, path) / f"{name}.parquet"
        if not source.is_file():
            raise StorageError(f"Node {path} of tree {tree_id} has no {name} table: {source}")
        return pd.read_parquet(source)

    def unexplained_nodes(self, tree_id: str) -> list[str]:
        """Split nodes whose SHAP drivers are not written yet (leaves need none)."""
        return [
            path
            for path, record in self.node_records(tree_id).items()
            if record["split_accepted"]
            and not (self.node_dir(tree_id, path) / "drivers.parquet").is_file()
        ]

    def node_png(self, tree_id: str, path: str, picture: str) -> Path:
        """Where a node's picture lives (``picture``: see ``EMBEDDING_PNG`` and friends)."""
        return self.node_dir(tree_id, path) / f"{picture}.png"

    def write_node_png(self, tree_id: str, path: str, picture: str, png: bytes) -> Path:
        target = self.node_png(tree_id, path, picture)
        with atomic_path(target) as temporary:
            temporary.write_bytes(png)
        return target

    def read_node_png(self, tree_id: str, path: str, picture: str) -> bytes | None:
        """A node's picture; None when it was not made (e.g. mean images of non-images)."""
        source = self.node_png(tree_id, path, picture)
        return source.read_bytes() if source.is_file() else None

    def models_dir(self, tree_id: str) -> Path:
        """One sub-directory per explained node, as ``predict`` reads them."""
        return self.tree_dir(tree_id) / "models"

    def node_record(self, tree_id: str, path: str) -> dict | None:
        source = self.node_dir(tree_id, path) / "node.json"
        return read_json(source) if source.is_file() else None

    def node_records(self, tree_id: str) -> dict[str, dict]:
        nodes_dir = self.tree_dir(tree_id) / "nodes"
        records = {}
        for record_file in sorted(nodes_dir.glob("*/node.json")):
            record = read_json(record_file)
            records[NodePath(record["path"])] = record
        return records

    # -- publishing ----------------------------------------------------------------------
    def publish(
        self,
        tree_id: str,
        assignments: pd.DataFrame,
        summary: dict,
        before_switch: Callable[[], Path] | None = None,
    ) -> Path:
        """Write the assignments, then ``before_switch`` (the report), refresh the DuckDB
        catalog, and make the tree current only when each of its files is there.

        Until the switch the manifest says ``building``; a write that fails (a full disk)
        leaves the previous tree current and this one marked failed, naming the file."""
        tree = self.tree_dir(tree_id)
        previous = self.current()
        manifest = {**self.manifest(tree_id), **summary, "status": "building"}
        manifest["completed_at"] = datetime.now(UTC).isoformat()
        switched_catalog = False
        try:
            target = self.write_table(tree_id, ASSIGNMENTS_TABLE, assignments)
            write_json(tree / "manifest.json", manifest)  # the report shows the summary
            written = [target, tree / "manifest.json"]
            if before_switch is not None:
                written.append(before_switch())
            switched_catalog = True
            self.refresh_catalog(tree_id)
            missing = [str(path) for path in written if not path.is_file()]
            if missing:
                raise StorageError(f"Tree {tree_id} is missing {missing}: not published")
            write_json(tree / "manifest.json", {**manifest, "status": "complete"})
            write_json(self.base_dir / "current.json", {"generation": tree_id})
        except (OSError, StorageError) as exc:
            reason = f"not published: {exc}"
            failed_at = datetime.now(UTC).isoformat()
            with contextlib.suppress(OSError, StorageError):  # best effort on a full disk
                failed = {**manifest, "status": "failed", "failure": reason}
                write_json(tree / "manifest.json", {**failed, "failed_at": failed_at})
            if switched_catalog and previous not in (None, tree_id):
                with contextlib.suppress(OSError, StorageError):
                    self.refresh_catalog(previous)  # the catalog shows the current tree
            raise
        return target

    def refresh_catalog(self, tree_id: str) -> None:
        """Copy the tree's assignments into the DuckDB catalog again (after a change)."""
        self._with_catalog(lambda connection: self._refresh_catalog(connection, tree_id))

    @property
    def catalog_path(self) -> Path:
        return self.base_dir / "catalog.duckdb"

    def _with_catalog(self, action: Callable[[duckdb.DuckDBPyConnection], None]) -> None:
        """Run ``action`` on a write connection, retrying while another process holds it."""
        self.base_dir.mkdir(parents=True, exist_ok=True)
        delay = 0.2
        for attempt in range(8):
            try:
                with duckdb.connect(str(self.catalog_path)) as connection:
                    action(connection)
                return
            except duckdb.Error as exc:
                if os_reason(exc) == "no space left on device":
                    raise StorageError(
                        f"Could not write {self.catalog_path}: no space left on device"
                    ) from exc
                if not isinstance(exc, duckdb.IOException):
                    raise
                if "lock" not in str(exc).lower() or attempt == 7:
                    raise StorageError(f"Could not write {self.catalog_path}: {exc}") from exc
                time.sleep(delay)
                delay *= 2

    def _refresh_catalog(self, connection: duckdb.DuckDBPyConnection, tree_id: str) -> None:
        tree = self.tree_dir(tree_id)
        table = f"assignments_{tree_id}"
        connection.execute(
            f'CREATE OR REPLACE TABLE "{table}" AS SELECT * FROM read_parquet('
            f"{sql_string(str(self.table_path(tree_id, ASSIGNMENTS_TABLE)))})"
        )
        features = sql_string(str(self.table_path(tree_id, FEATURES_TABLE)))
        views = {
            ASSIGNMENTS_TABLE: f'SELECT * FROM "{table}"',
            FEATURES_TABLE: f"SELECT * FROM read_parquet({features})",
            "node_embeddings": "SELECT * FROM read_parquet("
            f"{sql_string(str(tree / 'nodes' / '*' / 'embedding.parquet'))}, filename = true)",
            "node_labels": "SELECT * FROM read_parquet("
            f"{sql_string(str(tree / 'nodes' / '*' / 'labels.parquet'))}, filename = true)",
            "tree_nodes": "SELECT * FROM read_json_auto("
            f"{sql_string(str(tree / 'nodes' / '*' / 'node.json'))})",
        }
        for name, query in views.items():
            connection.execute(f'CREATE OR REPLACE VIEW "{name}" AS {query}')
        connection.execute(
            "CREATE TABLE IF NOT EXISTS trees (generation VARCHAR PRIMARY KEY, "
            "completed_at VARCHAR, data_fingerprint VARCHAR, settings VARCHAR)"
        )
        manifest = self.manifest(tree_id)
        connection.execute(
            "INSERT OR REPLACE INTO trees VALUES (?, ?, ?, ?)",
            [
                tree_id,
                manifest.get("completed_at"),
                manifest.get("data_fingerprint"),
                json.dumps(manifest.get("settings")),
            ],
        )
