"""Placing rows past UMAP's fit sample: umap-learn's ``transform`` against the cheaper
``neighbours`` placement (the transform's weighted k-NN mean without its optimisation),
measured on what matters, the clusters found afterwards.

Usage::

    python benchmarks/placement.py [--rows 200000 --columns 50]
    python benchmarks/placement.py --dataset mnist      # the 60,000 MNIST training digits

Planted: two nodes of the planted hierarchy of ``pipeline.py``: the whole table (level 1:
the 4 planted groups) and one group (level 2: its 3 sub-clusters, 4.5 standard deviations
apart). MNIST: the root of the 60,000 training digits (truth: the digit), after the PCA the
tree applies to wide data. Each is fitted on ``embedding.fit_sample_size`` rows and the rest
placed both ways; each layout is clustered as the tree clusters it. Prints CPU seconds per
100,000 placed rows (CPU time, not wall time: it holds on a shared machine), the ARI of each
placement's clusters with the truth (planted or digit), and between the two placements; JSON to
``results/placement_<rows>x<columns>.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from pipeline import PLANTED, planted_data  # benchmarks/, beside this script
from sklearn.metrics import adjusted_rand_score

HERE = Path(__file__).resolve().parent


def compare(matrix: np.ndarray, truth: np.ndarray, seed: int) -> dict[str, float]:
    """Fit on the sample once, place the rest both ways, cluster each layout."""
    from recursive_clusters.core.clustering import cluster_embedding
    from recursive_clusters.core.embedding import place_rows, reduce_width, umap_estimator
    from recursive_clusters.core.settings import Settings

    settings = Settings()
    matrix = reduce_width(np.asarray(matrix, dtype=np.float32), settings.embedding, seed)
    n_rows = len(matrix)
    sample = np.random.default_rng(seed).choice(n_rows, settings.embedding.fit_sample_size, False)
    rest = np.setdiff1d(np.arange(n_rows), sample)
    reducer = umap_estimator("umap", n_rows, settings.embedding, seed)
    rows = np.asarray(matrix, dtype=np.float32)
    tick = time.process_time()
    fitted = reducer.fit_transform(rows[sample])
    figures = {"rows": n_rows, "placed": len(rest), "fit_cpu_s": time.process_time() - tick}
    place_rows(reducer, rows[rest[:1000]], "neighbours")  # numba compilation, not timed
    labels = {}
    for method in ("transform", "neighbours"):
        tick = time.process_time()
        coordinates = np.empty((n_rows, 2), dtype=np.float32)
        coordinates[sample] = fitted
        coordinates[rest] = place_rows(reducer, rows[rest], method)
        figures[f"{method}_cpu_s_per_100k"] = (time.process_time() - tick) / len(rest) * 1e5
        clusters = cluster_embedding(coordinates, settings.clustering, seed).labels
        labels[method] = clusters
        clustered = clusters >= 0
        figures[f"{method}_ari_vs_truth"] = adjusted_rand_score(
            truth[clustered], clusters[clustered]
        )
        figures[f"{method}_clusters"] = int(clusters.max() + 1)
    figures["ari_neighbours_vs_transform"] = adjusted_rand_score(
        labels["transform"], labels["neighbours"]
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=["planted", "mnist"], default="planted")
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--columns", type=int, default=50)
    args = parser.parse_args()
    if args.dataset == "mnist":
        import pandas as pd
        from quality import _mnist_train_path  # benchmarks/, beside this script

        table = pd.read_parquet(_mnist_train_path())
        pixels = table[[f"px{i}" for i in range(784)]].to_numpy(np.float32)
        result = {"level 1 (60,000 MNIST digits)": compare(pixels, table["label"].to_numpy(), 1)}
        output = HERE / "results" / "placement_mnist_60000x784.json"
    else:
        matrix, tops, leaves = planted_data(args.rows, args.columns)
        tops, leaves = np.asarray(tops), np.asarray(leaves)
        group = tops == 0
        result = {
            "level 1 (whole table, 4 groups)": compare(matrix, tops, seed=1),
            "level 2 (one group, 3 sub-clusters)": compare(matrix[group], leaves[group], seed=2),
            "planted": PLANTED,
        }
        output = HERE / "results" / f"placement_{args.rows}x{args.columns}.json"
    output.write_text(json.dumps(result, indent=2))
    for node, figures in result.items():
        if node != "planted":
            print(node, json.dumps(figures, indent=1))
    print(f"JSON: {output}")


if __name__ == "__main__":
    main()
