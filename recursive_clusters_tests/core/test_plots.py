"""Every plot writes a non-empty PNG, including the degenerate one-feature case."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recursive_clusters.core.plots import (
    embedding_scatter,
    mean_images,
    shap_beeswarm,
    shap_pixel_map,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
IMAGE_SHAPE = (4, 5)
COLUMNS = [f"pixel_{i}" for i in range(20)]


def assert_png(path: Path, written: Path) -> None:
    assert written == path
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 1000
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left over


@pytest.fixture(scope="module")
def labels() -> np.ndarray:
    return np.array([0] * 40 + [1] * 30 + [2] * 20 + [-1] * 10)


def shap_table(columns: list[str], children: list[int], n_rows: int = 30) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    parts = []
    for child in children:
        parts.append(
            pd.DataFrame(
                {
                    "row": np.repeat(np.arange(n_rows), len(columns)),
                    "child": child,
                    "feature": np.tile(columns, n_rows),
                    "value": rng.normal(size=n_rows * len(columns)),
                    "feature_value": rng.normal(size=n_rows * len(columns)),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def test_embedding_scatter(labels, tmp_path):
    embedding = np.random.default_rng(0).normal(size=(len(labels), 2)).astype(np.float32)
    path = tmp_path / "scatter.png"
    assert_png(path, embedding_scatter(embedding, labels, path, "root"))


def test_shap_beeswarm(tmp_path):
    path = tmp_path / "beeswarm.png"
    assert_png(path, shap_beeswarm(shap_table(COLUMNS, [0, 1]), 1, path, max_features=5))


def test_shap_beeswarm_with_one_constant_feature(tmp_path):
    table = shap_table(["only"], [0])
    table["feature_value"] = 3.0
    path = tmp_path / "beeswarm.png"
    assert_png(path, shap_beeswarm(table, 0, path))


def test_shap_beeswarm_unknown_child(tmp_path):
    with pytest.raises(ValueError, match="child 7"):
        shap_beeswarm(shap_table(COLUMNS, [0]), 7, tmp_path / "x.png")


def test_mean_images(labels, tmp_path):
    features = pd.DataFrame(np.random.default_rng(0).random((len(labels), 20)), columns=COLUMNS)
    path = tmp_path / "means.png"
    assert_png(path, mean_images(features, labels, IMAGE_SHAPE, path))


def test_mean_images_wrong_shape(labels, tmp_path):
    features = pd.DataFrame(np.zeros((len(labels), 20)), columns=COLUMNS)
    with pytest.raises(ValueError, match="shape"):
        mean_images(features, labels, (3, 3), tmp_path / "x.png")


def test_shap_pixel_map(tmp_path):
    # only some pixels were explained: the others are drawn as 0
    path = tmp_path / "pixels.png"
    table = shap_table(COLUMNS[:7], [0, 2])
    assert_png(path, shap_pixel_map(table, 2, COLUMNS, IMAGE_SHAPE, path))
