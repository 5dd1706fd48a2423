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

Throughput: a depth-3 tree on 20,000 rows of a three-level planted hierarchy (3 clusters of 3
sub-clusters of 2), then one batch of ``--rows`` rows from the same distribution routed
through it in a fresh process (time and peak memory of the scoring alone), and the drift
figures on top.
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
    from recursive_clusters.core.settings import parse_settings
    from recursive_clusters.resources import TreeStorage

    store = TreeStorage().store()
    generation = store.require_current()
    settings = parse_settings(store.manifest(generation)["settings"])
    return store, generation, settings, store.read_drift_baseline(generation)


def score(store, generation, settings, baseline, batch: pd.DataFrame):
    """What the ``scored_batches`` asset computes for one batch."""
    from recursive_clusters.core.drift import measure_drift
    from recursive_clusters.scoring import route, tree_features

    features, _ = tree_features(store, generation, batch)
    routed = route(store, generation, settings, features)
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


def nested_clusters(rows: int, columns: int, seed: int = 0) -> np.ndarray:
    """Rows of 18 clusters nested 3 x 3 x 2 (so far apart that the root finds all 18 at the
    default granularity: a one-level tree with an 18-way router). The centres are the same
    for every seed, so a batch comes from the tree's distribution."""
    axes = np.linalg.qr(np.random.default_rng(0).normal(size=(columns, 8)))[0].T
    centres = np.array(
        [
            40 * axes[top] + 12 * axes[3 + sub] + 6 * axes[6 + leaf]
            for top in range(3)
            for sub in range(3)
            for leaf in range(2)
        ]
    )
    rng = np.random.default_rng(seed)
    which = rng.integers(len(centres), size=rows)
    return (centres[which] + rng.normal(size=(rows, columns))).astype(np.float32)


def throughput(rows: int, columns: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp, dagster_home(Path(tmp)):
        features = nested_clusters(20_000, columns)
        table = pd.DataFrame(features, columns=[f"x{i}" for i in range(columns)])
        table.insert(0, "row_id", np.arange(len(table)))
        started = time.perf_counter()
        grow(table, Path(tmp), ["--max-depth", "3"])
        grow_s = time.perf_counter() - started
        child = subprocess.run(
            [sys.executable, __file__, "--score-only", "--rows", str(rows), "--columns",
             str(columns)],
            check=True, capture_output=True, text=True, env=dict(os.environ),
        )  # fmt: skip
    return {"tree_rows": 20_000, "tree_seconds": grow_s, **json.loads(child.stdout)}


def score_only(rows: int, columns: int) -> None:
    """In a fresh process: one batch of ``rows`` through the current tree, timed."""
    from recursive_clusters.core.drift import measure_drift
    from recursive_clusters.scoring import route, tree_features

    store, generation, settings, baseline = open_current()
    batch = pd.DataFrame(
        nested_clusters(rows, columns, seed=1), columns=[f"x{i}" for i in range(columns)]
    )
    started = time.perf_counter()
    matrix, _ = tree_features(store, generation, batch)
    routed = route(store, generation, settings, matrix)
    route_s = time.perf_counter() - started
    started = time.perf_counter()
    report = measure_drift(baseline, routed, matrix, settings.drift)
    drift_s = time.perf_counter() - started
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    figures = {
        "rows": rows,
        "columns": columns,
        "max_depth_reached": int(routed["depth"].max()),
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
