"""How many training rows a node's classifiers need: the held-out quality and time of the
router and one-vs-all models at several caps of ``explanation.max_training_rows``, on a big
real node.

Usage::

    python benchmarks/training_rows.py [--caps 100000 50000 30000 20000 10000]

The node is the 60,000 MNIST training digits (717 non-constant pixels, as the tree prepares
them) with the ten digits as its children: a big root node with more children than the
tree's (7 on these digits), so the models' task is no easier than the tree's. For each cap
the models are trained as the tree trains them (stratified held-out quarter, scored whole)
and the figures are the router's held-out accuracy (what routes a new row in ``predict``),
the median and worst one-vs-all ROC AUC, the router's agreement with the uncapped one on the
held-out rows, and the wall seconds on 2 threads. JSON to ``results/training_rows.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def main() -> None:
    import pandas as pd
    from quality import _mnist_train_path  # benchmarks/, beside this script

    from recursive_clusters.core.explain import float32_rows, train_classifiers
    from recursive_clusters.core.settings import ExplanationSettings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--caps", type=int, nargs="+", default=[100_000, 50_000, 30_000, 20_000])
    args = parser.parse_args()
    table = pd.read_parquet(_mnist_train_path())
    pixels = table[[f"px{i}" for i in range(784)]]
    features = pixels.loc[:, pixels.std() > 0].astype(np.float32)
    labels = table["label"].to_numpy()
    result, reference = {}, None
    for cap in args.caps:
        settings = ExplanationSettings(max_training_rows=cap)
        started = time.perf_counter()
        models = train_classifiers(features, labels, settings, random_state=0, n_jobs=2)
        seconds = time.perf_counter() - started
        # the held-out rows: the same stratified split for every cap (same seed, same labels)
        held_out = np.setdiff1d(np.arange(len(labels)), _training_positions(labels, settings))
        routed = models.router.predict(float32_rows(features, held_out))
        reference = routed if reference is None else reference
        aucs = models.metrics["roc_auc"]
        result[cap] = {
            "training_rows": int(min(cap, round(len(labels) * (1 - settings.test_size)))),
            "seconds": seconds,
            "router_accuracy": models.router_accuracy,
            "median_auc": float(aucs.median()),
            "worst_auc": float(aucs.min()),
            "router_agreement_with_first_cap": float(np.mean(routed == reference)),
        }
        print(cap, json.dumps(result[cap]), flush=True)
    output = HERE / "results" / "training_rows.json"
    output.write_text(json.dumps(result, indent=2))
    print(
        "| cap | training rows | seconds | router accuracy | median / worst AUC | "
        "agreement with the first cap |"
    )
    print("|---|---|---|---|---|---|")
    for cap, f in result.items():
        print(
            f"| {cap:,} | {f['training_rows']:,} | {f['seconds']:.1f} | "
            f"{f['router_accuracy']:.4f} | {f['median_auc']:.4f} / {f['worst_auc']:.4f} | "
            f"{f['router_agreement_with_first_cap']:.4f} |"
        )
    print(f"JSON: {output}")


def _training_positions(labels: np.ndarray, settings) -> np.ndarray:
    """The rows ``train_classifiers`` trains on before its cap (its first stratified split)."""
    from sklearn.model_selection import train_test_split

    positions = np.arange(len(labels))
    train, _ = train_test_split(
        positions, test_size=settings.test_size, stratify=labels, random_state=0
    )
    return train


if __name__ == "__main__":
    main()
