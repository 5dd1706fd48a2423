"""How a new tree maps to the previous one: overall agreement and what became of each leaf."""

from __future__ import annotations

import pandas as pd
from sklearn.metrics import adjusted_rand_score

# A leaf "goes to" another when it sends at least this share of its rows there.
SHARE = 0.2
# Two leaves are "the same cluster" when their Jaccard is above this (a majority both ways).
SAME = 0.5


def compare_trees(previous: pd.Series, current: pd.Series) -> dict[str, object]:
    """Compare leaf paths of two trees indexed by row id, on the ids both trees hold.

    Returns the ARI between the two leaf assignments and, per previous leaf, whether it was
    kept (Jaccard > 0.5 with one new leaf), split (20%+ of its rows in each of several new
    leaves), merged (into one new leaf it shares with others) or vanished (scattered); new
    leaves that no previous leaf feeds with 20%+ of their rows are listed as appeared.
    """
    common = previous.index.intersection(current.index)
    old, new = previous.loc[common].astype(str), current.loc[common].astype(str)
    if len(common) == 0:
        return {"common_rows": 0, "ari": None, "changes": []}
    crossing = pd.crosstab(old, new)
    old_sizes, new_sizes = crossing.sum(axis=1), crossing.sum(axis=0)
    union = old_sizes.to_numpy()[:, None] + new_sizes.to_numpy()[None, :] - crossing.to_numpy()
    jaccard = pd.DataFrame(crossing.to_numpy() / union, crossing.index, crossing.columns)
    old_share = crossing.div(old_sizes, axis=0)
    new_share = crossing.div(new_sizes, axis=1)
    changes = []
    for leaf in crossing.index:
        best = jaccard.loc[leaf].idxmax()
        if jaccard.loc[leaf, best] > SAME:
            changes.append({"previous": leaf, "current": best, "change": "kept"})
            continue
        targets = sorted(old_share.columns[old_share.loc[leaf] >= SHARE])
        change = {0: "vanished", 1: "merged"}.get(len(targets), "split")
        changes.append({"previous": leaf, "current": ", ".join(targets), "change": change})
    for leaf in crossing.columns:
        if jaccard[leaf].max() <= SAME and not (new_share[leaf] >= SHARE).any():
            changes.append({"previous": "", "current": leaf, "change": "appeared"})
    return {
        "common_rows": int(len(common)),
        "ari": float(adjusted_rand_score(old, new)),
        "changes": changes,
    }
