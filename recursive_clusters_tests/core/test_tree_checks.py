"""The checks of a finished tree: WARN flags it, ERROR keeps it from being published."""

import pandas as pd

from recursive_clusters.core.settings import ChecksSettings
from recursive_clusters.core.tree_checks import blocking_failures, tree_checks

RECORDS = {
    "root": {"split_accepted": True, "child_stability": {"0": 0.95, "1": 0.55}},
    "root.0": {"split_accepted": False, "child_stability": {"0": 0.1}},  # a leaf: not counted
}


def _assignments(noise_share: float, n: int = 100) -> pd.DataFrame:
    noise = int(noise_share * n)
    return pd.DataFrame({"is_noise": [True] * noise + [False] * (n - noise)})


def _by_name(outcomes):
    return {outcome.name: outcome for outcome in outcomes}


def test_a_good_tree_passes_and_a_weak_child_only_warns():
    outcomes = _by_name(
        tree_checks(_assignments(0.05), RECORDS, [0.99, 0.97], 0.95, None, ChecksSettings())
    )
    assert outcomes["noise_share"].passed and outcomes["median_roc_auc"].passed
    assert outcomes["predict_agreement"].passed
    assert outcomes["ari_vs_previous"].passed and outcomes["ari_vs_previous"].value is None
    weakest = outcomes["weakest_child_stability"]
    assert not weakest.passed and weakest.severity == "WARN" and weakest.value == 0.55
    assert not blocking_failures(list(outcomes.values()))


def test_error_thresholds_block_publishing_and_name_the_figure():
    outcomes = tree_checks(_assignments(0.6), RECORDS, [0.55, 0.5], 0.3, 0.2, ChecksSettings())
    blocking = {o.name for o in blocking_failures(outcomes)}
    assert blocking == {"noise_share", "median_roc_auc", "predict_agreement"}
    assert "60.0% of rows are noise" in _by_name(outcomes)["noise_share"].description
    changed = _by_name(outcomes)["ari_vs_previous"]
    assert not changed.passed and changed.severity == "WARN"  # a big change is never an ERROR
