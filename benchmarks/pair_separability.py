"""Can any unsupervised method tell two MNIST digits apart, at the size of one tree node?

In the 5,000 MNIST digits the tree keeps the 4s and 9s (about 1,000 rows) in one node. This
script asks whether that is the split rule's fault or the data's: it clusters the rows of two
digits alone with the usual unsupervised methods (k-means, a Gaussian mixture and Ward on
principal components, spectral clustering on a k-NN graph, and k-means or HDBSCAN on a UMAP
layout with euclidean or cosine distances) and prints each one's ARI with the digits (1:
the digits recovered, 0: no better than chance).

Run: .venv/bin/python benchmarks/pair_separability.py [--digits 4 9] [--output PATH]
(needs the bench extra: pip install -e '.[bench]').
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from sklearn.cluster import AgglomerativeClustering, KMeans, SpectralClustering
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score
from sklearn.mixture import GaussianMixture

sys.path.insert(0, str(Path(__file__).parent))
from quality import _mnist_5k  # noqa: E402  (a sibling script, not a package)

DEFAULT_OUTPUT = Path(__file__).parent / "results" / "pair_separability_4_9.json"
SEED = 0


def methods(pixels: np.ndarray) -> dict[str, np.ndarray]:
    """Two-way (or HDBSCAN's own) partitions of the rows by each method."""
    import hdbscan
    import umap

    found: dict[str, np.ndarray] = {}
    for components in (10, 50):
        projected = PCA(components, random_state=SEED).fit_transform(pixels)
        found[f"k-means, {components} PCs"] = KMeans(2, n_init=10, random_state=SEED).fit_predict(
            projected
        )
        found[f"Gaussian mixture, {components} PCs"] = GaussianMixture(
            2, random_state=SEED
        ).fit_predict(projected)
        found[f"Ward, {components} PCs"] = AgglomerativeClustering(2).fit_predict(projected)
        found[f"spectral (15-NN graph), {components} PCs"] = SpectralClustering(
            2, affinity="nearest_neighbors", n_neighbors=15, random_state=SEED
        ).fit_predict(projected)
    projected = PCA(50, random_state=SEED).fit_transform(pixels)
    for metric, data in (("euclidean", projected), ("cosine", pixels)):
        for neighbours in (15, 30, 60):
            layout = umap.UMAP(
                n_neighbors=neighbours, min_dist=0.0, metric=metric, random_state=SEED
            ).fit_transform(data)
            name = f"UMAP {metric}, {neighbours} neighbours"
            found[f"{name}, k-means"] = KMeans(2, n_init=10, random_state=SEED).fit_predict(layout)
            found[f"{name}, HDBSCAN"] = hdbscan.HDBSCAN(min_cluster_size=50).fit_predict(layout)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--digits", type=int, nargs=2, default=[4, 9])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    pixels, _, digit = _mnist_5k()
    rows = np.isin(digit, args.digits)
    print(f"MNIST 5k, digits {args.digits[0]} and {args.digits[1]}: {rows.sum()} rows\n")
    print("| method | ARI with the digits |\n|---|---|")
    scores = {}
    for name, labels in methods(pixels[rows]).items():
        scores[name] = round(float(adjusted_rand_score(digit[rows], labels)), 4)
        print(f"| {name} | {scores[name]:.3f} |", flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"digits": args.digits, "ari": scores}, indent=2))
    print(f"\nWrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
