"""One self-contained HTML report of a finished tree, for people who never open Dagster.

Everything is inline (CSS, plotly.js once, every PNG as a data URI), so the file can be mailed
or archived and opened offline years later. Every string that came from the user's data or
settings (column names, values, ids, paths) goes through ``html.escape``: a report is opened
in a browser, and a column named ``<script>`` must stay text.

The interactive maps are WebGL (``scattergl``), and browsers keep only about 16 WebGL
contexts alive per page; so each map's figure is stored as JSON and drawn only while it is
near the viewport, then purged, instead of drawing every map on load.
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from matplotlib.colors import to_hex
from plotly.offline import get_plotlyjs

from recursive_clusters.core.acceptance import jaccard_band
from recursive_clusters.core.atomic import atomic_path
from recursive_clusters.core.clustering import NOISE
from recursive_clusters.core.data import FeaturePreprocessor
from recursive_clusters.core.plots import _child_colour
from recursive_clusters.core.settings import Settings, parse_settings
from recursive_clusters.core.tree import NOISE_NAME, ROOT
from recursive_clusters.storage import TreeStore

REPORT_NAME = "report.html"
# Points drawn per interactive map: enough to see every cluster, small enough to stay light.
MAX_MAP_POINTS = 5000
# An integer column with at most this many distinct values is profiled as categories.
MAX_CATEGORY_LEVELS = 20
# Over-represented levels shown per categorical profile column.
TOP_LEVELS = 3
NOISE_COLOUR = "#c8c8c8"


def _e(value: object) -> str:
    """HTML-escape anything that may come from the user's data or settings."""
    return html.escape(str(value), quote=True)


def _count(value: int) -> str:
    return f"{int(value):,}"


def _share(part: float, whole: float) -> str:
    return f"{part / whole:.1%}" if whole else "–"


def _number(value: float) -> str:
    """Readable at any scale: thousands separators for large values, 4 digits otherwise."""
    if value is None or not np.isfinite(value):
        return "–"
    return f"{value:,.2f}" if abs(value) >= 1000 else f"{value:.4g}"


def _path_sort_key(path: str) -> tuple[tuple[int, int], ...]:
    """Natural order of paths: root.2 before root.10, noise after its siblings."""
    return tuple((1, 0) if part == NOISE_NAME else (0, int(part)) for part in path.split(".")[1:])


def leaf_summary(assignments: pd.DataFrame) -> pd.DataFrame:
    """Rows and share of every leaf (noise groups included), in the tree's natural order."""
    counts = assignments["leaf_path"].value_counts()
    table = pd.DataFrame({"leaf_path": counts.index, "rows": counts.to_numpy()})
    table["share"] = (table["rows"] / len(assignments)).map("{:.1%}".format)
    return table.sort_values("leaf_path", key=lambda paths: paths.map(_path_sort_key)).reset_index(
        drop=True
    )


def _anchor(path: str) -> str:
    return f"node-{path}"


def _card_anchor(path: str) -> str:
    return f"card-{path}"


def _is_categorical(values: pd.Series) -> bool:
    """Text, booleans and codes (few distinct whole numbers) are categories, not quantities."""
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return True
    present = values.dropna().to_numpy(dtype=float)
    whole = bool(np.all(np.mod(present, 1) == 0))
    return whole and len(np.unique(present)) <= MAX_CATEGORY_LEVELS


@dataclass(frozen=True)
class _ProfileColumn:
    """One profile column, prepared once: numbers, or levels as text with their shares."""

    name: str
    values: pd.Series  # numbers, or level names ("(missing)" for missing values)
    overall: pd.Series | float  # level shares, or the overall median

    @classmethod
    def of(cls, name: str, values: pd.Series) -> _ProfileColumn:
        if not _is_categorical(values):
            return cls(name, values, float(values.median()))
        levels = values.astype(str).where(values.notna(), "(missing)")
        return cls(name, levels, levels.value_counts(normalize=True))


@dataclass(frozen=True)
class _Entry:
    """One line of the cluster tree: a clustered node, a leaf child or a split node's noise."""

    path: str
    depth: int
    rows: int
    parent_rows: int | None
    kind: str  # "split", "leaf" or "noise"
    outcome: str
    record: dict | None
    from_noise: int | None = None  # rows HDBSCAN called noise that this child was given


@dataclass(frozen=True)
class _Tree:
    """What every part of the report reads, loaded once."""

    generation: str
    manifest: dict
    settings: Settings
    records: dict[str, dict]
    entries: list[_Entry]
    ids: pd.Series
    leaf: pd.Series  # leaf path per row, in the row order of ids/profile/features
    profile: list[_ProfileColumn]
    n_features: int
    standardized: bool

    @property
    def n_rows(self) -> int:
        return len(self.ids)


def _child_outcome(child: str, size: int, parent: dict, settings: Settings) -> str:
    """Why a child with no record of its own stayed a leaf."""
    recursion = settings.recursion
    if child in parent.get("zoom_into", []):
        return "zoomed into, not clustered yet"
    if parent["level"] >= recursion.max_depth:
        return f"leaf: depth limit ({recursion.max_depth}) reached"
    if size < recursion.min_node_size:
        return f"leaf: fewer than min_node_size={recursion.min_node_size} rows"
    return f"leaf: under min_child_fraction={recursion.min_child_fraction:g} of its parent"


def _walk(records: dict[str, dict], settings: Settings) -> list[_Entry]:
    """The tree depth first: each node, then its children in order, then its noise."""
    entries: list[_Entry] = []

    def visit(path: str, rows: int, parent: dict | None, depth: int) -> None:
        record = records.get(path)
        parent_rows = parent["n_rows"] if parent else None
        received = None
        if parent:
            by_child = parent.get("noise_assigned_by_child") or {}
            received = int(by_child.get(path.rsplit(".", 1)[1], 0))
        if record is None:
            outcome = _child_outcome(path, rows, parent, settings) if parent else "not clustered"
            entries.append(_Entry(path, depth, rows, parent_rows, "leaf", outcome, None, received))
            return
        kind = "split" if record["split_accepted"] else "leaf"
        outcome = record["reason"] if kind == "split" else f"leaf: {record['reason']}"
        entries.append(_Entry(path, depth, rows, parent_rows, kind, outcome, record, received))
        if kind == "leaf":
            return
        sizes = {int(k): int(v) for k, v in record["child_sizes"].items()}
        for child in sorted(sizes):
            visit(f"{path}.{child}", sizes[child], record, depth + 1)
        noise = record["n_rows"] - sum(sizes.values())
        entries.append(
            _Entry(
                f"{path}.{NOISE_NAME}",
                depth + 1,
                noise,
                record["n_rows"],
                "noise",
                "noise: rows HDBSCAN placed in no child",
                None,
            )
        )

    if ROOT in records:
        visit(ROOT, records[ROOT]["n_rows"], None, 0)
    return entries


def _load(store: TreeStore, generation: str) -> _Tree:
    manifest = store.manifest(generation)
    settings = parse_settings(manifest["settings"], source=f"manifest of tree {generation}")
    records = store.node_records(generation)
    ids = store.read_table(generation, "ids").iloc[:, 0]
    assignments = store.read_table(generation, "assignments")
    profile = store.read_table(generation, "profile")
    features = store.read_table(generation, "features")
    return _Tree(
        generation=generation,
        manifest=manifest,
        settings=settings,
        records=records,
        entries=_walk(records, settings),
        ids=ids,
        leaf=assignments["leaf_path"],
        profile=[_ProfileColumn.of(str(c), profile[c]) for c in profile.columns]
        if len(profile) == len(ids)
        else [],
        n_features=features.shape[1],
        standardized=_standardized(store, generation),
    )


def _standardized(store: TreeStore, generation: str) -> bool:
    """Whether the tree's features were scaled (``input.standardize`` may have said auto)."""
    source = store.tree_dir(generation) / "preprocessor.json"
    return source.is_file() and FeaturePreprocessor.from_json(source.read_text()).means is not None


# -- images and maps ---------------------------------------------------------------------------
def _image(path: Path, alt: str, css_class: str = "plot") -> str:
    """A PNG as a data URI; nothing when the plot was not made (e.g. explanation failed)."""
    if not path.is_file():
        return ""
    encoded = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img class="{css_class}" alt="{_e(alt)}" src="data:image/png;base64,{encoded}">'


def _map_figure(tree: _Tree, path: str, points: pd.DataFrame) -> go.Figure:
    """The node's embedding coloured by child, noise in grey behind, as in the PNG."""
    children = sorted(int(k) for k in points["label"].unique() if k != NOISE)
    figure = go.Figure()
    groups = [(NOISE, f"{NOISE_NAME}", NOISE_COLOUR)] + [
        (k, f"{path}.{k}", to_hex(_child_colour(k, len(children)))) for k in children
    ]
    for label, name, colour in groups:
        group = points[points["label"] == label]
        if group.empty:
            continue
        hover = [
            f"id: {_e(row_id)}<br>leaf: {_e(leaf)}"
            for row_id, leaf in zip(
                tree.ids.to_numpy()[group["row"]], tree.leaf.to_numpy()[group["row"]], strict=True
            )
        ]
        figure.add_trace(
            go.Scattergl(
                x=group["x"].to_numpy(dtype=np.float32),
                y=group["y"].to_numpy(dtype=np.float32),
                mode="markers",
                name=name,
                marker={"size": 4, "color": colour},
                text=hover,
                hoverinfo="text+name",
            )
        )
    axis = {"showticklabels": False, "showgrid": False, "zeroline": False}
    figure.update_layout(
        template="none",
        height=380,
        margin={"l": 10, "r": 10, "t": 32, "b": 10},
        plot_bgcolor="white",
        xaxis=axis,
        yaxis=axis,
        legend={"itemsizing": "constant", "font": {"size": 11}},
    )
    return figure


def _interactive_map(store: TreeStore, tree: _Tree, path: str, labels: pd.DataFrame) -> str:
    """A placeholder div and the figure's JSON; the loader script draws it when visible."""
    points = store.read_embedding(tree.generation, path).merge(labels[["row", "label"]], on="row")
    total = len(points)
    if total > MAX_MAP_POINTS:
        keep = np.random.default_rng(0).choice(total, size=MAX_MAP_POINTS, replace=False)
        points = points.iloc[np.sort(keep)]
    # plotly's JSON escapes "<" and "/", so the figure cannot close its <script> early.
    spec = _map_figure(tree, path, points).to_json()
    shown = (
        f"all {_count(total)} rows"
        if len(points) == total
        else (f"a random {_count(len(points))} of {_count(total)} rows")
    )
    return (
        f'<div class="rc-map" data-spec="spec-{_e(path)}"></div>'
        f'<script type="application/json" id="spec-{_e(path)}">{spec}</script>'
        f"<figcaption>Interactive map ({shown}): hover a point for its id and leaf, "
        "drag to zoom, double-click to reset, click a legend entry to hide it.</figcaption>"
    )


# -- tables ------------------------------------------------------------------------------------
def _table(header: list[str], rows: list[list[str]], css_class: str = "") -> str:
    """Cells must already be escaped; headers are ours."""
    head = "".join(f"<th>{cell}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table class="{css_class}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _profile(columns: list[_ProfileColumn], inside: np.ndarray) -> str:
    """Each profile column in the cluster against the whole population."""
    rows: list[list[str]] = []
    for column in columns:
        name = f"<code>{_e(column.name)}</code>"
        if not isinstance(column.overall, pd.Series):
            here = float(column.values[inside].median())
            difference = f"{here - column.overall:+.4g}" if np.isfinite(here) else "–"
            rows.append([name, "median", _number(here), _number(column.overall), difference])
            continue
        here = column.values[inside].value_counts(normalize=True)
        excess = here.sub(column.overall, fill_value=0.0)
        excess = excess.sort_values(ascending=False, kind="stable")
        levels = [level for level in excess.index[:TOP_LEVELS] if excess[level] > 0]
        for position, level in enumerate(levels or list(here.index[:1])):
            share, overall = here.get(level, 0.0), column.overall[level]
            rows.append(
                [
                    name if position == 0 else "",
                    f"<code>{_e(level)}</code>",
                    f"{share:.1%}",
                    f"{overall:.1%}",
                    f"lift ×{share / overall:.2f}",
                ]
            )
    if not rows:
        return ""
    return "<h5>Profile vs population</h5>" + _table(
        ["Column", "Statistic / level", "In cluster", "Overall", "Difference"], rows, "profile"
    )


def _stability(record: dict, child: int) -> tuple[float | None, str]:
    """The child's mean Jaccard under re-clustering and its band, when it was assessed."""
    scores = record.get("child_stability") or {}
    value = scores.get(str(child), scores.get(child)) if isinstance(scores, dict) else None
    if value is None:
        return None, '<span class="muted">not assessed</span>'
    band = jaccard_band(float(value))
    return float(value), f'<span class="band {band}">{band} {float(value):.2f}</span>'


def _node_table(store: TreeStore, generation: str, path: str, name: str) -> pd.DataFrame | None:
    source = store.node_dir(generation, path) / f"{name}.parquet"
    return pd.read_parquet(source) if source.is_file() else None


# -- sections ----------------------------------------------------------------------------------
def _header(tree: _Tree) -> str:
    manifest, settings = tree.manifest, tree.settings
    stamp_key = "completed_at" if manifest.get("completed_at") else "started_at"
    stamp = manifest.get(stamp_key)
    date = datetime.fromisoformat(stamp).strftime("%Y-%m-%d %H:%M UTC") if stamp else "–"
    leaves = sum(1 for entry in tree.entries if entry.kind == "leaf")
    noise_groups = sum(1 for entry in tree.entries if entry.kind == "noise" and entry.rows > 0)
    noise = float(tree.leaf.str.endswith(f".{NOISE_NAME}").mean()) if tree.n_rows else 0.0
    facts = {
        "Tree id": f"<code>{_e(tree.generation)}</code>",
        "Data source": f"<code>{_e(manifest.get('source', settings.input.path))}</code>",
        "Rows": _count(tree.n_rows),
        "Data fingerprint": f"<code>{_e(manifest.get('data_fingerprint', '–'))}</code>",
        "Completed" if stamp_key == "completed_at" else "Started": _e(date),
        "Nodes / leaves": f"{len(tree.records)} clustered nodes, {leaves} leaves, "
        f"{noise_groups} non-empty noise groups",
        "Noise": f"{noise:.1%} of rows",
    }
    emb, clu, rec = settings.embedding, settings.clustering, settings.recursion
    profile_columns = ", ".join(f"<code>{_e(c.name)}</code>" for c in tree.profile) or "none"
    key_settings = {
        "Features": f"{tree.n_features} columns" + (", standardised" if tree.standardized else ""),
        "Id column": f"<code>{_e(settings.input.id_column or '(row number)')}</code>",
        "Profile columns": profile_columns,
        "UMAP": f"n_neighbors={emb.n_neighbors}, min_dist={emb.min_dist:g}, "
        f"metric={_e(emb.metric)}",
        "HDBSCAN": f"min_cluster_size={clu.min_cluster_size:g} "
        f"(floor {clu.min_cluster_size_floor}), selection={clu.cluster_selection_method}",
        "Recursion": f"max_depth={rec.max_depth}, min_node_size={rec.min_node_size}, "
        f"min_child_fraction={rec.min_child_fraction:g}",
        "Explanation": f"test_size={settings.explanation.test_size:g}, "
        f"stability_runs={settings.acceptance.stability_runs}",
        "Random state": str(settings.random_state),
    }

    def listing(items: dict[str, str]) -> str:
        return "<dl>" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in items.items()) + "</dl>"

    full = json.dumps(manifest.get("settings", {}), indent=2, sort_keys=True)
    return (
        f"<header><h1>Cluster tree report</h1>"
        f'<div class="facts">{listing(facts)}{listing(key_settings)}</div>'
        f"<details><summary>All settings</summary><pre>{_e(full)}</pre></details></header>"
    )


def _guide() -> str:
    return """<section class="guide"><h2>How to read this</h2><ul>
<li><b>Node</b>: a set of rows embedded in 2-D (UMAP) and clustered (HDBSCAN) on its own. The
root holds every row. The clusters found in a node are its <b>children</b>, numbered from the
largest; <code>root.3.1</code> is child 1 of child 3 of the root. A child big enough is
<i>zoomed into</i>: it is embedded and clustered again as a node of the next level.</li>
<li><b>Leaf</b>: where a row ends. A child that was not zoomed into (too small, or the depth
limit), or a node whose clustering found no split (no cluster or a single one).</li>
<li><b>Noise</b>: rows of a split node that HDBSCAN put in no child (sparse or in-between
points). By default a noise row close to a cluster joins the child most of its 10 nearest
clustered neighbours are in (<i>Rows from noise</i> counts them per child, so a child that
swallows its neighbours' edges shows; <code>noise_assigned</code> and a <code>confidence</code>
flag them in the assignments); rows far from every cluster end at
<code>&lt;node&gt;.noise</code> and are not explained further.</li>
<li><b>Stability</b>: each child's mean Jaccard similarity with its best match when the node
is re-clustered on subsamples with new seeds. Bands (Hennig): below 0.6
<span class="band dissolved">dissolved</span> (an artefact of one run), 0.6–0.75
<span class="band weak">weak</span>, 0.75–0.85 <span class="band patterns">patterns</span>,
above 0.85 <span class="band stable">stable</span>.</li>
<li><b>ROC AUC, precision, recall, F1</b>: an XGBoost model trained on the original features
to tell the child from its siblings, scored on held-out rows. AUC 1.0 means the features
separate the child perfectly, 0.5 no better than chance. Precision, recall and F1 are at a
0.5 probability threshold.</li>
<li><b>SHAP drivers</b>: the features that model relies on most (mean |SHAP|). "higher" means
high values of the feature push a row toward the child, "lower" low values. They describe
what separates the clusters, not causes. The SHAP plot shows one dot per explained row.</li>
<li><b>Profile</b>: columns not used for clustering, compared with the whole population:
numeric columns by their median, categories by the levels most over-represented in the
cluster (lift = share in cluster ÷ share overall).</li>
<li>Shares: <i>% of all</i> is of every row of the table, <i>% of parent</i> of the node the
row group was found in.</li></ul></section>"""


def _tree_section(tree: _Tree) -> str:
    """Every node, leaf and noise group, indented by depth, linked to its details."""
    rows = []
    for entry in tree.entries:
        target = _anchor(entry.path) if entry.record else _card_anchor(entry.path)
        noise_share = f"{entry.record['noise_fraction']:.1%}" if entry.record else "–"
        link = f'<a href="#{_e(target)}"><code>{_e(entry.path)}</code></a>'
        if entry.kind == "noise":
            link = f"<code>{_e(entry.path)}</code>"
        rows.append(
            f'<tr class="{entry.kind}" data-path="{_e(entry.path)}" data-rows="{entry.rows}">'
            f'<td style="padding-left:{0.4 + 1.5 * entry.depth:.1f}em">{link}</td>'
            f"<td>{_count(entry.rows)}</td><td>{_share(entry.rows, tree.n_rows)}</td>"
            f"<td>{_share(entry.rows, entry.parent_rows) if entry.parent_rows else '–'}</td>"
            f"<td>{noise_share}</td>"
            f"<td>{'–' if entry.from_noise is None else _count(entry.from_noise)}</td>"
            f'<td><span class="kind {entry.kind}">{entry.kind}</span> {_e(entry.outcome)}</td>'
            "</tr>"
        )
    header = "".join(
        f"<th>{h}</th>"
        for h in [
            *("Node", "Rows", "% of all", "% of parent", "Noise share"),
            *("Rows from noise", "Outcome"),
        ]
    )
    return (
        '<section id="tree"><h2>The cluster tree</h2>'
        f'<table class="tree"><thead><tr>{header}</tr></thead><tbody>{"".join(rows)}</tbody>'
        "</table></section>"
    )


def _origin_section(store: TreeStore, generation: str) -> str:
    """Why this tree was grown (a launch, the schedule, drift in batches), on which rows, and
    how it maps to the tree it replaced (written when it was published)."""
    manifest = store.manifest(generation)
    batches = manifest.get("batches_included") or []
    origin = (
        f"<p>Started by: {_e(manifest.get('trigger', 'a launch'))}. Rows: the input table"
        + (f" plus {len(batches)} incoming batches" if batches else "")
        + ".</p>"
    )
    source = store.tree_dir(generation) / "comparison.json"
    if not source.is_file():
        return f'<section id="origin"><h2>Why this tree</h2>{origin}</section>'
    comparison = json.loads(source.read_text())
    ari = comparison.get("ari")
    changed = [c for c in comparison.get("changes", []) if c["change"] != "kept"]
    kept = len(comparison.get("changes", [])) - len(changed)
    rows = [[_e(c["change"]), _e(c["previous"]), _e(c["current"])] for c in changed]
    table = _table(["Change", "Previous leaves", "Current leaves"], rows) if rows else ""
    return (
        '<section id="origin"><h2>Why this tree, compared with the previous one</h2>'
        f"{origin}<p>Previous tree <code>{_e(comparison.get('previous'))}</code>; "
        f"{_count(comparison.get('common_rows', 0))} rows in both; ARI between the leaf "
        f"assignments {'–' if ari is None else f'{ari:.3f}'}; {kept} leaves kept, "
        f"{len(changed)} changed (split, merged, vanished or appeared).</p>{table}</section>"
    )


def _child_card(
    tree: _Tree,
    entry: _Entry,
    record: dict,
    node_dir: Path,
    metrics: pd.DataFrame | None,
    drivers: pd.DataFrame | None,
    inside: np.ndarray,
) -> str:
    """Everything known about one child: size, stability, separability, drivers, profile."""
    child = int(entry.path.rsplit(".", 1)[1])
    _, band = _stability(record, child)
    where = (
        f'zoomed into: <a href="#{_e(_anchor(entry.path))}">its own section</a>'
        if entry.path in tree.records
        else _e(entry.outcome)
    )
    parts = [
        f'<article class="card" id="{_e(_card_anchor(entry.path))}">'
        f"<h4><code>{_e(entry.path)}</code> {band}</h4>"
        f"<p>{_count(entry.rows)} rows · {_share(entry.rows, record['n_rows'])} of node · "
        f"{_share(entry.rows, tree.n_rows)} of all · {where}</p>"
    ]
    quality = None if metrics is None else metrics[metrics["child"] == child]
    if quality is not None and not quality.empty:
        scores = quality.iloc[0]
        parts.append(
            _table(
                ["ROC AUC", "Precision", "Recall", "F1", "Test rows"],
                [
                    [_number(scores[name]) for name in ("roc_auc", "precision", "recall", "f1")]
                    + [_count(scores["n_test"])]
                ],
                "quality",
            )
        )
    ranked = None if drivers is None else drivers[drivers["child"] == child]
    if ranked is not None and not ranked.empty:
        items = "".join(
            f'<li><code>{_e(row.feature)}</code> <span class="dir {row.direction}">'
            f"{'▲' if row.direction == 'higher' else '▼'} {_e(row.direction)}</span> "
            f'<span class="muted">{row.mean_abs_shap:.3g}</span></li>'
            for row in ranked.sort_values("rank").itertuples()
        )
        parts.append(f"<h5>Top SHAP drivers</h5><ol class=drivers>{items}</ol>")
    images = _image(node_dir / f"shap_child_{child}.png", f"SHAP values of {entry.path}")
    images += _image(node_dir / f"shap_pixels_{child}.png", f"SHAP pixel map of {entry.path}")
    if images:
        parts.append(f'<div class="images">{images}</div>')
    parts.append(_profile(tree.profile, inside))
    parts.append("</article>")
    return "".join(parts)


def _children_overview(
    entries: list[_Entry],
    record: dict,
    metrics: pd.DataFrame | None,
    drivers: pd.DataFrame | None,
    n_rows: int,
) -> str:
    """One line per child and one for the noise, to compare siblings at a glance."""
    rows = []
    for entry in entries:
        if entry.kind == "noise":
            rows.append(
                [f"<code>{_e(entry.path)}</code>", _count(entry.rows)]
                + [_share(entry.rows, record["n_rows"]), _share(entry.rows, n_rows)]
                + ['<span class="muted">noise: no child</span>', "", "", ""]
            )
            continue
        child = int(entry.path.rsplit(".", 1)[1])
        auc = f1 = "–"
        if metrics is not None and (metrics["child"] == child).any():
            scores = metrics[metrics["child"] == child].iloc[0]
            auc, f1 = _number(scores["roc_auc"]), _number(scores["f1"])
        top = ""
        if drivers is not None:
            ranked = drivers[drivers["child"] == child].sort_values("rank").head(3)
            top = ", ".join(
                f"<code>{_e(row.feature)}</code>{'▲' if row.direction == 'higher' else '▼'}"
                for row in ranked.itertuples()
            )
        link = f'<a href="#{_e(_card_anchor(entry.path))}"><code>{_e(entry.path)}</code></a>'
        rows.append(
            [link, _count(entry.rows), _share(entry.rows, record["n_rows"])]
            + [_share(entry.rows, n_rows), _stability(record, child)[1], auc, f1, top]
        )
    return _table(
        ["Child", "Rows", "% of node", "% of all", "Stability", "ROC AUC", "F1", "Top drivers"],
        rows,
        "children",
    )


def _node_section(store: TreeStore, tree: _Tree, entry: _Entry) -> str:
    """A clustered node: its maps, then (if it split) its children one by one."""
    record = entry.record
    assert record is not None
    path = entry.path
    node_dir = store.node_dir(tree.generation, path)
    labels = store.read_labels(tree.generation, path)
    facts = [
        f"level {record['level']}",
        f"{_count(record['n_rows'])} rows",
        f"{_share(record['n_rows'], tree.n_rows)} of all",
        f"noise {record['noise_fraction']:.1%}",
        f"min cluster size {record.get('min_cluster_size', '–')}",
    ]
    acceptance = record.get("acceptance") or {}
    if isinstance(acceptance, dict) and acceptance:
        scores = ", ".join(
            f"{_e(name)} {_number(value) if isinstance(value, int | float) else _e(value)}"
            for name, value in acceptance.items()
        )
        facts.append(f"acceptance: {scores}")
    parts = [
        f'<section class="node" id="{_e(_anchor(path))}">'
        f'<h2><code>{_e(path)}</code> <a class="up" href="#tree">↑ tree</a></h2>'
        f'<p class="facts-line">{" · ".join(facts)}</p>'
        f'<p><span class="kind {entry.kind}">{entry.kind}</span> {_e(entry.outcome)}</p>'
        '<div class="maps"><figure>'
        f"{_image(node_dir / 'embedding.png', f'UMAP embedding of {path}', 'map')}"
        "<figcaption>UMAP embedding, coloured by child (noise grey).</figcaption></figure>"
        f"<figure>{_interactive_map(store, tree, path, labels)}</figure></div>"
    ]
    if entry.kind == "split":
        prefix = f"{path}."
        children = [
            e for e in tree.entries if e.path.startswith(prefix) and e.depth == entry.depth + 1
        ]
        metrics = _node_table(store, tree.generation, path, "classifier_metrics")
        drivers = _node_table(store, tree.generation, path, "drivers")
        parts.append("<h3>Children</h3>")
        parts.append(_children_overview(children, record, metrics, drivers, tree.n_rows))
        mean_images = _image(node_dir / "mean_images.png", f"mean images of {path}", "wide")
        if mean_images:
            parts.append(
                f"<figure>{mean_images}<figcaption>Mean image of the node and of "
                "each child, on one grey scale.</figcaption></figure>"
            )
        if metrics is None:
            parts.append('<p class="muted">No classifier was trained for this node.</p>')
        parts.append('<div class="cards">')
        label_of_row = pd.Series(labels["label"].to_numpy(), index=labels["row"].to_numpy())
        for child_entry in children:
            if child_entry.kind == "noise":
                continue
            child = int(child_entry.path.rsplit(".", 1)[1])
            inside = np.zeros(tree.n_rows, dtype=bool)
            inside[label_of_row.index[label_of_row.to_numpy() == child]] = True
            parts.append(_child_card(tree, child_entry, record, node_dir, metrics, drivers, inside))
        parts.append("</div>")
    parts.append("</section>")
    return "".join(parts)


_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;
margin:0;background:#f6f7f9}
main{max-width:1200px;margin:0 auto;padding:16px 24px 48px}
h1{margin:8px 0 12px}h2{margin:28px 0 8px;border-bottom:2px solid #dde;padding-bottom:4px}
section>h2:first-child{margin-top:4px}
h3{margin:18px 0 6px}h4{margin:0 0 6px}h5{margin:10px 0 4px;font-size:13px}
h2 code{font-size:inherit}
code{font:12.5px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;word-break:break-all}
header,section.guide,section#tree,section.node{background:#fff;border:1px solid #e3e5ea;
border-radius:8px;padding:12px 18px;margin:16px 0}
.facts{display:grid;grid-template-columns:1fr 1fr;gap:8px 32px}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;margin:0}
dt{color:#666}dd{margin:0}
pre{background:#f3f4f6;padding:8px;overflow:auto;max-height:320px;font-size:12px}
table{border-collapse:collapse;margin:4px 0 8px;font-size:13px}
th,td{border-bottom:1px solid #eceef2;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f3f4f6;font-weight:600}
table.tree td:nth-child(n+2):nth-child(-n+5),table.children td:nth-child(n+2):nth-child(-n+4)
{text-align:right;font-variant-numeric:tabular-nums}
tr.noise td{color:#777;font-style:italic}
.kind{display:inline-block;font-size:11px;padding:0 6px;border-radius:8px;color:#fff;
font-style:normal}
.kind.split{background:#4a6fa5}.kind.leaf{background:#3c9a5f}.kind.noise{background:#999}
.band{display:inline-block;font-size:11px;padding:0 6px;border-radius:8px;color:#fff}
.band.stable{background:#2e7d32}.band.patterns{background:#7cb342}
.band.weak{background:#f9a825}.band.dissolved{background:#c62828}
.muted{color:#888}.facts-line{color:#555}
.maps{display:grid;grid-template-columns:minmax(0,360px) minmax(0,1fr);gap:16px;
align-items:start}
figure{margin:0}figcaption{font-size:12px;color:#666}
img.map,img.plot{width:100%;max-width:360px;height:auto;image-rendering:auto}
img.wide{max-width:100%;height:auto}
.rc-map{height:380px;border:1px solid #eceef2;border-radius:4px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:14px}
.card{border:1px solid #e3e5ea;border-radius:8px;padding:10px 14px;background:#fcfcfd}
.card .images{display:flex;flex-wrap:wrap;gap:8px}
.card .images img{width:calc(50% - 4px);min-width:220px}
ol.drivers{columns:2;margin:0;padding-left:24px;font-size:13px}
.dir.higher{color:#c62828}.dir.lower{color:#1565c0}
a.up{font-size:12px;font-weight:normal;margin-left:8px}
@media (max-width:800px){.maps,.facts{grid-template-columns:1fr}
.cards{grid-template-columns:1fr}}
"""

_LOADER = """
(function () {
  var observer = new IntersectionObserver(function (entries) {
    entries.forEach(function (entry) {
      var div = entry.target;
      if (entry.isIntersecting && !div.dataset.drawn) {
        var spec = JSON.parse(document.getElementById(div.dataset.spec).textContent);
        Plotly.newPlot(div, spec.data, spec.layout, {responsive: true, displaylogo: false});
        div.dataset.drawn = "1";
      } else if (!entry.isIntersecting && div.dataset.drawn) {
        Plotly.purge(div);
        delete div.dataset.drawn;
      }
    });
  }, {rootMargin: "400px 0px"});
  document.querySelectorAll("div.rc-map").forEach(function (div) { observer.observe(div); });
})();
"""


def render_report(store: TreeStore, generation: str) -> str:
    """The whole report of one tree as a single HTML document."""
    tree = _load(store, generation)
    sections = [
        _node_section(store, tree, entry) for entry in tree.entries if entry.record is not None
    ]
    title = f"Cluster tree {_e(generation)}"
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title><style>{_STYLE}</style>"
        f'<script type="text/javascript">{get_plotlyjs()}</script></head><body><main>'
        f"{_header(tree)}{_guide()}{_tree_section(tree)}"
        f"{_origin_section(store, generation)}{''.join(sections)}"
        f"</main><script>{_LOADER}</script></body></html>"
    )


def write_report(store: TreeStore, generation: str) -> Path:
    """Render the report next to the tree's files, replacing any older one atomically."""
    target = store.tree_dir(generation) / REPORT_NAME
    document = render_report(store, generation)
    with atomic_path(target) as temporary:
        temporary.write_text(document, encoding="utf-8")
    return target
