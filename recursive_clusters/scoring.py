"""Assign new rows to the current tree's leaves with the stored routers (no UMAP/HDBSCAN)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from recursive_clusters.core.data import FeaturePreprocessor, InputError, load_table
from recursive_clusters.core.predict import predict_paths
from recursive_clusters.core.settings import InputSettings, Settings, parse_settings
from recursive_clusters.storage import TreeStore


def _tree_settings(store: TreeStore, generation: str) -> Settings:
    return parse_settings(store.manifest(generation)["settings"], source="tree manifest")


def route(
    store: TreeStore, generation: str, settings: Settings, raw: pd.DataFrame
) -> tuple[pd.DataFrame, np.ndarray]:
    """The node each row of ``raw`` reaches in tree ``generation`` (whose ``settings`` say
    how confident a router must be), and which rows were kept.

    The routers were trained on the original (imputed, unstandardised) feature columns, so
    new rows get the tree's own imputation and no scaling. Rows the tree's non-finite policy
    drops are left out (``kept`` says which).
    """
    preprocessor = FeaturePreprocessor.from_json(store.read_text(generation, "preprocessor.json"))
    unscaled = dataclasses.replace(preprocessor, means=None, scales=None)
    matrix, kept = unscaled.transform(raw)
    routed = predict_paths(
        matrix,
        list(unscaled.feature_columns),
        store.models_dir(generation),
        settings.explanation.confidence_threshold,
    )
    return routed, kept


def score_table(store: TreeStore, raw: pd.DataFrame, generation: str | None = None) -> pd.DataFrame:
    """One row per scored input row: its id, the node it reaches, and per-level probabilities;
    the id column says which rows were scored."""
    generation = generation or store.require_current()
    settings = _tree_settings(store, generation)
    result, kept = route(store, generation, settings, raw)
    id_column = settings.input.id_column
    if id_column is None:
        result.insert(0, "row_id", kept.nonzero()[0])
    else:
        result.insert(0, id_column, raw[id_column].to_numpy()[kept])
    return result


def score_file(store: TreeStore, source: InputSettings) -> pd.DataFrame:
    """``score_table`` on a Parquet/CSV/DuckDB table read like the tree's own input (ids as
    the tree read them). A tree with an id column needs it in the new table too: the scores
    are joined back by it, and row numbers in its place would join to the wrong rows."""
    generation = store.require_current()
    id_column = _tree_settings(store, generation).input.id_column
    raw = load_table(source.model_copy(update={"id_column": id_column}))
    if id_column is not None and id_column not in raw.columns:
        raise InputError(
            f"{source.path}: no id column {id_column!r} (the tree's input.id_column); add it "
            "so that the scores can be joined back to the rows"
        )
    return score_table(store, raw, generation)


AGREEMENT_SAMPLE = 20_000  # rows routed to measure predict's agreement: a bounded cost


def predict_agreement(
    store: TreeStore, generation: str, settings: Settings, assignments: pd.DataFrame
) -> float | None:
    """Share of (a seeded sample of) the rows in a leaf that ``predict`` routes to that same
    leaf: whether the classifiers reproduce the tree (None: no row is in a leaf)."""
    in_leaf = np.flatnonzero(~assignments["is_noise"].to_numpy())
    if len(in_leaf) == 0 or not store.models_dir(generation).is_dir():
        return None  # nothing in a leaf, or the root is the only leaf: nothing is routed
    if len(in_leaf) > AGREEMENT_SAMPLE:
        rng = np.random.default_rng(settings.random_state)
        in_leaf = np.sort(rng.choice(in_leaf, AGREEMENT_SAMPLE, replace=False))
    features = store.read_table(generation, "features").iloc[in_leaf]
    routed, _ = route(store, generation, settings, features)
    leaves = assignments["leaf_path"].to_numpy()[in_leaf]
    return float(np.mean(routed["path"].to_numpy() == leaves))
