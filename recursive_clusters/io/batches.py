"""Incoming batches of new rows: which have arrived in the watched source, and their rows.

A batch is a file in a watched folder (named by its file name) or the rows of a DuckDB table
with one value of its batch column. Names are listed in sorted order, so files named by date
(``2026-11-24.parquet``) arrive in date order.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from recursive_clusters.core.data import InputError
from recursive_clusters.core.settings import BatchSettings, InputSettings
from recursive_clusters.io.tables import load_table, query_duckdb_table, sql_identifier

BATCH_SUFFIXES = (".parquet", ".csv")


def _is_duckdb(settings: BatchSettings) -> bool:
    return Path(settings.path).suffix.lower() in (".duckdb", ".db")


def list_batches(settings: BatchSettings) -> list[str]:
    """The batches in the watched source, sorted. Hidden files and names starting with ``_``
    (a file still being copied in, by convention) are not batches yet."""
    source = Path(settings.path).expanduser()
    if _is_duckdb(settings):
        if not source.is_file():
            raise InputError(f"batches.path {settings.path!r}: no such DuckDB file")
        column = sql_identifier(settings.batch_column)
        names = query_duckdb_table(
            str(source),
            settings.table,
            f"SELECT DISTINCT CAST({column} AS VARCHAR) AS batch FROM {{table}} "
            f"WHERE {column} IS NOT NULL ORDER BY 1",
            parameter="batches.table",
        )
        return names["batch"].tolist()
    if not source.is_dir():
        raise InputError(
            f"batches.path {settings.path!r} is neither a folder of Parquet/CSV files nor a "
            "DuckDB file"
        )
    return sorted(
        entry.name
        for entry in source.iterdir()
        if entry.is_file()
        and entry.suffix.lower() in BATCH_SUFFIXES
        and not entry.name.startswith((".", "_"))
    )


def load_batch(settings: BatchSettings, batch: str, id_column: str | None) -> pd.DataFrame:
    """The rows of one batch, read like the tree's input (ids as the tree read them)."""
    source = Path(settings.path).expanduser()
    if _is_duckdb(settings):
        column = sql_identifier(settings.batch_column)
        rows = query_duckdb_table(
            str(source),
            settings.table,
            f"SELECT * FROM {{table}} WHERE CAST({column} AS VARCHAR) = ?",
            [batch],
            parameter="batches.table",
        )
    else:
        if Path(batch).name != batch:
            raise InputError(f"batch {batch!r} is not a file name in batches.path")
        rows = load_table(InputSettings(path=str(source / batch), id_column=id_column))
    if rows.empty:
        raise InputError(f"batch {batch!r} of batches.path {settings.path!r} has no rows")
    return rows


def with_batches(
    input_rows: pd.DataFrame, batches: BatchSettings, input_settings: InputSettings
) -> tuple[pd.DataFrame, list[str]]:
    """The input table followed by every batch that has arrived: the data a new tree is
    grown on when ``batches.include_in_trees``; and the names of the batches taken. Each
    batch must hold the input's columns, but for profile columns (left empty when missing)."""
    names = list_batches(batches) if batches.path else []
    frames = [input_rows]
    for name in names:
        batch = load_batch(batches, name, input_settings.id_column)
        optional = set(input_settings.profile_columns)
        missing = [c for c in input_rows.columns if c not in batch.columns and c not in optional]
        if missing:
            raise InputError(
                f"batch {name!r} lacks the input table's columns {missing}: a new tree is "
                "grown on the input plus every batch (batches.include_in_trees)"
            )
        frames.append(_like_input(batch.reindex(columns=input_rows.columns), input_rows))
    combined = pd.concat(frames, ignore_index=True) if len(frames) > 1 else input_rows
    return combined, names


def _like_input(batch: pd.DataFrame, input_rows: pd.DataFrame) -> pd.DataFrame:
    """Text columns of the input stay text when a batch's reader saw numbers in them (a CSV
    batch of codes such as ``2.1`` next to a Parquet input), so the rows can be stored
    together."""
    for column in input_rows.columns:
        text = pd.api.types.is_string_dtype
        if text(input_rows[column].dtype) and not text(batch[column].dtype):
            values = batch[column]
            batch[column] = values.astype(str).where(values.notna(), None)
    return batch
