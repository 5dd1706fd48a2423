"""Assign new rows to the current tree's leaves with the stored routers (no UMAP/HDBSCAN)."""

from __future__ import annotations

import dataclasses

import pandas as pd

from recursive_clusters.core.data import FeaturePreprocessor, load_table
from recursive_clusters.core.predict import predict_paths
from recursive_clusters.core.settings import InputSettings, parse_settings
from recursive_clusters.storage import TreeStore


def score_table(store: TreeStore, raw: pd.DataFrame, generation: str | None = None) -> pd.DataFrame:
    """One row per scored input row: its id, the node it reaches, and per-level probabilities.

    The routers were trained on the original (imputed, unstandardised) feature columns, so
    new rows get the tree's own imputation and no scaling. Rows the tree's non-finite policy
    drops are left out; the id column says which rows were scored.
    """
    generation = generation or store.require_current()
    settings = parse_settings(store.manifest(generation)["settings"], source="tree manifest")
    preprocessor = FeaturePreprocessor.from_json(store.read_text(generation, "preprocessor.json"))
    unscaled = dataclasses.replace(preprocessor, means=None, scales=None)
    matrix, kept = unscaled.transform(raw)
    result = predict_paths(
        matrix,
        list(unscaled.feature_columns),
        store.models_dir(generation),
        settings.explanation.confidence_threshold,
    )
    id_column = settings.input.id_column
    ids = raw[id_column].to_numpy()[kept] if id_column in raw else kept.nonzero()[0]
    result.insert(0, id_column or "row_id", ids)
    return result


def score_file(store: TreeStore, source: InputSettings) -> pd.DataFrame:
    """``score_table`` on a Parquet/CSV/DuckDB table read like the tree's own input."""
    return score_table(store, load_table(source))
