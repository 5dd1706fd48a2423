"""Cluster names: what sets a child apart, and names users chose following kept leaves."""

import numpy as np
import pandas as pd

from recursive_clusters.core.naming import (
    AUTO,
    OVERRIDE,
    carried_overrides,
    child_name,
    named,
    tree_names,
)
from recursive_clusters.core.profiles import ProfileColumn

DRIVERS = pd.DataFrame(
    {
        "child": [0, 0, 0, 1],
        "feature": ["danceability", "acousticness", "tempo", "tempo"],
        "mean_abs_shap": [0.9, 0.5, 0.1, 0.4],
        "direction": ["higher", "lower", "higher", "lower"],
        "rank": [1, 2, 3, 1],
    }
)
GENRE = ProfileColumn.of("genre", pd.Series(["pop"] * 60 + ["jazz"] * 40))


def test_a_child_is_named_by_its_top_drivers_and_its_telling_profile_level():
    inside = np.zeros(100, dtype=bool)
    inside[60:] = True  # all jazz: lift 2.5
    name = child_name(DRIVERS[DRIVERS["child"] == 0], [GENRE], inside)
    assert name == "danceability high · acousticness low · genre jazz"


def test_a_profile_level_that_is_not_telling_is_left_out():
    inside = np.zeros(100, dtype=bool)
    inside[:50] = True  # all pop, but pop is 60% overall: lift 1.67 with share 1.0 -> kept
    assert child_name(None, [GENRE], inside) == "genre pop"
    inside[:] = True  # the whole population: lift 1
    assert child_name(None, [GENRE], inside) == ""


def test_every_child_and_noise_group_of_a_split_node_gets_a_name():
    records = {
        "root": {"split_accepted": True, "child_sizes": {"0": 60, "1": 40}},
        "root.0": {"split_accepted": False, "child_sizes": {}},
    }
    labels = {"root": pd.DataFrame({"row": np.arange(100), "label": [0] * 60 + [1] * 40})}
    names = tree_names(records, {"root": DRIVERS}, labels, [GENRE], 100)
    assert names == {
        "root": "all rows",
        "root.0": "danceability high · acousticness low · genre pop",
        "root.1": "tempo low · genre jazz",
        "root.noise": "unplaced (noise)",
    }


def test_user_names_win_and_follow_kept_leaves_only():
    previous = {
        "root.0": {"name": "Party people", "source": OVERRIDE},
        "root.1": {"name": "Jazz cats", "source": OVERRIDE},
        "root.2": {"name": "tempo low", "source": AUTO},
    }
    changes = [
        {"previous": "root.0", "current": "root.1", "change": "kept"},  # renumbered
        {"previous": "root.1", "current": "root.2, root.3", "change": "split"},
        {"previous": "root.2", "current": "root.0", "change": "kept"},
    ]
    carried = carried_overrides(previous, changes)
    assert carried == {"root.1": "Party people"}  # the split leaf loses its name
    result = named({"root.0": "a", "root.1": "b"}, {**carried, "root.9": "unknown path"})
    assert result == {
        "root.0": {"name": "a", "source": AUTO},
        "root.1": {"name": "Party people", "source": OVERRIDE},
    }
