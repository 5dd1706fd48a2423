"""The one Dagster resource: where trees are stored and which settings start a new tree."""

from __future__ import annotations

import os
from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field

from recursive_clusters.core.settings import Settings, load_settings
from recursive_clusters.io.store import TreeStore

SETTINGS_ENV = "RECURSIVE_CLUSTERS_CONFIG"
STORAGE_ENV = "RECURSIVE_CLUSTERS_STORAGE"


def default_storage_dir() -> str:
    """``$RECURSIVE_CLUSTERS_STORAGE``, else ``$DAGSTER_HOME/recursive_clusters``, else
    ``./.recursive_clusters``."""
    if os.environ.get(STORAGE_ENV):
        return os.environ[STORAGE_ENV]
    if os.environ.get("DAGSTER_HOME"):
        return str(Path(os.environ["DAGSTER_HOME"]) / "recursive_clusters")
    return str(Path.cwd() / ".recursive_clusters")


class TreeStoreResource(ConfigurableResource):
    """Storage of every tree, and the settings a newly started tree uses.

    A tree's settings are frozen into its manifest when it starts, so the nodes of one tree
    always use that tree's settings even if the code location is reloaded with others.
    """

    base_dir: str = Field(
        default_factory=default_storage_dir,
        description="Directory for tree files and catalog.duckdb.",
    )
    settings_path: str | None = Field(
        default_factory=lambda: os.environ.get(SETTINGS_ENV),
        description="YAML settings file for new trees; empty: the built-in digits demo.",
    )

    def store(self) -> TreeStore:
        return TreeStore(self.base_dir)

    def new_tree_settings(self) -> Settings:
        return load_settings(self.settings_path)

    def tree_settings(self, tree_id: str) -> Settings:
        return self.store().tree_settings(tree_id)
