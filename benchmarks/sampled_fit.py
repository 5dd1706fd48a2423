"""What fitting UMAP on a sample (and placing the other rows with ``transform``) costs in quality.

Usage::

    python benchmarks/sampled_fit.py [--rows 70000 --columns 784 --sample 50000]

Embeds one planted-hierarchy table twice with the node procedure (PCA for wide data, UMAP,
HDBSCAN): once fitting UMAP on every row, once fitting on ``--sample`` rows and transforming
the rest (the default above ``embedding.fit_sample_size``). Reports the time of each, the ARI
between the two clusterings (the quality loss), each one's ARI against the planted top level,
and the same for the fast_hdbscan backend on the sampled embedding. JSON goes to
``benchmarks/results/sampled_fit_<rows>x<columns>.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import adjusted_rand_score

from recursive_clusters.core.clustering import NOISE, cluster_embedding
from recursive_clusters.core.embedding import embed, node_seed
from recursive_clusters.core.settings import ClusteringSettings, EmbeddingSettings
from recursive_clusters.core.synthetic import planted_hierarchy

HERE = Path(__file__).resolve().parent


def ari_on_clustered(first: np.ndarray, second: np.ndarray) -> float:
    """ARI over the rows that both label (noise is no claim either way)."""
    both = (np.asarray(first) != NOISE) & (np.asarray(second) != NOISE)
    return float(adjusted_rand_score(np.asarray(first)[both], np.asarray(second)[both]))


def timed(function, *args):
    started = time.perf_counter()
    value = function(*args)
    return value, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=70_000)
    parser.add_argument("--columns", type=int, default=784)
    parser.add_argument("--sample", type=int, default=EmbeddingSettings().fit_sample_size)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()

    matrix, tops, _ = planted_hierarchy(
        args.rows, args.columns, n_top=4, n_sub=3, top_separation=20.0, sub_separation=4.5, seed=0
    )
    seed = node_seed(42, "root")
    full, full_seconds = timed(embed, matrix, EmbeddingSettings(fit_sample_size=args.rows), seed)
    sampled, sampled_seconds = timed(
        embed, matrix, EmbeddingSettings(fit_sample_size=args.sample), seed
    )
    clustering = ClusteringSettings()
    full_labels, full_cluster_seconds = timed(cluster_embedding, full, clustering)
    sampled_labels, sampled_cluster_seconds = timed(cluster_embedding, sampled, clustering)
    fast_labels, fast_cluster_seconds = timed(
        cluster_embedding, sampled, ClusteringSettings(backend="fast_hdbscan")
    )
    truth = np.asarray(tops)
    result = {
        "shape": f"{args.rows}x{args.columns}",
        "fit_sample_size": args.sample,
        "embed_seconds": {"full fit": full_seconds, "sampled fit + transform": sampled_seconds},
        "hdbscan_seconds": {
            "full-fit embedding": full_cluster_seconds,
            "sampled-fit embedding": sampled_cluster_seconds,
            "sampled-fit embedding, fast_hdbscan": fast_cluster_seconds,
        },
        "children": {
            "full": full_labels.n_children,
            "sampled": sampled_labels.n_children,
            "sampled, fast_hdbscan": fast_labels.n_children,
        },
        "ari_sampled_vs_full": ari_on_clustered(sampled_labels.labels, full_labels.labels),
        "ari_full_vs_planted": ari_on_clustered(full_labels.labels, truth),
        "ari_sampled_vs_planted": ari_on_clustered(sampled_labels.labels, truth),
        "ari_fast_hdbscan_vs_hdbscan": ari_on_clustered(fast_labels.labels, sampled_labels.labels),
        "noise_fraction": {
            "full": full_labels.noise_fraction,
            "sampled": sampled_labels.noise_fraction,
        },
    }
    output = args.output or HERE / "results" / f"sampled_fit_{result['shape']}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
