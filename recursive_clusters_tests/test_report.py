"""The HTML report of a real (small) tree: complete, correct numbers, offline, escaped.

The tree is grown once by the real core (``RecursiveClusterer``, classifiers, SHAP and
stability) and written through ``TreeStore`` exactly as the assets write it, without Dagster.
"""

from __future__ import annotations

import html
import json
import re

import numpy as np
import pandas as pd
import pytest
from plotly.offline import get_plotlyjs
from sklearn.datasets import make_blobs

from recursive_clusters.core.embedding import node_seed
from recursive_clusters.core.explain import explain_with_shap, train_classifiers
from recursive_clusters.core.plots import embedding_scatter, shap_beeswarm
from recursive_clusters.core.recursive import RecursiveClusterer
from recursive_clusters.core.settings import parse_settings
from recursive_clusters.report import REPORT_NAME, leaf_summary, render_report, write_report
from recursive_clusters.storage import TreeStore

GENERATION = "0123456789abcdef"
EVIL_COLUMN = "<script>alert(1)</script>"
EVIL_VALUE = "<b>x</b>"
EVIL_FEATURE = "<i>f0</i>"
EVIL_SOURCE = "/data/<evil> & co.parquet"
SETTINGS = parse_settings(
    {
        "input": {"path": EVIL_SOURCE, "id_column": "id", "profile_columns": [EVIL_COLUMN]},
        "clustering": {"min_cluster_size": 0.1, "min_cluster_size_floor": 10},
        "recursion": {"max_depth": 2, "min_node_size": 60},
        "explanation": {"shap_sample_per_child": 30},
    }
)


def planted_blobs() -> tuple[pd.DataFrame, np.ndarray]:
    """Three groups far apart, each of two sub-groups that only a zoom-in separates."""
    axes = np.eye(6)
    centres = np.vstack(
        [20.0 * axes[top] + 1.5 * sign * axes[3 + top] for top in range(3) for sign in (-1, 1)]
    )
    x, blob = make_blobs(n_samples=300, centers=centres, cluster_std=1.0, random_state=0)
    features = pd.DataFrame(x, columns=[EVIL_FEATURE, "f1", "f2", "f3", "f4", "f5"])
    return features, blob


@pytest.fixture(scope="session")
def tree(tmp_path_factory) -> tuple[TreeStore, pd.DataFrame]:
    """A tree grown by the core and stored as the assets store it; its assignments."""
    store = TreeStore(tmp_path_factory.mktemp("report") / "store")
    features, blob = planted_blobs()
    ids = pd.Series([f"id<{i}>&'" for i in range(len(features))], name="id")
    profile = pd.DataFrame(
        {
            EVIL_COLUMN: np.where(blob < 2, EVIL_VALUE, "plain"),
            "income": np.linspace(1000.0, 5000.0, len(features)) + 500.0 * blob,
        }
    )
    store.begin_tree(
        GENERATION,
        {
            "generation": GENERATION,
            "settings": SETTINGS.model_dump(mode="json"),
            "data_fingerprint": "feedfacecafebeef",
            "source": EVIL_SOURCE,
            "started_at": "2026-01-02T03:04:05+00:00",
            "n_rows": len(features),
        },
    )
    store.write_table(GENERATION, "features", features)
    store.write_table(GENERATION, "ids", ids.to_frame())
    store.write_table(GENERATION, "profile", profile)
    matrix = features.to_numpy()
    clusterer = RecursiveClusterer(SETTINGS).fit(matrix)
    for path, node in clusterer.nodes_.items():
        labels = node.clustering.labels
        seed = node_seed(SETTINGS.random_state, path)
        node_dir = store.node_dir(GENERATION, path)
        x, y = node.embedding.T
        store.write_embedding(GENERATION, path, pd.DataFrame({"row": node.rows, "x": x, "y": y}))
        record = {**node.summary(), "generation": GENERATION}
        if node.decision.accepted:
            node_features = features.iloc[node.rows].reset_index(drop=True)
            models = train_classifiers(node_features, labels, SETTINGS.explanation, seed)
            explanation = explain_with_shap(
                models, node_features, labels, node.rows, SETTINGS.explanation, seed
            )
            store.write_node_table(GENERATION, path, "classifier_metrics", models.metrics)
            store.write_node_table(GENERATION, path, "drivers", explanation.drivers)
            for child in sorted(models.one_vs_all):
                shap_beeswarm(explanation.shap_values, child, node_dir / f"shap_child_{child}.png")
        labels_table = pd.DataFrame(
            {"row": node.rows, "label": labels, "probability": node.clustering.probabilities}
        )
        store.write_node(GENERATION, path, labels_table, record)
        embedding_scatter(node.embedding, labels, node_dir / "embedding.png", title=path)
    assignments = clusterer.assignments_.drop(columns="row")
    assignments.insert(0, "id", ids.to_numpy())
    store.publish(GENERATION, assignments, {"n_nodes": len(clusterer.nodes_)})
    return store, assignments


@pytest.fixture(scope="session")
def report(tree) -> str:
    return render_report(tree[0], GENERATION)


def tree_rows(report: str) -> dict[str, tuple[int, str, str]]:
    """path -> (rows, shown row count, shown share of all) of each line of the tree table."""
    pattern = re.compile(
        r'<tr class="\w+" data-path="([^"]+)" data-rows="(\d+)">'
        r"<td[^>]*>.*?</td><td>([\d,]+)</td><td>([^<]+)</td>"
    )
    return {m[1]: (int(m[2]), m[3], m[4]) for m in pattern.finditer(report)}


def test_tree_has_planted_depth(tree):
    store, assignments = tree
    records = store.node_records(GENERATION)
    assert records["root"]["split_accepted"] and len(records) > 1
    assert assignments["leaf_path"].str.count(r"\.").max() == 2


def test_every_node_and_leaf_is_listed_with_matching_numbers(tree, report):
    store, assignments = tree
    leaf = assignments["leaf_path"]
    listed = tree_rows(report)
    expected_paths = set(store.node_records(GENERATION)) | set(leaf)
    assert expected_paths <= set(listed)
    for path, (rows, shown, share) in listed.items():
        in_subtree = leaf == path
        if not path.endswith(".noise"):
            in_subtree |= leaf.str.startswith(path + ".")
        assert rows == int(in_subtree.sum()), path
        assert shown == f"{rows:,}"
        assert share == f"{rows / len(leaf):.1%}"
    for path in store.node_records(GENERATION):
        assert f'id="node-{path}"' in report


def test_children_overview_shares_match_assignments(tree, report):
    store, assignments = tree
    for path, record in store.node_records(GENERATION).items():
        if not record["split_accepted"]:
            continue
        for child, size in record["child_sizes"].items():
            child_path, leaf = f"{path}.{child}", assignments["leaf_path"]
            assert size == int(((leaf == child_path) | leaf.str.startswith(child_path + ".")).sum())
            card = report.split(f'id="card-{path}.{child}"', 1)[1].split("</article>", 1)[0]
            assert f"{size:,} rows · {size / record['n_rows']:.1%} of node" in card
            assert "ROC AUC" in card and "Top SHAP drivers" in card
            assert re.search(r'class="band (stable|patterns|weak|dissolved)"', card)


def test_report_is_self_contained(report):
    plotly_js = get_plotlyjs()
    assert report.count(plotly_js) == 1
    # plotly.js itself holds links (its logo, map attributions) but loads nothing by itself.
    markup = report.replace(plotly_js, "")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", markup, re.IGNORECASE)
    assert not re.search(r"""\bsrc\s*=\s*["']?\s*https?:""", report, re.IGNORECASE)
    assert not re.search(r"<link\b|@import|url\(", markup, re.IGNORECASE)
    assert not re.search(r"<script[^>]*\bsrc\s*=", report, re.IGNORECASE)
    images = re.findall(r'<img [^>]*src="([^"]{0,30})', report)
    assert images and all(src.startswith("data:image/png;base64,") for src in images)


def test_user_strings_are_escaped(report):
    for raw in (EVIL_COLUMN, EVIL_VALUE, EVIL_FEATURE, EVIL_SOURCE, "id<1>"):
        assert raw not in report
        if raw != "id<1>":  # ids appear in the maps' hover text only
            assert html.escape(raw) in report


def test_maps_hover_shows_escaped_id_and_leaf(tree, report):
    _, assignments = tree
    expected = {
        f"id: {html.escape(row_id)}<br>leaf: {html.escape(leaf)}"
        for row_id, leaf in zip(assignments["id"], assignments["leaf_path"], strict=True)
    }
    specs = re.findall(r'<script type="application/json" id="spec-([^"]+)">(.*?)</script>', report)
    assert {path for path, _ in specs} == set(tree[0].node_records(GENERATION))
    for _, spec in specs:
        for trace in json.loads(spec)["data"]:
            assert trace["type"] == "scattergl"
            assert set(trace["text"]) <= expected


def test_profile_shows_over_represented_level_and_medians(report):
    card = report.split('id="card-root.0"', 1)[1].split("</article>", 1)[0]
    assert "Profile vs population" in card and "lift ×" in card and "median" in card


def test_write_report_replaces_atomically(tree):
    store, _ = tree
    target = write_report(store, GENERATION)
    assert target == store.tree_dir(GENERATION) / REPORT_NAME
    assert target.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert not list(target.parent.glob(f".{REPORT_NAME}.*"))


def test_leaf_summary_orders_paths_naturally():
    assignments = pd.DataFrame(
        {"leaf_path": ["root.10", "root.2", "root.noise", "root.2", "root.1.noise", "root.1.0"]}
    )
    table = leaf_summary(assignments)
    assert table["leaf_path"].tolist() == [
        "root.1.0",
        "root.1.noise",
        "root.2",
        "root.10",
        "root.noise",
    ]
    assert table["rows"].tolist() == [1, 1, 2, 1, 1]
    assert table["share"].iloc[2] == "33.3%"


def test_report_asset_materializes(tree):
    from dagster import materialize

    from recursive_clusters.assets.report import build_report_asset
    from recursive_clusters.resources import TreeStorage

    store, _ = tree
    asset = build_report_asset(max_depth=2)
    result = materialize(
        [asset], resources={"tree_storage": TreeStorage(base_dir=str(store.base_dir))}
    )
    assert result.success
    metadata = result.asset_materializations_for_node("tree_report")[0].metadata
    assert metadata["generation"].value == GENERATION
    assert metadata["nodes"].value == len(store.node_records(GENERATION))
    assert metadata["report"].value.endswith(REPORT_NAME)
    assert "root.noise" in metadata["summary"].value or "root.0" in metadata["summary"].value
