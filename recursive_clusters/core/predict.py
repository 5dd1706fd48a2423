"""Send new rows down a tree with the node routers, without UMAP or HDBSCAN.

UMAP cannot place new rows exactly where a re-run would, and HDBSCAN would renumber the
clusters; the routers learnt per node (see ``explain``) answer "which child?" directly and
say how sure they are, so a row stops at the deepest node where the answer is confident.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from recursive_clusters.core.explain import Router
from recursive_clusters.core.paths import ROOT, NodePath


class PredictionError(ValueError):
    """The saved tree or the given rows cannot be used for prediction; the message says why."""


def _columns_of(router: Router, node: str, feature_columns: list[str]) -> list[int]:
    """The matrix columns a node's router reads, in its order (matched by name)."""
    position: dict[str, int] = {}
    for index, column in enumerate(feature_columns):
        position.setdefault(column, index)
    missing = [c for c in router.feature_columns if c not in position]
    if missing:
        raise PredictionError(
            f"The router of node {node} needs columns that were not given: {', '.join(missing)}"
        )
    return [position[c] for c in router.feature_columns]


def route_rows(
    matrix: np.ndarray,
    feature_columns: list[str],
    router_of: Callable[[NodePath], Router | None],
    confidence_threshold: float,
) -> pd.DataFrame:
    """The node each row ends in, routed from ``root`` one level at a time.

    At a node with a router (``router_of`` gives None for a leaf) the row goes to its most
    probable child if that probability reaches ``confidence_threshold``; otherwise it stops
    there (``confident`` False). ``confidence`` is the row's weakest step: the lowest
    probability of the child chosen at any node on its way, the step where it stopped too.
    Columns are matched by name, so a different order is fine. Per level i the table has the
    child taken (``level_i``, None past the row's end) and the router's probability for it
    (``probability_i``, NaN past the row's end).
    """
    matrix = np.asarray(matrix, dtype=np.float32)
    feature_columns = [str(c) for c in feature_columns]
    if matrix.ndim != 2 or matrix.shape[1] != len(feature_columns):
        raise PredictionError(
            f"The matrix has shape {matrix.shape} but {len(feature_columns)} feature columns "
            "were named."
        )
    n_rows = len(matrix)
    paths = np.full(n_rows, ROOT, dtype=object)
    depth = np.zeros(n_rows, dtype=np.int64)
    confident = np.ones(n_rows, dtype=bool)
    confidence = np.ones(n_rows)
    levels: list[tuple[np.ndarray, np.ndarray]] = []
    frontier = {NodePath(ROOT): np.arange(n_rows)} if n_rows else {}
    while frontier:
        children_of_level = np.full(n_rows, None, dtype=object)
        probability_of_level = np.full(n_rows, np.nan)
        next_frontier: dict[NodePath, np.ndarray] = {}
        for node, rows in frontier.items():
            router = router_of(node)
            if router is None:
                continue
            columns = _columns_of(router, node, feature_columns)
            probabilities = router.model.predict_proba(matrix[np.ix_(rows, columns)])
            best = probabilities.argmax(axis=1)
            probability = probabilities[np.arange(len(rows)), best]
            sure = probability >= confidence_threshold
            confidence[rows] = np.minimum(confidence[rows], probability)
            confident[rows[~sure]] = False
            for index in np.unique(best[sure]):
                moving = rows[sure & (best == index)]
                child = node.child(router.children[index])
                paths[moving] = child
                depth[moving] += 1
                children_of_level[moving] = str(router.children[index])
                probability_of_level[moving] = probability[sure & (best == index)]
                next_frontier[child] = moving
        if not next_frontier:
            break
        levels.append((children_of_level, probability_of_level))
        frontier = next_frontier

    table = pd.DataFrame(
        {
            "path": paths.astype(str),
            "depth": depth,
            "confident": confident,
            "confidence": confidence,
        }
    )
    for level, (children_of_level, probability_of_level) in enumerate(levels, start=1):
        table[f"level_{level}"] = children_of_level
        table[f"probability_{level}"] = probability_of_level
    return table
