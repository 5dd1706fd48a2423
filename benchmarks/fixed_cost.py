"""The fixed cost of a run, and what it costs a tree per node before and after batching.

Usage::

    python benchmarks/fixed_cost.py [--nodes-per-level 1 4 --repeats 3]

A run launched by Dagster's default launcher is a fresh process: it imports Dagster and the
stack, loads the code location, and compiles UMAP's numba code on its first fit. This script
measures that in fresh processes (median of ``--repeats``), then prices a tree with
``--nodes-per-level`` nodes three ways: one process per node (a run per partition, no
batching), one process per batch of siblings with at most two batches per level (the daemon's
sensor), and one process for the whole tree (the CLI runs every job in-process). JSON goes to
``benchmarks/results/fixed_cost.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

# Runs in a fresh interpreter and prints the seconds of each step as JSON.
PROBE = """
import json, time
started = time.perf_counter()
import numpy as np
import recursive_clusters.defs.definitions  # the code location: Dagster, assets, jobs, sensors
import umap, hdbscan, xgboost, shap
imported = time.perf_counter()
from recursive_clusters.core.embedding import embed
from recursive_clusters.core.settings import EmbeddingSettings
tiny = np.random.default_rng(0).normal(size=(300, 10))
tick = time.perf_counter()
embed(tiny, EmbeddingSettings(), 0)
first_fit = time.perf_counter() - tick
tick = time.perf_counter()
embed(tiny, EmbeddingSettings(), 1)
warm_fit = time.perf_counter() - tick
print(json.dumps({"imports": imported - started, "numba_compile": first_fit - warm_fit}))
"""


def probe_fresh_process() -> dict[str, float]:
    """Import and first-fit cost of one fresh process, as a run launched alone pays."""
    output = subprocess.run(
        [sys.executable, "-c", PROBE], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--nodes-per-level", type=int, nargs="+", default=[1, 4], help="the tree priced"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", type=Path, default=HERE / "results" / "fixed_cost.json")
    args = parser.parse_args()

    probes = [probe_fresh_process() for _ in range(args.repeats)]
    imports = statistics.median(p["imports"] for p in probes)
    compile_ = statistics.median(p["numba_compile"] for p in probes)
    per_run = imports + compile_
    levels = args.nodes_per_level
    nodes = sum(levels)
    processes = {
        "one process per node (no batching)": nodes,
        "sensor: one per sibling batch, <= 2 per level": sum(min(n, 2) for n in levels),
        "CLI: one for the whole tree": 1,
    }
    result = {
        "imports_s": imports,
        "numba_compile_s": compile_,
        "fixed_cost_per_run_s": per_run,
        "nodes_per_level": levels,
        "ways": {
            name: {"processes": n, "fixed_cost_s": n * per_run, "per_node_s": n * per_run / nodes}
            for name, n in processes.items()
        },
        "probes": probes,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2))
    print(f"fresh process: imports {imports:.1f} s + numba compilation {compile_:.1f} s "
          f"= {per_run:.1f} s per run (median of {args.repeats})\n")  # fmt: skip
    print(f"| tree of {levels} nodes per level | processes | fixed cost | per node |")
    print("|---|---|---|---|")
    for name, figures in result["ways"].items():
        print(f"| {name} | {figures['processes']} | {figures['fixed_cost_s']:.1f} s "
              f"| {figures['per_node_s']:.1f} s |")  # fmt: skip


if __name__ == "__main__":
    main()
