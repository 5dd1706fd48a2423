"""What fitting UMAP on a sample (and placing the other rows with ``transform``) costs in quality.

Usage::

    python benchmarks/sampled_fit.py [--rows 70000 --columns 784 --sample 50000]

Embeds one planted-hierarchy table twice with the node procedure (PCA for wide data, UMAP,
HDBSCAN): once fitting UMAP on every row, once fitting on ``--sample`` rows and transforming
the rest (the default above ``embedding.fit_sample_size``). Reports the time of each and the
ARI between the two embeddings' clusterings (the quality loss), at both of HDBSCAN's
granularities: 'eom' (the default; on a two-level hierarchy it may pick either level, which is
a choice between correct answers rather than a loss) and 'leaf' (the finest clusters, so both
embeddings are compared at the same granularity). Each is also scored against the planted
top level and leaves, and the fast_hdbscan backend against hdbscan. JSON goes to
``benchmarks/results/sampled_fit_<rows>x<columns>.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from pipeline import PLANTED, planted_data  # benchmarks/, beside this script
from sklearn.metrics import adjusted_rand_score

from recursive_clusters.core.clustering import NOISE, cluster_embedding
from recursive_clusters.core.embedding import embed
from recursive_clusters.core.paths import NodePath
from recursive_clusters.core.settings import ClusteringSettings, EmbeddingSettings

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

    matrix, tops, subs = planted_data(args.rows, args.columns)  # the data of pipeline.py
    leaves = np.asarray(tops) * PLANTED["n_sub"] + np.asarray(subs)
    truth = {"top": np.asarray(tops), "leaf": leaves}
    seed = NodePath("root").seed(42)
    full, full_seconds = timed(embed, matrix, EmbeddingSettings(fit_sample_size=args.rows), seed)
    sampled, sampled_seconds = timed(
        embed, matrix, EmbeddingSettings(fit_sample_size=args.sample), seed
    )
    result = {
        "shape": f"{args.rows}x{args.columns}",
        "fit_sample_size": args.sample,
        "embed_seconds": {"full fit": full_seconds, "sampled fit + transform": sampled_seconds},
    }
    for method in ("eom", "leaf"):
        settings = ClusteringSettings(cluster_selection_method=method)
        on_full = cluster_embedding(full, settings, seed)
        on_sampled, seconds = timed(cluster_embedding, sampled, settings, seed)
        figures = {
            "children": {"full": on_full.n_children, "sampled": on_sampled.n_children},
            "noise_fraction": {
                "full": on_full.noise_fraction,
                "sampled": on_sampled.noise_fraction,
            },
            "ari_sampled_vs_full": ari_on_clustered(on_sampled.labels, on_full.labels),
            "hdbscan_seconds_sampled": seconds,
        }
        for level, labels in truth.items():
            figures[f"ari_full_vs_planted_{level}"] = ari_on_clustered(on_full.labels, labels)
            figures[f"ari_sampled_vs_planted_{level}"] = ari_on_clustered(on_sampled.labels, labels)
        if method == "eom":
            fast, fast_seconds = timed(
                cluster_embedding, sampled, ClusteringSettings(backend="fast_hdbscan"), seed
            )
            figures["fast_hdbscan_seconds"] = fast_seconds
            figures["ari_fast_hdbscan_vs_hdbscan"] = ari_on_clustered(
                fast.labels, on_sampled.labels
            )
        result[method] = figures
    output = args.output or HERE / "results" / f"sampled_fit_{result['shape']}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
