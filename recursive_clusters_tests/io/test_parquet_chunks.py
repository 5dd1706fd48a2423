"""Big tables are written a row group at a time and sampled a row group at a time."""

import numpy as np
import pandas as pd

from recursive_clusters.io import store
from recursive_clusters.io.store import read_parquet_rows, write_parquet


def test_a_table_written_in_chunks_reads_back_whole_and_by_rows(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "PARQUET_CHUNK_ROWS", 100)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "id": [f"u{i}" for i in range(1_050)],
            "x": rng.normal(size=1_050),
            "leaf": pd.Categorical(rng.choice(["a", "b"], size=1_050)),
        }
    )
    target = tmp_path / "table.parquet"
    write_parquet(target, frame)
    import pyarrow.parquet as pq

    assert pq.ParquetFile(target).num_row_groups == 11
    pd.testing.assert_frame_equal(pd.read_parquet(target), frame)
    rows = np.array([0, 99, 100, 555, 1_049])
    pd.testing.assert_frame_equal(
        read_parquet_rows(target, rows), frame.iloc[rows].reset_index(drop=True)
    )
