"""The watched batch source: a folder of files or a DuckDB table with a batch column."""

import duckdb
import pandas as pd
import pytest

from recursive_clusters.core.data import InputError
from recursive_clusters.core.settings import (
    BatchSettings,
    InputSettings,
    SettingsError,
    parse_settings,
)
from recursive_clusters.io.batches import list_batches, load_batch, with_batches

ROWS = pd.DataFrame({"id": ["a", "b"], "x": [1.0, 2.0], "segment": ["s1", "s2"]})


def test_a_folder_lists_files_in_name_order_but_not_files_being_copied(tmp_path):
    ROWS.to_parquet(tmp_path / "2026-11-02.parquet")
    ROWS.to_csv(tmp_path / "2026-11-01.csv", index=False)
    ROWS.to_csv(tmp_path / "_2026-11-03.csv", index=False)  # still being copied in
    ROWS.to_csv(tmp_path / ".partial.csv", index=False)
    (tmp_path / "notes.txt").write_text("not a batch")
    settings = BatchSettings(path=str(tmp_path))
    assert list_batches(settings) == ["2026-11-01.csv", "2026-11-02.parquet"]
    batch = load_batch(settings, "2026-11-01.csv", "id")
    assert batch["id"].tolist() == ["a", "b"]  # ids read as the tree reads them
    with pytest.raises(InputError, match="not a file name"):
        load_batch(settings, "../2026-11-01.csv", "id")


def test_a_duckdb_table_lists_the_values_of_its_batch_column(tmp_path):
    path = tmp_path / "events.duckdb"
    with duckdb.connect(str(path)) as connection:
        connection.execute(
            'CREATE TABLE "new rows" AS SELECT * FROM (VALUES '
            "('a', 1.0, DATE '2026-11-01'), ('b', 2.0, DATE '2026-11-02'), "
            "('c', 3.0, DATE '2026-11-02'), ('d', 4.0, NULL)) AS t(id, x, day)"
        )
    settings = BatchSettings(path=str(path), table="new rows", batch_column="day")
    assert list_batches(settings) == ["2026-11-01", "2026-11-02"]
    assert load_batch(settings, "2026-11-02", "id")["id"].tolist() == ["b", "c"]
    missing = BatchSettings(path=str(path), table="nope", batch_column="day")
    with pytest.raises(InputError, match="batches.table"):
        list_batches(missing)


def test_a_duckdb_source_needs_its_table_and_batch_column():
    with pytest.raises(SettingsError, match="batches.table and batches.batch_column"):
        parse_settings({"batches": {"path": "events.duckdb"}})


def test_a_source_that_is_neither_folder_nor_duckdb_is_named(tmp_path):
    with pytest.raises(InputError, match="neither a folder"):
        list_batches(BatchSettings(path=str(tmp_path / "missing")))


def test_a_new_tree_takes_the_input_plus_every_batch(tmp_path):
    ROWS.assign(id=["c", "d"]).drop(columns="segment").to_csv(tmp_path / "1.csv", index=False)
    pd.DataFrame({"id": ["e"], "x": [5.0], "segment": [7]}).to_csv(tmp_path / "2.csv", index=False)
    settings = InputSettings(path="input.parquet", id_column="id", profile_columns=["segment"])
    rows, names = with_batches(ROWS, BatchSettings(path=str(tmp_path)), settings)
    assert names == ["1.csv", "2.csv"]
    assert rows["id"].tolist() == ["a", "b", "c", "d", "e"]
    assert rows["segment"].isna().tolist()[2:] == [True, True, False]  # missing profile
    assert rows["segment"].iloc[4] == "7"  # a CSV code stays text


def test_a_batch_without_a_feature_column_of_the_input_is_refused(tmp_path):
    pd.DataFrame({"id": ["c"], "y": [1.0]}).to_csv(tmp_path / "1.csv", index=False)
    with pytest.raises(InputError, match=r"batch '1.csv' lacks .*\['x', 'segment'\]"):
        with_batches(ROWS, BatchSettings(path=str(tmp_path)), InputSettings(id_column="id"))


def test_an_empty_batch_is_refused_naming_it(tmp_path):
    ROWS.iloc[:0].to_parquet(tmp_path / "empty.parquet")
    with pytest.raises(InputError, match="'empty.parquet'.*no rows"):
        load_batch(BatchSettings(path=str(tmp_path)), "empty.parquet", "id")
