"""Routing new rows down a two-level tree of saved routers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_blobs

from recursive_clusters.core.explain import train_classifiers
from recursive_clusters.core.predict import PredictionError
from recursive_clusters.core.settings import ExplanationSettings
from recursive_clusters.io.models import predict_paths, save_node_models

COLUMNS = [f"f{i}" for i in range(20)]
SETTINGS = ExplanationSettings(shap_sample_per_child=20)
# Two close sub-blobs make the root's child 0; children 1 and 2 are single far blobs.
CENTERS = np.zeros((4, 20))
CENTERS[0, :3] = 4.0
CENTERS[1, :3] = -4.0
CENTERS[2, 3:6] = 30.0
CENTERS[3, 6:9] = 30.0
SIZES = [80, 80, 70, 70]
EXPECTED = np.array(["root.0.0", "root.0.1", "root.1", "root.2"])


def sample(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the four blobs and the leaf path each belongs to."""
    matrix, blob = make_blobs(n_samples=SIZES, centers=CENTERS, cluster_std=1.0, random_state=seed)
    return matrix, EXPECTED[blob]


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    matrix, paths = sample(0)
    features = pd.DataFrame(matrix, columns=COLUMNS)
    root_labels = np.select([paths == "root.1", paths == "root.2"], [1, 2], 0)
    root_labels[:5] = -1  # noise is not learnt, but the rows are still routed later
    directory = tmp_path_factory.mktemp("models")
    root = train_classifiers(features, root_labels, SETTINGS, 0)
    save_node_models(root, directory / "root")
    inside = root_labels == 0
    sub_labels = (paths[inside] == "root.0.1").astype(np.int64)
    sub = train_classifiers(features[inside], sub_labels, SETTINGS, 1)
    save_node_models(sub, directory / "root.0")
    (directory / "notes").mkdir()  # not a node path: ignored
    (directory / "root.x").mkdir()
    return directory


def test_paths_follow_the_known_structure(models_dir):
    matrix, expected = sample(1)  # fresh rows from the same blobs
    result = predict_paths(matrix, COLUMNS, models_dir, 0.5)
    assert list(result.columns) == [
        "path", "depth", "confident", "confidence",
        "level_1", "probability_1", "level_2", "probability_2",
    ]  # fmt: skip
    assert len(result) == len(matrix)
    assert np.mean(result["path"].to_numpy() == expected) > 0.9
    assert result["depth"].tolist() == [p.count(".") for p in result["path"]]
    deep = result[result["path"].str.startswith("root.0.")]
    assert (deep["level_1"] == "0").all() and deep["level_2"].isin(["0", "1"]).all()
    shallow = result[result["path"].isin(["root.1", "root.2"])]
    assert shallow["level_2"].isna().all() and shallow["probability_2"].isna().all()
    assert (result.loc[result["confident"], "probability_1"] >= 0.5).all()
    # a row's confidence is its weakest step, where it stopped included
    steps = result[["probability_1", "probability_2"]].min(axis=1)
    assert (result.loc[result["confident"], "confidence"] == steps[result["confident"]]).all()
    assert (result.loc[~result["confident"], "confidence"] < 0.5).all()


def test_threshold_above_one_stops_every_row_at_root(models_dir):
    matrix, _ = sample(1)
    result = predict_paths(matrix, COLUMNS, models_dir, 1.01)
    assert (result["path"] == "root").all() and (result["depth"] == 0).all()
    assert not result["confident"].any()
    assert list(result.columns) == ["path", "depth", "confident", "confidence"]


def test_reordered_columns_give_the_same_paths(models_dir):
    matrix, _ = sample(1)
    order = np.random.default_rng(0).permutation(len(COLUMNS))
    reordered = predict_paths(matrix[:, order], [COLUMNS[i] for i in order], models_dir, 0.5)
    pd.testing.assert_frame_equal(reordered, predict_paths(matrix, COLUMNS, models_dir, 0.5))


def test_missing_column_is_named(models_dir):
    matrix, _ = sample(1)
    with pytest.raises(PredictionError, match="f7"):
        predict_paths(np.delete(matrix, 7, axis=1), COLUMNS[:7] + COLUMNS[8:], models_dir, 0.5)


def test_missing_models_dir_is_named(tmp_path):
    with pytest.raises(PredictionError, match="absent"):
        predict_paths(np.zeros((2, 20)), COLUMNS, tmp_path / "absent", 0.5)


def test_models_dir_without_root_is_named(tmp_path):
    (tmp_path / "root.0").mkdir()
    with pytest.raises(PredictionError, match="root"):
        predict_paths(np.zeros((2, 20)), COLUMNS, tmp_path, 0.5)
