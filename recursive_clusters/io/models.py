"""A tree's node models on disk: the router and one-vs-all classifiers of each split node as
XGBoost JSON under ``models/<path>/`` (never pickle: loading a pickle runs code, JSON is
data and survives library upgrades), and routing rows through the saved routers.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import xgboost

from recursive_clusters.core.explain import ExplanationError, NodeModels, Router
from recursive_clusters.core.paths import ROOT, NodePath, is_path
from recursive_clusters.core.predict import PredictionError, route_rows
from recursive_clusters.io.atomic import atomic_path


def _replace_atomically(target: Path, write: Callable[[str], object]) -> None:
    """Write a model through ``write(path)`` so that a reader never sees half of it."""
    with atomic_path(target) as temporary:
        write(str(temporary))


def _json_safe(value: object) -> object:
    """NaN (an undefined AUC) is not valid JSON: store it as null."""
    return None if isinstance(value, float) and np.isnan(value) else value


def save_node_models(explanation: NodeModels, directory: Path) -> None:
    """Store the router, the one-vs-all models and their description, each atomically."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    _replace_atomically(directory / "router.json", explanation.router.save_model)
    for child, model in explanation.one_vs_all.items():
        _replace_atomically(directory / f"one_vs_all_{child}.json", model.save_model)
    description = {
        "feature_columns": explanation.feature_columns,
        "children": sorted(explanation.one_vs_all),
        "router_accuracy": explanation.router_accuracy,
        "metrics": [
            {key: _json_safe(value) for key, value in record.items()}
            for record in explanation.metrics.to_dict(orient="records")
        ],
    }
    text = json.dumps(description, indent=2)
    _replace_atomically(directory / "models.json", lambda path: Path(path).write_text(text))


def load_router(directory: Path) -> Router:
    """The router of a saved node with its feature columns and the child each output is."""
    directory = Path(directory)
    router_path, description_path = directory / "router.json", directory / "models.json"
    for path in (router_path, description_path):
        if not path.is_file():
            raise ExplanationError(f"Saved node model not found: {path}")
    try:
        description = json.loads(description_path.read_text())
        feature_columns = [str(c) for c in description["feature_columns"]]
        children = [int(k) for k in description["children"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise ExplanationError(f"Unreadable model description {description_path}: {exc}") from None
    router = xgboost.XGBClassifier()
    try:
        router.load_model(router_path)
    except xgboost.core.XGBoostError as exc:
        raise ExplanationError(f"Unreadable router {router_path}: {exc}") from None
    return Router(router, feature_columns, children)


def load_node_models(directory: Path) -> NodeModels:
    """Reload a node's router and one-vs-all models (the SHAP step runs after training)."""
    routing = load_router(directory)
    description = json.loads((Path(directory) / "models.json").read_text())
    one_vs_all = {}
    for child in routing.children:
        path = Path(directory) / f"one_vs_all_{child}.json"
        if not path.is_file():
            raise ExplanationError(f"Saved node model not found: {path}")
        model = xgboost.XGBClassifier()
        model.load_model(path)
        one_vs_all[child] = model
    return NodeModels(
        metrics=pd.DataFrame(description["metrics"]),
        router_accuracy=description["router_accuracy"],
        router=routing.model,
        one_vs_all=one_vs_all,
        feature_columns=routing.feature_columns,
    )


def _node_directories(models_dir: Path) -> set[str]:
    """The node paths that have a model directory; other entries are ignored."""
    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        raise PredictionError(f"Models directory not found: {models_dir}")
    nodes = {entry.name for entry in models_dir.iterdir() if entry.is_dir() and is_path(entry.name)}
    if ROOT not in nodes:
        raise PredictionError(f"No root model in {models_dir}: expected {models_dir / ROOT}")
    return nodes


def predict_paths(
    matrix: np.ndarray,
    feature_columns: list[str],
    models_dir: Path,
    confidence_threshold: float,
) -> pd.DataFrame:
    """``route_rows`` through the routers saved under ``models_dir`` (one directory per split
    node, read when a row reaches it)."""
    models_dir = Path(models_dir)
    nodes = _node_directories(models_dir)

    def router_of(node: NodePath) -> Router | None:
        if node not in nodes:
            return None
        try:
            return load_router(models_dir / node)
        except ExplanationError as exc:
            raise PredictionError(str(exc)) from None

    return route_rows(matrix, feature_columns, router_of, confidence_threshold)
