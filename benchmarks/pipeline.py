"""Time the whole tree through Dagster against the same library calls made bare.

Usage::

    python benchmarks/pipeline.py --dataset digits
    python benchmarks/pipeline.py --dataset planted --rows 20000 --columns 100
    python benchmarks/pipeline.py --dataset planted --rows 70000 --columns 784 --max-depth 2
    python benchmarks/pipeline.py --dataset mnist --rows 60000 --skip-bare

Prints a Markdown table and writes JSON (``--output``, default
``benchmarks/results/pipeline_<dataset>_<rows>x<columns>.json``). The bare run (a fresh
process too) times each stage (load+prepare, embed, cluster, split test, classify, explain)
over every node and each level's embed+cluster+test; the pipeline run is
``recursive-clusters run`` in a fresh process with a fresh DAGSTER_HOME, so it pays what a
user pays: imports, numba compilation, the Dagster instance, every file, plots and the report.
Its per-run times (level 1, each level's batch, publish + report) come from its own log.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import yaml

HERE = Path(__file__).resolve().parent


# The benchmarks' planted hierarchy: 4 top clusters of 3 sub-clusters each.
PLANTED = {"n_top": 4, "n_sub": 3, "top_separation": 20.0, "sub_separation": 4.5, "seed": 0}


def planted_data(rows: int, columns: int):
    """(features, top cluster, sub-cluster within the top) of the benchmarks' hierarchy."""
    from recursive_clusters.core.synthetic import planted_hierarchy

    return planted_hierarchy(rows, columns, **PLANTED)


def make_dataset(name: str, rows: int, columns: int, directory: Path) -> Path | None:
    """Write the benchmark table to Parquet (``None`` for the built-in digits); ``mnist``: the
    first ``rows`` of the 60,000 MNIST training digits (``quality.py`` says where they are),
    784 pixels with the digit as profile column."""
    if name == "digits":
        return None
    import pandas as pd

    if name == "mnist":
        from quality import _mnist_train_path

        table = pd.read_parquet(_mnist_train_path()).head(rows)
        table.insert(0, "row_id", table.pop("id"))
        table["digit"] = table.pop("label").astype(str)
        path = directory / "data.parquet"
        table.to_parquet(path)
        return path

    path = directory / "data.parquet"
    write_planted(rows, columns, path)
    return path


PLANTED_CHUNK_ROWS = 500_000  # rows generated and written at once (one Parquet row group)


def write_planted(rows: int, columns: int, path: Path) -> None:
    """The planted hierarchy as Parquet, written a row group at a time (10 million rows would
    otherwise need ~12 GB while generated); the planted leaf is dictionary-encoded text."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from recursive_clusters.core.synthetic import planted_hierarchy_chunks

    chunks = planted_hierarchy_chunks(rows, columns, **PLANTED, chunk_rows=PLANTED_CHUNK_ROWS)
    writer, start = None, 0
    for features, tops, leaves in chunks:
        table = pd.DataFrame(features, columns=[f"x{i}" for i in range(columns)])
        table.insert(0, "row_id", np.arange(start, start + len(table)))
        names = pd.Series(tops).astype(str) + "." + pd.Series(leaves).astype(str)
        table["planted_leaf"] = names.astype("category")
        batch = pa.Table.from_pandas(table, preserve_index=False)
        if writer is None:
            writer = pq.ParquetWriter(path, batch.schema)
        writer.write_table(batch.cast(writer.schema))
        start += len(table)
    writer.close()


def bare(settings_data: dict) -> dict[str, float]:
    """The tree and its explanations with the core alone, timed per stage."""
    from recursive_clusters.core.data import prepare
    from recursive_clusters.core.explain import explain_with_shap, train_classifiers
    from recursive_clusters.core.parallelism import available_cores
    from recursive_clusters.core.recursive import RecursiveClusterer
    from recursive_clusters.core.settings import parse_settings
    from recursive_clusters.io.tables import load_table

    settings = parse_settings(settings_data)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    prepared = prepare(load_table(settings.input), settings.input)
    timings["load+prepare"] = time.perf_counter() - started
    clusterer = RecursiveClusterer(settings).fit(prepared.matrix)
    for stage, seconds in clusterer.timings_.items():
        timings[stage] = seconds
    for node in clusterer.nodes_.values():
        level = f"level {node.path.level} (embed+cluster+test)"
        timings[level] = timings.get(level, 0.0) + sum(node.seconds.values())
    classify = explain = 0.0
    for node in clusterer.nodes_.values():
        if not node.decision.accepted:
            continue
        features = prepared.features.iloc[node.rows].reset_index(drop=True)
        labels = node.clustering.labels
        tick = time.perf_counter()
        models = train_classifiers(
            features, labels, settings.explanation, 0, n_jobs=available_cores()
        )
        classify += time.perf_counter() - tick
        tick = time.perf_counter()
        explain_with_shap(models, features, labels, node.rows, settings.explanation, 0)
        explain += time.perf_counter() - tick
    timings["classify"] = classify
    timings["explain"] = explain
    timings["total"] = time.perf_counter() - started
    timings["nodes"] = len(clusterer.nodes_)
    timings["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return timings


def bare_in_fresh_process(settings_path: Path) -> dict[str, float]:
    """``bare`` in its own process, so its peak memory is its own (not the data generator's);
    ``process total`` counts its interpreter start and imports, as the pipeline's total does."""
    started = time.perf_counter()
    output = subprocess.run(
        [sys.executable, __file__, "--bare-only", str(settings_path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    figures = json.loads(output.strip().splitlines()[-1])
    return {**figures, "process total": time.perf_counter() - started}


PREDICT_SAMPLE = 1_000_000  # rows routed by predict to measure its agreement with the tree

RUN_LINE = re.compile(r"^\s+(?P<label>.+): done in (?P<seconds>[0-9.]+) s", re.MULTILINE)


def pipeline(settings_path: Path, data: Path | None) -> dict[str, float]:
    """``recursive-clusters run`` (or ``demo``) in a fresh process and a fresh instance; its
    peak memory is the most its processes held at once (sampled every second)."""
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "DAGSTER_HOME": home}
        command = [sys.executable, "-m", "recursive_clusters.cli"]
        command += ["demo"] if data is None else ["run", "--input", str(data)]
        command += ["--config", str(settings_path)]
        started = time.perf_counter()
        log, samples = stream_output(command, env)
        total = time.perf_counter() - started
        # the most resident memory at once, all processes of the run together
        peak = max([gb for _, gb in samples], default=0.0)
        stages = stage_figures(home, samples)
        figures = tree_quality(Path(home) / "recursive_clusters")
    runs = {f"run: {m['label']}": float(m["seconds"]) for m in RUN_LINE.finditer(log)}
    return {"total": total, "peak_rss_gb": peak, **runs, "stages": stages, **figures}


def stream_output(command: list[str], env: dict[str, str]) -> tuple[str, list[tuple]]:
    """Run ``command``, echoing its output as it comes (a 10-million-row tree's progress
    lines); return that output and the process's resident memory (time, GB) sampled every
    second. A failure raises as ``subprocess.run(check=True)``."""
    lines, samples = [], []
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True) as process:
        sampler = threading.Thread(target=sample_memory, args=(process, samples), daemon=True)
        sampler.start()
        for line in process.stdout:
            print(line, end="", flush=True)
            lines.append(line)
    sampler.join()
    if process.returncode:
        raise subprocess.CalledProcessError(process.returncode, command)
    return "".join(lines), samples


def sample_memory(process: subprocess.Popen, samples: list[tuple]) -> None:
    """(time, resident GB) of ``process`` and its descendants together (the CLI runs a
    level's batches in worker processes) every second until it ends (Linux /proc)."""
    while process.poll() is None:
        resident_kb = sum(_resident_kb(pid) for pid in _process_tree(process.pid))
        samples.append((time.time(), resident_kb / 2**20))
        time.sleep(1.0)


def _process_tree(root: int) -> set[int]:
    """``root`` and every process below it."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        parents[int(stat.parent.name)] = int(fields[1])
    tree, grew = {root}, True
    while grew:
        below = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= below
        grew = bool(below)
    return tree


def _resident_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass  # ended meanwhile
    return 0


def stage_of(step_key: str) -> str:
    """The stage a Dagster step belongs to (levels summed)."""
    name = re.sub(r"_l[0-9]+$", "", step_key)
    return {
        "source_table": "load",
        "features": "load",
        "embedding": "embed + place",
        "clusters": "cluster + split test",
        "classifiers": "classify",
        "shap": "explain",
    }.get(name, "publish + report")


def stage_figures(home: str, samples: list[tuple]) -> dict[str, dict[str, float]]:
    """Seconds and peak resident memory (GB) per stage, from every run's step timings in
    the instance and the memory sampled meanwhile."""
    from dagster import DagsterInstance

    seconds: dict[str, float] = {}
    peak: dict[str, float] = {}
    os.environ["DAGSTER_HOME"] = home  # the instance's storage is configured from it
    with DagsterInstance.from_config(home) as instance:
        for run in instance.get_runs():
            for step in instance.get_run_step_stats(run.run_id):
                if step.start_time is None or step.end_time is None:
                    continue
                stage = stage_of(step.step_key)
                seconds[stage] = seconds.get(stage, 0.0) + step.end_time - step.start_time
                inside = [gb for t, gb in samples if step.start_time <= t <= step.end_time + 1]
                peak[stage] = max([peak.get(stage, 0.0), *inside])
    return {"seconds": seconds, "peak_rss_gb": peak}


def tree_quality(storage_dir: Path) -> dict[str, float]:
    """What the published tree says: level-1 agreement with the known labels (the digit or
    the planted leaf's top level), leaf agreement with the finest known labels (a planted
    hierarchy whose leaves already separate at the root has a low level-1 ARI against its
    top level but can still recover every leaf), classifier quality, and predict vs the
    tree's own leaves."""
    import pandas as pd
    from sklearn.metrics import adjusted_rand_score

    from recursive_clusters.io.store import TreeStore
    from recursive_clusters.trees.scoring import score_table

    store = TreeStore(storage_dir)
    tree_id = store.require_current()
    assignments = store.read_table(tree_id, "assignments")
    finest = store.read_table(tree_id, "profile").iloc[:, 0].astype(str)
    truth = finest.str.split(".").str[0] if finest.str.contains(".", regex=False).any() else finest
    level_1 = assignments["level_1"]
    clustered = level_1.notna() & (level_1 != "noise")
    in_a_leaf = ~assignments["is_noise"]
    metrics = pd.concat(
        store.read_node_table(tree_id, path, "classifier_metrics")
        for path, record in store.node_records(tree_id).items()
        if record["split_accepted"]
    )
    rows = np.arange(len(assignments))
    if len(rows) > PREDICT_SAMPLE:  # a seeded sample: routing 10 million rows costs minutes
        rows = np.sort(np.random.default_rng(0).choice(rows, PREDICT_SAMPLE, replace=False))
    scores = score_table(store, store.read_table_rows(tree_id, "source", rows), tree_id)
    in_leaf = ~assignments["is_noise"].to_numpy()[rows]
    leaves = assignments["leaf_path"].to_numpy()[rows]
    agree = scores["path"].to_numpy()[in_leaf] == leaves[in_leaf]
    root = store.node_record(tree_id, "root")
    return {
        "level1_ari": float(adjusted_rand_score(truth[clustered], level_1[clustered])),
        "level1_clustered": float(clustered.mean()),
        "leaf_ari": float(
            adjusted_rand_score(finest[in_a_leaf], assignments["leaf_path"][in_a_leaf])
        ),
        "rows_in_a_leaf": float(in_a_leaf.mean()),
        "nodes": len(store.node_records(tree_id)),
        "leaves": int(assignments["leaf_path"].nunique()),
        "median_roc_auc": float(metrics["roc_auc"].median()),
        "predict_agreement": float(agree.mean()),
        "predict_agreement_rows": int(len(rows)),
        "root_mean_ari_perturbed": float(root["acceptance"].get("mean_ari", float("nan"))),
        "node_reasons": {
            path: f"{record['n_rows']} rows, {record['n_children']} children: {record['reason']}"
            for path, record in store.node_records(tree_id).items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=["digits", "planted", "mnist"], default="digits")
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--columns", type=int, default=100)
    parser.add_argument("--max-depth", type=int, default=3)
    parser.add_argument("--skip-pipeline", action="store_true")
    parser.add_argument("--skip-bare", action="store_true")
    parser.add_argument("--output", type=Path)
    parser.add_argument(
        "--data", type=Path, help="planted data: this Parquet file, written first if missing"
    )
    parser.add_argument("--bare-only", type=Path, help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.bare_only:
        print(json.dumps(bare(yaml.safe_load(args.bare_only.read_text()))))
        return

    with tempfile.TemporaryDirectory() as scratch:
        if args.data is not None and args.dataset == "planted":
            if not args.data.is_file():
                write_planted(args.rows, args.columns, args.data)
            data = args.data
        else:
            data = make_dataset(args.dataset, args.rows, args.columns, Path(scratch))
        settings_data: dict = {"recursion": {"max_depth": args.max_depth}}
        if data is not None:
            truth = "digit" if args.dataset == "mnist" else "planted_leaf"
            settings_data["input"] = {"path": str(data), "id_column": "row_id",
                                      "profile_columns": [truth]}  # fmt: skip
        settings_path = Path(scratch) / "settings.yaml"
        settings_path.write_text(yaml.safe_dump(settings_data))
        pipeline_figures = {} if args.skip_pipeline else pipeline(settings_path, data)
        bare_figures = {} if args.skip_bare else bare_in_fresh_process(settings_path)

    columns = 784 if args.dataset == "mnist" else args.columns
    shape = "1797x64" if data is None else f"{args.rows}x{columns}"
    result = {"dataset": args.dataset, "shape": shape, "max_depth": args.max_depth,
              "bare": bare_figures, "pipeline": pipeline_figures}  # fmt: skip
    if pipeline_figures and bare_figures:
        result["pipeline_over_bare"] = pipeline_figures["total"] / bare_figures["process total"]
    output = args.output or HERE / "results" / f"pipeline_{args.dataset}_{shape}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2))
    print_table(result)
    print(f"\nJSON: {output}")


def print_table(result: dict) -> None:
    """The figures as a Markdown table."""
    bare_figures, pipeline_figures = result["bare"], result["pipeline"]
    print(f"\n### {result['dataset']} {result['shape']}, depth {result['max_depth']}\n")
    print("| figure | value |\n|---|---|")
    for name, value in bare_figures.items():
        unit = "" if name in ("nodes", "peak_rss_gb") else " s"
        print(f"| bare: {name} | {value:.2f}{unit} |")
    for name, value in pipeline_figures.items():
        if name in ("node_reasons", "stages"):
            continue
        unit = " s" if name == "total" or name.startswith("run:") else ""
        print(f"| pipeline: {name} | {value:.3f}{unit} |")
    if "pipeline_over_bare" in result:
        print(f"| pipeline / bare (both fresh processes) | {result['pipeline_over_bare']:.2f} |")


if __name__ == "__main__":
    main()
