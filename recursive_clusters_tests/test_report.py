"""The HTML report of a real (small) tree: complete, correct numbers, offline, escaped.

The tree (``report_tree``) is grown once by the real core and written through ``TreeStore``
exactly as the assets write it, without Dagster.
"""

from __future__ import annotations

import base64
import html
import io
import json
import re

import numpy as np
import pandas as pd
import pytest
from plotly.offline import get_plotlyjs

from recursive_clusters.io.store import REPORT_HTML, TreeStore
from recursive_clusters.report import leaf_summary, render_report, write_report
from recursive_clusters_tests.report_tree import (
    EVIL_COLUMN,
    EVIL_FEATURE,
    EVIL_SOURCE,
    EVIL_VALUE,
    TREE_ID,
    grow_report_tree,
)


@pytest.fixture(scope="session")
def tree(tmp_path_factory) -> tuple[TreeStore, pd.DataFrame]:
    return grow_report_tree(tmp_path_factory.mktemp("report") / "store")


@pytest.fixture(scope="session")
def report(tree) -> str:
    return render_report(tree[0], TREE_ID)


def tree_rows(report: str) -> dict[str, tuple[int, str, str]]:
    """path -> (rows, shown row count, shown share of all) of each line of the tree table."""
    pattern = re.compile(
        r'<tr class="\w+" data-path="([^"]+)" data-rows="(\d+)"[^>]*>'
        r"<td[^>]*>.*?</td><td>([\d,]+)</td><td>([^<]+)</td>"
    )
    return {m[1]: (int(m[2]), m[3], m[4]) for m in pattern.finditer(report)}


def test_tree_has_planted_depth(tree):
    store, assignments = tree
    records = store.node_records(TREE_ID)
    assert records["root"]["split_accepted"] and len(records) > 1
    assert assignments["leaf_path"].str.count(r"\.").max() == 2


def test_every_node_and_leaf_is_listed_with_matching_numbers(tree, report):
    store, assignments = tree
    leaf = assignments["leaf_path"]
    listed = tree_rows(report)
    expected_paths = set(store.node_records(TREE_ID)) | set(leaf)
    assert expected_paths <= set(listed)
    for path, (rows, shown, share) in listed.items():
        in_subtree = leaf == path
        if not path.endswith(".noise"):
            in_subtree |= leaf.str.startswith(path + ".")
        assert rows == int(in_subtree.sum()), path
        assert shown == f"{rows:,}"
        assert share == f"{rows / len(leaf):.1%}"
    for path in store.node_records(TREE_ID):
        assert f'id="node-{path}"' in report


def test_children_overview_shares_match_assignments(tree, report):
    store, assignments = tree
    for path, record in store.node_records(TREE_ID).items():
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
    assert not re.search(r"<link\b|@import", markup, re.IGNORECASE)
    (style,) = re.findall(r"<style>(.*?)</style>", report, re.DOTALL)
    assert "url(" not in style.lower()  # no stylesheet resource; the script's blob URLs are local
    assert not re.search(r"<script[^>]*\bsrc\s*=", report, re.IGNORECASE)
    images = re.findall(r'<img [^>]*src="([^"]{0,30})', report)
    assert images and all(src.startswith("data:image/png;base64,") for src in images)


def test_user_strings_are_escaped(report):
    for raw in (EVIL_COLUMN, EVIL_VALUE, EVIL_FEATURE, EVIL_SOURCE, "id<1>"):
        assert raw not in report
        if raw != "id<1>":  # ids appear in the maps' hover text only
            assert html.escape(raw) in report


def rows_data(report: str) -> dict:
    """The rows the page's script reads (search, hover, downloads)."""
    (text,) = re.findall(r'<script type="application/json" id="rc-rows">(.*?)</script>', report)
    assert "<" not in text and ">" not in text  # escaped: nothing can close the element
    return json.loads(text)


def test_maps_carry_row_numbers_and_the_rows_their_ids_and_leaves(tree, report):
    store, assignments = tree
    rows = rows_data(report)
    assert rows["ids"] == assignments["id"].astype(str).tolist()
    leaf_of = np.frombuffer(base64.b64decode(rows["leaf"]), "<i4")
    assert [rows["leaves"][i] for i in leaf_of] == assignments["leaf_path"].tolist()
    root_x = np.frombuffer(base64.b64decode(rows["x"][0]), "<f4")
    embedding = store.read_embedding(TREE_ID, "root").sort_values("row")
    np.testing.assert_allclose(root_x[embedding["row"]], embedding["x"], rtol=1e-6)
    specs = dict(
        re.findall(r'<script type="application/json" id="spec-([^"]+)">(.*?)</script>', report)
    )
    assert set(specs) == set(store.node_records(TREE_ID)) | {"overview"}
    overview = json.loads(specs.pop("overview"))["data"]
    assert sum(len(trace["customdata"]) for trace in overview) == len(assignments)
    for trace in overview:  # one trace per leaf, its rows all in that leaf
        assert {assignments["leaf_path"][row] for row in trace["customdata"]} == {trace["meta"]}
    for path, spec in specs.items():
        in_node = set(store.read_embedding(TREE_ID, path)["row"])
        for trace in json.loads(spec)["data"]:
            assert trace["type"] == "scattergl" and set(trace["customdata"]) <= in_node


def test_profile_shows_over_represented_level_and_medians(report):
    card = report.split('id="card-root.0"', 1)[1].split("</article>", 1)[0]
    assert "Profile vs population" in card and "lift ×" in card and "median" in card


def test_write_report_replaces_atomically(tree):
    store, _ = tree
    target = write_report(store, TREE_ID)
    assert target == store.tree_dir(TREE_ID) / REPORT_HTML
    assert target.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert not list(target.parent.glob(f".{REPORT_HTML}.*"))


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

    from recursive_clusters.defs.assets.report import build_report_asset
    from recursive_clusters.defs.resources import TreeStoreResource

    store, _ = tree
    asset = build_report_asset(max_depth=2)
    result = materialize(
        [asset], resources={"tree_storage": TreeStoreResource(base_dir=str(store.base_dir))}
    )
    assert result.success
    metadata = result.asset_materializations_for_node("tree_report")[0].metadata
    assert metadata["generation"].value == TREE_ID
    assert metadata["nodes"].value == len(store.node_records(TREE_ID))
    assert metadata["report"].value.endswith(REPORT_HTML)
    assert "root.noise" in metadata["summary"].value or "root.0" in metadata["summary"].value


def test_image_data_shows_each_clusters_mean_image_beside_its_name(tree, tmp_path):
    """For images, a cluster's mean image is its most readable name: a thumbnail per node
    and leaf of the tree table (none for noise groups), one pixel per image pixel."""
    import shutil

    from PIL import Image

    store, assignments = tree
    copy = TreeStore(tmp_path / "store")
    shutil.copytree(store.base_dir, copy.base_dir)
    manifest = copy.manifest(TREE_ID)
    manifest["settings"]["input"]["image_shape"] = [2, 3]  # the 6 features as a 2x3 image
    (copy.tree_dir(TREE_ID) / "manifest.json").write_text(json.dumps(manifest))
    copy.write_table(TREE_ID, "pixels", copy.read_table(TREE_ID, "features"))
    report = render_report(copy, TREE_ID)
    thumbnails = dict(re.findall(r'alt="mean image of ([^"]+)" src="([^"]+)"', report))
    expected = {p for p in tree_rows(report) if not p.endswith(".noise")}
    assert set(thumbnails) == expected and "root" in thumbnails
    png = base64.b64decode(thumbnails["root"].removeprefix("data:image/png;base64,"))
    assert Image.open(io.BytesIO(png)).size == (3, 2)
    assert 'class="thumb"' not in render_report(store, TREE_ID)  # tabular: no thumbnails
