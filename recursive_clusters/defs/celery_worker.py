"""The Celery app a worker runs: ``celery -A recursive_clusters.defs.celery_worker worker``.

It is the instance's own run launcher's app (``$DAGSTER_HOME/dagster.yaml``, e.g.
``deploy/dagster.yaml``), so the broker, results backend and queue are those the daemon
sends runs to, with Dagster's run tasks registered on it. Before a run starts, the worker
tags it with its name (``name@host``) and says so in the run's events: the UI shows where
each node batch ran, and the health check knows which worker to ask.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import task_prerun
from dagster import DagsterInstance
from dagster._grpc.types import ExecuteRunArgs
from dagster._serdes import unpack_value
from dagster_celery.launcher import CeleryRunLauncher
from dagster_celery.tasks import create_execute_job_task, create_resume_job_task

from recursive_clusters.defs.keys import WORKER_TAG


def _launcher_app() -> Celery:
    with DagsterInstance.get() as instance:
        launcher = instance.run_launcher
        if not isinstance(launcher, CeleryRunLauncher):
            raise RuntimeError(
                f"$DAGSTER_HOME/dagster.yaml launches runs with {type(launcher).__name__}, "
                "not a Celery run launcher: use deploy/dagster.yaml"
            )
        return launcher.celery


app = _launcher_app()
execute_job = create_execute_job_task(app)
resume_job = create_resume_job_task(app)


@task_prerun.connect
def tag_run_with_worker(task: Any = None, kwargs: dict | None = None, **_: Any) -> None:
    """Tag the run this task executes with the worker's name, before the run begins."""
    packed = (kwargs or {}).get("execute_job_args_packed")
    if packed is None:
        return
    run_id = unpack_value(packed, as_type=ExecuteRunArgs).run_id
    worker = task.request.hostname
    with DagsterInstance.get() as instance:
        run = instance.get_run_by_id(run_id)
        if run is None:
            return
        instance.add_run_tags(run_id, {WORKER_TAG: worker})
        instance.report_engine_event(f"Run executing on Celery worker {worker}", run)
