"""Name a tree's clusters: automatic names, the user's ``names.yaml``, and names carried over.

``names.yaml`` beside the trees holds the names a user chose for one tree's paths::

    tree: 3fa2c1d09be47a10
    names:
      root.3.1: Night owls

They apply to that tree; when a later tree is published, each named leaf that the comparison
says was kept takes its name along (``core.naming.carried_overrides``), tree after tree.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import pandas as pd
import yaml

from recursive_clusters.core.naming import OVERRIDE, carried_overrides, named, tree_names
from recursive_clusters.core.profiles import ProfileColumn
from recursive_clusters.core.settings import SettingsError
from recursive_clusters.io.store import (
    ASSIGNMENTS_TABLE,
    COMPARISON_JSON,
    DRIVERS_TABLE,
    IDS_TABLE,
    NAMES_JSON,
    PROFILE_TABLE,
    StorageError,
    TreeStore,
)


def _names_file(store: TreeStore) -> dict:
    """``names.yaml`` as written (``{}`` when there is none)."""
    source = store.names_file
    if not source.is_file():
        return {}
    try:
        data = yaml.safe_load(source.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{source} is not valid UTF-8 YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("names") or {}, dict):
        raise SettingsError(f"{source} must hold 'tree: <id>' and 'names: {{path: name}}'")
    return data


def user_names(store: TreeStore, tree_id: str) -> dict[str, str]:
    """The names ``names.yaml`` gives the paths of tree ``tree_id`` (none for others); a
    path with an empty name (``root.2:``) keeps its automatic name."""
    data = _names_file(store)
    if str(data.get("tree")) != tree_id:
        return {}
    return {
        str(path): str(name).strip()
        for path, name in (data.get("names") or {}).items()
        if name is not None and str(name).strip()
    }


def names_warnings(
    store: TreeStore, tree_id: str, paths: Iterable[str], previous: str | None = None
) -> list[str]:
    """What ``names.yaml`` names that does not exist, so that nothing of it is applied
    silently: a tree id other than tree ``tree_id`` (whose paths are ``paths``) and the
    tree before it, ``previous`` (whose names are carried over), or paths the tree lacks."""
    data = _names_file(store)
    if not data:
        return []
    source = store.names_file
    tree = str(data.get("tree"))
    if tree not in (tree_id, previous):
        try:
            exists = store.tree_dir(tree).is_dir()
        except Exception:  # not even of a tree id's form
            exists = False
        what = "an older tree" if exists else f"not a tree under {store.base_dir / 'trees'}"
        return [
            f"{source}: tree {tree!r} is {what}, so its names apply to nothing; to name the "
            f"current tree write 'tree: {tree_id}'"
        ]
    if tree == previous:
        try:
            paths = json.loads(store.read_text(previous, NAMES_JSON))
        except StorageError:
            return []
    known = set(paths)
    unknown = sorted(str(path) for path in data.get("names") or {} if str(path) not in known)
    if not unknown:
        return []
    return [
        f"{source}: tree {tree} has no node {', '.join(map(repr, unknown))}, so "
        f"{'that name applies' if len(unknown) == 1 else 'those names apply'} to nothing"
    ]


def name_tree(store: TreeStore, tree_id: str, previous: str | None) -> dict[str, dict]:
    """Every path's name (and whether it is automatic or the user's), written to the tree's
    ``names.json``: automatic names, under the names carried from ``previous`` through the
    comparison of the two trees, under the names ``names.yaml`` gives this tree."""
    records = store.node_records(tree_id)
    split = [path for path, record in records.items() if record["split_accepted"]]
    profile = store.read_table(tree_id, PROFILE_TABLE)
    columns = [ProfileColumn.of(str(c), profile[c]) for c in profile.columns]
    auto = tree_names(
        records,
        {path: store.read_node_table(tree_id, path, DRIVERS_TABLE) for path in split},
        {path: store.read_labels(tree_id, path) for path in split},
        columns if len(profile) else [],
        len(store.read_table(tree_id, IDS_TABLE)),
    )
    carried: dict[str, str] = {}
    if previous is not None:
        try:
            before = json.loads(store.read_text(previous, NAMES_JSON))
            changes = json.loads(store.read_text(tree_id, COMPARISON_JSON))["changes"]
        except StorageError:
            before, changes = {}, []
        chosen = {
            path: {"name": name, "source": OVERRIDE}
            for path, name in user_names(store, previous).items()
        }  # names.yaml may name the previous tree
        carried = carried_overrides({**before, **chosen}, changes)
    names = named(auto, {**carried, **user_names(store, tree_id)})
    store.write_text(tree_id, NAMES_JSON, json.dumps(names, indent=2, sort_keys=True))
    return names


def leaf_names(names: dict[str, dict], leaves: pd.Series) -> pd.Series:
    """The name of each row's leaf."""
    return leaves.map(lambda path: names.get(path, {}).get("name", path))


def rename_tree(store: TreeStore, tree_id: str) -> dict[str, dict]:
    """Name a published tree again after ``names.yaml`` changed: its ``names.json``, the
    ``leaf_name`` of its assignments and, when it is current, the DuckDB catalog."""
    previous = store.manifest(tree_id).get("previous_generation")
    names = name_tree(store, tree_id, previous)
    table = store.read_table(tree_id, ASSIGNMENTS_TABLE)
    table["leaf_name"] = leaf_names(names, table["leaf_path"]).to_numpy()
    store.write_table(tree_id, ASSIGNMENTS_TABLE, table)
    if store.current() == tree_id:
        store.refresh_catalog(tree_id)
    return names
