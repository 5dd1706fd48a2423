"""Every plot renders a non-empty PNG, including the degenerate one-feature case; the store
writes it atomically under the node's picture name."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recursive_clusters.core.plots import (
    embedding_scatter,
    mean_images,
    shap_beeswarm,
    shap_pixel_map,
)
from recursive_clusters.io.store import EMBEDDING_PNG, TreeStore, shap_png

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
IMAGE_SHAPE = (4, 5)
COLUMNS = [f"pixel_{i}" for i in range(20)]
TREE = "0123456789abcdef"


def assert_png(data: bytes) -> None:
    assert data.startswith(PNG_MAGIC) and len(data) > 1000


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


def test_embedding_scatter_is_stored_under_the_nodes_picture_name(labels, tmp_path):
    embedding = np.random.default_rng(0).normal(size=(len(labels), 2)).astype(np.float32)
    png = embedding_scatter(embedding, labels, "root")
    assert_png(png)
    store = TreeStore(tmp_path)
    target = store.write_node_png(TREE, "root.2", EMBEDDING_PNG, png)
    assert target == store.node_dir(TREE, "root.2") / "embedding.png"
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # no temporary left over
    assert store.read_node_png(TREE, "root.2", EMBEDDING_PNG) == png
    assert store.read_node_png(TREE, "root.2", shap_png(0)) is None  # not made: None


def test_shap_beeswarm():
    assert_png(shap_beeswarm(shap_table(COLUMNS, [0, 1]), 1, max_features=5))


def test_shap_beeswarm_with_one_constant_feature():
    table = shap_table(["only"], [0])
    table["feature_value"] = 3.0
    assert_png(shap_beeswarm(table, 0))


def test_shap_beeswarm_unknown_child():
    with pytest.raises(ValueError, match="child 7"):
        shap_beeswarm(shap_table(COLUMNS, [0]), 7)


def test_mean_images(labels):
    features = pd.DataFrame(np.random.default_rng(0).random((len(labels), 20)), columns=COLUMNS)
    assert_png(mean_images(features, labels, IMAGE_SHAPE))


def test_mean_images_wrong_shape(labels):
    features = pd.DataFrame(np.zeros((len(labels), 20)), columns=COLUMNS)
    with pytest.raises(ValueError, match="shape"):
        mean_images(features, labels, (3, 3))


def test_shap_pixel_map():
    # only some pixels were explained: the others are drawn as 0
    table = shap_table(COLUMNS[:7], [0, 2])
    assert_png(shap_pixel_map(table, 2, COLUMNS, IMAGE_SHAPE))
