"""Input assets: snapshot the user's table as a new tree, then validate and prepare features."""

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime

import duckdb
import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pyarrow import ArrowException

from recursive_clusters.core.data import InputError, PreparedData, fingerprint_frame, prepare
from recursive_clusters.core.memory import GIB, MemoryBudgetError, require_memory
from recursive_clusters.core.settings import InputSettings, Settings
from recursive_clusters.defs.assets.common import open_tree, with_storage_retries
from recursive_clusters.defs.keys import (
    DRIVER_TAG,
    INPUT_GROUP,
    SOURCE_TABLE,
    TREE_ID_TAG,
    TRIGGER_TAG,
)
from recursive_clusters.defs.resources import TreeStoreResource
from recursive_clusters.io.batches import with_batches
from recursive_clusters.io.machine import machine_memory_bytes
from recursive_clusters.io.store import (
    FEATURES_REPORT_JSON,
    FEATURES_TABLE,
    IDS_TABLE,
    PIXELS_TABLE,
    PREPROCESSOR_JSON,
    PROFILE_TABLE,
    SOURCE_ROWS_TABLE,
)
from recursive_clusters.io.tables import feature_shape, load_table


def new_tree_id(data_fingerprint: str, settings_fingerprint: str, run_id: str) -> str:
    """A new id per launch: 8 hex digits of the data and settings (two trees of the same data
    and settings share them, so a user sees it), then 8 of the launching run. Why not the
    content alone: a re-launch on the same data would then rebuild the current tree in place,
    and its partition keys would collide with the current tree's."""
    content = hashlib.sha256(f"{data_fingerprint}:{settings_fingerprint}".encode()).hexdigest()
    launch = hashlib.sha256(run_id.encode()).hexdigest()
    return content[:8] + launch[:8]


def image_pixels(source: pd.DataFrame, prepared: PreparedData, settings: InputSettings):
    """Every pixel column of the kept rows, constant ones included, for mean images."""
    pixel_columns = set(prepared.features.columns) | set(
        prepared.report["dropped_constant_columns"]
    )
    columns = [c for c in source.columns if c in pixel_columns]
    height, width = settings.image_shape
    if len(columns) != height * width:
        raise InputError(
            f"input.image_shape {settings.image_shape} needs {height * width} pixel columns; "
            f"the features have {len(columns)}."
        )
    return source[columns].iloc[prepared.kept_rows].reset_index(drop=True).astype(float)


def launch_trigger(tags: Mapping[str, str]) -> str:
    """Why this tree was started, for its manifest and report: drift (the batch sensor
    says which batches), the schedule, the CLI, or a launch by hand."""
    if TRIGGER_TAG in tags:
        return tags[TRIGGER_TAG]
    if "dagster/schedule_name" in tags:
        return f"schedule {tags['dagster/schedule_name']}"
    if tags.get(DRIVER_TAG) == "cli":
        return "command line"
    return "launched from the Dagster UI"


def _require_loaded_levels(settings: Settings, loaded: int, settings_path: str | None) -> None:
    """The code location is the one source of how deep a tree can grow: it holds one set of
    level assets per level. A settings file edited since it was loaded may ask for more; such
    a tree is refused at once, before anything is computed, saying what to do."""
    wanted = settings.recursion.max_depth
    if wanted > loaded:
        raise Failure(
            description=f"recursion.max_depth is {wanted} in {settings_path or 'the settings'}, "
            f"but this code location was loaded with {loaded} levels: reload it (Deployment > "
            "Reload in the UI, or restart `recursive-clusters ui`), then launch again."
        )


def build_source_table(max_depth: int) -> AssetsDefinition:
    """The input snapshot asset of a code location that holds ``max_depth`` levels."""

    @asset(
        name=SOURCE_TABLE.path[-1],
        group_name=INPUT_GROUP,
        description="The input table (plus the batches that have arrived, with "
        "batches.include_in_trees), snapshotted as a new tree.",
    )
    def source_table(
        context: AssetExecutionContext, tree_storage: TreeStoreResource
    ) -> MaterializeResult:
        settings = tree_storage.new_tree_settings()
        _require_loaded_levels(settings, max_depth, tree_storage.settings_path)
        return snapshot_input(context, tree_storage, settings)

    return source_table


def require_memory_for(settings: Settings) -> None:
    """Refuse (a ``Failure`` naming the estimate and the settings) a table whose tree is
    estimated to need more memory than ``memory_limit_gb`` or the machine has."""
    try:
        n_rows, n_features = feature_shape(settings.input)
    except (OSError, ValueError, ArrowException, duckdb.Error):
        return  # unreadable: loading the table names the problem
    limit = settings.memory_limit_gb * GIB if settings.memory_limit_gb else machine_memory_bytes()
    source = settings.input.path or "the built-in digits"
    try:
        require_memory(n_rows, n_features, limit, source)
    except MemoryBudgetError as exc:
        raise Failure(description=str(exc)) from None


def snapshot_input(
    context: AssetExecutionContext, tree_storage: TreeStoreResource, settings: Settings
) -> MaterializeResult:
    """Begin a new tree with a snapshot of its rows and its settings; a tree too big for the
    memory it may use is refused first, before anything is read or written."""
    require_memory_for(settings)
    raw = load_table(settings.input)
    batches: list[str] = []
    if settings.batches.include_in_trees and settings.batches.path:
        raw, batches = with_batches(raw, settings.batches, settings.input)
    trigger = launch_trigger(context.dagster_run.tags)
    data_fingerprint = fingerprint_frame(raw)
    tree_id = new_tree_id(data_fingerprint, settings.fingerprint(), context.run_id)
    # Tagged before the tree is begun: a run interrupted once its tree exists always names it
    # (the CLI marks that tree failed on Ctrl-C, and finds it by this tag).
    with_storage_retries(
        lambda: context.instance.add_run_tags(context.run_id, {TREE_ID_TAG: tree_id})
    )
    store = tree_storage.store()
    store.begin_tree(
        tree_id,
        {
            "generation": tree_id,
            "run_id": context.run_id,  # the launching run (the CLI finds its tree by it)
            "settings": settings.model_dump(mode="json"),
            "data_fingerprint": data_fingerprint,
            "source": settings.input.path or "built-in digits demo",
            "started_at": datetime.now(UTC).isoformat(),
            "n_rows": len(raw),
            "batches_included": batches,
            "trigger": trigger,
        },
    )
    store.write_table(tree_id, SOURCE_ROWS_TABLE, raw)
    return MaterializeResult(
        metadata={
            "generation": tree_id,
            "rows": len(raw),
            "columns": len(raw.columns),
            "data_fingerprint": data_fingerprint,
            "source": settings.input.path or "built-in digits demo",
            "batches_included": len(batches),
            "trigger": trigger,
            "preview": MetadataValue.md(raw.head(5).to_markdown(index=False)),
            "settings": MetadataValue.json(settings.model_dump(mode="json")),
        }
    )


@asset(
    group_name=INPUT_GROUP,
    deps=[SOURCE_TABLE],
    description="Validated feature matrix, ids and profile columns of the tree's rows.",
)
def features(context: AssetExecutionContext, tree_storage: TreeStoreResource) -> MaterializeResult:
    store, tree_id, settings = open_tree(context, tree_storage)
    source = store.read_table(tree_id, SOURCE_ROWS_TABLE)
    prepared = prepare(source, settings.input)
    if settings.input.image_shape:
        store.write_table(tree_id, PIXELS_TABLE, image_pixels(source, prepared, settings.input))
    del source  # the raw table is not needed past here: a copy less while writing the rest
    store.write_table(tree_id, FEATURES_TABLE, prepared.features)
    store.write_table(tree_id, IDS_TABLE, prepared.ids.to_frame())
    store.write_table(tree_id, PROFILE_TABLE, pd.DataFrame(prepared.profile))
    store.write_text(tree_id, PREPROCESSOR_JSON, prepared.preprocessor.to_json())
    store.write_text(tree_id, FEATURES_REPORT_JSON, json.dumps(prepared.report, default=str))
    for key, value in prepared.report.items():
        context.log.info(f"{key}: {value}")
    if prepared.report["skipped_columns"]:
        context.log.warning(f"columns left out: {prepared.report['skipped_columns']}")
    return MaterializeResult(
        metadata={
            "generation": tree_id,
            "rows": int(prepared.report["rows_kept"]),
            "features": int(prepared.report["n_features"]),
            "rows_dropped_non_finite": int(prepared.report["rows_dropped_non_finite"]),
            "values_imputed": int(prepared.report["values_imputed"]),
            "dropped_constant_columns": ", ".join(prepared.report["dropped_constant_columns"])
            or "none",
            "feature_columns": MetadataValue.md(
                ", ".join(f"`{c}`" for c in prepared.features.columns)
            ),
            "skipped_columns": MetadataValue.json(prepared.report["skipped_columns"]),
            "converted_columns": MetadataValue.json(prepared.report["converted_columns"]),
            "standardized": bool(prepared.report["standardized"]),
            "standardize_reason": str(prepared.report["standardize_reason"]),
        }
    )
