"""The tree on two Celery workers (deploy/) against the default launcher on the same machine,
and what thousands of partitions cost the sensor and the UI on the Postgres instance.

Usage::

    sudo .venv/bin/python benchmarks/distributed.py --rows 20000 --columns 100 --max-depth 2
    sudo .venv/bin/python benchmarks/distributed.py --rows 70000 --columns 784 --max-depth 2

Both trees are launched as the UI launches them (GraphQL ``launchRun`` of ``grow_tree``) and
grown by the daemon's sensor; each is timed from the launch to its publication
(``current.json``). "default": ``dagster dev`` on the repository's ``dagster.yaml`` (SQLite,
``DefaultRunLauncher``, 2 runs at once). "celery": ``deploy/cluster-up.sh 2`` (Postgres,
Redis, 2 workers in network namespaces, one run each). The machine's cores are the same for
both, so the ratio is the engine's overhead, not a speed-up. Then, on the cluster, 2,000 and
10,000 partition keys are added to ``level_3_nodes``: the growth sensor's tick time (the
daemon's own ticks, start to end) and the time of the GraphQL query of the asset's partitions
page (keys and statuses). Needs root, postgresql and redis-server (as the tests).
Prints a table; JSON to ``benchmarks/results/distributed_<rows>x<columns>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from pipeline import make_dataset  # noqa: E402  (a sibling script, not a package)

from recursive_clusters.defs.keys import level_partitions_name  # noqa: E402
from recursive_clusters_tests.distributed.cluster import (  # noqa: E402
    REPO,
    LocalCluster,
    skip_reason,
    start_cluster,
)
from recursive_clusters_tests.e2e.test_browser import (  # noqa: E402
    DagsterDev,
    _free_port,
    _launch_grow_tree,
    _stop_group,
    _wait_for_sensor_cursor,
    _wait_for_server,
)

TREE_TIMEOUT_S = 4 * 3600
PARTITION_COUNTS = (2000, 10000)
TICKS_PER_COUNT = 4
QUERY_REPEATS = 3
SENSOR = {"repositoryLocationName": "recursive_clusters", "repositoryName": "__repository__"}
TICKS_QUERY = """
query Ticks($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) {
    ... on Sensor { sensorState { ticks(limit: 20) { timestamp endTimestamp status } } }
  }
}
"""
PARTITION_PAGE_QUERY = """
query Page($key: AssetKeyInput!) {
  assetNodeOrError(assetKey: $key) {
    ... on AssetNode {
      partitionKeysByDimension { partitionKeys }
      assetPartitionStatuses {
        ... on DefaultPartitionStatuses { materializedPartitions failedPartitions }
      }
    }
  }
}
"""


def _published(current: Path, before: str | None) -> str | None:
    if not current.exists():
        return None
    tree = json.loads(current.read_text())["generation"]
    return tree if tree != before else None


def _grow(server, current: Path) -> float:
    """Seconds from a UI launch of grow_tree to the new tree's publication."""
    before = _published(current, None)
    _wait_for_sensor_cursor(server)
    started = time.perf_counter()
    _launch_grow_tree(server)
    while _published(current, before) is None:
        server.ensure_alive()
        assert time.perf_counter() - started < TREE_TIMEOUT_S, server.log_tail()
        time.sleep(2)
    return time.perf_counter() - started


def default_launcher(settings: Path) -> float:
    """The tree through ``dagster dev`` on the repository's dagster.yaml."""
    root = Path(tempfile.mkdtemp(prefix="rc-default-"))
    home = root / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if k != "RECURSIVE_CLUSTERS_STORAGE"}
    env.update(DAGSTER_HOME=str(home), RECURSIVE_CLUSTERS_CONFIG=str(settings))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    port = _free_port()
    log = root / "dagster_dev.log"
    command = [sys.executable, "-m", "dagster", "dev", "-w", "workspace.yaml"]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(port)], cwd=REPO, env=env,
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    server = DagsterDev(f"http://127.0.0.1:{port}", home, log, process, root)
    try:
        _wait_for_server(server)
        return _grow(server, home / "recursive_clusters" / "current.json")
    finally:
        _stop_group(process)
        shutil.rmtree(root, ignore_errors=True)


def _tick_seconds(cluster: LocalCluster, after: float) -> list[float]:
    selector = {**SENSOR, "sensorName": "tree_growth_sensor"}
    ticks = cluster.graphql(TICKS_QUERY, {"selector": selector})["sensorOrError"]
    return [
        tick["endTimestamp"] - tick["timestamp"]
        for tick in ticks["sensorState"]["ticks"]
        if tick["timestamp"] > after and tick["endTimestamp"]
    ]


def partition_figures(cluster: LocalCluster) -> dict[str, dict[str, float]]:
    """Sensor tick and partitions-page query times with N keys in level_3_nodes."""
    name = level_partitions_name(3)
    figures: dict[str, dict[str, float]] = {}
    added = 0
    for count in PARTITION_COUNTS:
        keys = [f"0000bench0000000:root.{i // 100}.{i % 100}" for i in range(added, count)]
        with cluster.instance() as instance:
            instance.add_dynamic_partitions(name, keys)
        added = count
        since = time.time()
        while len(ticks := _tick_seconds(cluster, since)) < TICKS_PER_COUNT:
            time.sleep(5)
        queries = []
        for _ in range(QUERY_REPEATS):
            started = time.perf_counter()
            cluster.graphql(PARTITION_PAGE_QUERY, {"key": {"path": ["clusters_l3"]}})
            queries.append(time.perf_counter() - started)
        figures[str(count)] = {
            "sensor_tick_s": statistics.median(ticks),
            "partition_page_query_s": statistics.median(queries),
        }
        print(f"  {count} partitions: {figures[str(count)]}", flush=True)
    return figures  # the keys go with the cluster


def celery_workers(settings: Path, tree: dict) -> tuple[float, dict]:
    """The tree on a 2-worker cluster, then the partition figures. The cluster's code location
    is loaded with depth 3 (it has ``level_3_nodes`` for the keys); the tree, launched after,
    reads its own settings."""
    depth_3 = {**tree, "recursion": {**tree["recursion"], "max_depth": 3}}
    settings.write_text(yaml.safe_dump(depth_3))
    cluster = start_cluster(settings, workers=2)
    try:
        settings.write_text(yaml.safe_dump(tree))
        seconds = _grow(cluster, cluster.trees / "current.json")
        return seconds, partition_figures(cluster)
    finally:
        cluster.down()
        shutil.rmtree(cluster.root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--columns", type=int, default=100)
    parser.add_argument("--max-depth", type=int, default=2)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    reason = skip_reason()
    if reason:
        sys.exit(reason)
    scratch = Path(tempfile.mkdtemp(prefix="rc-bench-"))
    scratch.chmod(0o755)  # the workers' Postgres runs as another user; they read the input
    try:
        data = make_dataset("planted", args.rows, args.columns, scratch)
        settings = scratch / "settings.yaml"
        columns = {"id_column": "row_id", "profile_columns": ["planted_leaf"]}
        tree = {"recursion": {"max_depth": args.max_depth}, "input": {"path": str(data), **columns}}
        print("celery: 2 workers ...", flush=True)
        celery_s, partitions = celery_workers(settings, tree)
        print(f"  tree in {celery_s:.1f} s", flush=True)
        print("default launcher ...", flush=True)
        default_s = default_launcher(settings)
        print(f"  tree in {default_s:.1f} s", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    shape = f"{args.rows}x{args.columns}"
    result = {
        "shape": shape,
        "max_depth": args.max_depth,
        "cores": os.cpu_count(),
        "tree_s": {"default_launcher": default_s, "celery_2_workers": celery_s},
        "celery_over_default": celery_s / default_s,
        "partitions": partitions,
    }
    output = args.output or HERE / "results" / f"distributed_{shape}.json"
    output.write_text(json.dumps(result, indent=2))
    print(f"\n| launcher | tree (s) |\n|---|---|\n| default | {default_s:.1f} |")
    print(f"| celery, 2 workers | {celery_s:.1f} |\nratio: {celery_s / default_s:.2f}")
    print("\n| partitions | sensor tick (s) | partitions page query (s) |\n|---|---|---|")
    for count, figures in partitions.items():
        tick, page = figures["sensor_tick_s"], figures["partition_page_query_s"]
        print(f"| {count} | {tick:.2f} | {page:.2f} |")
    print(f"\nJSON: {output}")


if __name__ == "__main__":
    main()
