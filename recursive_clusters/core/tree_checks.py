"""Is a finished tree any good? The figures a team checks before trusting a new tree.

Each check compares one figure of the tree with thresholds from ``ChecksSettings``: below the
WARN threshold the check fails with severity WARN (the tree is published and flagged); below
the ERROR threshold (where one exists) it fails with severity ERROR and the tree is not
published, so the previous tree stays current. Pure pandas: the Dagster asset reports the
outcomes as asset checks, and tests and benchmarks can call it alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from recursive_clusters.core.settings import ChecksSettings

WARN, ERROR = "WARN", "ERROR"


@dataclass(frozen=True)
class CheckOutcome:
    """One check of a tree: its figure, whether it passed, and how bad a failure is."""

    name: str
    value: float | None  # None: not applicable to this tree (e.g. no previous tree)
    passed: bool
    severity: str  # of the failure (WARN or ERROR); WARN when it passed
    description: str


def _lower_is_worse(
    name: str, value: float | None, warn: float, error: float | None, what: str
) -> CheckOutcome:
    if value is None or math.isnan(value):
        return CheckOutcome(name, None, True, WARN, f"{what}: not applicable to this tree")
    if error is not None and value < error:
        return CheckOutcome(name, value, False, ERROR, f"{what} {value:.3f} < {error:g}")
    if value < warn:
        return CheckOutcome(name, value, False, WARN, f"{what} {value:.3f} < {warn:g}")
    return CheckOutcome(name, value, True, WARN, f"{what} {value:.3f} >= {warn:g}")


def _noise_check(noise: float, settings: ChecksSettings) -> CheckOutcome:
    warn, error = settings.max_noise_share_warn, settings.max_noise_share_error
    text = f"{noise:.1%} of rows are noise (WARN above {warn:.0%}, ERROR above {error:.0%})"
    if noise > error:
        return CheckOutcome("noise_share", noise, False, ERROR, text)
    return CheckOutcome("noise_share", noise, noise <= warn, WARN, text)


def weakest_child_stability(records: Mapping[str, Mapping]) -> float | None:
    """The lowest Jaccard of a child of any accepted split (None: no split was tested)."""
    values = [
        float(value)
        for record in records.values()
        if record.get("split_accepted")
        for value in (record.get("child_stability") or {}).values()
    ]
    return min(values) if values else None


def tree_checks(
    assignments: pd.DataFrame,
    records: Mapping[str, Mapping],
    roc_aucs: list[float],
    predict_agreement: float | None,
    ari_vs_previous: float | None,
    settings: ChecksSettings,
) -> list[CheckOutcome]:
    """Every check of one finished tree (``roc_aucs``: the held-out AUC of every one-vs-all
    model of every split node)."""
    noise = float(assignments["is_noise"].mean()) if len(assignments) else 0.0
    finite_aucs = [a for a in roc_aucs if not math.isnan(a)]
    return [
        _noise_check(noise, settings),
        _lower_is_worse(
            "weakest_child_stability",
            weakest_child_stability(records),
            settings.min_child_stability_warn,
            None,
            "lowest Jaccard of a child of an accepted split",
        ),
        _lower_is_worse(
            "median_roc_auc",
            float(np.median(finite_aucs)) if finite_aucs else None,
            settings.min_median_auc_warn,
            settings.min_median_auc_error,
            "median held-out ROC AUC of the one-vs-all classifiers",
        ),
        _lower_is_worse(
            "predict_agreement",
            predict_agreement,
            settings.min_predict_agreement_warn,
            settings.min_predict_agreement_error,
            "share of rows in a leaf that predict routes to the same leaf",
        ),
        _lower_is_worse(
            "ari_vs_previous",
            ari_vs_previous,
            settings.min_ari_vs_previous_warn,
            None,
            "ARI of the leaves with the previous tree's",
        ),
    ]


def blocking_failures(outcomes: list[CheckOutcome]) -> list[CheckOutcome]:
    """The failed ERROR checks: a tree with any is not published."""
    return [o for o in outcomes if not o.passed and o.severity == ERROR]
