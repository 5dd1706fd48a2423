"""Short readable names for clusters, from what sets each apart; and names users chose.

A child's name joins its two strongest SHAP drivers with their direction and, when one
stands out, its most over-represented profile level: "pixel_3_4 high · pixel_5_2 low ·
digit 3". No language model: the name says only what the tree measured. Users override
names in a small YAML file (``names.yaml`` beside the trees); an override follows its leaf to
the next tree when the comparison of the two trees says the leaf was kept.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from recursive_clusters.core.paths import ROOT, NodePath
from recursive_clusters.core.profiles import ProfileColumn, profile_rows

DRIVERS_IN_NAME = 2
MIN_LIFT = 1.5  # a profile level names a cluster when it is this over-represented...
MIN_SHARE = 0.5  # ...and most of the cluster has it
AUTO, OVERRIDE = "auto", "override"


def child_name(drivers: pd.DataFrame | None, profile: list[ProfileColumn], inside) -> str:
    """The name of one child from its drivers (``child`` rows of a node's drivers table)
    and its rows' profile (``inside``: a boolean mask over the tree's rows)."""
    parts = []
    if drivers is not None and not drivers.empty:
        ranked = drivers.sort_values("rank") if "rank" in drivers else drivers
        for row in ranked.head(DRIVERS_IN_NAME).itertuples():
            parts.append(f"{row.feature} {'high' if row.direction == 'higher' else 'low'}")
    levels = [
        row
        for row in profile_rows(profile, inside)
        if row.is_level and row.inside >= MIN_SHARE and row.lift >= MIN_LIFT
    ]
    if levels:
        best = max(levels, key=lambda row: row.lift)
        parts.append(f"{best.column} {best.statistic}")
    return " · ".join(parts)


def tree_names(
    records: Mapping[str, Mapping],
    drivers: Mapping[str, pd.DataFrame],
    labels: Mapping[str, pd.DataFrame],
    profile: list[ProfileColumn],
    n_rows: int,
) -> dict[str, str]:
    """A name for the root, every child of every split node and every noise group."""
    names = {ROOT: "all rows"}
    for key, record in records.items():
        path = NodePath(key)
        if not record["split_accepted"]:
            continue
        node_labels = labels[path]
        table = drivers.get(path)
        for child in sorted(int(k) for k in record["child_sizes"]):
            inside = np.zeros(n_rows, dtype=bool)
            inside[node_labels.loc[node_labels["label"] == child, "row"].to_numpy()] = True
            own = None if table is None else table[table["child"] == child]
            names[path.child(child)] = child_name(own, profile, inside) or f"cluster {child}"
        names[path.noise_leaf] = "unplaced (noise)"
    return names


def carried_overrides(
    previous: Mapping[str, Mapping] | None, changes: list[Mapping]
) -> dict[str, str]:
    """The previous tree's user-chosen names, moved to the leaves of the new tree that the
    comparison says were kept (a split, merged or vanished leaf loses its name)."""
    if not previous:
        return {}
    kept = {c["previous"]: c["current"] for c in changes if c["change"] == "kept"}
    return {
        kept[path]: entry["name"]
        for path, entry in previous.items()
        if entry.get("source") == OVERRIDE and path in kept
    }


def named(auto: Mapping[str, str], overrides: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """Every path's name and where it came from; overrides of unknown paths are ignored."""
    result = {path: {"name": name, "source": AUTO} for path, name in auto.items()}
    for path, name in overrides.items():
        if path in result and str(name).strip():
            result[path] = {"name": str(name).strip(), "source": OVERRIDE}
    return result
