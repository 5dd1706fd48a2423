"""Grow a whole tree from one process, through the same Dagster jobs the daemon runs.

The CLI uses this instead of the daemon: every run is executed in-process against the
persistent instance (so `dagster dev` shows them afterwards), and the same growth planner
as the sensor decides which partitions to add and run next.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

from dagster import (
    AddDynamicPartitionsRequest,
    DagsterExecutionInterruptedError,
    DagsterInstance,
    Definitions,
    DeleteDynamicPartitionsRequest,
    RunRequest,
)

from recursive_clusters.core.memory import FIXED_BYTES, GIB, estimate_peak_bytes
from recursive_clusters.core.parallelism import available_cores
from recursive_clusters.defs.assets.common import free_run_memory
from recursive_clusters.defs.batch_watch import plan_batches
from recursive_clusters.defs.dagster_internals import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)
from recursive_clusters.defs.growth import latest_storage_id, plan_growth
from recursive_clusters.defs.keys import (
    DRIVER_TAG,
    GROW_TREE_JOB,
    PUBLISH_TREE_JOB,
    SCORE_BATCHES_JOB,
    SCORED_BATCHES,
    TREE_ID_TAG,
    TREE_STORAGE_RESOURCE,
    level_job_name,
)
from recursive_clusters.defs.sensors import default_parallel_runs
from recursive_clusters.defs.sibling_runs import Batch, SiblingRuns
from recursive_clusters.defs.tree_status import report_tree_failure
from recursive_clusters.io.machine import machine_memory_bytes
from recursive_clusters.io.store import FEATURES_TABLE, StorageError

INSTANCE_TEMPLATE = "dagster_instance.yaml"
# The event log keeps every event (the UI shows them); the terminal shows our progress lines
# and, on failure, one line naming the problem (``cli.main``).
QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
# Trees of at least this many rows run a level's sibling batches side by side in worker
# processes (``sibling_runs``), memory permitting; below it, starting the workers (~5 s)
# costs more than the idle core does.
SIDE_BY_SIDE_FROM_ROWS = 20_000


def ensure_dagster_home(default: Path) -> Path:
    """Use ``$DAGSTER_HOME``, else ``default``; give it our ``dagster.yaml`` if it has none."""
    home = Path(os.environ.get("DAGSTER_HOME") or default).resolve()
    if home.exists() and not home.is_dir():
        raise StorageError(f"DAGSTER_HOME={home} is a file; it must name a directory")
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    config = home / "dagster.yaml"
    if not config.exists():
        template = resources.files("recursive_clusters.defs").joinpath(INSTANCE_TEMPLATE)
        with resources.as_file(template) as source:
            shutil.copyfile(source, config)
    return home


@contextmanager
def open_instance() -> Iterator[DagsterInstance]:
    """The instance of ``$DAGSTER_HOME``, its SQLite tables created under a file lock: two
    commands started at once on a new home would otherwise both create them, and one fail
    ("table runs already exists")."""
    lock = Path(os.environ["DAGSTER_HOME"]) / ".recursive_clusters_init.lock"
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            instance = DagsterInstance.get()
            instance.get_runs(limit=1)  # each storage creates its tables on first use
            instance.all_instigator_state()
            instance.get_asset_keys()
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    with instance:
        yield instance


def _apply(instance: DagsterInstance, requests: list) -> None:
    """Apply partition requests as the sensor daemon does: in order, skipping no-ops."""
    for request in requests:
        name = request.partitions_def_name
        if isinstance(request, AddDynamicPartitionsRequest):
            new = [k for k in request.partition_keys if not instance.has_dynamic_partition(name, k)]
            instance.add_dynamic_partitions(name, new)
        elif isinstance(request, DeleteDynamicPartitionsRequest):
            for key in request.partition_keys:
                instance.delete_dynamic_partition(name, key)


def grow_tree(
    instance: DagsterInstance,
    defs: Definitions,
    max_depth: int,
    report: Callable[[str], None] = print,
    launch_tags: Mapping[str, str] | None = None,
) -> str:
    """Start a tree, grow it level by level and publish it; returns its tree id.
    ``launch_tags`` go on the launching run (e.g. why the tree is re-grown)."""
    storage = defs.resources[TREE_STORAGE_RESOURCE]
    cursor = str(latest_storage_id(instance, max_depth))
    driver_tags = {DRIVER_TAG: "cli"}
    own_runs: set[str] = set()
    level_jobs = {level: level_job_name(level) for level in range(2, max_depth + 1)}

    # The launching run's id, known before it starts: its tag names the tree once the tree is
    # begun, so a Ctrl-C at any moment after that (in a run, between runs, as one ends) finds
    # the tree to mark failed.
    launch_run_id = str(uuid.uuid4())

    def tree_of_launch() -> str | None:
        with contextlib.suppress(Exception):
            run = instance.get_run_by_id(launch_run_id)
            if run is not None and TREE_ID_TAG in run.tags:
                return run.tags[TREE_ID_TAG]
        # the instance unreadable at that moment (its SQLite busy with the canceled run): the
        # tree begun last names its launching run in its manifest
        with contextlib.suppress(Exception):
            store = storage.store()
            latest = store.latest_started()
            if latest and store.manifest(latest).get("run_id") == launch_run_id:
                return latest
        return None

    def execute(job_name: str, tags: dict[str, str], label: str, run_id: str = "") -> str:
        started = time.perf_counter()
        run_id = run_id or str(uuid.uuid4())  # known before the run, to cancel it on Ctrl-C
        try:
            result = defs.resolve_job_def(job_name).execute_in_process(
                instance=instance,
                tags={**tags, **driver_tags},
                run_config=QUIET_CONSOLE,
                run_id=run_id,
            )
        except Exception as exc:
            # the launching run names its tree only once it has begun it (bad input found
            # after that had left the tree "building" for good)
            tree_id = tags.get(TREE_ID_TAG) or (
                tree_of_launch() if run_id == launch_run_id else None
            )
            if tree_id:
                reason = f"{label} failed: {exc}"
                # e.g. on a full disk this may fail too: the first error is what to show
                with contextlib.suppress(Exception):
                    report_tree_failure(instance, storage.store(), tree_id, reason)
            raise
        except (KeyboardInterrupt, DagsterExecutionInterruptedError):  # Ctrl-C
            _cancel_run(instance, run_id, f"interrupted during {label}")
            raise KeyboardInterrupt(label) from None
        finally:
            free_run_memory()  # the next level may run in workers: hold no table
        if interrupts.seen():  # Ctrl-C outside the run's own code: Dagster noted it, went on
            raise KeyboardInterrupt(label)
        own_runs.add(result.run_id)
        report(
            f"  {label}: done in {time.perf_counter() - started:.1f} s (run {result.run_id[:8]})"
        )
        return result.run_id

    siblings = _sibling_runs(storage)

    def execute_side_by_side(requests: list[RunRequest]) -> None:
        batches = [
            Batch(r.job_name, {**r.tags, **driver_tags}, str(uuid.uuid4()), _label(r))
            for r in requests
        ]

        def done(batch: Batch, seconds: float) -> None:
            report(f"  {batch.label}: done in {seconds:.1f} s (run {batch.run_id[:8]})")

        try:
            failures = siblings.run(batches, done)
        except KeyboardInterrupt:  # Ctrl-C: the workers are stopped, their runs canceled
            siblings.stop()
            for batch in batches:
                _cancel_run(instance, batch.run_id, f"interrupted during {batch.label}")
            raise KeyboardInterrupt(batches[0].label) from None
        own_runs.update(batch.run_id for batch in batches)
        if failures:
            batch, error = failures[0]
            with contextlib.suppress(Exception):
                reason = f"{batch.label} failed: {error}"
                report_tree_failure(instance, storage.store(), batch.tags[TREE_ID_TAG], reason)
            raise error

    interrupts = _InterruptWatch()
    try:
        label = "input + level 1 (root)"
        execute(GROW_TREE_JOB, dict(launch_tags or {}), label, launch_run_id)
        tree_id = instance.get_run_by_id(launch_run_id).tags[TREE_ID_TAG]
        side_by_side = siblings is not None and _side_by_side_fits(
            storage, tree_id, siblings.processes
        )
        return _grow(
            instance,
            storage,
            tree_id,
            cursor,
            max_depth,
            level_jobs,
            own_runs,
            execute,
            execute_side_by_side if side_by_side else None,
            siblings.processes if side_by_side else 1,
        )
    except KeyboardInterrupt as interrupt:
        during = interrupt.args[0] if interrupt.args else "growth"
        reason = f"interrupted (Ctrl-C) during {during}"
        with _interrupts_held():  # a second Ctrl-C must not stop the marking half-way
            interrupted = tree_of_launch()
            if interrupted:  # the half tree says so where users look; the previous stays current
                with contextlib.suppress(Exception):
                    report_tree_failure(instance, storage.store(), interrupted, reason)
        raise
    finally:
        interrupts.close()
        if siblings is not None:
            siblings.close()


@contextmanager
def _interrupts_held() -> Iterator[None]:
    """SIGINT ignored inside the block (main thread only: elsewhere nothing can be held), so
    a user pressing Ctrl-C twice does not leave the interrupted tree half marked."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _side_by_side_fits(storage, tree_id: str, processes: int) -> bool:
    """Whether the tree is big enough for workers to pay off, and small enough for them.
    Each worker reads only its batch's rows, a level's nodes are disjoint, and the CLI holds
    no table between its runs: together they hold about one tree's estimated peak
    (``core.memory``) plus each worker's fixed cost, which must fit in the memory the tree
    may use."""
    rows, columns = storage.store().table_shape(tree_id, FEATURES_TABLE)
    settings = storage.tree_settings(tree_id)
    limit = settings.memory_limit_gb * GIB if settings.memory_limit_gb else machine_memory_bytes()
    needed = estimate_peak_bytes(rows, columns) + processes * FIXED_BYTES
    return rows >= SIDE_BY_SIDE_FROM_ROWS and needed <= limit


def _sibling_runs(storage) -> SiblingRuns | None:
    """Workers for sibling batches, one per core up to the run queue's two (as the daemon
    runs them); None on one core, or without a settings file to build the workers' code
    location from (the CLI always writes one)."""
    processes = min(default_parallel_runs(), available_cores())
    if processes < 2 or not storage.settings_path:
        return None
    return SiblingRuns(str(storage.base_dir), str(storage.settings_path), processes)


class _InterruptWatch:
    """Whether SIGINT arrived since the last call, also while a Dagster run held it.

    ``execute_in_process`` replaces the SIGINT handler during a run: in the run's own code
    it raises an interrupt, but one that arrives between its steps is only noted, and
    forgotten when the run ends, which then completes as if nothing happened. The signal's
    number still reaches a wakeup file descriptor, which this reads."""

    def __init__(self) -> None:
        self._reader = self._previous = None
        if threading.current_thread() is not threading.main_thread():
            return
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)
        self._previous = signal.set_wakeup_fd(self._writer.fileno(), warn_on_full_buffer=False)

    def seen(self) -> bool:
        if self._reader is None:
            return False
        try:
            received = self._reader.recv(4096)
        except BlockingIOError:
            return False
        return signal.SIGINT in received

    def close(self) -> None:
        if self._reader is not None:
            signal.set_wakeup_fd(self._previous)
            self._reader.close()
            self._writer.close()
            self._reader = None


def _cancel_run(instance: DagsterInstance, run_id: str, message: str) -> None:
    """Mark a run that an interrupt stopped as canceled, unless it finished already."""
    with contextlib.suppress(Exception):
        run = instance.get_run_by_id(run_id)
        if run is not None and not run.is_finished:
            instance.report_run_canceled(run, message=message)


def _grow(
    instance: DagsterInstance,
    storage,
    tree_id: str,
    cursor: str,
    max_depth: int,
    level_jobs: Mapping[int, str],
    own_runs: set[str],
    execute: Callable[[str, dict[str, str], str], str],
    execute_side_by_side: Callable[[list[RunRequest]], None] | None,
    parallel_runs: int,
) -> str:
    """Grow tree ``tree_id`` level by level from its clustered root, then publish it: a
    level's batches side by side when ``execute_side_by_side`` is given, else one run per
    level with every core."""
    while True:
        plan = plan_growth(
            instance,
            storage.store(),
            cursor,
            max_depth,
            level_jobs,
            PUBLISH_TREE_JOB,
            accept_run=own_runs.__contains__,
            parallel_runs=parallel_runs,
        )
        cursor = plan.cursor
        for failed, reason in plan.failures.items():
            report_tree_failure(instance, storage.store(), failed, reason)
            raise RuntimeError(f"Tree {failed} could not be grown: {reason}")
        _apply(instance, plan.dynamic_partitions_requests)
        if not plan.run_requests and not plan.more:
            return tree_id
        in_process = plan.run_requests
        batches = [r for r in in_process if r.job_name != PUBLISH_TREE_JOB]
        if execute_side_by_side is not None and len(batches) > 1:
            execute_side_by_side(batches)
            in_process = [r for r in in_process if r.job_name == PUBLISH_TREE_JOB]
        for request in in_process:
            execute(request.job_name, dict(request.tags), _label(request))


def _label(request: RunRequest) -> str:
    """How a run is named in the CLI's progress lines."""
    if request.job_name == PUBLISH_TREE_JOB:
        return "publish tree"
    start = request.tags.get(ASSET_PARTITION_RANGE_START_TAG)
    end = request.tags.get(ASSET_PARTITION_RANGE_END_TAG)
    return f"{request.job_name}: nodes {start} .. {end}"


def score_new_batches(
    instance: DagsterInstance, defs: Definitions, report: Callable[[str], None] = print
) -> list[RunRequest]:
    """One step of the batch sensor, in-process: score every new batch with the current tree
    (one run each, as the daemon runs them); returns the re-clustering it asks for, if any."""
    storage = defs.resources[TREE_STORAGE_RESOURCE]
    plan = plan_batches(instance, storage.store(), storage.new_tree_settings())
    _apply(instance, plan.dynamic_partitions_requests)
    others = []
    for request in plan.run_requests:
        if request.job_name != SCORE_BATCHES_JOB:
            others.append(request)
            continue
        defs.resolve_job_def(SCORE_BATCHES_JOB).execute_in_process(
            instance=instance,
            partition_key=request.partition_key,
            tags={DRIVER_TAG: "cli"},
            run_config=QUIET_CONSOLE,
        )
        latest = instance.fetch_materializations(SCORED_BATCHES, limit=1).records[0]
        metadata = latest.asset_materialization.metadata
        drifting, reasons = metadata["drifting"].value, metadata["drift_reasons"].value
        verdict = f"drifts: {reasons}" if drifting else "fits the tree"
        report(f"  batch {request.partition_key}: {metadata['rows'].value} rows, {verdict}")
    return others
