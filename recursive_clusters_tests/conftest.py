"""Shared fixtures: small planted data and a tree grown once per session through Dagster."""

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml


def planted_table(seed: int = 0, n_top: int = 3, per_sub: int = 110) -> pd.DataFrame:
    """Top clusters far apart, each made of two sub-clusters closer together."""
    rng = np.random.default_rng(seed)
    n_features = 8
    parts = []
    for top in range(n_top):
        centre = rng.normal(scale=1.0, size=n_features) + 25.0 * np.eye(n_features)[top]
        for sub in range(2):
            sub_centre = centre + 3.0 * np.eye(n_features)[(top + 3 + sub) % n_features]
            points = sub_centre + rng.normal(size=(per_sub, n_features))
            parts.append((points, top, sub))
    features = np.vstack([points for points, _, _ in parts])
    table = pd.DataFrame(features, columns=[f"f{i}" for i in range(n_features)])
    table.insert(0, "user_id", [f"u{i:04d}" for i in range(len(table))])
    table["segment"] = np.concatenate([[f"top{t}"] * len(p) for p, t, _ in parts])
    table["true_leaf"] = np.concatenate([[f"{t}.{s}"] * len(p) for p, t, s in parts])
    return table


# The longest modules, longest first: the UI test (~4 min) and the distributed tests.
LONGEST_MODULES = (
    "recursive_clusters_tests/e2e/test_browser.py",
    "recursive_clusters_tests/distributed/test_cluster.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Collect the longest modules first: with two workers each then runs beside the rest of
    the suite instead of after it (measured on 2 cores: 16.0 min in one process, 13.0 min on
    two workers with the UI test last, 10.9 min with it first)."""

    def rank(item: pytest.Item) -> int:
        starts = [item.nodeid.startswith(module) for module in LONGEST_MODULES]
        return starts.index(True) if any(starts) else len(LONGEST_MODULES)

    items.sort(key=rank)


TEST_SETTINGS = {
    "input": {"id_column": "user_id", "profile_columns": ["segment", "true_leaf"]},
    "clustering": {"min_cluster_size": 0.1, "min_cluster_size_floor": 10},
    "recursion": {"max_depth": 2, "min_node_size": 100},
    "explanation": {"shap_sample_per_child": 30},
}


@pytest.fixture(scope="session")
def planted_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "planted.csv"
    planted_table().to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def settings_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("config") / "settings.yaml"
    path.write_text(yaml.safe_dump(TEST_SETTINGS))
    return path


@pytest.fixture
def dagster_home(tmp_path, monkeypatch) -> Path:
    """A fresh persistent instance (SQLite under a temporary DAGSTER_HOME) per test."""
    home = tmp_path / "dagster_home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.delenv("RECURSIVE_CLUSTERS_STORAGE", raising=False)
    monkeypatch.delenv("RECURSIVE_CLUSTERS_CONFIG", raising=False)
    return home


@pytest.fixture(scope="session")
def grown_tree(tmp_path_factory, planted_csv, settings_file):
    """One tree grown by the CLI through the Dagster jobs, shared by read-only tests."""
    from recursive_clusters.cli import main

    home = tmp_path_factory.mktemp("grown") / "dagster_home"
    previous = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(home)
    try:
        code = main(["run", "--input", str(planted_csv), "--config", str(settings_file)])
        assert code == 0
    finally:
        if previous is None:
            os.environ.pop("DAGSTER_HOME")
        else:
            os.environ["DAGSTER_HOME"] = previous
    return home
