"""Dagster's Celery run launcher, with a health check that notices a worker that died.

``dagster_celery.CeleryRunLauncher`` judges a run by its task's state in the result backend.
A worker killed with its host (``kill -9``, a lost machine) never writes another state, so its
task stays ``STARTED`` and run monitoring would wait forever. Here a ``STARTED`` task's worker
(named by the run's worker tag, ``celery_worker``) must also answer a ping, else the run is
reported failed, and ``run_retries`` launches it again on a live worker.
"""

from __future__ import annotations

from dagster import DagsterRun
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus
from dagster_celery.launcher import CeleryRunLauncher

from recursive_clusters.defs.keys import WORKER_TAG

PING_TIMEOUT_S = 3.0
PING_TRIES = 3  # a worker busy on two shared cores may miss one ping, not three


class MonitoredCeleryRunLauncher(CeleryRunLauncher):
    """``CeleryRunLauncher`` whose health check also pings the run's worker."""

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        health = super().check_run_worker_health(run)
        worker = run.tags.get(WORKER_TAG)
        if health.status is not WorkerStatus.RUNNING or worker is None:
            return health
        if self.worker_answers(worker):
            return health
        return CheckRunHealthResult(
            WorkerStatus.FAILED,
            f"Celery worker {worker} does not answer ({PING_TRIES} pings of "
            f"{PING_TIMEOUT_S:.0f} s): it died with the run",
        )

    def worker_answers(self, worker: str) -> bool:
        for _ in range(PING_TRIES):
            if self.celery.control.ping(destination=[worker], timeout=PING_TIMEOUT_S):
                return True
        return False
