"""Every tunable parameter of the pipeline, with its default and why, in one validated place.

The settings are plain pydantic models (no Dagster import) so the core, the CLI, the Dagster
code location and the tests all read the same defaults. Unknown keys and out-of-range values are
rejected with the offending key named.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class SettingsError(ValueError):
    """A configuration file or value is invalid; the message names the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InputSettings(_Strict):
    """Where the table comes from and which columns play which role."""

    path: str | None = Field(
        None,
        description="Parquet (.parquet), CSV (.csv) or DuckDB (.duckdb/.db) file. "
        "Empty: the built-in scikit-learn 8x8 digits demo (1,797 rows, 64 pixels).",
    )
    table: str | None = Field(None, description="Table name inside a DuckDB file.")
    id_column: str | None = Field(
        None, description="Unique row id column. Empty: the row number becomes the id."
    )
    feature_columns: list[str] | None = Field(
        None, description="Columns to cluster on. Empty: every numeric column but the id."
    )
    profile_columns: list[str] = Field(
        default_factory=list,
        description="Columns carried along for the cluster profiles, never clustered on.",
    )
    standardize: bool | Literal["auto"] = Field(
        "auto",
        description="Scale each feature to zero mean and unit variance before embedding: true, "
        "false, or 'auto': scale when the columns' value ranges differ by more than "
        "10x (the widest vs the median column, or the median vs the 10th percentile), i.e. "
        "when they are in different units, and keep one shared scale (pixels, embeddings) "
        "as it is. The choice and its reason are reported.",
    )
    non_finite: Literal["error", "drop", "impute"] = Field(
        "error",
        description="What to do with NaN/inf in features: fail naming the column, drop the "
        "rows, or impute the column median. Counts are reported either way.",
    )
    image_shape: tuple[int, int] | None = Field(
        None, description="(height, width) when the features are pixels, for mean images."
    )


class EmbeddingSettings(_Strict):
    """UMAP parameters; defaults follow UMAP's own advice for clustering (min_dist=0)."""

    n_neighbors: int = Field(
        15, ge=2, le=500, description="UMAP neighbourhood size (capped at rows-1 per node)."
    )
    min_dist: float = Field(0.0, ge=0.0, le=1.0, description="UMAP min_dist; 0 packs clusters.")
    metric: str = Field("euclidean", description="UMAP distance metric on the features.")
    pca_components: int = Field(
        50, ge=2, description="PCA components used before UMAP when the data is wide."
    )
    pca_above_columns: int = Field(
        100, ge=2, description="Reduce with PCA first when a node has more columns than this."
    )
    fit_sample_size: int = Field(
        50_000,
        ge=1_000,
        description="Nodes with more rows fit UMAP on a seeded sample of this many rows and "
        "place the others with UMAP's transform (bounded time and memory on large tables).",
    )
    placement: Literal["auto", "transform", "neighbours"] = Field(
        "auto",
        description="How a node's rows past its fit sample are placed on its layout: "
        "'transform' (umap-learn's transform: k-NN memberships in the sample, their weighted "
        "mean position, then 30 epochs of optimisation per row), 'neighbours' (the same "
        "weighted mean, no optimisation: ~7x faster), or 'auto': transform up to "
        "neighbour_placement_above rows, neighbours above.",
    )
    neighbour_placement_above: int = Field(
        200_000,
        ge=1_000,
        description="With placement 'auto': nodes with more rows are placed by 'neighbours' "
        "(a 10-million-row node by transform alone takes hours on 2 cores).",
    )
    backend: Literal["umap", "cuml"] = Field(
        "umap",
        description="UMAP implementation: 'umap' (umap-learn, CPU) or 'cuml' (RAPIDS cuML on an "
        "NVIDIA GPU, when installed; reproducible only on the same hardware).",
    )


MAX_CLUSTER_SHARE = 0.45  # the coarsest share a granularity asks of a cluster: two can fit


class ClusteringSettings(_Strict):
    """HDBSCAN parameters, sized relative to each node so one setting works at every level."""

    min_cluster_size: float = Field(
        0.02,
        gt=0,
        description="Smallest cluster: a fraction of the node's rows when < 1, else a row count.",
    )
    min_cluster_size_floor: int = Field(
        15, ge=2, description="Lower bound on the resolved minimum cluster size, in rows."
    )
    min_samples: int | None = Field(
        None, ge=1, description="HDBSCAN min_samples; empty: equal to the minimum cluster size."
    )
    cluster_selection_method: Literal["eom", "leaf"] = Field(
        "eom", description="HDBSCAN flat-cluster selection: 'eom' (stable) or 'leaf' (fine)."
    )
    noise_policy: Literal["keep", "assign_nearest"] = Field(
        "assign_nearest",
        description="Noise rows of a split node: 'assign_nearest' (default) gives a noise row "
        "the child most of its 10 nearest clustered neighbours in the node's embedding belong "
        "to, when the nearest is within noise_assign_distance typical spacings; farther rows "
        "stay noise. Reassigned rows keep the flag noise_assigned and their vote share as "
        "confidence, and each child's count is reported. 'keep': every noise row stays noise.",
    )
    noise_assign_distance: float = Field(
        10.0,
        gt=0,
        description="With assign_nearest: how far a noise row may be from its nearest clustered "
        "row, in multiples of the median nearest-neighbour distance inside clusters; farther "
        "rows stay noise. Measured on MNIST 5k: 3 leaves 7.4% of rows as noise, 10 leaves 1.6%.",
    )
    fit_sample_size: int = Field(
        20_000,
        ge=1_000,
        description="Nodes with more rows run HDBSCAN on a seeded sample of this many rows of "
        "their embedding (sizes resolved on the sample, so the granularity stays the same: a "
        "2% cluster still has 400 sampled rows) and give each other row the cluster of its "
        "nearest sampled row. HDBSCAN's core distances cost min_samples neighbours per row, "
        "so its time grows with the square of the rows (measured: 70k rows 13.7 s, 2.4 GB; "
        "a 20k sample 1.0 s).",
    )
    backend: Literal["hdbscan", "fast_hdbscan", "cuml"] = Field(
        "hdbscan",
        description="HDBSCAN implementation: 'hdbscan', 'fast_hdbscan' (faster on large "
        "nodes; `pip install fast-hdbscan`) or 'cuml' (RAPIDS cuML on an NVIDIA GPU).",
    )

    def at_granularity(self, factor: float) -> ClusteringSettings:
        """The same settings with the minimum cluster size ``factor`` times coarser."""
        if factor == 1:
            return self
        coarser = self.min_cluster_size * factor
        if self.min_cluster_size < 1:  # stays a share of the node (>= 1 would mean rows)
            coarser = min(coarser, MAX_CLUSTER_SHARE)
        return self.model_copy(update={"min_cluster_size": coarser})

    def resolve_min_cluster_size(self, n_rows: int) -> int:
        """The absolute minimum cluster size for a node of ``n_rows`` rows."""
        if self.min_cluster_size >= 1:
            return int(self.min_cluster_size)
        return max(self.min_cluster_size_floor, math.ceil(self.min_cluster_size * n_rows))

    def resolve_min_samples(self, n_rows: int) -> int:
        """HDBSCAN's min_samples for a node of ``n_rows`` rows (below the row count)."""
        return max(1, min(self.min_samples or self.resolve_min_cluster_size(n_rows), n_rows - 1))


class RecursionSettings(_Strict):
    """How deep to zoom in, and which clusters are worth zooming into."""

    max_depth: int = Field(
        3, ge=1, le=8, description="Levels of the tree; 1 clusters the whole table only."
    )
    min_node_size: int = Field(
        150, ge=10, description="A cluster is zoomed into only if it has at least this many rows."
    )
    min_child_fraction: float = Field(
        0.0, ge=0.0, lt=1.0, description="...and at least this share of its parent's rows."
    )


class AcceptanceSettings(_Strict):
    """When a node's clustering is believed: the split-acceptance rule of ``core/acceptance``.

    UMAP + HDBSCAN finds islands even in one Gaussian blob, and every zoom-in is another
    chance to; a split is kept only if it is reproducible and beats structure-free data.
    """

    enabled: bool = Field(
        True,
        description="Test every split before accepting it. Off: any clustering with two or "
        "more children splits, at no extra cost.",
    )
    granularities: list[float] = Field(
        [1.0, 2.5, 5.0],
        min_length=1,
        description="Multiples of clustering.min_cluster_size at which each node is clustered, "
        "finest first; the node keeps the finest whose children are reproducible (HDBSCAN "
        "may cut a real coarse split into unstable fragments at the finest), and is a leaf "
        "only when none is. [1.0]: one granularity.",
    )
    stability_runs: int = Field(
        2,
        ge=1,
        le=10,
        description="Perturbed re-runs per node: a subsample laid out again with a new seed on "
        "the node's own k-NN graph, then re-clustered. Two give the mean ARI between perturbed "
        "runs and steadier verdicts on small nodes than one.",
    )
    subsample_fraction: float = Field(
        0.8,
        gt=0.3,
        lt=1.0,
        description="Share of the node's rows (of its UMAP fit sample, above "
        "embedding.fit_sample_size) in each perturbed run and in the null (clusterboot's usual "
        "0.8: a 27-row child keeps ~22 rows, above the 15-row floor).",
    )
    max_rows: int = Field(
        2000,
        ge=200,
        description="Cap on the rows of the null run and of the DBCV sample, so a big node "
        "costs one ~2000-row null embedding whatever its size. The perturbed runs are not "
        "capped: they keep the node's own density (a split of 13,000 rows can vanish in a "
        "2,000-row sample), and cost a layout of its graph, not a new embedding.",
    )
    min_stability: float = Field(
        0.75,
        ge=0.0,
        le=1.0,
        description="Least size-weighted mean Jaccard of the children with a perturbed run's "
        "clusters, up to nesting (a child found split or merged with whole siblings counts). "
        "0.75 is Hennig's 'valid, stable cluster'; measured: structure-free nodes <= 0.6, "
        "planted clusters and sub-clusters >= 0.85.",
    )
    min_persistence_gain: float = Field(
        0.03,
        ge=0.0,
        le=1.0,
        description="How far the children's size-weighted HDBSCAN persistence must exceed the "
        "null's (the same procedure on a Gaussian of the node's size, mean and covariance). "
        "Reproducibility is the main filter (structure-free nodes reach Jaccard <= 0.41 at "
        "their best granularity); the null need only be beaten clearly. Real digit splits gain "
        "0.05-0.06 (MNIST {3,5,8}: 0.12 vs 0.06), so the old 0.10 rejected them.",
    )
    min_validity_gain: float = Field(
        0.1,
        ge=0.0,
        le=2.0,
        description="Used instead when the backend reports no persistence (fast_hdbscan): how "
        "far DBCV must exceed max(0, the null's DBCV). Nulls of ~200 rows alone reach 0.4.",
    )


class ExplanationSettings(_Strict):
    """Classifier and SHAP parameters for explaining each node's children."""

    test_size: float = Field(0.25, gt=0.05, lt=0.9, description="Held-out share per node.")
    max_training_rows: int = Field(
        100_000,
        ge=1_000,
        description="Bigger nodes train their classifiers on a stratified sample of this many "
        "training rows (the held-out rows are all scored), bounding the time per node.",
    )
    shap_sample_per_child: int = Field(200, ge=10, description="Rows explained by SHAP per child.")
    top_k: int = Field(10, ge=1, description="Drivers listed per child.")
    confidence_threshold: float = Field(
        0.5, ge=0.0, le=1.0, description="predict stops at the deepest node this confident."
    )


class ChecksSettings(_Strict):
    """Thresholds of the checks of a finished tree (``core/tree_checks``, shown as Dagster
    asset checks of ``cluster_tree``). A failed ERROR check keeps the previous tree current."""

    max_noise_share_warn: float = Field(
        0.2, ge=0.0, le=1.0, description="WARN when more than this share of rows is noise."
    )
    max_noise_share_error: float = Field(
        0.5, ge=0.0, le=1.0, description="ERROR (not published) above this noise share."
    )
    min_child_stability_warn: float = Field(
        0.6,
        ge=0.0,
        le=1.0,
        description="WARN when a child of an accepted split has a lower Jaccard (Hennig's "
        "'dissolved' band is below 0.6).",
    )
    min_median_auc_warn: float = Field(
        0.8, ge=0.0, le=1.0, description="WARN below this median held-out ROC AUC."
    )
    min_median_auc_error: float = Field(
        0.6, ge=0.0, le=1.0, description="ERROR (not published) below this median AUC."
    )
    min_predict_agreement_warn: float = Field(
        0.85,
        ge=0.0,
        le=1.0,
        description="WARN when predict routes a smaller share of the rows in a leaf (a sample "
        "of at most 20,000) to that same leaf.",
    )
    min_predict_agreement_error: float = Field(
        0.5, ge=0.0, le=1.0, description="ERROR (not published) below this agreement."
    )
    min_ari_vs_previous_warn: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="WARN when the leaves agree less than this (ARI) with the previous tree's "
        "on the rows both hold: the tree changed a lot.",
    )


class BatchSettings(_Strict):
    """Where new rows arrive, to be scored by the current tree as they come (``batch_sensor``).

    Read from the settings file at each sensor tick, so a deployment can point it elsewhere
    without re-clustering.
    """

    path: str | None = Field(
        None,
        description="Watched source of new rows: a folder of Parquet/CSV files (one file = one "
        "batch, named by its file name) or a DuckDB file (with table and batch_column). Empty: "
        "no batches are watched.",
    )
    table: str | None = Field(None, description="Table name inside a DuckDB batch source.")
    batch_column: str | None = Field(
        None, description="Column of the DuckDB table that names each row's batch."
    )
    include_in_trees: bool = Field(
        True,
        description="A new tree (a launch, the schedule, or drift) clusters the input table "
        "plus every batch that has arrived, so a re-clustering sees the data that drifted.",
    )

    @model_validator(mode="after")
    def _duckdb_needs_table(self) -> BatchSettings:
        if self.path and Path(self.path).suffix.lower() in (".duckdb", ".db"):
            missing = [k for k in ("table", "batch_column") if not getattr(self, k)]
            if missing:
                raise ValueError(
                    f"batches.path {self.path!r} is a DuckDB file: set batches."
                    + " and batches.".join(missing)
                )
        return self


class DriftSettings(_Strict):
    """When a batch no longer fits the tree (``core/drift``), and when that re-clusters.

    Each figure compares a batch with the tree's own training rows routed the same way,
    against its threshold or, when larger, what chance alone reaches at the batch's size
    (so small batches raise no false alarms). Calibrated on digits held out of the tree:
    ``benchmarks/drift.py``.
    """

    min_rows: int = Field(
        100,
        ge=1,
        description="Smaller batches are scored but not judged: the routers place training "
        "rows more surely than new ones, and at 50 rows that alone raised up to 20% false "
        "alarms on MNIST (200 rows: at most 13%).",
    )
    max_leaf_psi: float = Field(
        0.15,
        ge=0.0,
        description="Most population stability index (PSI) of the share of rows per reached "
        "node; small batches are allowed what chance reaches at their size. Measured on held-"
        "out digits: batches of the tree's own digits 0.05 (1,000 rows) to 0.3 (50 rows).",
    )
    max_low_confidence_increase: float = Field(
        0.1,
        ge=0.0,
        le=1.0,
        description="How much the share of rows the routers cannot place confidently "
        "(explanation.confidence_threshold) may exceed the training rows' share.",
    )
    max_driver_psi: float = Field(
        0.2,
        ge=0.0,
        description="Most PSI of the distribution (in training deciles) of each of the root's "
        "top SHAP drivers; small batches are allowed what chance reaches at their size.",
    )
    top_drivers: int = Field(
        5, ge=0, le=50, description="How many of the root's top SHAP drivers are watched."
    )
    consecutive_batches: int = Field(
        2,
        ge=1,
        le=100,
        description="Drifting batches in a row (scored by the current tree) that launch a "
        "re-clustering; one odd batch only raises its WARN check.",
    )
    recluster: bool = Field(
        True, description="Launch a new tree on drift; false: only flag the batches."
    )


class Settings(_Strict):
    """The whole configuration of one tree."""

    input: InputSettings = Field(default_factory=InputSettings)
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    clustering: ClusteringSettings = Field(default_factory=ClusteringSettings)
    recursion: RecursionSettings = Field(default_factory=RecursionSettings)
    explanation: ExplanationSettings = Field(default_factory=ExplanationSettings)
    acceptance: AcceptanceSettings = Field(default_factory=AcceptanceSettings)
    checks: ChecksSettings = Field(default_factory=ChecksSettings)
    batches: BatchSettings = Field(default_factory=BatchSettings)
    drift: DriftSettings = Field(default_factory=DriftSettings)
    random_state: int = Field(42, ge=0, description="Seed for every random step.")
    memory_limit_gb: float | None = Field(
        None,
        gt=0,
        description="Memory a tree may use, in GB; a tree whose estimated peak (from its rows "
        "and feature columns, before anything is read) is higher is refused before it starts. "
        "Empty: this machine's memory (a container's limit where lower).",
    )
    schedule_cron: str | None = Field(
        "0 3 * * 0",
        description="Cron string (UTC) of recluster_schedule, which re-clusters on a clock "
        "(empty: the default); it is stopped until switched on in the UI's Automation page.",
    )

    @model_validator(mode="after")
    def _demo_defaults(self) -> Settings:
        """Without an input path the digits demo runs: fill in its id, profile and shape."""
        if self.input.path is None:
            demo = {
                "id_column": "digit_id",
                "profile_columns": ["digit"],
                "image_shape": (8, 8),
            }
            update = {key: value for key, value in demo.items() if not getattr(self.input, key)}
            object.__setattr__(self, "input", self.input.model_copy(update=update))
        return self

    def fingerprint(self) -> str:
        """A short stable hash of the settings, part of a tree's generation id."""
        payload = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]


def parse_settings(data: dict | None, source: str = "settings") -> Settings:
    """Validate a settings mapping, raising ``SettingsError`` that names each bad key."""
    try:
        return Settings.model_validate(data or {})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise SettingsError(f"Invalid {source}: {problems}") from None


def load_settings(path: str | Path | None) -> Settings:
    """Read settings from a YAML file; ``None`` gives the defaults (the digits demo)."""
    return parse_settings(read_settings_file(path), source=f"settings file {path}")


def read_settings_file(path: str | Path | None) -> dict:
    """The raw mapping of a YAML settings file (empty for ``None``), before validation, so
    that command-line options can be laid over it."""
    if path is None:
        return {}
    path = Path(path)
    if not path.is_file():
        raise SettingsError(f"Settings file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise SettingsError(
            f"Settings file {path} is not UTF-8 text (byte {exc.start}): save it as UTF-8"
        ) from None
    except yaml.YAMLError as exc:
        raise SettingsError(f"Settings file {path} is not valid YAML: {exc}") from None
    if data is not None and not isinstance(data, dict):
        raise SettingsError(f"Settings file {path} must hold a mapping of keys, not {data!r}")
    return data or {}


def settings_reference() -> list[tuple[str, object, str]]:
    """(dotted key, default, description) for every setting, for the CLI and the README."""
    rows = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                walk(annotation, f"{prefix}{name}.")
                continue
            default = field.get_default(call_default_factory=True)
            rows.append((f"{prefix}{name}", default, field.description or ""))

    walk(Settings, "")
    return rows


def settings_template() -> str:
    """A commented YAML file with every setting at its default, ready to edit."""
    lines = ["# recursive_clusters settings: every key with its default.", ""]
    section = None
    for key, default, description in settings_reference():
        head, _, name = key.rpartition(".")
        if head != section:
            section = head
            lines += ["", f"{head}:"] if head else [""]
        indent = "  " if head else ""
        value = yaml.safe_dump(default, default_flow_style=True).strip().removesuffix("...")
        lines.append(f"{indent}# {description}")
        lines.append(f"{indent}{name}: {value.strip()}")
    return "\n".join(lines).strip() + "\n"
