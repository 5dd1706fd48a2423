"""The drift demo's data: a first tree that never saw one digit, then two incoming batches.

Batch 1 comes from the same digits as the tree (quiet); batch 2 brings the held-out digit
(drift), which re-clusters, so a new user sees the whole loop on offline data.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from recursive_clusters.io.tables import load_demo_digits

HELD_OUT_DIGIT = 9
TREE_SHARE = 0.8  # of the other digits' rows; the rest arrive in the two batches


def _split() -> tuple:
    digits = load_demo_digits()
    others = digits[digits["digit"] != HELD_OUT_DIGIT].sample(frac=1.0, random_state=0)
    cut = int(TREE_SHARE * len(others))
    later = others.iloc[cut:]
    return others.iloc[:cut], later.iloc[: len(later) // 2], later.iloc[len(later) // 2 :], digits


def write_drift_demo(directory: Path) -> dict:
    """Write the first tree's input and an empty batch folder; the settings to use."""
    tree_rows, _, _, _ = _split()
    batches = directory / "batches"
    batches.mkdir(parents=True, exist_ok=True)
    for old in batches.iterdir():
        old.unlink()
    tree_rows.to_parquet(directory / "input.parquet", index=False)
    return {
        "input": {
            "path": str(directory / "input.parquet"),
            "id_column": "digit_id",
            "profile_columns": ["digit"],
            "image_shape": [8, 8],
        },
        "batches": {"path": str(batches)},
        "drift": {"consecutive_batches": 1},  # the demo re-clusters on its one drifting batch
    }


def write_demo_batches(directory: Path) -> tuple[list[str], np.ndarray]:
    """Write the two batches (named after now, so a demo run again adds new ones); their
    names and the ids of the held-out digit's rows."""
    _, same, mixed, digits = _split()
    nines = digits[digits["digit"] == HELD_OUT_DIGIT]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    names = [f"{stamp}-1-same-digits.parquet", f"{stamp}-2-with-nines.parquet"]
    same.to_parquet(directory / "batches" / names[0], index=False)
    pd.concat([mixed, nines]).to_parquet(directory / "batches" / names[1], index=False)
    return names, nines["digit_id"].to_numpy()
