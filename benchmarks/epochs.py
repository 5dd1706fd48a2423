"""How many UMAP epochs a node's layout needs: 200 against umap-learn's 500 for nodes of up to
10,000 rows, judged by the clusters the tree finds in the layout, on real data.

Usage::

    python benchmarks/epochs.py [--sizes 2000 5000 10000]

umap-learn optimises a layout of up to 10,000 rows for 500 epochs and a larger one for 200.
A tree lays out every node that size (and the split test lays each out twice more), so the
epochs are much of a tree's time. For each node (stratified MNIST training digits of all
ten classes, the {4, 9} pair that is the hardest split in MNIST, and scikit-learn's digits)
this fits the layout the tree fits (PCA to 50 columns, UMAP with the tree's settings) three
times: 500 epochs with seed A, 500 with seed B, 200 with seed A. Each is clustered as the
tree clusters it. The question is whether 200 epochs changes the clusters more than a new
seed does: it prints the ARI of 200 vs 500 epochs beside the ARI of two 500-epoch seeds,
each layout's ARI with the digit labels, and the CPU seconds of each fit. JSON to
``results/epochs.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import adjusted_rand_score

HERE = Path(__file__).resolve().parent


def layout_clusters(matrix: np.ndarray, epochs: int, seed: int) -> tuple[np.ndarray, float]:
    """The tree's layout of ``matrix`` at ``epochs`` (fit_layout's path below the fit
    sample size) and its clusters; with the fit's CPU seconds."""
    from recursive_clusters.core.clustering import cluster_embedding
    from recursive_clusters.core.embedding import reduce_width, umap_estimator
    from recursive_clusters.core.parallelism import single_threaded_blas
    from recursive_clusters.core.settings import Settings

    settings = Settings()
    tick = time.process_time()
    reduced = reduce_width(np.asarray(matrix, dtype=np.float32), settings.embedding, seed)
    reducer = umap_estimator("umap", len(matrix), settings.embedding, seed)
    reducer.n_epochs = epochs
    with single_threaded_blas():
        coordinates = reducer.fit_transform(reduced).astype(np.float32)
    seconds = time.process_time() - tick
    return cluster_embedding(coordinates, settings.clustering, seed).labels, seconds


def ari(a: np.ndarray, b: np.ndarray) -> float:
    """ARI over the rows both clusterings keep (noise is left out, as the tree's leaves)."""
    both = (a >= 0) & (b >= 0)
    return float(adjusted_rand_score(a[both], b[both]))


def compare(matrix: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    a500, s500 = layout_clusters(matrix, 500, seed=1)
    b500, _ = layout_clusters(matrix, 500, seed=2)
    a200, s200 = layout_clusters(matrix, 200, seed=1)
    return {
        "rows": len(matrix),
        "ari_500_seed_vs_seed": ari(a500, b500),
        "ari_200_vs_500": ari(a200, a500),
        "ari_truth_500": ari(a500, truth),
        "ari_truth_500_seed_b": ari(b500, truth),
        "ari_truth_200": ari(a200, truth),
        "clusters_500": int(a500.max() + 1),
        "clusters_200": int(a200.max() + 1),
        "noise_500": float(np.mean(a500 < 0)),
        "noise_200": float(np.mean(a200 < 0)),
        "cpu_s_500": s500,
        "cpu_s_200": s200,
    }


def stratified(labels: np.ndarray, n_rows: int, seed: int) -> np.ndarray:
    from sklearn.model_selection import train_test_split

    if n_rows >= len(labels):
        return np.arange(len(labels))
    rows, _ = train_test_split(
        np.arange(len(labels)), train_size=n_rows, stratify=labels, random_state=seed
    )
    return np.sort(rows)


def main() -> None:
    import pandas as pd
    from quality import _mnist_train_path  # benchmarks/, beside this script
    from sklearn.datasets import load_digits

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 5000, 10000])
    args = parser.parse_args()
    table = pd.read_parquet(_mnist_train_path())
    pixels = table[[f"px{i}" for i in range(784)]].to_numpy(np.float32)
    digits = table["label"].to_numpy()
    pair = np.flatnonzero(np.isin(digits, [4, 9]))
    nodes = {}
    digits_data = load_digits()
    nodes["scikit-learn digits"] = (digits_data.data, digits_data.target)
    for size in args.sizes:
        rows = stratified(digits, size, seed=0)
        nodes[f"MNIST, all digits, {size:,}"] = (pixels[rows], digits[rows])
        rows = pair[stratified(digits[pair], size, seed=0)]
        nodes[f"MNIST {{4, 9}}, {len(rows):,}"] = (pixels[rows], digits[rows])
    result = {}
    for name, (matrix, truth) in nodes.items():
        result[name] = compare(matrix, truth)
        print(name, json.dumps(result[name]), flush=True)
    output = HERE / "results" / "epochs.json"
    output.write_text(json.dumps(result, indent=2))
    print(
        "| node | rows | ARI 500 seed A vs B | ARI 200 vs 500 | ARI truth 500 / 500 B / 200 "
        "| CPU s 500 / 200 |"
    )
    print("|---|---|---|---|---|---|")
    for name, f in result.items():
        print(
            f"| {name} | {f['rows']:,} | {f['ari_500_seed_vs_seed']:.3f} | "
            f"{f['ari_200_vs_500']:.3f} | {f['ari_truth_500']:.3f} / "
            f"{f['ari_truth_500_seed_b']:.3f} / {f['ari_truth_200']:.3f} | "
            f"{f['cpu_s_500']:.1f} / {f['cpu_s_200']:.1f} |"
        )
    print(f"JSON: {output}")


if __name__ == "__main__":
    main()
