"""What the report shows, loaded once from a tree's files: plain data, no HTML.

The templates only lay this out; every number and every decision (a child's outcome, a
profile's over-represented levels, a stability band) is computed here, once.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from recursive_clusters.core.acceptance import jaccard_band
from recursive_clusters.core.data import FeaturePreprocessor
from recursive_clusters.core.paths import ROOT, NodePath, leaf_sort_key
from recursive_clusters.core.profiles import ProfileColumn
from recursive_clusters.core.settings import Settings
from recursive_clusters.core.tree import ZOOMED_INTO
from recursive_clusters.io.store import (
    ASSIGNMENTS_TABLE,
    FEATURES_TABLE,
    IDS_TABLE,
    PIXELS_TABLE,
    PREPROCESSOR_JSON,
    PROFILE_TABLE,
    TreeStore,
)


def leaf_summary(assignments: pd.DataFrame) -> pd.DataFrame:
    """Rows and share of every leaf (noise groups included), in the tree's natural order."""
    counts = assignments["leaf_path"].value_counts()
    table = pd.DataFrame({"leaf_path": counts.index, "rows": counts.to_numpy()})
    table["share"] = (table["rows"] / len(assignments)).map("{:.1%}".format)
    return table.sort_values("leaf_path", key=lambda paths: paths.map(leaf_sort_key)).reset_index(
        drop=True
    )


@dataclass(frozen=True)
class Entry:
    """One line of the cluster tree: a clustered node, a leaf child or a split node's noise."""

    path: str
    depth: int
    rows: int
    parent_rows: int | None
    kind: str  # "split", "leaf" or "noise"
    outcome: str
    record: dict | None
    from_noise: int | None = None  # rows HDBSCAN called noise that this child was given
    parent: str | None = None
    child_index: int | None = None  # None for the root and for noise lines


@dataclass(frozen=True)
class Tree:
    """What every part of the report reads, loaded once."""

    tree_id: str
    manifest: dict
    settings: Settings
    records: dict[str, dict]
    entries: list[Entry]
    ids: pd.Series
    assignments: pd.DataFrame  # in the row order of ids/profile/features
    profile: list[ProfileColumn]
    n_features: int
    standardized: bool
    pixels: pd.DataFrame | None = None  # image data only: the pixel columns, in row order

    @property
    def n_rows(self) -> int:
        return len(self.ids)

    @property
    def leaf(self) -> pd.Series:  # each row's leaf path
        return self.assignments["leaf_path"]

    def children(self, entry: Entry) -> list[Entry]:
        return [e for e in self.entries if e.parent == entry.path]


def _unclustered_outcome(path: NodePath, parent: dict | None) -> str:
    """Why a node has no record of its own: recorded by its parent when the split was decided."""
    if parent is None:
        return "not clustered"
    outcome = parent.get("child_outcomes", {}).get(str(path.index), "leaf")
    return f"{outcome}, not clustered yet" if outcome == ZOOMED_INTO else outcome


def walk(records: dict[str, dict]) -> list[Entry]:
    """The tree depth first: each node, then its children in order, then its noise."""
    entries: list[Entry] = []

    def visit(path: NodePath, rows: int, parent: dict | None) -> None:
        record = records.get(path)
        parent_rows = parent["n_rows"] if parent else None
        place = {"parent": path.parent, "child_index": path.index} if parent else {}
        received = None
        if parent:
            by_child = parent.get("noise_assigned_by_child") or {}
            received = int(by_child.get(str(path.index), 0))
        if record is None:
            outcome = _unclustered_outcome(path, parent)
            entries.append(
                Entry(path, path.depth, rows, parent_rows, "leaf", outcome, None, received, **place)
            )
            return
        kind = "split" if record["split_accepted"] else "leaf"
        outcome = record["reason"] if kind == "split" else f"leaf: {record['reason']}"
        entries.append(
            Entry(path, path.depth, rows, parent_rows, kind, outcome, record, received, **place)
        )
        if kind == "leaf":
            return
        sizes = {int(k): int(v) for k, v in record["child_sizes"].items()}
        for child in sorted(sizes):
            visit(path.child(child), sizes[child], record)
        noise = record["n_rows"] - sum(sizes.values())
        entries.append(
            Entry(
                path.noise_leaf,
                path.depth + 1,
                noise,
                record["n_rows"],
                "noise",
                "noise: rows HDBSCAN placed in no child",
                None,
                parent=path,
            )
        )

    if ROOT in records:
        visit(NodePath(ROOT), records[ROOT]["n_rows"], None)
    return entries


def load_tree(store: TreeStore, tree_id: str) -> Tree:
    manifest = store.manifest(tree_id)
    settings = store.tree_settings(tree_id)
    records = store.node_records(tree_id)
    ids = store.read_table(tree_id, IDS_TABLE).iloc[:, 0]
    profile = store.read_table(tree_id, PROFILE_TABLE)
    return Tree(
        tree_id=tree_id,
        manifest=manifest,
        settings=settings,
        records=records,
        entries=walk(records),
        ids=ids,
        assignments=store.read_table(tree_id, ASSIGNMENTS_TABLE),
        profile=[ProfileColumn.of(str(c), profile[c]) for c in profile.columns]
        if len(profile) == len(ids)
        else [],
        n_features=store.table_shape(tree_id, FEATURES_TABLE)[1],
        standardized=store.has_text(tree_id, PREPROCESSOR_JSON)
        and FeaturePreprocessor.from_json(store.read_text(tree_id, PREPROCESSOR_JSON)).means
        is not None,
        pixels=store.read_table(tree_id, PIXELS_TABLE) if settings.input.image_shape else None,
    )


def stability(record: dict, child: int) -> tuple[float | None, str | None]:
    """The child's mean Jaccard under re-clustering and its band, when it was assessed."""
    scores = record.get("child_stability") or {}
    value = scores.get(str(child), scores.get(child)) if isinstance(scores, dict) else None
    if value is None:
        return None, None
    return float(value), jaccard_band(float(value))


def node_table(store: TreeStore, tree_id: str, path: str, name: str) -> pd.DataFrame | None:
    source = store.node_dir(tree_id, path) / f"{name}.parquet"
    return pd.read_parquet(source) if source.is_file() else None
