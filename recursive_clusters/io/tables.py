"""Read the input table (Parquet, CSV, a DuckDB table; local paths or URLs) as a frame.

Every problem raises ``InputError`` naming the file, table or setting at fault.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from recursive_clusters.core.data import InputError, duplicated_names
from recursive_clusters.core.settings import InputSettings

_READERS = {".parquet": "parquet", ".csv": "csv", ".duckdb": "duckdb", ".db": "duckdb"}


def load_demo_digits() -> pd.DataFrame:
    """scikit-learn's bundled 8x8 digits (no network): an id, 64 pixels and the true digit."""
    from sklearn.datasets import load_digits  # lazy: only the demo needs scikit-learn here

    digits = load_digits()
    pixels = pd.DataFrame(
        digits.data.astype(np.float64),
        columns=[f"pixel_{row}_{col}" for row in range(8) for col in range(8)],
    )
    ids = pd.DataFrame({"digit_id": np.arange(len(pixels), dtype=np.int64)})
    labels = pd.DataFrame({"digit": digits.target.astype(np.int64)})
    return pd.concat([ids, pixels, labels], axis=1)


def load_table(settings: InputSettings) -> pd.DataFrame:
    """Read the configured table (or the demo), turning any read failure into an ``InputError``."""
    if settings.path is None:
        return load_demo_digits()
    path = settings.path
    is_url = "://" in path
    suffix = Path(urlsplit(path).path if is_url else path).suffix.lower()
    reader = _READERS.get(suffix)
    if reader is None:
        raise InputError(
            f"Unsupported input file type {suffix or '(none)'!r} for input.path {path!r}; "
            f"supported: {', '.join(_READERS)}"
        )
    if settings.table is not None and reader != "duckdb":
        raise InputError(
            f"input.table={settings.table!r} only applies to DuckDB files, not {path!r}"
        )
    if not is_url and not Path(path).exists():
        raise InputError(f"Input file not found: {path!r} (input.path)")
    try:
        if reader == "parquet":
            return _read_parquet(path, is_url)
        if reader == "csv":
            return _read_csv(path, is_url, settings.id_column)
        return _read_duckdb(path, settings.table)
    except InputError:
        raise
    except ImportError as exc:  # a URL scheme whose optional filesystem package is missing
        raise InputError(
            f"Could not read {path!r}: a package it needs is not installed ({exc}); install "
            "it in this environment or copy the file locally"
        ) from exc
    except (OSError, ValueError, pa.ArrowException, duckdb.Error) as exc:
        raise InputError(f"Could not read input file {path!r}: {exc}") from exc


def feature_shape(settings: InputSettings) -> tuple[int, int]:
    """(rows, feature columns) of the configured table from its metadata (Parquet) or a
    count (CSV, DuckDB), before it is read: what the memory estimate needs. The feature
    columns are the configured ones, else every numeric column (any column, for CSV and
    DuckDB) but the id and the profile columns: an upper bound."""
    if settings.path is None:
        return 1797, 64  # the built-in digits
    excluded = {settings.id_column, *settings.profile_columns}
    path, is_url = settings.path, "://" in settings.path
    if _READERS.get(Path(urlsplit(path).path if is_url else path).suffix.lower()) == "parquet":
        if is_url:
            filesystem, inner_path = _filesystem(path)
            metadata = pq.ParquetFile(filesystem.open_input_file(inner_path)).metadata
        else:
            metadata = pq.ParquetFile(path).metadata
        schema = metadata.schema.to_arrow_schema()
        numeric = [f.name for f in schema if _numeric_type(f.type) and f.name not in excluded]
        columns = len(settings.feature_columns) if settings.feature_columns else len(numeric)
        return metadata.num_rows, columns
    counted = load_table_query(settings, "SELECT * FROM {table} LIMIT 0")
    n_rows = int(load_table_query(settings, "SELECT count(*) FROM {table}").iloc[0, 0])
    others = [c for c in counted.columns if c not in excluded]
    return n_rows, len(settings.feature_columns) if settings.feature_columns else len(others)


def _numeric_type(kind: pa.DataType) -> bool:
    return (
        pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_boolean(kind)
        or pa.types.is_decimal(kind)
    )


def load_table_query(settings: InputSettings, query: str) -> pd.DataFrame:
    """``query`` (``{table}`` standing for the table) on a CSV file or a DuckDB table."""
    path = settings.path
    if settings.table is not None:
        return query_duckdb_table(path, settings.table, query)
    with duckdb.connect() as connection:
        return connection.execute(query.format(table=f"read_csv_auto({sql_string(path)})")).df()


def _filesystem(url: str) -> tuple[pafs.FileSystem, str]:
    """The filesystem holding ``url`` and the path in it: pyarrow's own for the schemes it
    knows (s3://, gs://, hdfs://, file://), fsspec for any other one installed (az://,
    https://, memory://)."""
    try:
        return pafs.FileSystem.from_uri(url)
    except pa.ArrowInvalid:
        import fsspec

        filesystem, inner_path = fsspec.core.url_to_fs(url)
        return pafs.PyFileSystem(pafs.FSSpecHandler(filesystem)), inner_path


def _read_parquet(path: str, is_url: bool) -> pd.DataFrame:
    """Parquet via pyarrow; a named pandas index stored in the file comes back as a column."""
    if is_url:
        filesystem, inner_path = _filesystem(path)
        table = pq.read_table(inner_path, filesystem=filesystem)
    else:
        table = pq.read_table(path)
    # column by column, each column's Arrow memory freed in turn: a copy less of a big table
    frame = table.to_pandas(split_blocks=True, self_destruct=True)
    if any(name is not None for name in frame.index.names):
        return frame.reset_index()
    frame.index = pd.RangeIndex(len(frame))  # in place: reset_index copies under pandas 2
    return frame


def _read_csv(path: str, is_url: bool, id_column: str | None = None) -> pd.DataFrame:
    """CSV via pandas, refusing duplicated header names that pandas would silently rename.

    The id column is read as text, so ids such as ``000123`` come back as written; it is
    made integer only when every id is an integer written the canonical way (no leading
    zeros or signs), which round-trips exactly.
    """

    def read(**kwargs: object) -> pd.DataFrame:
        if not is_url:
            return pd.read_csv(path, **kwargs)
        filesystem, inner_path = _filesystem(path)
        with filesystem.open_input_stream(inner_path) as stream:
            return pd.read_csv(stream, **kwargs)

    header = read(header=None, nrows=1, dtype=str, keep_default_na=False).iloc[0]
    duplicated = duplicated_names([name for name in header if name != ""])
    if duplicated:
        raise InputError(
            f"CSV file {path!r} has duplicated column names: {', '.join(map(repr, duplicated))}"
        )
    if id_column is None or id_column not in set(header):
        return read()
    frame = read(dtype={id_column: str})
    frame[id_column] = _canonical_ids(frame[id_column])
    return frame


def _canonical_ids(ids: pd.Series) -> pd.Series:
    """Integer ids where the text is exactly an integer's (``123``), else the text itself."""
    canonical = ids.str.fullmatch(r"0|-?[1-9][0-9]{0,17}", na=False)
    return ids.astype("int64") if len(ids) and bool(canonical.all()) else ids


def _read_duckdb(path: str, table: str | None) -> pd.DataFrame:
    """One table of a DuckDB file, attached read-only; identifiers are quoted, never pasted."""
    if table is None:
        raise InputError(f"input.table is required to read the DuckDB file {path!r}")
    return query_duckdb_table(path, table, "SELECT * FROM {table}")


def query_duckdb_table(
    path: str,
    table: str,
    query: str,
    parameters: list | None = None,
    parameter: str = "input.table",
) -> pd.DataFrame:
    """``query`` (with ``{table}`` standing for the table) on one table of a DuckDB file,
    attached read-only; a missing table is named with the ones there."""
    with duckdb.connect() as connection:
        connection.execute(f"ATTACH {sql_string(path)} AS source (TYPE duckdb, READ_ONLY)")
        rows = connection.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_catalog = 'source' ORDER BY table_schema, table_name"
        ).fetchall()
        tables = {
            name if schema == "main" else f"{schema}.{name}": (schema, name)
            for schema, name in rows
        }
        if table not in tables:
            available = ", ".join(map(repr, tables)) or "(none)"
            raise InputError(
                f"Table {table!r} ({parameter}) not found in DuckDB file {path!r}; "
                f"tables there: {available}"
            )
        schema, name = tables[table]
        qualified = f"source.{sql_identifier(schema)}.{sql_identifier(name)}"
        return connection.execute(query.format(table=qualified), parameters or []).df()


def sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def sql_identifier(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'
