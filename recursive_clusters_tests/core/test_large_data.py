"""What makes a 10-million-row tree fit one box: placement past the fit sample in chunks,
progress lines with the time left, the memory estimate that refuses a tree too big, and
the planted data written a chunk at a time."""

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from recursive_clusters.core.clustering import cluster_embedding
from recursive_clusters.core.embedding import fit_layout, placement_method
from recursive_clusters.core.memory import (
    GIB,
    MemoryBudgetError,
    estimate_peak_bytes,
    require_memory,
)
from recursive_clusters.core.progress import RowProgress
from recursive_clusters.core.settings import EmbeddingSettings, Settings
from recursive_clusters.core.synthetic import planted_hierarchy, planted_hierarchy_chunks


@pytest.fixture(scope="module")
def planted_rows():
    matrix, tops, _ = planted_hierarchy(4_000, 10, 4, 1, 20.0, 0.0, 0)
    return matrix, tops


def test_auto_placement_is_the_transform_up_to_its_threshold_and_neighbours_above():
    settings = EmbeddingSettings()
    assert placement_method(settings, settings.neighbour_placement_above) == "transform"
    assert placement_method(settings, settings.neighbour_placement_above + 1) == "neighbours"
    chosen = EmbeddingSettings(placement="transform")
    assert placement_method(chosen, 10**8) == "transform"


@pytest.mark.parametrize("placement", ["transform", "neighbours"])
def test_rows_past_the_fit_sample_are_placed_in_their_cluster_and_counted(planted_rows, placement):
    """Rows placed on a layout fitted on 1,000 of 4,000 rows land in their own planted
    cluster, by either method, the same for the same seed; every placed row is counted."""
    matrix, tops = planted_rows
    settings = EmbeddingSettings(fit_sample_size=1_000, placement=placement)
    counted = []
    layout = fit_layout(matrix, settings, seed=3, placed=counted.append)
    assert sum(counted) == 3_000
    clusters = cluster_embedding(layout.coordinates, Settings().clustering, seed=3)
    assert adjusted_rand_score(tops, clusters.labels) > 0.95
    again = fit_layout(matrix, settings, seed=3)
    assert np.array_equal(layout.coordinates, again.coordinates)


def test_progress_reports_rows_done_and_the_time_left_then_the_total():
    now = [0.0]
    lines = []
    progress = RowProgress("level 1: rows placed", 1_000_000, lines.append, 10, lambda: now[0])
    now[0] = 5.0
    progress.advance(100_000)  # not due yet
    now[0] = 20.0
    progress.advance(150_000)
    now[0] = 80.0
    progress.advance(750_000)
    assert lines == [
        "level 1: rows placed: 250,000 of 1,000,000 rows (25%), 20 s so far, about 60 s left",
        "level 1: rows placed: 1,000,000 of 1,000,000 rows (100%) in 80 s",
    ]


def test_time_between_stretches_of_work_is_not_counted_in_the_estimate():
    """Level 2 places each node's rows after that node's UMAP fit: the fits are not
    placement, and counting them made the first estimate of a 1,000,000-row level 85 min
    where the placement itself needed a fraction of that."""
    now = [0.0]
    lines = []
    progress = RowProgress("level 2", 400, lines.append, 0, lambda: now[0])
    now[0] = 100.0  # the first node's fit
    progress.advance(0)
    now[0] = 110.0
    progress.advance(100)
    now[0] = 300.0  # the second node's fit
    progress.advance(0)
    now[0] = 310.0
    progress.advance(100)
    assert lines[-1] == "level 2: 200 of 400 rows (50%), 20 s so far, about 20 s left"


def test_a_tree_too_big_for_the_memory_is_refused_naming_the_estimate_and_the_setting():
    estimate = estimate_peak_bytes(10_000_000, 50)
    require_memory(10_000_000, 50, estimate, "big.parquet")  # exactly fits: accepted
    with pytest.raises(MemoryBudgetError) as refused:
        require_memory(10_000_000, 50, 8 * GIB, "big.parquet")
    message = str(refused.value)
    assert f"{estimate / GIB:.1f} GB" in message and "8.0 GB" in message, message
    assert "big.parquet" in message and "10,000,000 rows x 50" in message, message
    assert "input.feature_columns" in message and "memory_limit_gb" in message, message


def test_the_estimate_grows_with_rows_times_columns():
    assert estimate_peak_bytes(2_000_000, 50) > estimate_peak_bytes(1_000_000, 50)
    assert estimate_peak_bytes(1_000_000, 100) > estimate_peak_bytes(1_000_000, 50)


def test_planted_chunks_are_the_whole_table_in_pieces():
    whole = planted_hierarchy(10_007, 20, 4, 3, 20.0, 4.5, 0)
    chunks = list(planted_hierarchy_chunks(10_007, 20, 4, 3, 20.0, 4.5, 0, chunk_rows=999))
    assert len(chunks) == 11
    for part, full in zip(zip(*chunks, strict=True), whole, strict=True):
        assert np.array_equal(np.concatenate(part), full)


def test_weighted_mean_positions_are_umaps_initial_placement():
    """The vectorised placement gives what umap-learn's own loop gives, rows coinciding with
    a sampled row (membership 1) included."""
    import scipy.sparse as sparse
    from umap.umap_ import init_graph_transform

    from recursive_clusters.core.embedding import weighted_mean_positions

    rng = np.random.default_rng(0)
    n_rows, n_sampled, k = 500, 80, 15
    values = rng.uniform(0.01, 0.99, n_rows * k).astype(np.float32)
    values[::37] = 1.0
    memberships = sparse.csr_matrix(
        (values, (np.repeat(np.arange(n_rows), k), rng.integers(0, n_sampled, n_rows * k))),
        shape=(n_rows, n_sampled),
    )
    memberships.sum_duplicates()
    sampled = rng.normal(size=(n_sampled, 2)).astype(np.float32)
    expected = init_graph_transform(memberships, sampled)
    assert np.allclose(weighted_mean_positions(memberships, sampled), expected, atol=1e-5)
