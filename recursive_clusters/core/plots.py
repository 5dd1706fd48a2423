"""Small PNG plots of one node: its embedding, its children's SHAP values and mean images.

Figures are built with matplotlib's object API and rendered by the Agg canvas, never through
pyplot, so plotting works headless, from parallel workers, and without switching the backend
of whoever imports this module. Each function returns the PNG's bytes; where they are
stored is the tree store's business (``TreeStore.write_node_png``).
"""

from __future__ import annotations

from io import BytesIO

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from recursive_clusters.core.clustering import NOISE

FIGSIZE = (4.0, 3.0)
DPI = 90


def _png(figure: Figure) -> bytes:
    """Render the figure with Agg as PNG bytes."""
    FigureCanvasAgg(figure)
    buffer = BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def child_colour(child: int, n_children: int) -> tuple[float, float, float, float]:
    """The same colour for a child in every plot of the node."""
    palette = colormaps["tab10" if n_children <= 10 else "tab20"]
    return palette(child % palette.N)


def _child_table(shap_values: pd.DataFrame, child: int) -> pd.DataFrame:
    table = shap_values[shap_values["child"] == child]
    if table.empty:
        raise ValueError(f"No SHAP values for child {child}.")
    return table


def embedding_scatter(embedding: np.ndarray, labels: np.ndarray, title: str) -> bytes:
    """The node's 2-D UMAP coordinates coloured by child, noise in grey behind them."""
    labels = np.asarray(labels)
    children = sorted(int(k) for k in np.unique(labels) if k != NOISE)
    figure = Figure(figsize=FIGSIZE, layout="constrained")
    axes = figure.add_subplot()
    noise = labels == NOISE
    if noise.any():
        axes.scatter(*embedding[noise].T, s=3, c="lightgrey", label="noise", linewidths=0)
    for child in children:
        inside = labels == child
        colour = child_colour(child, len(children))
        axes.scatter(*embedding[inside].T, s=3, color=colour, label=str(child), linewidths=0)
    axes.set_title(title, fontsize=9)
    axes.set_xticks([])
    axes.set_yticks([])
    if children or noise.any():
        axes.legend(fontsize=6, markerscale=3, loc="best", ncols=2 if len(children) > 8 else 1)
    return _png(figure)


def shap_beeswarm(shap_values: pd.DataFrame, child: int, max_features: int = 10) -> bytes:
    """A beeswarm-style strip plot of one child's one-vs-all SHAP values: one line per
    feature (largest mean |SHAP| on top), one dot per explained row, coloured by the
    feature's value scaled within the feature (blue low, red high)."""
    table = _child_table(shap_values, child)
    importance = table.groupby("feature")["value"].apply(lambda v: float(np.mean(np.abs(v))))
    top = importance.sort_values(ascending=False, kind="stable").index[:max_features].tolist()
    jitter = np.random.default_rng(0)
    figure = Figure(figsize=FIGSIZE, layout="constrained")
    axes = figure.add_subplot()
    points = None
    for position, feature in enumerate(reversed(top)):
        rows = table[table["feature"] == feature]
        values = rows["feature_value"].to_numpy(dtype=float)
        spread = np.ptp(values)
        scaled = (values - values.min()) / spread if spread > 0 else np.full(len(values), 0.5)
        offsets = jitter.uniform(-0.3, 0.3, size=len(rows))
        points = axes.scatter(
            rows["value"].to_numpy(dtype=float),
            position + offsets,
            c=scaled,
            cmap="coolwarm",
            vmin=0.0,
            vmax=1.0,
            s=4,
            linewidths=0,
        )
    axes.axvline(0.0, color="grey", linewidth=0.5)
    axes.set_yticks(range(len(top)), list(reversed(top)), fontsize=6)
    axes.set_xlabel(f"SHAP value (toward child {child})", fontsize=7)
    axes.tick_params(axis="x", labelsize=6)
    colourbar = figure.colorbar(points, ax=axes, ticks=[0, 1], aspect=30)
    colourbar.ax.set_yticklabels(["low", "high"], fontsize=6)
    colourbar.set_label("feature value", fontsize=6)
    return _png(figure)


def _image_of(values: np.ndarray, image_shape: tuple[int, int]) -> np.ndarray:
    if values.size != image_shape[0] * image_shape[1]:
        raise ValueError(
            f"{values.size} features do not make an image of shape {tuple(image_shape)}."
        )
    return values.reshape(image_shape)


def mean_images(features: pd.DataFrame, labels: np.ndarray, image_shape: tuple[int, int]) -> bytes:
    """The node's mean image next to each child's, on one grey scale so they compare."""
    labels = np.asarray(labels)
    matrix = features.to_numpy(dtype=float)
    children = sorted(int(k) for k in np.unique(labels) if k != NOISE)
    panels = [("node", matrix.mean(axis=0))]
    panels += [(f"child {k}", matrix[labels == k].mean(axis=0)) for k in children]
    images = [(name, _image_of(values, image_shape)) for name, values in panels]
    low = min(float(image.min()) for _, image in images)
    high = max(float(image.max()) for _, image in images)
    n_columns = min(len(images), 5)
    n_rows = -(-len(images) // n_columns)
    height = min(max(1.5, n_rows * FIGSIZE[0] / n_columns + 0.3), 8.0)
    figure = Figure(figsize=(FIGSIZE[0], height), layout="constrained")
    grid = figure.subplots(n_rows, n_columns, squeeze=False)
    for axes in grid.flat:
        axes.axis("off")
    for axes, (name, image) in zip(grid.flat, images, strict=False):
        axes.imshow(image, cmap="gray_r", vmin=low, vmax=high, interpolation="nearest")
        axes.set_title(name, fontsize=7)
    return _png(figure)


def shap_pixel_map(
    shap_values: pd.DataFrame,
    child: int,
    feature_columns: list[str],
    image_shape: tuple[int, int],
) -> bytes:
    """Mean |SHAP| per pixel for one child: where in the image the model looks to tell the
    child apart. Pixels never explained (constant, unused) stay at 0."""
    table = _child_table(shap_values, child)
    importance = table.groupby("feature")["value"].apply(lambda v: float(np.mean(np.abs(v))))
    values = importance.reindex([str(c) for c in feature_columns]).fillna(0.0).to_numpy()
    image = _image_of(values, image_shape)
    figure = Figure(figsize=FIGSIZE, layout="constrained")
    axes = figure.add_subplot()
    shown = axes.imshow(image, cmap="magma", vmin=0.0, interpolation="nearest")
    axes.set_title(f"mean |SHAP|, child {child}", fontsize=8)
    axes.axis("off")
    figure.colorbar(shown, ax=axes)
    return _png(figure)
