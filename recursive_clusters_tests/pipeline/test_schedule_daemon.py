"""The re-clustering schedule through the real daemon: switched on as a user does (it ships
stopped), its tick launches ``grow_tree``, and the daemon's growth sensor grows and publishes
the tree. Calling the schedule's function skips what the daemon adds (the cron, the
timezone, the queued run coordinator, the run's process), so this runs ``dagster-daemon``
on a temporary ``DAGSTER_HOME`` in its own process group, stopped with SIGINT then SIGKILL."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml
from dagster import DagsterInstance, RunsFilter
from dagster._core.scheduler.instigation import InstigatorStatus, InstigatorType

from recursive_clusters.defs.keys import TREE_ID_TAG
from recursive_clusters.io.store import TreeStore
from recursive_clusters_tests.conftest import TEST_SETTINGS, planted_table

REPO = Path(__file__).resolve().parents[2]
SCHEDULE_TAG = "dagster/schedule_name"
TIMEOUT_S = 900


def _stop(process: subprocess.Popen) -> None:
    """SIGINT to the daemon's process group (as Ctrl-C), then SIGKILL to what is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGINT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=20)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)


def test_a_schedule_tick_through_the_daemon_grows_and_publishes_a_tree(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    data = tmp_path / "input.parquet"
    planted_table().to_parquet(data)
    settings = tmp_path / "settings.yaml"
    raw = {**TEST_SETTINGS, "input": {**TEST_SETTINGS["input"], "path": str(data)}}
    settings.write_text(yaml.safe_dump({**raw, "schedule_cron": "* * * * *"}))  # every minute
    env = {k: v for k, v in os.environ.items() if k != "RECURSIVE_CLUSTERS_STORAGE"}
    env.update(
        DAGSTER_HOME=str(home),
        RECURSIVE_CLUSTERS_CONFIG=str(settings),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        PYTHONUNBUFFERED="1",
    )
    workspace = ["-w", "workspace.yaml"]
    started = subprocess.run(
        [sys.executable, "-m", "dagster", "schedule", "start", "recluster_schedule", *workspace],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert started.returncode == 0, started.stdout + started.stderr
    log = tmp_path / "daemon.log"
    with log.open("wb") as log_file:
        daemon = subprocess.Popen(
            [str(Path(sys.executable).parent / "dagster-daemon"), "run", *workspace],
            cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=log_file,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    store = TreeStore(home / "recursive_clusters")
    os.environ["DAGSTER_HOME"], previous_home = str(home), os.environ.get("DAGSTER_HOME")
    try:
        with DagsterInstance.get() as instance:
            deadline = time.monotonic() + TIMEOUT_S
            stopped = False
            while store.current() is None:
                assert daemon.poll() is None, log.read_text()[-4000:]
                assert time.monotonic() < deadline, log.read_text()[-4000:]
                scheduled = instance.get_runs(RunsFilter(tags={SCHEDULE_TAG: "recluster_schedule"}))
                if scheduled and not stopped:  # one tree is enough: switch it off again
                    for state in instance.all_instigator_state(
                        instigator_type=InstigatorType.SCHEDULE
                    ):
                        instance.update_instigator_state(
                            state.with_status(InstigatorStatus.STOPPED)
                        )
                    stopped = True
                time.sleep(3)
            tree_id = store.current()
            assert store.status(tree_id) == "complete"
            launched = instance.get_runs(RunsFilter(tags={TREE_ID_TAG: tree_id}))
            grow = [run for run in launched if run.job_name == "grow_tree"]
            assert grow and grow[0].tags.get(SCHEDULE_TAG) == "recluster_schedule"
            assert (store.tree_dir(tree_id) / "report.html").is_file()
    finally:
        _stop(daemon)
        if previous_home is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = previous_home
