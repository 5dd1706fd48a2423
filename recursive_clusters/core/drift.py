"""Does a batch of new rows still fit the tree? Three figures against the training rows.

A tree is a model of the data it was grown on. New rows routed by its classifiers tell when
that model goes stale: (1) the shares of rows reaching each node move (population stability
index, PSI), (2) more rows than in training cannot be placed confidently (a kind of row the
tree never saw), (3) the features that define the clusters (the root's top SHAP drivers)
change their distribution. Each figure is compared with its threshold or, when larger, with
what chance alone reaches at the batch's size, so a small batch from the same distribution
does not raise an alarm while a large one is held to the threshold.
Pure numpy/pandas: the Dagster asset reports the result as an asset check.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from scipy.stats import binom

from recursive_clusters.core.settings import DriftSettings

SMOOTHING = 0.5  # counts added to every bin, so an empty bin has a finite log ratio
DECILES = np.linspace(0.1, 0.9, 9)
CHANCE_DRAWS = 500  # simulated same-distribution batches per allowance
CHANCE_QUANTILE = 0.995  # the allowance: what chance alone exceeds once in 200 batches


def _psi_rows(expected_counts: np.ndarray, observed_counts: np.ndarray) -> np.ndarray:
    expected = np.asarray(expected_counts, dtype=float) + SMOOTHING
    observed = np.asarray(observed_counts, dtype=float) + SMOOTHING
    p = expected / expected.sum()
    q = observed / observed.sum(axis=-1, keepdims=True)
    return np.sum((q - p) * np.log(q / p), axis=-1)


def psi(expected_counts, observed_counts) -> float:
    """Population stability index between two histograms over the same bins."""
    return float(_psi_rows(expected_counts, observed_counts))


def psi_by_chance(expected_counts, n_observed: int) -> float:
    """The PSI that batches of ``n_observed`` rows drawn from the expected histogram itself
    exceed only by chance (``CHANCE_QUANTILE``; seeded, so the same figures give the same
    allowance). Small batches and many bins reach high PSI without any drift."""
    expected = np.asarray(expected_counts, dtype=float) + SMOOTHING
    draws = np.random.default_rng(0).multinomial(
        n_observed, expected / expected.sum(), size=CHANCE_DRAWS
    )
    return float(np.quantile(_psi_rows(expected_counts, draws), CHANCE_QUANTILE))


def share_by_chance(share: float, n_observed: int) -> float:
    """The share of ``n_observed`` rows that chance exceeds only rarely when each row has
    probability ``share`` (binomial ``CHANCE_QUANTILE``)."""
    return float(binom.ppf(CHANCE_QUANTILE, n_observed, share)) / n_observed


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
    judged: bool  # False: fewer rows than drift.min_rows, figures shown but no verdict
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
    judged = n >= settings.min_rows
    observed = routed["path"].value_counts()  # once: iterating a million paths costs seconds
    nodes = sorted(set(baseline.node_counts) | set(observed.index))
    expected = [baseline.node_counts.get(node, 0) for node in nodes]
    node_allowed = max(settings.max_leaf_psi, psi_by_chance(expected, n))
    node_psi = psi(expected, [int(observed.get(node, 0)) for node in nodes])
    reasons = []
    if node_psi > node_allowed:
        reasons.append(f"node shares moved: PSI {node_psi:.3f} > {node_allowed:.3f}")

    low_confidence = float((~routed["confident"]).mean())
    low_allowed = max(
        baseline.low_confidence_share + settings.max_low_confidence_increase,
        share_by_chance(baseline.low_confidence_share, n),
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
        allowed = max(settings.max_driver_psi, psi_by_chance(baseline.driver_counts[column], n))
        if worst_psi is None or value - allowed > worst_psi - worst_allowed:
            worst, worst_psi, worst_allowed = column, value, allowed
    if worst_psi is not None and worst_psi > worst_allowed:
        reasons.append(f"driver {worst!r} moved: PSI {worst_psi:.3f} > {worst_allowed:.3f}")

    return DriftReport(
        n_rows=n,
        judged=judged,
        node_psi=node_psi,
        node_psi_allowed=node_allowed,
        low_confidence_share=low_confidence,
        low_confidence_allowed=low_allowed,
        driver_psi=worst_psi,
        driver=worst,
        driver_psi_allowed=worst_allowed,
        reasons=reasons if judged else [],
    )


def top_drivers(drivers: pd.DataFrame, count: int) -> list[str]:
    """The ``count`` features with the largest mean |SHAP| summed over a node's children."""
    if count == 0 or drivers.empty:
        return []
    totals = drivers.groupby("feature")["mean_abs_shap"].sum()
    return totals.sort_values(ascending=False, kind="stable").index[:count].astype(str).tolist()
