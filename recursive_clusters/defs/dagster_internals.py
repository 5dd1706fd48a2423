"""The few names this package takes from Dagster's private modules, in one place.

Dagster does not export them, and private modules move between releases: when an upgrade
breaks an import, this is the one file to fix.
"""

from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition,  # what define_asset_job returns, for type hints
)
from dagster._core.events import RunFailureReason  # why a run failed, as its tag records it
from dagster._core.execution.retries import (
    auto_reexecution_should_retry_run,  # run_retries' own decision to launch a failed run again
)
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,  # a run over a range of partitions (a batch of siblings)
    ASSET_PARTITION_RANGE_START_TAG,
    RUN_FAILURE_REASON_TAG,
    WILL_RETRY_TAG,  # set on a failed run that run_retries will launch again
)

__all__ = [
    "ASSET_PARTITION_RANGE_END_TAG",
    "ASSET_PARTITION_RANGE_START_TAG",
    "RUN_FAILURE_REASON_TAG",
    "WILL_RETRY_TAG",
    "RunFailureReason",
    "UnresolvedAssetJobDefinition",
    "auto_reexecution_should_retry_run",
]
