"""Explain one node's children: XGBoost one-vs-all models, a multi-class router and SHAP.

The clusters come from UMAP + HDBSCAN on the node's rows, which say *where* the rows are but
not *why*. A gradient-boosted classifier trained on the original feature columns turns each
child into a question about those features: how well it can be told apart (held-out metrics),
which features separate it (SHAP drivers), and a router that sends new rows to a child
without re-running UMAP or HDBSCAN.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

# Imported with the module, never inside a step: shap keeps the exceptions of its optional
# imports (``shap.utils._general.import_errors``), and their tracebacks keep every calling
# frame alive for good, with the run's whole feature table (4 GB of a 10,000,000-row tree).
import shap
import xgboost
from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score
from sklearn.model_selection import train_test_split

from recursive_clusters.core.clustering import NOISE
from recursive_clusters.core.settings import ExplanationSettings

# Share of the training part kept aside to decide when boosting stops.
VALIDATION_SIZE = 0.2
# Boosting stops once 20 rounds together lower the validation log-loss by less than this:
# well-separated children would otherwise take all 300 rounds to shave off the last 0.001.
MIN_LOGLOSS_GAIN = 1e-3


class ExplanationError(ValueError):
    """A node cannot be explained (too few children or rows) or its saved models are unusable."""


@dataclass(frozen=True)
class Router:
    """What sends a row to one child of a node: the model, the columns it reads (by name, in
    its order) and the child each of its outputs is."""

    model: xgboost.XGBClassifier
    feature_columns: list[str]
    children: list[int]


@dataclass
class NodeModels:
    """The classifiers of one node: a router over its children and one model per child."""

    metrics: pd.DataFrame
    router_accuracy: float
    router: xgboost.XGBClassifier
    one_vs_all: dict[int, xgboost.XGBClassifier]
    feature_columns: list[str]

    @property
    def routing(self) -> Router:
        return Router(self.router, self.feature_columns, sorted(self.one_vs_all))


@dataclass
class NodeExplanation:
    """SHAP values of a node's one-vs-all models and the top drivers of each child."""

    shap_values: pd.DataFrame
    drivers: pd.DataFrame


def _classifier(random_state: int, n_jobs: int) -> xgboost.XGBClassifier:
    """Small, early-stopped boosted trees: this runs once per node of the tree. At XGBoost's
    default learning rate (0.3), 100 rounds hold what 300 rounds at 0.1 did; hard nodes (no
    early stop) cost a third."""
    stop = xgboost.callback.EarlyStopping(rounds=20, min_delta=MIN_LOGLOSS_GAIN, save_best=True)
    return xgboost.XGBClassifier(
        tree_method="hist",
        n_estimators=100,
        callbacks=[stop],
        max_depth=4,
        learning_rate=0.3,
        n_jobs=n_jobs,
        random_state=random_state,
    )


def _split(
    x: np.ndarray, y: np.ndarray, size: float, random_state: int, purpose: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A stratified split, so every child is present on both sides."""
    try:
        return train_test_split(x, y, test_size=size, stratify=y, random_state=random_state)
    except ValueError as exc:
        sizes = {int(k): int(n) for k, n in zip(*np.unique(y, return_counts=True), strict=True)}
        raise ExplanationError(
            f"Cannot split the node's rows for {purpose} (class sizes {sizes}): {exc}"
        ) from None


def _fit(
    x_train: np.ndarray, y_train: np.ndarray, random_state: int, n_jobs: int
) -> xgboost.XGBClassifier:
    """Fit with early stopping on a validation split carved from the training rows only,
    so the held-out test rows never influence the model."""
    x_fit, x_val, y_fit, y_val = _split(
        x_train, y_train, VALIDATION_SIZE, random_state, "early-stopping validation"
    )
    model = _classifier(random_state, n_jobs)
    model.fit(x_fit, y_fit, eval_set=[(x_val, y_val)], verbose=False)
    return model


def _child_metrics(
    child: int, index: int, model: xgboost.XGBClassifier, split: tuple[np.ndarray, ...]
) -> dict[str, float | int]:
    """Held-out one-vs-all scores at the 0.5 threshold."""
    y_all, y_train, x_test, y_test = split
    truth = y_test == index
    score = model.predict_proba(x_test)[:, 1]
    predicted = score >= 0.5
    return {
        "child": child,
        "n_rows": int(np.sum(y_all == index)),
        "n_train": int(np.sum(y_train == index)),
        "n_test": int(np.sum(truth)),
        "roc_auc": float(roc_auc_score(truth, score)) if 0 < truth.sum() < len(truth) else np.nan,
        "precision": float(precision_score(truth, predicted, zero_division=0)),
        "recall": float(recall_score(truth, predicted, zero_division=0)),
        "f1": float(f1_score(truth, predicted, zero_division=0)),
    }


def float32_rows(features: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
    """The rows at positions ``rows`` as the float32 matrix the classifiers read."""
    return features.iloc[rows].to_numpy(dtype=np.float32)


def _shap_table(
    model: xgboost.XGBClassifier,
    child: int,
    rows_of: Callable[[np.ndarray], np.ndarray],
    is_child: np.ndarray,
    row_ids: np.ndarray,
    columns: list[str],
    per_child: int,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """SHAP values of one one-vs-all model on a balanced sample: the child's rows and as many
    of the other rows, so both sides of the decision are explained."""
    inside = np.flatnonzero(is_child)
    outside = np.flatnonzero(~is_child)
    n_inside = min(per_child, len(inside))
    sample = np.concatenate(
        [
            rng.choice(inside, size=n_inside, replace=False),
            rng.choice(outside, size=min(n_inside, len(outside)), replace=False),
        ]
    )
    x = rows_of(sample)
    values = np.asarray(shap.TreeExplainer(model).shap_values(x), dtype=float)
    n_features = len(columns)
    return pd.DataFrame(
        {
            "row": np.repeat(row_ids[sample], n_features).astype(np.int64),
            "child": child,
            "feature": np.tile(np.asarray(columns, dtype=object), len(sample)),
            "value": values.reshape(-1),
            "feature_value": x.astype(float).reshape(-1),
        }
    )


def _drivers(shap_values: pd.DataFrame, top_k: int) -> pd.DataFrame:
    """The features with the largest mean |SHAP| per child, with the direction in which they
    push toward it. Features that never contribute (mean |SHAP| of 0) are not drivers."""
    rows = []
    for (child, feature), group in shap_values.groupby(["child", "feature"], sort=True):
        values, feature_values = group["value"].to_numpy(), group["feature_value"].to_numpy()
        varies = np.std(values) > 0 and np.std(feature_values) > 0
        correlation = np.corrcoef(feature_values, values)[0, 1] if varies else 0.0
        rows.append(
            {
                "child": int(child),
                "feature": str(feature),
                "mean_abs_shap": float(np.mean(np.abs(values))),
                "direction": "higher" if correlation > 0 else "lower",
            }
        )
    table = pd.DataFrame(rows, columns=["child", "feature", "mean_abs_shap", "direction"])
    table = table[table["mean_abs_shap"] > 0].sort_values(
        ["child", "mean_abs_shap", "feature"], ascending=[True, False, True], kind="stable"
    )
    table = table.groupby("child", sort=True).head(top_k).copy()
    table.insert(1, "rank", table.groupby("child").cumcount() + 1)
    return table.reset_index(drop=True)


def _training_rows(
    features: pd.DataFrame, labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Non-noise rows, as float32, with their child labels; checks there is something to
    separate. Noise rows (label -1) are left out of training, evaluation and SHAP: noise is
    not a cluster, so there is nothing to learn about it. New rows that fit no child well are
    handled by ``predict``'s confidence threshold instead."""
    labels = np.asarray(labels)
    if len(features) != len(labels):
        raise ExplanationError(
            f"features ({len(features)}) and labels ({len(labels)}) must have one entry per row"
        )
    keep = labels != NOISE
    children = sorted(int(k) for k in np.unique(labels[keep]))
    if len(children) < 2:
        found = "no children" if not children else f"a single child ({children[0]})"
        raise ExplanationError(f"The node has {found}: nothing to separate.")
    counts = {k: int(np.sum(labels == k)) for k in children}
    too_small = [k for k, n in counts.items() if n < 2]
    if too_small:
        raise ExplanationError(
            f"Child {too_small[0]} has {counts[too_small[0]]} row: at least 2 are needed "
            "to split it between training and test."
        )
    return keep, labels[keep], children


def train_classifiers(
    features: pd.DataFrame,
    labels: np.ndarray,
    settings: ExplanationSettings,
    random_state: int,
    *,
    n_jobs: int = 1,
) -> NodeModels:
    """Train the router and one one-vs-all model per child on the ORIGINAL feature columns,
    scored on stratified held-out rows."""
    keep, kept_labels, children = _training_rows(features, labels)
    positions = np.flatnonzero(keep)
    # Classes are the children's positions, so the router's outputs follow `children`.
    y = np.searchsorted(children, kept_labels)
    # Split and sample row positions, then read only those rows: the same rows as splitting
    # the values themselves, without a copy of the node's table (10 million rows: 2 GB).
    train, test, y_train, y_test = _split(positions, y, settings.test_size, random_state, "testing")
    if len(y_train) > settings.max_training_rows:  # a stratified sample bounds the cost
        train, _, y_train, _ = train_test_split(
            train,
            y_train,
            train_size=settings.max_training_rows,
            stratify=y_train,
            random_state=random_state,
        )
    x_train, x_test = float32_rows(features, train), float32_rows(features, test)
    router = _fit(x_train, y_train, random_state, n_jobs)
    router_accuracy = float(np.mean(router.predict(x_test) == y_test))
    one_vs_all: dict[int, xgboost.XGBClassifier] = {}
    metrics = []
    for index, child in enumerate(children):
        model = _fit(x_train, (y_train == index).astype(int), random_state, n_jobs)
        one_vs_all[child] = model
        metrics.append(_child_metrics(child, index, model, (y, y_train, x_test, y_test)))
    return NodeModels(
        metrics=pd.DataFrame(metrics),
        router_accuracy=router_accuracy,
        router=router,
        one_vs_all=one_vs_all,
        feature_columns=[str(c) for c in features.columns],
    )


def explain_with_shap(
    models: NodeModels,
    features: pd.DataFrame,
    labels: np.ndarray,
    row_ids: np.ndarray,
    settings: ExplanationSettings,
    random_state: int,
) -> NodeExplanation:
    """SHAP values of each one-vs-all model on a bounded, balanced sample, and the drivers."""
    keep, kept_labels, children = _training_rows(features, labels)
    if len(row_ids) != len(labels):
        raise ExplanationError(f"row_ids ({len(row_ids)}) must have one entry per row")
    positions = np.flatnonzero(keep)
    ids = np.asarray(row_ids)[keep]
    rng = np.random.default_rng(random_state)
    shap_values = pd.concat(
        [
            _shap_table(
                models.one_vs_all[child],
                child,
                lambda sample: float32_rows(features, positions[sample]),
                kept_labels == child,
                ids,
                models.feature_columns,
                settings.shap_sample_per_child,
                rng,
            )
            for child in children
        ],
        ignore_index=True,
    )
    return NodeExplanation(shap_values=shap_values, drivers=_drivers(shap_values, settings.top_k))
