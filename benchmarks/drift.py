"""Calibrate the drift check on real digits, and time scoring a large batch.

Usage::

    python benchmarks/drift.py                       # calibration (MNIST 5k with the bench extra)
    python benchmarks/drift.py --throughput --rows 1000000 --columns 50

Calibration: for each data set and each held-out digit, a tree is grown (``recursive-clusters
run``, default settings) on 70% of the rows of the other digits. Batches are then drawn from
the other 30% (the tree's own distribution: every alarm is a false alarm) and from that
pool mixed with a share of the held-out digit (a kind of row the tree never saw: every alarm
is a detection), and scored through the same functions as the ``scored_batches`` asset.
Prints the false-alarm and detection rates per batch size and share, and which figure fired.

Throughput: a tree (default settings, depth up to 3) on scikit-learn's digits, restricted to
their ``--columns`` most variable pixels, then one batch of ``--rows`` new rows from the same
digits (drawn with replacement, with pixel noise) routed through it in a fresh process (time
and peak memory of the scoring alone), and the drift figures on top.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from quality import _mnist_5k, _mnist_available  # noqa: E402

BATCHES_PER_CELL = 30
QUIET_SIZES = (50, 200, 1000)
NEW_SHARES = (0.05, 0.1, 0.25, 0.5)
NEW_SIZES = (200, 1000)


@contextmanager
def dagster_home(directory: Path):
    previous = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(directory / "dagster_home")
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("DAGSTER_HOME")
        else:
            os.environ["DAGSTER_HOME"] = previous


def grow(table: pd.DataFrame, directory: Path, extra: list[str] = ()) -> None:
    from recursive_clusters.cli import main

    path = directory / "input.parquet"
    table.to_parquet(path)
    arguments = ["run", "--input", str(path), "--id-column", "row_id", *extra]
    if main(arguments) != 0:
        raise SystemExit("the tree could not be grown")


def open_current():
    from recursive_clusters.defs.resources import TreeStoreResource

    store = TreeStoreResource().store()
    tree_id = store.require_current()
    settings = store.tree_settings(tree_id)
    return store, tree_id, settings, store.read_drift_baseline(tree_id)


def score(store, tree_id, settings, baseline, batch: pd.DataFrame):
    """What the ``scored_batches`` asset computes for one batch."""
    from recursive_clusters.core.drift import measure_drift
    from recursive_clusters.trees.scoring import route, tree_features

    features, _ = tree_features(store, tree_id, batch)
    routed = route(store, tree_id, settings, features)
    return measure_drift(baseline, routed, features, settings.drift)


def calibrate(name: str, pixels: np.ndarray, digits: np.ndarray, held_out: int) -> list[dict]:
    rng = np.random.default_rng(0)
    table = pd.DataFrame(pixels, columns=[f"p{i}" for i in range(pixels.shape[1])])
    table.insert(0, "row_id", np.arange(len(table)))
    table["digit"] = digits.astype(str)
    seen = table[digits != held_out].sample(frac=1.0, random_state=0)
    cut = int(0.7 * len(seen))
    training, pool, new = seen.iloc[:cut], seen.iloc[cut:], table[digits == held_out]
    rows = []
    with tempfile.TemporaryDirectory() as tmp, dagster_home(Path(tmp)):
        started = time.perf_counter()
        grow(training, Path(tmp), ["--profile-columns", "digit"])
        grow_s = time.perf_counter() - started
        state = open_current()

        def cell(kind: str, size: int, share: float) -> None:
            reports, seconds = [], []
            for _ in range(BATCHES_PER_CELL):
                n_new = int(round(share * size))
                # with replacement where a data set has fewer rows than the batch asks for
                batch = pd.concat(
                    [
                        pool.sample(
                            size - n_new, replace=size - n_new > len(pool), random_state=rng
                        ),
                        new.sample(n_new, replace=n_new > len(new), random_state=rng),
                    ]
                )
                started = time.perf_counter()
                reports.append(score(*state, batch))
                seconds.append(time.perf_counter() - started)
            fired = lambda word: np.mean([any(word in r for r in x.reasons) for x in reports])  # noqa: E731
            rows.append(
                {
                    "data": name,
                    "held_out": held_out,
                    "batch": kind,
                    "rows": size,
                    "new_share": share,
                    "alarm_rate": float(np.mean([r.drifting for r in reports])),
                    "by_nodes": float(fired("node shares")),
                    "by_confidence": float(fired("confidently")),
                    "by_driver": float(fired("driver")),
                    "judged": float(np.mean([r.judged for r in reports])),
                    "median_node_psi": float(np.median([r.node_psi for r in reports])),
                    "p95_node_psi": float(np.quantile([r.node_psi for r in reports], 0.95)),
                    "seconds_per_batch": float(np.median(seconds)),
                    "tree_seconds": grow_s,
                }
            )

        for size in QUIET_SIZES:
            cell("same distribution", size, 0.0)
        for size in NEW_SIZES:
            for share in NEW_SHARES:
                cell("with unseen digit", size, share)
    return rows


def digit_rows(rows: int, columns: int, seed: int) -> pd.DataFrame:
    """``rows`` rows of scikit-learn's digits, each a real digit (drawn with replacement) with a
    little pixel noise, on the ``columns`` pixels that vary most: new rows from the tree's own
    distribution, as many as wanted."""
    from sklearn.datasets import load_digits

    pixels = load_digits().data
    kept = np.sort(np.argsort(pixels.var(axis=0))[::-1][:columns])
    rng = np.random.default_rng(seed)
    picked = pixels[rng.integers(len(pixels), size=rows)][:, kept]
    noisy = picked + rng.normal(scale=0.5, size=picked.shape) if seed else picked
    return pd.DataFrame(noisy.astype(np.float32), columns=[f"pixel_{i}" for i in kept])


def throughput(rows: int, columns: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp, dagster_home(Path(tmp)):
        table = digit_rows(1797, columns, seed=0)
        table.insert(0, "row_id", np.arange(len(table)))
        started = time.perf_counter()
        grow(table, Path(tmp), ["--max-depth", "3"])
        grow_s = time.perf_counter() - started
        child = subprocess.run(
            [sys.executable, __file__, "--score-only", "--rows", str(rows), "--columns",
             str(columns)],
            check=True, capture_output=True, text=True, env=dict(os.environ),
        )  # fmt: skip
    return {"tree_rows": len(table), "tree_seconds": grow_s, **json.loads(child.stdout)}


def tree_depth(records: dict[str, dict]) -> int:
    """The depth of the deepest leaf: how many levels of accepted splits the tree has."""
    from recursive_clusters.core.paths import NodePath

    return max((NodePath(p).level for p, r in records.items() if r["split_accepted"]), default=0)


def score_only(rows: int, columns: int) -> None:
    """In a fresh process: one batch of ``rows`` through the current tree, timed."""
    from recursive_clusters.core.drift import measure_drift
    from recursive_clusters.trees.scoring import route, tree_features

    store, tree_id, settings, baseline = open_current()
    batch = digit_rows(rows, columns, seed=1)
    started = time.perf_counter()
    matrix, _ = tree_features(store, tree_id, batch)
    routed = route(store, tree_id, settings, matrix)
    route_s = time.perf_counter() - started
    started = time.perf_counter()
    report = measure_drift(baseline, routed, matrix, settings.drift)
    drift_s = time.perf_counter() - started
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    depth = routed["depth"].value_counts(normalize=True).sort_index()
    figures = {
        "rows": rows,
        "columns": columns,
        "tree_depth": tree_depth(store.node_records(tree_id)),
        "rows_by_depth": {int(k): round(float(v), 4) for k, v in depth.items()},
        "score_seconds": route_s,
        "drift_seconds": drift_s,
        "drift_overhead": drift_s / route_s,
        "peak_gb": peak_gb,
        "drifting": report.drifting,
    }
    print(json.dumps(figures))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--throughput", action="store_true")
    parser.add_argument("--score-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--columns", type=int, default=50)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    if args.score_only:
        score_only(args.rows, args.columns)
        return
    if args.throughput:
        figures = throughput(args.rows, args.columns)
        print(pd.Series(figures).to_markdown())
        target = args.output or HERE / "results" / f"scoring_{args.rows}x{args.columns}.json"
    else:
        from sklearn.datasets import load_digits

        digits = load_digits()
        results = []
        for held_out in (9, 0):
            results += calibrate("sklearn digits", digits.data, digits.target, held_out)
        if _mnist_available():
            pixels, labels, _ = _mnist_5k()
            for held_out in (9, 0):
                results += calibrate("MNIST 5k", pixels, labels, held_out)
        figures = results
        print(pd.DataFrame(results).drop(columns="tree_seconds").round(3).to_markdown(index=False))
        target = args.output or HERE / "results" / "drift_calibration.json"
    target.write_text(json.dumps(figures, indent=2))
    print(f"\nwrote {target}")


if __name__ == "__main__":
    main()
