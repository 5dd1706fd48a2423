"""Whether a tree fits in memory, decided from the table's shape before anything is read.

A tree that would run out of memory an hour in, killed by the kernel, is refused at once
instead, naming its estimate and what lowers it.
"""

from __future__ import annotations

GIB = 2**30
# An upper estimate of the peak resident memory of `recursive-clusters run`: imports, Dagster
# and the UMAP fit on its 50,000-row sample (fixed); the copies of the table alive at once at
# the worst moment, three of 8-byte values (reading a table: the frame and the matrix being
# built from it; a level: the features the classifiers read, the matrix, a float32 copy for
# the split test's null); and per row the ids, labels, coordinates and leaf paths. Checked
# against measured peaks (docs/benchmarks.md#large-tables): 10,000,000 x 50 planted rows
# estimated 16.4 GB, the whole tree measured 13.5 GB (level 1; level 2 in two workers side
# by side at most 13.0 GB); 1,000,000 x 50: estimated 3.0 GB.
FIXED_BYTES = 1.5 * GIB
BYTES_PER_VALUE = 24.0
BYTES_PER_ROW = 400.0


class MemoryBudgetError(ValueError):
    """The tree's estimated peak memory exceeds the memory it may use."""


def estimate_peak_bytes(n_rows: int, n_features: int) -> float:
    """The estimated peak resident memory of growing a tree of ``n_rows`` x ``n_features``."""
    return FIXED_BYTES + BYTES_PER_VALUE * n_rows * n_features + BYTES_PER_ROW * n_rows


def require_memory(n_rows: int, n_features: int, limit_bytes: float, source: str) -> None:
    """Refuse a tree whose estimated peak exceeds ``limit_bytes``, naming the estimate, the
    limit and the settings that change either."""
    needed = estimate_peak_bytes(n_rows, n_features)
    if needed <= limit_bytes:
        return
    fitting_rows = max(
        0.0, (limit_bytes - FIXED_BYTES) / (BYTES_PER_VALUE * n_features + BYTES_PER_ROW)
    )
    raise MemoryBudgetError(
        f"{source}: a tree of {n_rows:,} rows x {n_features} feature columns is estimated to "
        f"peak at {needed / GIB:.1f} GB of memory, more than the {limit_bytes / GIB:.1f} GB it "
        f"may use (memory_limit_gb; default: this machine's memory). Refused before starting; "
        f"nothing was changed. The estimate grows with rows x columns: cluster on fewer "
        f"columns (input.feature_columns) or fewer rows (about {int(fitting_rows):,} fit), or "
        "raise memory_limit_gb on a machine with more memory."
    )
