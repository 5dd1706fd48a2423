"""The report's plotly figures: one map per node, and one map of every row by its leaf.

Maps are WebGL (``scattergl``); the page draws each only while it is near the viewport (a
browser keeps about 16 WebGL contexts per page), so figures travel as JSON. Printing gets
the PNG drawn beside each map instead.
"""

from __future__ import annotations

import base64
import io
from html import escape

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.image import imsave

from recursive_clusters.core.clustering import NOISE
from recursive_clusters.core.paths import NOISE_NAME, NodePath, is_noise_leaf
from recursive_clusters.core.plots import child_colour

# Points drawn per node map: enough to see every cluster, small enough to stay light.
MAX_MAP_POINTS = 5000
# Points of the overview map (one per sampled row, placed by the root's embedding).
MAX_OVERVIEW_POINTS = 20_000
NOISE_COLOUR = "#c8c8c8"
AXIS = {"showticklabels": False, "showgrid": False, "zeroline": False}


def png_uri(png: bytes | None) -> str | None:
    """PNG bytes as a data URI; None when the plot was not made."""
    if png is None:
        return None
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def mean_image_uri(pixels: np.ndarray, image_shape: tuple[int, int]) -> str:
    """A group of rows' mean image as a tiny PNG (one pixel per image pixel; the page scales
    it up unsmoothed): for image data the most readable name a cluster has."""
    buffer = io.BytesIO()
    image = np.asarray(pixels, dtype=float).mean(axis=0).reshape(image_shape)
    imsave(buffer, image, cmap="gray_r", format="png")
    return png_uri(buffer.getvalue())


def sample_rows(n_rows: int, limit: int) -> np.ndarray:
    """A seeded, ordered sample of at most ``limit`` row positions."""
    if n_rows <= limit:
        return np.arange(n_rows)
    return np.sort(np.random.default_rng(0).choice(n_rows, size=limit, replace=False))


def _layout(figure: go.Figure, height: int) -> go.Figure:
    figure.update_layout(
        template="none",
        height=height,
        margin={"l": 10, "r": 10, "t": 32, "b": 10},
        plot_bgcolor="white",
        xaxis=AXIS,
        yaxis=AXIS,
        legend={"itemsizing": "constant", "font": {"size": 11}},
    )
    return figure


def node_map(path: str, points: pd.DataFrame) -> go.Figure:
    """A node's embedding (``points``: row, x, y, label) coloured by child, noise grey. Each
    point carries its row number; the page writes the hover text (id, leaf, confidence)."""
    children = sorted(int(k) for k in points["label"].unique() if k != NOISE)
    figure = go.Figure()
    groups = [(NOISE, NOISE_NAME, NOISE_COLOUR)] + [
        (k, NodePath(path).child(k), to_hex(child_colour(k, len(children)))) for k in children
    ]
    for label, name, colour in groups:
        group = points[points["label"] == label]
        if group.empty:
            continue
        figure.add_trace(
            go.Scattergl(
                x=group["x"].to_numpy(dtype=np.float32),
                y=group["y"].to_numpy(dtype=np.float32),
                mode="markers",
                name=name,
                marker={"size": 4, "color": colour},
                customdata=group["row"].tolist(),
                hoverinfo="text+name",
            )
        )
    return _layout(figure, 380)


def leaf_colours(leaves: list[str]) -> dict[str, str]:
    """One colour per leaf, in tree order; noise groups grey."""
    palette = colormaps["tab20"]
    colours, index = {}, 0
    for leaf in leaves:
        if is_noise_leaf(leaf):
            colours[leaf] = NOISE_COLOUR
        else:
            colours[leaf] = to_hex(palette(index % palette.N))
            index += 1
    return colours


def overview_map(
    root: pd.DataFrame, assignments: pd.DataFrame, leaves: list[str], names: dict[str, str]
) -> tuple[go.Figure, int]:
    """Every (sampled) row once, where the root's embedding placed it, coloured by its final
    leaf; the legend is the leaves in tree order. Returns the figure and the points drawn."""
    placed = root.sort_values("row")
    shown = placed.iloc[sample_rows(len(placed), MAX_OVERVIEW_POINTS)]
    rows = shown["row"].to_numpy()
    row_leaves = assignments["leaf_path"].to_numpy()[rows]
    colours = leaf_colours(leaves)
    figure = go.Figure()
    for leaf in leaves:
        mine = row_leaves == leaf
        if not mine.any():
            continue
        name = names.get(leaf, "")
        figure.add_trace(
            go.Scattergl(
                x=shown["x"].to_numpy(np.float32)[mine],
                y=shown["y"].to_numpy(np.float32)[mine],
                mode="markers",
                # plotly renders legend text as HTML: a name from the data is escaped
                name=escape(f"{leaf} · {name}" if name else leaf),
                marker={"size": 3, "color": colours[leaf]},
                customdata=rows[mine].tolist(),
                meta=leaf,
                hoverinfo="text",
            )
        )
    return _layout(figure, 560), len(rows)


def overview_png(root: pd.DataFrame, assignments: pd.DataFrame, leaves: list[str]) -> str:
    """The overview map as a PNG data URI: what a printed or PDF copy shows."""
    placed = root.sort_values("row")
    shown = placed.iloc[sample_rows(len(placed), MAX_OVERVIEW_POINTS)]
    row_leaves = assignments["leaf_path"].to_numpy()[shown["row"].to_numpy()]
    colours = leaf_colours(leaves)
    figure = Figure(figsize=(7, 5), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    for leaf in leaves:
        mine = row_leaves == leaf
        if mine.any():
            axes.scatter(
                shown["x"].to_numpy()[mine],
                shown["y"].to_numpy()[mine],
                s=2,
                color=colours[leaf],
                label=leaf,
                linewidths=0,
            )
    axes.set_xticks([])
    axes.set_yticks([])
    if len(leaves) <= 30:
        axes.legend(markerscale=4, fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5))
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return png_uri(buffer.getvalue())
