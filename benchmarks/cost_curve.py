"""How the time and memory of a whole tree grow with the number of rows, and where one box ends.

Usage::

    python benchmarks/cost_curve.py [--rows 10000 30000 100000 300000 --columns 50]
    python benchmarks/cost_curve.py --pipeline --rows 100000 1000000 3000000 10000000

Runs ``pipeline.py`` (planted hierarchy, depth 2) in a fresh process at each size and fits
time = a * rows^b on a log-log scale, for the total and for each stage. Bare (default): the
core alone, stages as the core times them; JSON in ``results/cost_curve_<columns>cols.json``.
``--pipeline``: ``recursive-clusters run`` itself, each stage's time (its Dagster steps,
every level summed) and peak resident memory (sampled every second), the row count at which
this machine runs out of an hour or of its memory (time extrapolated by the fit, memory
linearly), in ``results/cost_curve_large_<columns>cols.json``. ``--data-dir`` keeps the
generated tables for another run; ``--reuse`` takes a size's figures from an earlier run's
JSON instead of running it again.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
STAGES = ("process total", "embed", "cluster", "accept", "classify", "explain")
HOUR = 3600.0
QUALITY = ("level1_ari", "leaf_ari", "rows_in_a_leaf", "predict_agreement", "nodes", "leaves",
           "median_roc_auc")  # fmt: skip


def growth_exponent(rows: list[int], seconds: list[float]) -> float:
    """The slope b of log(seconds) = log(a) + b log(rows), by least squares."""
    return float(np.polyfit(np.log(rows), np.log(seconds), 1)[0])


def rows_reaching(rows: list[int], values: list[float], limit: float, log_log: bool) -> float:
    """The row count at which a fitted curve of ``values`` reaches ``limit``: a power law
    (``log_log``) or a straight line, fitted on the two largest sizes (the asymptote)."""
    x, y = np.asarray(rows[-2:], dtype=float), np.asarray(values[-2:], dtype=float)
    if log_log:
        slope, intercept = np.polyfit(np.log(x), np.log(y), 1)
        return float(np.exp((np.log(limit) - intercept) / slope))
    slope, intercept = np.polyfit(x, y, 1)
    return float((limit - intercept) / slope)


def machine_memory_gb() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


def run_size(rows: int, args: argparse.Namespace) -> dict:
    """``pipeline.py`` at one size, in a fresh process; its JSON."""
    output = HERE / "results" / f"pipeline_planted_{rows}x{args.columns}.json"
    if args.reuse and output.is_file():
        return json.loads(output.read_text())
    command = [sys.executable, str(HERE / "pipeline.py"), "--dataset", "planted"]
    command += ["--rows", str(rows), "--columns", str(args.columns)]
    command += ["--max-depth", str(args.max_depth), "--output", str(output)]
    command += ["--skip-bare"] if args.pipeline else ["--skip-pipeline"]
    if args.data_dir:
        command += ["--data", str(args.data_dir / f"planted_{rows}x{args.columns}.parquet")]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return json.loads(output.read_text())


def bare_curve(sizes: list[int], runs: list[dict], args: argparse.Namespace) -> dict:
    table = {stage: [run["bare"][stage] for run in runs] for stage in STAGES}
    table["nodes"] = [run["bare"]["nodes"] for run in runs]
    table["peak_rss_gb"] = [run["bare"]["peak_rss_gb"] for run in runs]
    exponents = {
        stage: growth_exponent(sizes, values)
        for stage, values in table.items()
        if stage not in ("nodes", "peak_rss_gb") and min(values) > 0
    }
    return {"columns": args.columns, "max_depth": args.max_depth, "rows": sizes,
            "seconds": table, "growth_exponent": exponents}  # fmt: skip


def pipeline_curve(sizes: list[int], runs: list[dict], args: argparse.Namespace) -> dict:
    figures = [run["pipeline"] for run in runs]
    stages = sorted({stage for f in figures for stage in f["stages"]["seconds"]})
    seconds = {"total": [f["total"] for f in figures]}
    for stage in stages:
        seconds[stage] = [f["stages"]["seconds"].get(stage, 0.0) for f in figures]
    peak = {"process": [f["peak_rss_gb"] for f in figures]}
    for stage in stages:
        peak[stage] = [f["stages"]["peak_rss_gb"].get(stage, 0.0) for f in figures]
    exponents = {
        stage: growth_exponent(sizes, values)
        for stage, values in seconds.items()
        if min(values) > 0
    }
    memory = machine_memory_gb()
    return {
        "columns": args.columns,
        "max_depth": args.max_depth,
        "rows": sizes,
        "seconds": seconds,
        "peak_rss_gb": peak,
        "growth_exponent": exponents,
        "quality": {key: [f.get(key) for f in figures] for key in QUALITY},
        "machine_memory_gb": memory,
        "rows_at_one_hour": rows_reaching(sizes, seconds["total"], HOUR, log_log=True),
        "rows_at_machine_memory": rows_reaching(sizes, peak["process"], memory, log_log=False),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 30_000, 100_000, 300_000])
    parser.add_argument("--columns", type=int, default=50)
    parser.add_argument("--max-depth", type=int, default=2)
    parser.add_argument("--pipeline", action="store_true", help="time `recursive-clusters run`")
    parser.add_argument("--data-dir", type=Path, help="keep/reuse the generated tables here")
    parser.add_argument("--reuse", action="store_true", help="reuse a size's earlier JSON")
    args = parser.parse_args()

    sizes = list(args.rows)
    runs = []
    for rows in sizes:
        runs.append(run_size(rows, args))
        side = runs[-1]["pipeline"]["total"] if args.pipeline else runs[-1]["bare"]["process total"]
        print(f"{rows:,} rows: {side:.1f} s", flush=True)
    result = pipeline_curve(sizes, runs, args) if args.pipeline else bare_curve(sizes, runs, args)
    name = f"cost_curve_{'large_' if args.pipeline else ''}{args.columns}cols.json"
    output = HERE / "results" / name
    output.write_text(json.dumps(result, indent=2))
    print_curve(result)
    print(f"\nJSON: {output}")


def print_curve(result: dict) -> None:
    sizes, exponents = result["rows"], result["growth_exponent"]
    print(f"\n| rows | {' | '.join(f'{n:,}' for n in sizes)} | exponent |")
    print(f"|---|{'---|' * len(sizes)}---|")
    for stage, values in result["seconds"].items():
        cells = " | ".join(f"{v:.1f}" if isinstance(v, float) else str(v) for v in values)
        exponent = f"{exponents[stage]:.2f}" if stage in exponents else ""
        print(f"| {stage} (s) | {cells} | {exponent} |")
    for stage, values in result.get("peak_rss_gb", {}).items():
        print(f"| peak GB, {stage} | {' | '.join(f'{v:.2f}' for v in values)} | |")
    for key, values in result.get("quality", {}).items():
        cells = " | ".join("–" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)
                           for v in values)  # fmt: skip
        print(f"| {key} | {cells} | |")
    if "rows_at_one_hour" in result:
        print(
            f"\nThis machine runs out of an hour at ~{result['rows_at_one_hour']:,.0f} rows and of "
            f"its {result['machine_memory_gb']:.1f} GB at ~{result['rows_at_machine_memory']:,.0f}."
        )


if __name__ == "__main__":
    main()
