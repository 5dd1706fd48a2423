"""Build the report: a view model from the tree's files, laid out by Jinja2 templates.

Everything is inline (CSS, JavaScript, plotly.js once, every PNG as a data URI, the rows'
ids, leaves and map positions as compact JSON), so the file can be mailed or archived and
opened offline years later. Templates autoescape every string; JSON inside ``<script>`` has
``<``, ``>`` and ``&`` written as ``\\u`` escapes; the page's script builds hover texts and
search results as text, never as HTML: a column named ``<script>`` stays text everywhere.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from plotly.offline import get_plotlyjs

from recursive_clusters.core.paths import ROOT, NodePath, leaf_sort_key
from recursive_clusters.core.profiles import profile_rows
from recursive_clusters.io.atomic import atomic_path
from recursive_clusters.io.store import (
    CLASSIFIER_METRICS_TABLE,
    COMPARISON_JSON,
    DRIVERS_TABLE,
    EMBEDDING_PNG,
    MEAN_IMAGES_PNG,
    NAMES_JSON,
    REPORT_HTML,
    TreeStore,
    shap_pixels_png,
    shap_png,
)
from recursive_clusters.report.maps import (
    MAX_MAP_POINTS,
    mean_image_uri,
    node_map,
    overview_map,
    overview_png,
    png_uri,
    sample_rows,
)
from recursive_clusters.report.model import (
    Entry,
    Tree,
    leaf_summary,
    load_tree,
    node_table,
    stability,
)
from recursive_clusters.trees.names import user_names


def _script_json(value: object) -> Markup:
    """JSON safe inside a ``<script>`` element: nothing in it can close the element."""
    text = json.dumps(value, separators=(",", ":"), allow_nan=False, default=str)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text)


def _plotly_json(figure) -> Markup:
    # plotly's JSON escapes "<" and "/", so a figure cannot close its <script> early.
    return Markup(figure.to_json())


def _b64(values: np.ndarray) -> str:
    """A numeric array as base64 of its little-endian bytes (decoded by the page's script)."""
    little = np.ascontiguousarray(values, dtype=values.dtype.newbyteorder("<"))
    return base64.b64encode(little.tobytes()).decode("ascii")


def _count(value: int) -> str:
    return f"{int(value):,}"


def _share(part: float, whole: float | None) -> str:
    return f"{part / whole:.1%}" if whole else "–"


def _number(value: float | None) -> str:
    """Readable at any scale: thousands separators for large values, 4 digits otherwise."""
    if value is None or not np.isfinite(value):
        return "–"
    return f"{value:,.2f}" if abs(value) >= 1000 else f"{value:.4g}"


def _environment() -> Environment:
    environment = Environment(
        loader=PackageLoader("recursive_clusters.report", "templates"),
        autoescape=select_autoescape(["html", "j2"], default_for_string=True, default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(count=_count, share=_share, number=_number)
    return environment


def _static(name: str) -> Markup:
    return Markup(resources.files("recursive_clusters.report").joinpath("static", name).read_text())


# -- the view model -----------------------------------------------------------------------
def _document(store: TreeStore, tree: Tree, name: str) -> dict | None:
    """A JSON document of the tree; None for one a tree does not have (a first tree has no
    comparison; a tree grown before names existed has no names)."""
    if not store.has_text(tree.tree_id, name):
        return None
    return json.loads(store.read_text(tree.tree_id, name))


def _names(store: TreeStore, tree: Tree) -> dict[str, str]:
    """Names as published (``names.json``), under the user's current ``names.yaml``."""
    published = _document(store, tree, NAMES_JSON) or {}
    names = {path: entry["name"] for path, entry in published.items()}
    names.update(user_names(store, tree.tree_id))
    return names


def _header(tree: Tree) -> dict:
    manifest, settings = tree.manifest, tree.settings
    stamp_key = "completed_at" if manifest.get("completed_at") else "started_at"
    stamp = manifest.get(stamp_key)
    date = datetime.fromisoformat(stamp).strftime("%Y-%m-%d %H:%M UTC") if stamp else "–"
    leaves = sum(1 for entry in tree.entries if entry.kind == "leaf")
    noise_groups = sum(1 for entry in tree.entries if entry.kind == "noise" and entry.rows > 0)
    noise = float(tree.assignments["is_noise"].mean()) if tree.n_rows else 0.0
    emb, clu, rec = settings.embedding, settings.clustering, settings.recursion
    return {
        "facts": [
            ("Tree id", tree.tree_id, True),
            ("Data source", manifest.get("source", settings.input.path), True),
            ("Rows", _count(tree.n_rows), False),
            ("Data fingerprint", manifest.get("data_fingerprint", "–"), True),
            ("Completed" if stamp_key == "completed_at" else "Started", date, False),
            (
                "Nodes / leaves",
                f"{len(tree.records)} clustered nodes, {leaves} leaves, "
                f"{noise_groups} non-empty noise groups",
                False,
            ),
            ("Noise", f"{noise:.1%} of rows", False),
        ],
        "settings": [
            (
                "Features",
                f"{tree.n_features} columns" + (", standardised" if tree.standardized else ""),
            ),
            ("Id column", settings.input.id_column or "(row number)"),
            ("Profile columns", ", ".join(c.name for c in tree.profile) or "none"),
            (
                "UMAP",
                f"n_neighbors={emb.n_neighbors}, min_dist={emb.min_dist:g}, metric={emb.metric}",
            ),
            (
                "HDBSCAN",
                f"min_cluster_size={clu.min_cluster_size:g} "
                f"(floor {clu.min_cluster_size_floor}), selection={clu.cluster_selection_method}",
            ),
            (
                "Recursion",
                f"max_depth={rec.max_depth}, min_node_size={rec.min_node_size}, "
                f"min_child_fraction={rec.min_child_fraction:g}",
            ),
            (
                "Explanation",
                f"test_size={settings.explanation.test_size:g}, "
                f"stability_runs={settings.acceptance.stability_runs}",
            ),
            ("Random state", str(settings.random_state)),
        ],  # fmt: skip
        "settings_json": json.dumps(manifest.get("settings", {}), indent=2, sort_keys=True),
    }


def _origin(store: TreeStore, tree: Tree) -> dict:
    """Why this tree was grown, on which rows, and how it maps to the tree it replaced."""
    comparison = _document(store, tree, COMPARISON_JSON)
    if comparison is not None:
        changes = comparison.get("changes", [])
        comparison["changed"] = [c for c in changes if c["change"] != "kept"]
        comparison["kept"] = len(changes) - len(comparison["changed"])
    return {
        "trigger": tree.manifest.get("trigger", "a launch"),
        "n_batches": len(tree.manifest.get("batches_included") or []),
        "comparison": comparison,
    }


def _thumbnails(tree: Tree) -> dict[str, str]:
    """Each node's and leaf's mean image, for image data (noise groups have none)."""
    if tree.pixels is None:
        return {}
    pixels = tree.pixels.to_numpy(dtype=np.float32)
    image_shape = tuple(tree.settings.input.image_shape)
    leaf = tree.leaf.to_numpy(dtype=str)
    thumbnails = {}
    for entry in tree.entries:
        if entry.kind == "noise":
            continue
        inside = (leaf == entry.path) | np.char.startswith(leaf, f"{entry.path}.")
        if inside.any():
            thumbnails[entry.path] = mean_image_uri(pixels[inside], image_shape)
    return thumbnails


def _tree_rows(tree: Tree, names: dict[str, str]) -> list[dict]:
    rows = []
    thumbnails = _thumbnails(tree)
    for entry in tree.entries:
        parent_record = tree.records.get(entry.parent) if entry.parent else None
        value, band = (None, None)
        if parent_record and entry.child_index is not None:
            value, band = stability(parent_record, entry.child_index)
        rows.append(
            {
                "entry": entry,
                "name": names.get(entry.path, ""),
                "thumbnail": thumbnails.get(entry.path),
                "target": f"node-{entry.path}" if entry.record else f"card-{entry.path}",
                "noise_share": entry.record["noise_fraction"] if entry.record else None,
                "stability": value,
                "band": band,
            }
        )
    return rows


def _cards(store: TreeStore, tree: Tree, entry: Entry, names: dict[str, str]) -> dict:
    """The children of a split node: an overview line each and a card each."""
    record = entry.record

    def picture(name: str) -> str | None:
        return png_uri(store.read_node_png(tree.tree_id, entry.path, name))

    metrics = node_table(store, tree.tree_id, entry.path, CLASSIFIER_METRICS_TABLE)
    drivers = node_table(store, tree.tree_id, entry.path, DRIVERS_TABLE)
    labels = store.read_labels(tree.tree_id, entry.path)
    label_of_row = pd.Series(labels["label"].to_numpy(), index=labels["row"].to_numpy())
    children = []
    for child_entry in tree.children(entry):
        child = child_entry.child_index
        scores = ranked = None
        if child is not None and metrics is not None and (metrics["child"] == child).any():
            scores = metrics[metrics["child"] == child].iloc[0].to_dict()
        if child is not None and drivers is not None:
            ranked = drivers[drivers["child"] == child].sort_values("rank").to_dict("records")
        profile = []
        if child is not None:
            inside = np.zeros(tree.n_rows, dtype=bool)
            inside[label_of_row.index[label_of_row.to_numpy() == child]] = True
            profile = profile_rows(tree.profile, inside)
        value, band = stability(record, child) if child is not None else (None, None)
        children.append(
            {
                "entry": child_entry,
                "name": names.get(child_entry.path, ""),
                "zoomed": child_entry.path in tree.records,
                "scores": scores,
                "drivers": ranked or [],
                "stability": value,
                "band": band,
                "shap_png": picture(shap_png(child)) if child is not None else None,
                "pixels_png": picture(shap_pixels_png(child)) if child is not None else None,
                "profile": profile,
            }
        )
    return {
        "children": children,
        "has_metrics": metrics is not None,
        "mean_images_png": picture(MEAN_IMAGES_PNG),
    }


def _node(store: TreeStore, tree: Tree, entry: Entry, names: dict[str, str]) -> dict:
    """A clustered node: its facts, its maps and, if it split, its children."""
    record = entry.record
    points = store.read_embedding(tree.tree_id, entry.path).merge(
        store.read_labels(tree.tree_id, entry.path)[["row", "label"]], on="row"
    )
    total = len(points)
    points = points.iloc[sample_rows(total, MAX_MAP_POINTS)]
    figure = node_map(entry.path, points)
    acceptance = record.get("acceptance") or {}
    node = {
        "entry": entry,
        "name": names.get(entry.path, ""),
        "facts": [
            f"level {record['level']}",
            f"{_count(record['n_rows'])} rows",
            f"{_share(record['n_rows'], tree.n_rows)} of all",
            f"noise {record['noise_fraction']:.1%}",
            f"min cluster size {record.get('min_cluster_size', '–')}",
        ],
        "acceptance": [
            (name, _number(value) if isinstance(value, int | float) else str(value))
            for name, value in (acceptance.items() if isinstance(acceptance, dict) else [])
        ],
        "embedding_png": png_uri(store.read_node_png(tree.tree_id, entry.path, EMBEDDING_PNG)),
        "map_spec": _plotly_json(figure),
        "map_points": len(points),
        "map_total": total,
    }
    if entry.kind == "split":
        node.update(_cards(store, tree, entry, names))
    return node


def _rows_data(store: TreeStore, tree: Tree, names: dict[str, str]) -> dict:
    """What search, highlighting and downloads read, per row: id, leaf, confidence, noise
    flag, and where each level's node placed it (NaN below the row's leaf)."""
    leaves = sorted(tree.leaf.unique(), key=leaf_sort_key)
    index = {leaf: i for i, leaf in enumerate(leaves)}
    levels = max((NodePath(p).level for p in tree.records), default=1)
    x = np.full((levels, tree.n_rows), np.nan, dtype=np.float32)
    y = np.full((levels, tree.n_rows), np.nan, dtype=np.float32)
    for path in tree.records:
        embedding = store.read_embedding(tree.tree_id, path)
        level = NodePath(path).depth
        x[level, embedding["row"].to_numpy()] = embedding["x"].to_numpy(np.float32)
        y[level, embedding["row"].to_numpy()] = embedding["y"].to_numpy(np.float32)
    return {
        "idColumn": tree.settings.input.id_column or "row",
        "ids": tree.ids.astype(str).tolist(),
        "leaves": leaves,
        "names": [names.get(leaf, "") for leaf in leaves],
        "leaf": _b64(tree.leaf.map(index).to_numpy(np.int32)),
        "confidence": _b64(tree.assignments["confidence"].to_numpy(np.float32)),
        "noise": _b64(tree.assignments["is_noise"].to_numpy(np.uint8)),
        "x": [_b64(level) for level in x],
        "y": [_b64(level) for level in y],
    }


def _overview(store: TreeStore, tree: Tree, names: dict[str, str]) -> dict | None:
    if ROOT not in tree.records:
        return None
    root = store.read_embedding(tree.tree_id, ROOT)
    leaves = sorted(tree.leaf.unique(), key=leaf_sort_key)
    figure, points = overview_map(root, tree.assignments, leaves, names)
    return {
        "spec": _plotly_json(figure),
        "points": points,
        "png": overview_png(root, tree.assignments, leaves),
    }


def render_report(store: TreeStore, tree_id: str) -> str:
    """The whole report of one tree as a single HTML document."""
    tree = load_tree(store, tree_id)
    names = _names(store, tree)
    template = _environment().get_template("report.html.j2")
    return template.render(
        tree_id=tree_id,
        header=_header(tree),
        origin=_origin(store, tree),
        overview=_overview(store, tree, names),
        tree_rows=_tree_rows(tree, names),
        nodes=[_node(store, tree, e, names) for e in tree.entries if e.record is not None],
        n_rows=tree.n_rows,
        rows_data=_script_json(_rows_data(store, tree, names)),
        style=_static("report.css"),
        script=_static("report.js"),
        plotly_js=Markup(get_plotlyjs()),
    )


def write_report(store: TreeStore, tree_id: str) -> Path:
    """Render the report next to the tree's files, replacing any older one atomically."""
    target = store.tree_dir(tree_id) / REPORT_HTML
    document = render_report(store, tree_id)
    with atomic_path(target) as temporary:
        temporary.write_text(document, encoding="utf-8")
    return target


__all__ = ["leaf_summary", "render_report", "write_report"]
