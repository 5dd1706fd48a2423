"""How the time of a whole tree grows with the number of rows, and its fitted exponent.

Usage::

    python benchmarks/cost_curve.py [--rows 10000 30000 100000 300000 --columns 50]

Runs ``pipeline.py`` (planted hierarchy, depth 2, bare core in a fresh process; add
``--pipeline`` for the Dagster pipeline too) at each size and fits time = a * rows^b on a
log-log scale, for the total and for each stage. JSON goes to
``benchmarks/results/cost_curve_<columns>cols.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
STAGES = ("process total", "embed", "cluster", "accept", "classify", "explain")


def growth_exponent(rows: list[int], seconds: list[float]) -> float:
    """The slope b of log(seconds) = log(a) + b log(rows), by least squares."""
    return float(np.polyfit(np.log(rows), np.log(seconds), 1)[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 30_000, 100_000, 300_000])
    parser.add_argument("--columns", type=int, default=50)
    parser.add_argument("--max-depth", type=int, default=2)
    parser.add_argument("--pipeline", action="store_true", help="time the Dagster run too")
    args = parser.parse_args()

    runs = []
    for rows in args.rows:
        output = HERE / "results" / f"pipeline_planted_{rows}x{args.columns}.json"
        command = [sys.executable, str(HERE / "pipeline.py"), "--dataset", "planted"]
        command += ["--rows", str(rows), "--columns", str(args.columns)]
        command += ["--max-depth", str(args.max_depth), "--output", str(output)]
        command += [] if args.pipeline else ["--skip-pipeline"]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        runs.append(json.loads(output.read_text()))
        print(f"{rows} rows: {runs[-1]['bare']['process total']:.1f} s", flush=True)

    sizes = list(args.rows)
    table = {stage: [run["bare"][stage] for run in runs] for stage in STAGES}
    table["nodes"] = [run["bare"]["nodes"] for run in runs]
    table["peak_rss_gb"] = [run["bare"]["peak_rss_gb"] for run in runs]
    if args.pipeline:
        table["pipeline total"] = [run["pipeline"]["total"] for run in runs]
    exponents = {
        stage: growth_exponent(sizes, values)
        for stage, values in table.items()
        if stage not in ("nodes", "peak_rss_gb") and min(values) > 0
    }
    result = {"columns": args.columns, "max_depth": args.max_depth, "rows": sizes,
              "seconds": table, "growth_exponent": exponents}  # fmt: skip
    output = HERE / "results" / f"cost_curve_{args.columns}cols.json"
    output.write_text(json.dumps(result, indent=2))

    print(f"\n| rows | {' | '.join(f'{n:,}' for n in sizes)} | exponent |")
    print(f"|---|{'---|' * len(sizes)}---|")
    for stage, values in table.items():
        cells = " | ".join(f"{v:.1f}" if isinstance(v, float) else str(v) for v in values)
        exponent = f"{exponents[stage]:.2f}" if stage in exponents else ""
        print(f"| {stage} | {cells} | {exponent} |")
    print(f"\nJSON: {output}")


if __name__ == "__main__":
    main()
