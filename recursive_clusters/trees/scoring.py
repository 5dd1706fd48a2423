"""Assign new rows to the current tree's leaves with the stored routers (no UMAP/HDBSCAN)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from recursive_clusters.core.data import FeaturePreprocessor, InputError
from recursive_clusters.core.paths import ROOT
from recursive_clusters.core.settings import InputSettings, Settings
from recursive_clusters.io.models import predict_paths
from recursive_clusters.io.store import FEATURES_TABLE, PREPROCESSOR_JSON, TreeStore
from recursive_clusters.io.tables import load_table


def tree_features(
    store: TreeStore, tree_id: str, raw: pd.DataFrame, source: str = "the input table"
) -> tuple[pd.DataFrame, np.ndarray]:
    """``raw``'s feature columns as the routers read them, and which rows were kept.

    The routers were trained on the original (imputed, unstandardised) feature columns, so
    new rows get the tree's own imputation and no scaling. Rows the tree's non-finite policy
    drops are left out (``kept`` says which).
    """
    preprocessor = FeaturePreprocessor.from_json(store.read_text(tree_id, PREPROCESSOR_JSON))
    unscaled = dataclasses.replace(preprocessor, means=None, scales=None)
    matrix, kept = unscaled.transform(raw, source)
    return pd.DataFrame(matrix, columns=list(unscaled.feature_columns)), kept


def route(
    store: TreeStore, tree_id: str, settings: Settings, features: pd.DataFrame
) -> pd.DataFrame:
    """The node each row of ``features`` (``tree_features``) reaches in tree ``tree_id``,
    whose ``settings`` say how confident a router must be. A tree whose root is its only
    leaf has no router: every row stays at the root."""
    if not store.models_dir(tree_id).is_dir():
        n_rows = len(features)
        return pd.DataFrame(
            {
                "path": np.full(n_rows, ROOT, dtype=object),
                "depth": np.zeros(n_rows, dtype=np.int64),
                "confident": np.ones(n_rows, dtype=bool),
                "confidence": np.ones(n_rows),
            }
        )
    return predict_paths(
        features.to_numpy(),
        list(features.columns),
        store.models_dir(tree_id),
        settings.explanation.confidence_threshold,
    )


def score_table(store: TreeStore, raw: pd.DataFrame, tree_id: str | None = None) -> pd.DataFrame:
    """One row per scored input row: its id, the node it reaches, and per-level probabilities;
    the id column says which rows were scored."""
    tree_id = tree_id or store.require_current()
    settings = store.tree_settings(tree_id)
    features, kept = tree_features(store, tree_id, raw)
    result = route(store, tree_id, settings, features)
    id_column = settings.input.id_column
    if id_column is None:
        result.insert(0, "row_id", kept.nonzero()[0])
    else:
        result.insert(0, id_column, raw[id_column].to_numpy()[kept])
    result.attrs.update(tree_id=tree_id, rows_in=len(raw), non_finite=settings.input.non_finite)
    return result


def score_file(store: TreeStore, source: InputSettings) -> pd.DataFrame:
    """``score_table`` on a Parquet/CSV/DuckDB table read like the tree's own input (ids as
    the tree read them). A tree with an id column needs it in the new table too: the scores
    are joined back by it, and row numbers in its place would join to the wrong rows."""
    tree_id = store.require_current()
    id_column = store.tree_settings(tree_id).input.id_column
    raw = load_table(source.model_copy(update={"id_column": id_column}))
    if id_column is not None and id_column not in raw.columns:
        raise InputError(
            f"{source.path}: no id column {id_column!r} (the tree's input.id_column); add it "
            "so that the scores can be joined back to the rows"
        )
    return score_table(store, raw, tree_id)


TRAINING_SAMPLE = 20_000  # training rows routed for the agreement and the drift baseline


def route_training_rows(
    store: TreeStore, tree_id: str, settings: Settings
) -> tuple[np.ndarray, pd.DataFrame, pd.DataFrame]:
    """A seeded sample of the tree's rows (at most ``TRAINING_SAMPLE``, a bounded cost):
    their row numbers, their features and where the routers send them."""
    rows = np.arange(store.table_shape(tree_id, FEATURES_TABLE)[0])
    if len(rows) > TRAINING_SAMPLE:
        rng = np.random.default_rng(settings.random_state)
        rows = np.sort(rng.choice(rows, TRAINING_SAMPLE, replace=False))
    sample = store.read_table_rows(tree_id, FEATURES_TABLE, rows)
    return rows, sample, route(store, tree_id, settings, sample)


def predict_agreement(
    store: TreeStore, tree_id: str, assignments: pd.DataFrame, rows: np.ndarray, routed
) -> float | None:
    """Share of the routed ``rows`` that are in a leaf and that ``predict`` sends to that
    same leaf: whether the classifiers reproduce the tree (None: no row is in a leaf, or
    the root is the only leaf and nothing is routed)."""
    in_leaf = ~assignments["is_noise"].to_numpy()[rows]
    if not in_leaf.any() or not store.models_dir(tree_id).is_dir():
        return None
    leaves = assignments["leaf_path"].to_numpy()[rows][in_leaf]
    return float(np.mean(routed["path"].to_numpy()[in_leaf] == leaves))
