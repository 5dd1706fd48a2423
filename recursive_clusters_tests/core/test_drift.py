"""Drift of a batch against the training rows: quiet at every batch size, loud on a shift."""

import numpy as np
import pandas as pd
import pytest

from recursive_clusters.core.drift import (
    DriftBaseline,
    fit_baseline,
    measure_drift,
    psi,
    top_drivers,
)
from recursive_clusters.core.settings import DriftSettings

SETTINGS = DriftSettings()
NODES = np.array(["root.0", "root.1", "root.2.0", "root.2.1"])
SHARES = [0.4, 0.3, 0.2, 0.1]


def _rows(n: int, seed: int, shares=SHARES, shift: float = 0.0, unsure: float = 0.05):
    """Routed rows (node, confident) and their features, from one distribution."""
    rng = np.random.default_rng(seed)
    routed = pd.DataFrame(
        {"path": rng.choice(NODES, size=n, p=shares), "confident": rng.random(n) > unsure}
    )
    features = pd.DataFrame(
        {"f0": rng.normal(shift, 1, n), "f1": rng.exponential(1, n), "pixel": rng.random(n) > 0.8}
    ).astype(float)
    return routed, features


@pytest.fixture(scope="module")
def baseline() -> DriftBaseline:
    routed, features = _rows(20_000, seed=0)
    return fit_baseline(routed, features, ["f0", "f1", "pixel"])


def test_psi_is_zero_on_equal_histograms_and_grows_with_the_shift():
    assert psi([10, 20, 30], [10, 20, 30]) == pytest.approx(0.0)
    assert psi([10, 20, 30], [30, 20, 10]) > psi([10, 20, 30], [12, 20, 28]) > 0


@pytest.mark.parametrize("n_rows", [100, 300, 1_000, 10_000])
def test_batches_of_the_training_distribution_do_not_drift_at_any_size(baseline, n_rows):
    alarms = [
        measure_drift(baseline, *_rows(n_rows, seed=seed), SETTINGS).drifting
        for seed in range(1, 101)
    ]
    assert sum(alarms) <= 5  # false alarms in at most 5% of batches (each figure: 0.5%)


def test_a_new_kind_of_row_drifts_on_every_figure(baseline):
    routed, features = _rows(1_000, seed=1, shares=[0.1, 0.1, 0.1, 0.7], shift=2.0, unsure=0.4)
    report = measure_drift(baseline, routed, features, SETTINGS)
    assert report.drifting
    node, unsure, driver = report.reasons
    assert node.startswith("node shares moved") and driver.startswith("driver 'f0' moved")
    assert "not confidently placed" in unsure
    assert report.driver == "f0"
    assert report.as_dict()["drifting"] is True


def test_the_baseline_round_trips_and_constant_like_columns_have_few_bins(baseline):
    assert DriftBaseline.from_json(baseline.to_json()) == baseline
    assert len(baseline.driver_edges["pixel"]) == 2  # 0/1 pixels: two distinct deciles
    assert sum(baseline.driver_counts["f0"]) == baseline.n_rows


def test_an_empty_batch_is_refused(baseline):
    routed, features = _rows(0, seed=1)
    with pytest.raises(ValueError, match="no rows"):
        measure_drift(baseline, routed, features, SETTINGS)


def test_top_drivers_sum_over_children():
    drivers = pd.DataFrame(
        {
            "child": [0, 0, 1, 1],
            "feature": ["a", "b", "b", "c"],
            "mean_abs_shap": [0.5, 0.3, 0.3, 0.1],
        }
    )
    assert top_drivers(drivers, 2) == ["b", "a"]
    assert top_drivers(drivers, 0) == []


def test_a_batch_below_min_rows_is_scored_but_not_judged(baseline):
    routed, features = _rows(50, seed=1, shares=[0.0, 0.0, 0.0, 1.0], shift=3.0)
    report = measure_drift(baseline, routed, features, SETTINGS)
    assert not report.judged and not report.drifting
    assert report.node_psi > report.node_psi_allowed  # the figures are still there
