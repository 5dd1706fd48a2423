"""Does a batch of new rows still fit the tree? Three figures against the training rows.

A tree is a model of the data it was grown on. New rows routed by its classifiers tell when
that model goes stale: (1) the shares of rows reaching each node move (population stability
index, PSI), (2) more rows than in training cannot be placed confidently (a kind of row the
tree never saw), (3) the features that define the clusters (the root's top SHAP drivers)
change their distribution. Each figure is compared with a threshold plus the sampling noise
of the batch's size, so a small batch from the same distribution does not raise an alarm.
Pure numpy/pandas: the Dagster asset reports the result as an asset check.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from recursive_clusters.core.settings import DriftSettings

SMOOTHING = 0.5  # counts added to every bin, so an empty bin has a finite log ratio
DECILES = np.linspace(0.1, 0.9, 9)
NOISE_SDS = 3.0  # allowance: the expected sampling PSI plus this many of its standard deviations


def psi(expected_counts: np.ndarray, observed_counts: np.ndarray) -> float:
    """Population stability index between two histograms over the same bins."""
    expected = np.asarray(expected_counts, dtype=float) + SMOOTHING
    observed = np.asarray(observed_counts, dtype=float) + SMOOTHING
    p, q = expected / expected.sum(), observed / observed.sum()
    return float(np.sum((q - p) * np.log(q / p)))


def psi_sampling_noise(n_bins: int, n_expected: int, n_observed: int) -> float:
    """What PSI two samples of one distribution reach by chance: PSI is close to a chi-square
    statistic with ``n_bins - 1`` degrees of freedom scaled by ``1/n + 1/N``, so its mean
    plus ``NOISE_SDS`` standard deviations."""
    dof = max(n_bins - 1, 1)
    scale = 1 / max(n_observed, 1) + 1 / max(n_expected, 1)
    return (dof + NOISE_SDS * math.sqrt(2 * dof)) * scale


@dataclass(frozen=True)
class DriftBaseline:
    """The training rows as the routers place them: what a batch is compared with."""

    n_rows: int
    node_counts: dict[str, int]
    low_confidence_share: float
    driver_edges: dict[str, list[float]] = field(default_factory=dict)
    driver_counts: dict[str, list[int]] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> DriftBaseline:
        return cls(**json.loads(text))


def _bin_counts(values: np.ndarray, edges: list[float]) -> list[int]:
    bins = np.searchsorted(np.asarray(edges), values, side="right")
    return np.bincount(bins, minlength=len(edges) + 1).tolist()


def fit_baseline(routed: pd.DataFrame, features: pd.DataFrame, drivers: list[str]) -> DriftBaseline:
    """The baseline of training rows ``routed`` by ``predict_paths`` (their ``features``
    row for row), watching the distribution of each of ``drivers`` in training deciles."""
    edges = {
        column: np.unique(np.quantile(features[column].to_numpy(float), DECILES)).tolist()
        for column in drivers
    }
    return DriftBaseline(
        n_rows=len(routed),
        node_counts={str(k): int(v) for k, v in routed["path"].value_counts().items()},
        low_confidence_share=float((~routed["confident"]).mean()) if len(routed) else 0.0,
        driver_edges=edges,
        driver_counts={
            column: _bin_counts(features[column].to_numpy(float), column_edges)
            for column, column_edges in edges.items()
        },
    )


@dataclass(frozen=True)
class DriftReport:
    """The figures of one batch, each with the most it may reach, and the verdict."""

    n_rows: int
    node_psi: float
    node_psi_allowed: float
    low_confidence_share: float
    low_confidence_allowed: float
    driver_psi: float | None  # the largest over the watched drivers; None: none watched
    driver: str | None
    driver_psi_allowed: float | None
    reasons: list[str]

    @property
    def drifting(self) -> bool:
        return bool(self.reasons)

    def as_dict(self) -> dict:
        return {**asdict(self), "drifting": self.drifting}


def measure_drift(
    baseline: DriftBaseline,
    routed: pd.DataFrame,
    features: pd.DataFrame,
    settings: DriftSettings,
) -> DriftReport:
    """Compare a batch (``routed`` by the tree, its ``features`` row for row) with the
    training rows; every figure above its allowance is a reason the batch drifts."""
    n = len(routed)
    if n == 0:
        raise ValueError("a batch with no rows cannot be compared with the tree")
    nodes = sorted(set(baseline.node_counts) | set(routed["path"]))
    observed = routed["path"].value_counts()
    node_psi = psi(
        [baseline.node_counts.get(node, 0) for node in nodes],
        [int(observed.get(node, 0)) for node in nodes],
    )
    node_allowed = settings.max_leaf_psi + psi_sampling_noise(len(nodes), baseline.n_rows, n)
    reasons = []
    if node_psi > node_allowed:
        reasons.append(f"node shares moved: PSI {node_psi:.3f} > {node_allowed:.3f}")

    low_confidence = float((~routed["confident"]).mean())
    p = max(baseline.low_confidence_share, 1 / n)
    low_allowed = (
        baseline.low_confidence_share
        + settings.max_low_confidence_increase
        + NOISE_SDS * math.sqrt(p * (1 - p) / n)
    )
    if low_confidence > low_allowed:
        reasons.append(
            f"{low_confidence:.1%} of rows not confidently placed > {low_allowed:.1%} "
            f"(training rows: {baseline.low_confidence_share:.1%})"
        )

    worst, worst_psi, worst_allowed = None, None, None
    for column, edges in baseline.driver_edges.items():
        if column not in features.columns:
            continue
        counts = _bin_counts(features[column].to_numpy(float), edges)
        value = psi(baseline.driver_counts[column], counts)
        allowed = settings.max_driver_psi + psi_sampling_noise(len(counts), baseline.n_rows, n)
        if worst_psi is None or value - allowed > worst_psi - worst_allowed:
            worst, worst_psi, worst_allowed = column, value, allowed
    if worst_psi is not None and worst_psi > worst_allowed:
        reasons.append(f"driver {worst!r} moved: PSI {worst_psi:.3f} > {worst_allowed:.3f}")

    return DriftReport(
        n_rows=n,
        node_psi=node_psi,
        node_psi_allowed=node_allowed,
        low_confidence_share=low_confidence,
        low_confidence_allowed=low_allowed,
        driver_psi=worst_psi,
        driver=worst,
        driver_psi_allowed=worst_allowed,
        reasons=reasons,
    )


def top_drivers(drivers: pd.DataFrame, count: int) -> list[str]:
    """The ``count`` features with the largest mean |SHAP| summed over a node's children."""
    if count == 0 or drivers.empty:
        return []
    totals = drivers.groupby("feature")["mean_abs_shap"].sum()
    return totals.sort_values(ascending=False, kind="stable").index[:count].astype(str).tolist()
