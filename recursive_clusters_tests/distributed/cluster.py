"""A local "cluster" for the distributed tests and benchmarks, through the user's scripts.

``deploy/cluster-up.sh`` starts Postgres, Redis, the daemon, the webserver and the Celery
workers (each in its own network namespace); this module runs it on its own subnet, prefix
and ports (beside any cluster a user runs), and talks to it as a user does: GraphQL for the
UI's launches, the Dagster instance on Postgres for runs and tags, the shared tree folder.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from dagster import DagsterInstance, DagsterRun, RunsFilter

from recursive_clusters.defs.keys import TREE_ID_TAG
from recursive_clusters_tests.e2e.test_browser import post_graphql

REPO = Path(__file__).resolve().parents[2]
UP = REPO / "deploy" / "cluster-up.sh"
DOWN = REPO / "deploy" / "cluster-down.sh"


def skip_reason() -> str | None:
    """Why a cluster cannot be started here, or None."""
    if os.geteuid() != 0:
        return "distributed tests skipped: deploy/cluster-up.sh needs root (ip netns)"
    missing = [name for name in ("ip", "unshare", "redis-server") if shutil.which(name) is None]
    if not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")):
        missing.append("postgresql")
    if missing:
        return (
            f"distributed tests skipped: {', '.join(missing)} missing; install Debian's "
            "postgresql, redis-server and iproute2 (.ci/run does)"
        )
    if importlib.util.find_spec("dagster_celery") is None:
        return "distributed tests skipped: pip install -e '.[distributed]'"
    probe = f"rcprobe{os.getpid() % 10000}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"distributed tests skipped: cannot make a network namespace: {made.stderr}"
    subprocess.run(["ip", "netns", "del", probe], check=False)
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class LocalCluster:
    """A running cluster: its folder, the variables of its processes and its UI address."""

    root: Path
    script_env: dict[str, str]
    env: dict[str, str]
    url: str
    settings: Path  # the settings file every process reads (new trees read it at launch)

    @property
    def trees(self) -> Path:
        return Path(self.env["RECURSIVE_CLUSTERS_STORAGE"])

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        return post_graphql(self.url, query, variables, timeout_s=120)

    def log_tail(self, chars: int = 4000) -> str:
        logs = sorted((self.root / "logs").glob("*.log"))
        return "\n".join(
            f"--- {log.name}\n{log.read_text(errors='replace')[-chars:]}" for log in logs
        )

    def ensure_alive(self) -> None:
        for name in ("daemon", "webserver"):
            assert self.alive(name), f"the {name} died:\n{self.log_tail()}"

    def alive(self, name: str) -> bool:
        pidfile = self.root / "run" / f"{name}.pid"
        if not pidfile.exists():
            return False
        try:
            os.kill(int(pidfile.read_text()), 0)
        except ProcessLookupError:
            return False
        return True

    @contextlib.contextmanager
    def instance(self) -> Iterator[DagsterInstance]:
        """The cluster's Dagster instance (Postgres), opened with the cluster's variables."""
        saved = {key: os.environ.get(key) for key in self.env}
        os.environ.update(self.env)
        try:
            with DagsterInstance.get() as instance:
                yield instance
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def runs_of_tree(self, tree_id: str) -> list[DagsterRun]:
        with self.instance() as instance:
            return list(instance.get_runs(RunsFilter(tags={TREE_ID_TAG: tree_id})))

    def current_tree(self) -> str | None:
        current = self.trees / "current.json"
        return json.loads(current.read_text())["generation"] if current.exists() else None

    def kill_worker(self, number: int) -> None:
        """``kill -9`` every process of a worker (its Celery main process and the run)."""
        pid = int((self.root / "run" / f"worker-{number}.pid").read_text())
        os.killpg(pid, signal.SIGKILL)

    def up(self, workers: int = 2) -> None:
        """Run cluster-up.sh: starts what is not running (a killed worker, at once)."""
        done = subprocess.run(
            ["bash", str(UP), str(workers)], env=self.script_env, capture_output=True,
            text=True, timeout=600,
        )  # fmt: skip
        assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{self.log_tail()}"

    def restart_postgres(self) -> None:
        """``pg_ctl restart -m fast`` as the postgres user; the server logs to its file (a
        server started with our pipes as its output would hold them open)."""
        data = self.root / "postgres"
        pg_ctl = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))[-1]
        command = [str(pg_ctl), "-D", str(data), "-l", str(data / "server.log")]
        done = subprocess.run(
            ["runuser", "-u", "postgres", "--", *command, "-m", "fast", "-w", "restart"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, (data / "server.log").read_text()[-2000:]

    def down(self) -> None:
        subprocess.run(["bash", str(DOWN)], env=self.script_env, capture_output=True, timeout=300)


def _read_env(path: Path) -> dict[str, str]:
    """The ``export`` lines of the cluster's env file (without PATH)."""
    env = {}
    for line in path.read_text().splitlines():
        if not line.startswith("export "):
            continue
        for assignment in line.removeprefix("export ").split():
            key, _, value = assignment.partition("=")
            if key != "PATH":
                env[key] = value
    return env


def start_cluster(settings: Path, workers: int = 2) -> LocalCluster:
    """A fresh cluster in a new folder (traversable by the postgres user), on its own subnet."""
    root = Path(tempfile.mkdtemp(prefix="rc-cluster-"))
    root.chmod(0o755)
    tag = os.getpid() % 200 + 20
    script_env = {
        **os.environ,
        "RC_CLUSTER_DIR": str(root),
        "RC_CLUSTER_NET": f"10.232.{tag}",
        "RC_CLUSTER_PREFIX": f"rct{tag}",
        "RC_PG_PORT": str(_free_port()),
        "RC_REDIS_PORT": str(_free_port()),
        "RC_UI_PORT": str(_free_port()),
        "RECURSIVE_CLUSTERS_CONFIG": str(settings),
    }
    script_env.pop("RECURSIVE_CLUSTERS_STORAGE", None)
    script_env.pop("DAGSTER_HOME", None)
    url = f"http://127.0.0.1:{script_env['RC_UI_PORT']}"
    cluster = LocalCluster(root, script_env, {}, url, settings)
    try:
        cluster.up(workers)
    except BaseException:
        cluster.down()
        raise
    cluster.env = _read_env(root / "env")
    return cluster
