"""Send new rows down a saved tree with the node routers, without UMAP or HDBSCAN.

UMAP cannot place new rows exactly where a re-run would, and HDBSCAN would renumber the
clusters; the routers learnt per node (see ``explain``) answer "which child?" directly and
say how sure they are, so a row stops at the deepest node where the answer is confident.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xgboost

from recursive_clusters.core.explain import ExplanationError, load_router
from recursive_clusters.core.tree import ROOT, PathError, validate_path


class PredictionError(ValueError):
    """The saved tree or the given rows cannot be used for prediction; the message says why."""


def _is_path(name: str) -> bool:
    try:
        validate_path(name)
    except PathError:
        return False
    return True


def _node_directories(models_dir: Path) -> set[str]:
    """The node paths that have a model directory; other entries are ignored."""
    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        raise PredictionError(f"Models directory not found: {models_dir}")
    nodes = {
        entry.name for entry in models_dir.iterdir() if entry.is_dir() and _is_path(entry.name)
    }
    if ROOT not in nodes:
        raise PredictionError(f"No root model in {models_dir}: expected {models_dir / ROOT}")
    return nodes


def _load(
    models_dir: Path, node: str, feature_columns: list[str]
) -> tuple[xgboost.XGBClassifier, list[int], list[int]]:
    """A node's router, the matrix columns it reads (in its order) and its children."""
    try:
        router, router_columns, children = load_router(models_dir / node)
    except ExplanationError as exc:
        raise PredictionError(str(exc)) from None
    position: dict[str, int] = {}
    for index, column in enumerate(feature_columns):
        position.setdefault(column, index)
    missing = [c for c in router_columns if c not in position]
    if missing:
        raise PredictionError(
            f"The router of node {node} needs columns that were not given: {', '.join(missing)}"
        )
    return router, [position[c] for c in router_columns], children


def predict_paths(
    matrix: np.ndarray,
    feature_columns: list[str],
    models_dir: Path,
    confidence_threshold: float,
) -> pd.DataFrame:
    """The node each row ends in, routed from ``root`` one level at a time.

    At a node with a router the row goes to its most probable child if that probability
    reaches ``confidence_threshold``; otherwise it stops there (``confident`` False). A node
    without a model directory is a leaf. ``confidence`` is the row's weakest step: the lowest
    probability of the child chosen at any node on its way, the step where it stopped too.
    Columns are matched by name, so a different order is fine. Per level i the table has the
    child taken (``level_i``, None past the row's end) and the router's probability for it
    (``probability_i``, NaN past the row's end).
    """
    models_dir = Path(models_dir)
    nodes = _node_directories(models_dir)
    matrix = np.asarray(matrix, dtype=np.float32)
    feature_columns = [str(c) for c in feature_columns]
    if matrix.ndim != 2 or matrix.shape[1] != len(feature_columns):
        raise PredictionError(
            f"The matrix has shape {matrix.shape} but {len(feature_columns)} feature columns "
            "were named."
        )
    n_rows = len(matrix)
    paths = np.full(n_rows, ROOT, dtype=object)
    confident = np.ones(n_rows, dtype=bool)
    confidence = np.ones(n_rows)
    levels: list[tuple[np.ndarray, np.ndarray]] = []
    frontier = {ROOT: np.arange(n_rows)} if n_rows else {}
    while frontier:
        children_of_level = np.full(n_rows, None, dtype=object)
        probability_of_level = np.full(n_rows, np.nan)
        next_frontier: dict[str, np.ndarray] = {}
        for node, rows in frontier.items():
            if node not in nodes:
                continue
            router, columns, children = _load(models_dir, node, feature_columns)
            probabilities = router.predict_proba(matrix[np.ix_(rows, columns)])
            best = probabilities.argmax(axis=1)
            probability = probabilities[np.arange(len(rows)), best]
            sure = probability >= confidence_threshold
            confidence[rows] = np.minimum(confidence[rows], probability)
            confident[rows[~sure]] = False
            for index in np.unique(best[sure]):
                moving = rows[sure & (best == index)]
                child = f"{node}.{children[index]}"
                paths[moving] = child
                children_of_level[moving] = str(children[index])
                probability_of_level[moving] = probability[sure & (best == index)]
                next_frontier[child] = moving
        if not next_frontier:
            break
        levels.append((children_of_level, probability_of_level))
        frontier = next_frontier

    table = pd.DataFrame(
        {
            "path": paths.astype(str),
            "depth": np.array([p.count(".") for p in paths], dtype=np.int64),
            "confident": confident,
            "confidence": confidence,
        }
    )
    for depth, (children_of_level, probability_of_level) in enumerate(levels, start=1):
        table[f"level_{depth}"] = children_of_level
        table[f"probability_{depth}"] = probability_of_level
    return table
