"""One-vs-all models, router and SHAP tables of a node, and their JSON round trip."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_blobs

from recursive_clusters.core.explain import (
    ExplanationError,
    NodeExplanation,
    NodeModels,
    explain_with_shap,
    train_classifiers,
)
from recursive_clusters.core.settings import ExplanationSettings
from recursive_clusters.io.models import load_node_models, load_router, save_node_models

SETTINGS = ExplanationSettings(shap_sample_per_child=40, top_k=3)


@pytest.fixture(scope="module")
def blobs() -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    x, y = make_blobs(n_samples=300, n_features=20, centers=4, cluster_std=1.0, random_state=0)
    y = y.astype(np.int64)
    y[:12] = -1  # some noise rows, which must be left out
    features = pd.DataFrame(x, columns=[f"f{i}" for i in range(20)])
    return features, y, np.arange(300, dtype=np.int64) + 1000


@pytest.fixture(scope="module")
def models(blobs) -> NodeModels:
    features, labels, _ = blobs
    return train_classifiers(features, labels, SETTINGS, random_state=0)


@pytest.fixture(scope="module")
def explanation(models, blobs) -> NodeExplanation:
    features, labels, row_ids = blobs
    return explain_with_shap(models, features, labels, row_ids, SETTINGS, random_state=0)


def explain_node(features, labels, row_ids, settings, random_state) -> NodeExplanation:
    models = train_classifiers(features, labels, settings, random_state)
    return explain_with_shap(models, features, labels, row_ids, settings, random_state)


def test_metrics_one_row_per_child_with_high_auc(models, blobs):
    _, labels, _ = blobs
    metrics = models.metrics
    assert list(metrics.columns) == [
        "child", "n_rows", "n_train", "n_test", "roc_auc", "precision", "recall", "f1",
    ]  # fmt: skip
    assert metrics["child"].tolist() == [0, 1, 2, 3]
    for row in metrics.itertuples():
        assert row.n_rows == np.sum(labels == row.child)
        assert row.n_train + row.n_test == row.n_rows
    assert (metrics["roc_auc"] > 0.95).all()
    assert models.router_accuracy > 0.9
    assert sorted(models.one_vs_all) == [0, 1, 2, 3]


def test_big_nodes_train_on_a_stratified_sample_and_score_every_held_out_row():
    x, y = make_blobs(n_samples=4000, n_features=5, centers=3, random_state=1)
    features = pd.DataFrame(x, columns=[f"f{i}" for i in range(5)])
    settings = ExplanationSettings(max_training_rows=1000)
    metrics = train_classifiers(features, y.astype(np.int64), settings, random_state=0).metrics
    assert metrics["n_train"].sum() == 1000
    assert metrics["n_test"].sum() == 1000  # 25% of 4000, all of them
    shares = metrics["n_train"] / metrics["n_rows"]
    assert np.allclose(shares, 1000 / 4000, atol=0.01)  # every child keeps its share
    assert (metrics["roc_auc"] > 0.99).all()


def test_shap_table_covers_sampled_rows_of_each_child(explanation, models, blobs):
    _, labels, row_ids = blobs
    shap_values = explanation.shap_values
    assert list(shap_values.columns) == ["row", "child", "feature", "value", "feature_value"]
    assert set(shap_values["feature"]) == set(models.feature_columns)
    for child, table in shap_values.groupby("child"):
        rows = table["row"].unique()
        # the child's sample plus as many other rows, each with one value per feature
        assert len(rows) == 2 * SETTINGS.shap_sample_per_child
        assert len(table) == len(rows) * 20
        inside = np.isin(rows, row_ids[labels == child]).sum()
        assert inside == SETTINGS.shap_sample_per_child
    assert not np.isin(shap_values["row"], row_ids[labels == -1]).any()


def test_drivers_are_top_k_by_mean_abs_shap(explanation):
    drivers = explanation.drivers
    assert list(drivers.columns) == ["child", "rank", "feature", "mean_abs_shap", "direction"]
    assert set(drivers["direction"]) <= {"higher", "lower"}
    for child, table in drivers.groupby("child"):
        assert 1 <= len(table) <= SETTINGS.top_k
        assert table["rank"].tolist() == list(range(1, len(table) + 1))
        assert table["mean_abs_shap"].is_monotonic_decreasing
        shap_values = explanation.shap_values
        mine = shap_values[shap_values["child"] == child]
        best = mine.groupby("feature")["value"].apply(lambda v: v.abs().mean()).idxmax()
        assert table["feature"].iloc[0] == best


def test_direction_follows_the_planted_feature():
    rng = np.random.default_rng(1)
    labels = np.repeat([0, 1], 100)
    features = pd.DataFrame(
        {"signal": labels * 5.0 + rng.normal(size=200), "other": rng.normal(size=200)}
    )
    result = explain_node(features, labels, np.arange(200), SETTINGS, random_state=0)
    top = result.drivers[result.drivers["rank"] == 1].set_index("child")
    assert top.loc[1, "feature"] == "signal" and top.loc[1, "direction"] == "higher"
    assert top.loc[0, "feature"] == "signal" and top.loc[0, "direction"] == "lower"


@pytest.mark.parametrize(
    ("labels", "words"), [([0] * 40, "single child"), ([-1] * 40, "no children")]
)
def test_single_child_is_an_error(labels, words):
    features = pd.DataFrame(np.random.default_rng(0).normal(size=(40, 3)), columns=list("abc"))
    with pytest.raises(ExplanationError, match=words):
        explain_node(features, np.array(labels), np.arange(40), SETTINGS, random_state=0)


def test_child_too_small_to_stratify_is_named():
    features = pd.DataFrame(np.random.default_rng(0).normal(size=(41, 3)), columns=list("abc"))
    labels = np.array([0] * 20 + [1] * 20 + [2])
    with pytest.raises(ExplanationError, match="Child 2"):
        explain_node(features, labels, np.arange(41), SETTINGS, random_state=0)


def test_save_and_load_round_trip(models, blobs, tmp_path):
    features, _, _ = blobs
    directory = tmp_path / "root"
    save_node_models(models, directory)
    names = sorted(p.name for p in directory.iterdir())
    assert names == [
        "models.json", "one_vs_all_0.json", "one_vs_all_1.json", "one_vs_all_2.json",
        "one_vs_all_3.json", "router.json",
    ]  # fmt: skip
    router = load_router(directory)
    assert router.feature_columns == models.feature_columns
    assert router.children == models.routing.children == [0, 1, 2, 3]
    x = features.to_numpy(dtype=np.float32)
    np.testing.assert_allclose(router.model.predict_proba(x), models.router.predict_proba(x))
    reloaded = load_node_models(directory)
    np.testing.assert_allclose(
        reloaded.one_vs_all[2].predict_proba(x), models.one_vs_all[2].predict_proba(x)
    )


def test_load_from_missing_directory_names_the_path(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(ExplanationError, match="nowhere"):
        load_router(missing)
