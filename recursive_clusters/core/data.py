"""Turn a loaded input table into the validated numeric matrix that gets clustered.

Everything here is plain pandas/numpy so the CLI, the Dagster assets and the tests share one
implementation (the readers are in ``io/tables.py``). Every problem with the data raises
``InputError`` naming the file, column, row or setting at fault, because a clustering run
that fails late on bad data is costly.
"""

from __future__ import annotations

import dataclasses
import decimal
import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd

from recursive_clusters.core.settings import InputSettings

NON_FINITE_POLICIES = ("error", "drop", "impute")
_SHOWN_COLUMNS = 20


class InputError(ValueError):
    """Bad input data; the message names the file/column/row/parameter at fault."""


@dataclass(frozen=True)
class FeaturePreprocessor:
    """Turns raw rows into the numeric matrix the models were built on.

    It is JSON-serialisable so that predict applies exactly the same steps to new rows.
    ``feature_columns`` are the kept columns (after dropping constants); ``medians``, ``means``
    and ``scales`` are aligned with them. ``dropped_constant_columns`` is kept for the record.
    """

    feature_columns: tuple[str, ...]
    dropped_constant_columns: tuple[str, ...]
    medians: tuple[float, ...]
    means: tuple[float, ...] | None
    scales: tuple[float, ...] | None
    non_finite: str

    def __post_init__(self) -> None:
        n_features = len(self.feature_columns)
        if self.non_finite not in NON_FINITE_POLICIES:
            raise ValueError(f"non_finite must be one of {NON_FINITE_POLICIES}")
        if len(self.medians) != n_features or (self.means is None) != (self.scales is None):
            raise ValueError("medians, means and scales must match the feature columns")
        if self.means is not None and not len(self.means) == len(self.scales) == n_features:
            raise ValueError("means and scales must have one value per feature column")

    def to_json(self) -> str:
        """Serialise exactly (floats round-trip through JSON without loss)."""
        return json.dumps(dataclasses.asdict(self), allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> FeaturePreprocessor:
        """Inverse of ``to_json``."""
        data = json.loads(text)
        return cls(
            feature_columns=tuple(data["feature_columns"]),
            dropped_constant_columns=tuple(data["dropped_constant_columns"]),
            medians=tuple(data["medians"]),
            means=None if data["means"] is None else tuple(data["means"]),
            scales=None if data["scales"] is None else tuple(data["scales"]),
            non_finite=data["non_finite"],
        )

    def transform(
        self, raw: pd.DataFrame, source: str = "the input table"
    ) -> tuple[np.ndarray, np.ndarray]:
        """(float64 matrix of the kept rows, boolean kept-row mask over ``raw``); errors name
        ``source`` (e.g. the batch file) as the table at fault."""
        values, _ = _numeric_values(raw, list(self.feature_columns), source)
        matrix, kept, _ = _apply_non_finite(values, self)
        return self._standardise(matrix, in_place=True), kept  # ``matrix`` is our own copy

    def _standardise(self, matrix: np.ndarray, in_place: bool = False) -> np.ndarray:
        """``in_place`` when the caller owns ``matrix``: two more copies of a table of
        10,000,000 x 50 would add 8 GB to the peak."""
        if self.means is None or self.scales is None:
            return matrix
        scaled = matrix if in_place else matrix.copy()
        scaled -= np.asarray(self.means)
        scaled /= np.asarray(self.scales)
        overflowing = ~np.isfinite(scaled).all(axis=0)
        if overflowing.any():
            names = [c for c, bad in zip(self.feature_columns, overflowing, strict=True) if bad]
            raise InputError(f"Values too large to standardise in feature columns {names}")
        return scaled


@dataclass(frozen=True)
class PreparedData:
    """The validated table split into the roles the pipeline needs, plus what was done to it.

    ``features`` are the kept rows and columns after imputation but before standardisation;
    ``matrix`` is what gets clustered. All frames and series have a fresh 0..n-1 index;
    ``kept_rows`` are the positions in the raw table they come from.
    """

    ids: pd.Series
    features: pd.DataFrame
    matrix: np.ndarray
    profile: pd.DataFrame
    preprocessor: FeaturePreprocessor
    report: dict[str, object]
    kept_rows: np.ndarray


SCALE_RATIO = 10.0  # spreads an order of magnitude apart: columns in different units


def resolve_standardize(setting: bool | str, features: np.ndarray) -> tuple[bool, str]:
    """Whether to standardise the features, and why (``setting`` ``"auto"`` decides here).

    Auto compares the columns' value ranges (max - min): columns sharing one unit (pixels,
    embedding dimensions) have ranges within a few-fold of each other and are kept as they
    are, so their natural weighting stays; a table mixing units (streams ~1e8 beside tempo
    ~1e2, counts beside rates) has ranges orders of magnitude apart, and the widest columns
    would decide every distance. The rule: scale when the widest range is more than
    ``SCALE_RATIO`` times the median one, or the 90th-percentile column's range more than
    ``SCALE_RATIO`` times the 10th-percentile column's, both percentiles taken on actual
    columns: with two columns that is the wider against the narrower, so the rule holds for
    2 columns as for 700, while a few odd edge columns of many do not decide it. Measured:
    sklearn digits 1.0x / 2.7x (kept); sklearn wine 369x / 75x, breast cancer 8,712x /
    11,276x, a column of +-3,000 beside one of 1-9 2.0x / 748x (scaled).
    """
    if setting != "auto":
        return bool(setting), f"input.standardize is {str(bool(setting)).lower()}"
    ranges = np.ptp(features, axis=0) if features.size else np.zeros(0)
    ranges = ranges[ranges > 0]
    if len(ranges) < 2:
        return False, "auto: fewer than two varying columns"
    median = np.quantile(ranges, 0.5)
    p10, p90 = np.quantile(ranges, 0.1, method="lower"), np.quantile(ranges, 0.9, method="higher")
    widest, spread = ranges.max() / median, p90 / p10
    figures = f"widest column range {widest:.3g}x the median, 90th pct {spread:.3g}x the 10th"
    if max(widest, spread) > SCALE_RATIO:
        return True, f"auto: scaled, the columns are on different scales ({figures})"
    return False, f"auto: kept as is, the columns share one scale ({figures})"


def column_scales(features: np.ndarray) -> np.ndarray:
    """Each column's standard deviation, computed on the column divided by its largest
    magnitude first: values near 1e-300 would square to 0 and give a scale of 0."""
    magnitude = np.abs(features).max(axis=0, initial=0.0)
    magnitude[magnitude == 0] = 1.0
    return (features / magnitude).std(axis=0) * magnitude


def prepare(raw: pd.DataFrame, settings: InputSettings) -> PreparedData:
    """Validate ``raw`` against the input settings and build the matrix to cluster."""
    n_rows = len(raw)
    if n_rows == 0:
        raise InputError("The input table is empty (0 rows)")
    if n_rows < 2:
        raise InputError(f"The input table has {n_rows} row; need at least 2 rows")
    duplicated = duplicated_names(list(raw.columns))
    if duplicated:
        raise InputError(f"Duplicated column names in the input table: {duplicated}")
    not_strings = [c for c in raw.columns if not isinstance(c, str)]
    if not_strings:
        raise InputError(f"Column names must be strings; got {not_strings[:_SHOWN_COLUMNS]}")
    _refuse_names_differing_only_in_case(list(raw.columns))

    ids = _validated_ids(raw, settings.id_column)
    profile_columns = list(settings.profile_columns)
    _require_columns(raw, profile_columns, "input.profile_columns")
    candidates, skipped = _feature_candidates(raw, settings, profile_columns)
    values, converted = _numeric_values(raw, candidates)
    columns, values, dropped = _drop_constant_columns(candidates, values, settings.non_finite)
    kept = _finite_rows(values) if settings.non_finite == "drop" else np.ones(n_rows, dtype=bool)
    preprocessor = FeaturePreprocessor(
        feature_columns=tuple(columns),
        dropped_constant_columns=tuple(dropped),
        medians=_finite_medians(values, kept),
        means=None,
        scales=None,
        non_finite=settings.non_finite,
    )
    features, kept, n_imputed = _apply_non_finite(values, preprocessor)
    standardize, scale_reason = resolve_standardize(settings.standardize, features)
    if not standardize:  # the models compute in float32: values below ~1e-38 become 0 there
        flat = _constant(features, np.float32)
        if flat.all():
            raise InputError(
                f"All feature columns are constant in float32 (values below 1e-38 become 0): "
                f"{columns}; set input.standardize to true or auto to scale them"
            )
        if flat.any():
            keep = ~flat
            dropped += [c for c, is_flat in zip(columns, flat, strict=True) if is_flat]
            columns = [c for c, k in zip(columns, keep, strict=True) if k]
            features, values = features[:, keep], values[:, keep]
            preprocessor = dataclasses.replace(
                preprocessor,
                feature_columns=tuple(columns),
                dropped_constant_columns=tuple(dropped),
                medians=tuple(m for m, k in zip(preprocessor.medians, keep, strict=True) if k),
            )
    if standardize:
        preprocessor = dataclasses.replace(
            preprocessor,
            means=tuple(float(m) for m in features.mean(axis=0)),
            scales=tuple(float(s) for s in column_scales(features)),
        )
    kept_positions = np.flatnonzero(kept)
    report: dict[str, object] = {
        "rows_in": n_rows,
        "rows_kept": len(kept_positions),
        "rows_dropped_non_finite": n_rows - len(kept_positions),
        "values_imputed": n_imputed,
        "non_finite_by_column": _non_finite_counts(columns, values),
        "dropped_constant_columns": list(dropped),
        "n_features": len(columns),
        "skipped_columns": skipped,
        "converted_columns": converted,
        "standardized": standardize,
        "standardize_reason": scale_reason,
    }
    return PreparedData(
        ids=ids.iloc[kept_positions].reset_index(drop=True),
        # no copy: unstandardised, ``matrix`` is these same values (neither is ever modified),
        # and a second copy of a 10-million-row table is 4 GB
        features=pd.DataFrame(features, columns=columns, copy=False),
        matrix=preprocessor._standardise(features),
        profile=raw[profile_columns].iloc[kept_positions].reset_index(drop=True),
        preprocessor=preprocessor,
        report=report,
        kept_rows=kept_positions,
    )


def fingerprint_frame(df: pd.DataFrame) -> str:
    """A stable 16-hex-digit hash of the values and the column names in order."""
    digest = hashlib.sha256(json.dumps([str(c) for c in df.columns]).encode())
    digest.update(pd.util.hash_pandas_object(_hashable(df), index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


_NESTED = (list, tuple, dict, np.ndarray)  # a Parquet list or struct column's values


def _hashable(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with list and struct values written as JSON text (pandas cannot hash them)."""
    nested = [
        position
        for position in range(df.shape[1])
        if pd.api.types.is_object_dtype(df.dtypes.iloc[position])
        and any(isinstance(value, _NESTED) for value in df.iloc[:, position])
    ]
    if not nested:
        return df
    as_text = df.copy()
    for position in nested:
        as_text.isetitem(
            position,
            df.iloc[:, position].map(
                lambda value: (
                    json.dumps(value, sort_keys=True, default=_plain)
                    if isinstance(value, _NESTED)
                    else value
                )
            ),
        )
    return as_text


def _plain(value: object) -> object:
    return value.tolist() if isinstance(value, np.ndarray | np.generic) else str(value)


def duplicated_names(names: list[object]) -> list[object]:
    return [name for name, count in Counter(names).items() if count > 1]


def _refuse_names_differing_only_in_case(columns: list[str]) -> None:
    """DuckDB (the catalog's ``features`` view) does not tell ``f0`` from ``F0``: it renames
    one, and ``SELECT "F0"`` would silently return the other's values. Refused at load."""
    by_folded: dict[str, list[str]] = {}
    for column in columns:
        by_folded.setdefault(column.casefold(), []).append(column)
    clashes = [names for names in by_folded.values() if len(names) > 1]
    if clashes:
        shown = "; ".join(" and ".join(map(repr, names)) for names in clashes[:_SHOWN_COLUMNS])
        raise InputError(
            f"Column names that differ only in case: {shown}. DuckDB, which holds the results, "
            "does not tell them apart: rename one of each"
        )


def _shown(columns: list[object]) -> str:
    """The first columns of a table for error messages, so wide tables stay readable."""
    more = len(columns) - _SHOWN_COLUMNS
    shown = ", ".join(map(repr, columns[:_SHOWN_COLUMNS]))
    return shown + (f" ... and {more} more" if more > 0 else "")


def _require_columns(raw: pd.DataFrame, columns: list[str], parameter: str) -> None:
    duplicated = duplicated_names(list(columns))
    if duplicated:
        raise InputError(f"{parameter} lists columns more than once: {duplicated}")
    missing = [c for c in columns if c not in raw.columns]
    if missing:
        raise InputError(
            f"Columns {missing} from {parameter} are not in the input table; "
            f"available: {_shown(list(raw.columns))}"
        )


# Columns the tree writes beside the id column: ``assignments`` (``level_<n>`` for every
# level) and ``predict``'s output. An id column of one of these names would be a second column
# of that name.
ASSIGNMENT_COLUMNS = ("leaf_path", "leaf_name", "is_noise", "confidence", "noise_assigned")
PREDICT_COLUMNS = ("path", "depth", "confident", "confidence")
_LEVEL_COLUMN = re.compile(r"level_\d+")


def reserved_id_name(id_column: str) -> bool:
    """Whether an id column of this name would collide with an output column."""
    return (
        id_column in ASSIGNMENT_COLUMNS
        or id_column in PREDICT_COLUMNS
        or _LEVEL_COLUMN.fullmatch(id_column) is not None
    )


def _validated_ids(raw: pd.DataFrame, id_column: str | None) -> pd.Series:
    """The id column, unique and non-null, or the row number when there is none."""
    if id_column is None:
        return pd.Series(np.arange(len(raw)), name="row_id")
    if reserved_id_name(id_column):
        reserved = dict.fromkeys([*ASSIGNMENT_COLUMNS, "level_1, level_2, ...", *PREDICT_COLUMNS])
        raise InputError(
            f"id column {id_column!r} (input.id_column) has the name of a column the tree "
            f"writes beside the ids (reserved: {', '.join(reserved)}); rename it in the input "
            "table, or give another unique column with --id-column (input.id_column)"
        )
    if id_column not in raw.columns:
        raise InputError(
            f"id column {id_column!r} (input.id_column) is not in the input table; "
            f"available: {_shown(list(raw.columns))}"
        )
    ids = raw[id_column].reset_index(drop=True)
    nulls = ids.isna().to_numpy()
    if nulls.any():
        raise InputError(
            f"id column {id_column!r} has {int(nulls.sum())} null values; "
            f"first at row position {int(np.flatnonzero(nulls)[0])}"
        )
    duplicated = ids.duplicated(keep=False).to_numpy()
    if duplicated.any():
        example = ids[duplicated].iloc[0]
        raise InputError(
            f"id column {id_column!r} is not unique: {int(duplicated.sum())} rows share an id, "
            f"e.g. {example!r} appears {int((ids == example).sum())} times"
        )
    return ids


def _is_numeric(series: pd.Series) -> bool:
    dtype = series.dtype
    return pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(dtype)


# Text that is unambiguously a number: plain (``-1.5e3``), or with comma thousands separators
# in groups of three (``1,234,567.5``); a decimal comma (``1,5``) matches neither.
_NUMBER_TEXT = r"[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?(?:[eE][+-]?\d+)?|[+-]?\.\d+"
TEXT_NUMBERS = "numbers stored as text"
DECIMALS = "DECIMAL values"


def numeric_column(series: pd.Series) -> tuple[pd.Series | None, str]:
    """The column as numbers and how they were read, or ``None`` and why it is not numeric.

    Numeric dtypes are taken as they are; DECIMAL columns (Python ``Decimal`` objects from
    DuckDB or Parquet) and text columns whose every value is a number (thousands separators
    allowed) are converted, and the caller reports it: nothing is left out or changed
    without a word.
    """
    if _is_numeric(series):
        return series, "numeric"
    if not pd.api.types.is_object_dtype(series.dtype) and not pd.api.types.is_string_dtype(
        series.dtype
    ):
        return None, f"not numeric ({series.dtype})"
    present = series.dropna()
    if len(present) == 0:
        return None, "empty"
    if all(isinstance(value, decimal.Decimal) for value in present):
        return series.map(
            lambda v: float(v) if isinstance(v, decimal.Decimal) else np.nan
        ), DECIMALS
    if any(isinstance(value, _NESTED) for value in present):
        return None, "lists or structs, not numbers"
    if not all(isinstance(value, str) for value in present):
        return None, "mixed values"
    text = present.str.strip()
    if not text.str.fullmatch(_NUMBER_TEXT).all():
        return None, "text"
    numbers = pd.to_numeric(series.str.strip().str.replace(",", "", regex=False))
    with_separators = " with thousands separators" if text.str.contains(",").any() else ""
    return numbers, TEXT_NUMBERS + with_separators


def _feature_candidates(
    raw: pd.DataFrame, settings: InputSettings, profile_columns: list[str]
) -> tuple[list[str], dict[str, str]]:
    """The configured feature columns, or every numeric column but the id and the profile;
    and the columns left out, with why."""
    if not settings.feature_columns:
        excluded = {settings.id_column, *profile_columns}
        columns, skipped = [], {}
        for column in raw.columns:
            if column in excluded:
                continue
            numbers, how = numeric_column(raw[column])
            if numbers is None:
                skipped[column] = how
            else:
                columns.append(column)
        if not columns:
            raise InputError(
                "No numeric feature columns found (input.feature_columns is empty, so every "
                f"numeric column but the id and profile columns is used); columns: "
                f"{_shown(list(raw.columns))}"
            )
        return columns, skipped
    columns = list(settings.feature_columns)
    _require_columns(raw, columns, "input.feature_columns")
    if settings.id_column in columns:
        raise InputError(
            f"id column {settings.id_column!r} cannot also be in input.feature_columns"
        )
    overlap = [c for c in columns if c in profile_columns]
    if overlap:
        raise InputError(
            f"Columns {overlap} are in both input.feature_columns and input.profile_columns"
        )
    return columns, {}


def _numeric_values(
    raw: pd.DataFrame, columns: list[str], source: str = "the input table"
) -> tuple[np.ndarray, dict[str, str]]:
    """The columns as a float64 matrix (bools as 0/1, missing as NaN), after checking them,
    and how each column that was not numeric already was read (``numeric_column``)."""
    missing = [c for c in columns if c not in raw.columns]
    if missing:
        raise InputError(f"Feature columns missing from {source}: {missing}")
    duplicated = [c for c in columns if raw.columns.get_indexer_for([c]).size > 1]
    if duplicated:
        raise InputError(f"Feature columns appear more than once in the input table: {duplicated}")
    read = {column: numeric_column(raw[column]) for column in columns}
    not_numeric = [f"{c!r} ({how})" for c, (numbers, how) in read.items() if numbers is None]
    if not_numeric:
        raise InputError(f"Feature columns are not numeric: {', '.join(not_numeric)}")
    values = np.empty((len(raw), len(columns)), dtype=np.float64)
    for position, column in enumerate(columns):
        values[:, position] = read[column][0].to_numpy(dtype=np.float64, na_value=np.nan)
    _require_float32_range(raw, columns, values)
    return values, {c: how for c, (_, how) in read.items() if how != "numeric"}


FLOAT32_MAX = float(np.finfo(np.float32).max)


def _require_float32_range(raw: pd.DataFrame, columns: list[str], values: np.ndarray) -> None:
    """Embedding, classifiers and routers compute in float32: a larger finite value would
    become infinite there, far from where it came from. Name the first one."""
    rows_too_large = np.zeros(len(values), dtype=bool)  # column by column: no table-sized copy
    count = 0
    for position in range(values.shape[1]):
        column = values[:, position]
        beyond = np.isfinite(column) & (np.abs(column) > FLOAT32_MAX)
        count += int(beyond.sum())
        rows_too_large |= beyond
    if count:
        row = int(np.argmax(rows_too_large))
        first = values[row]
        position = int(np.argmax(np.isfinite(first) & (np.abs(first) > FLOAT32_MAX)))
        more = count - 1
        raise InputError(
            f"Feature column {columns[position]!r} holds {values[row, position]:g} at row "
            f"{raw.index[row]!r}{f' (and {more} more values)' if more else ''}, beyond the "
            f"float32 range (|x| <= {FLOAT32_MAX:.3g}): rescale the column (e.g. log) or drop it"
        )


def _finite_rows(values: np.ndarray) -> np.ndarray:
    return np.isfinite(values).all(axis=1)


def _constant(values: np.ndarray, dtype: type = np.float64) -> np.ndarray:
    """Per column: no two distinct finite values (all-NaN columns count as constant), with
    the values in ``dtype``. Column by column: a mask of the whole table would cost copies
    of it."""
    flags = np.empty(values.shape[1], dtype=bool)
    for position in range(values.shape[1]):
        column = values[:, position].astype(dtype, copy=False)
        finite = column[np.isfinite(column)]
        flags[position] = not (len(finite) and finite.min() < finite.max())
    return flags


def _finite_medians(values: np.ndarray, kept: np.ndarray) -> tuple[float, ...]:
    """Each column's median over its finite values in the ``kept`` rows (NaN when none),
    column by column, so no masked copy of the whole table is made."""
    every_row = bool(kept.all())
    medians = []
    for position in range(values.shape[1]):
        column = values[:, position] if every_row else values[kept, position]
        finite = column[np.isfinite(column)]
        medians.append(float(np.median(finite)) if len(finite) else float("nan"))
    return tuple(medians)


def _drop_constant_columns(
    columns: list[str], values: np.ndarray, non_finite: str
) -> tuple[list[str], np.ndarray, list[str]]:
    """Drop columns that carry no information, over the rows that will be kept.

    With the "drop" policy, removing rows can make a column constant, and removing that column
    can bring rows back; repeating until nothing changes keeps the mask and the columns
    consistent, so the preprocessor reproduces them. Each round removes a column, so it ends.
    """
    dropped: list[str] = []
    kept_rows = np.ones(len(values), dtype=bool)
    while True:
        constant = _constant(values if kept_rows.all() else values[kept_rows])
        if constant.all():
            empty = ~np.isfinite(values[kept_rows]).any(axis=0)
            if empty.all():
                raise InputError(
                    f"All feature columns are empty (no finite value): {dropped + columns}"
                )
            raise InputError(
                f"All feature columns are constant: {dropped + columns}"
                + (
                    f" (empty: {[c for c, e in zip(columns, empty, strict=True) if e]})"
                    if empty.any()
                    else ""
                )
            )
        if constant.any():
            dropped += [c for c, is_constant in zip(columns, constant, strict=True) if is_constant]
            columns = [
                c for c, is_constant in zip(columns, constant, strict=True) if not is_constant
            ]
            values = values[:, ~constant]
        if non_finite != "drop":
            return columns, values, dropped
        new_kept = _finite_rows(values)
        if new_kept.sum() < 2:
            raise InputError(
                f"Dropping rows with non-finite values (input.non_finite='drop') leaves "
                f"{int(new_kept.sum())} of {len(values)} rows; need at least 2 rows"
            )
        if not constant.any() and np.array_equal(new_kept, kept_rows):
            return columns, values, dropped
        kept_rows = new_kept


def _apply_non_finite(
    values: np.ndarray, preprocessor: FeaturePreprocessor
) -> tuple[np.ndarray, np.ndarray, int]:
    """(values of the kept rows, kept-row mask, number of imputed values) per the policy."""
    bad = ~np.isfinite(values)
    if not bad.any():
        return values, np.ones(len(values), dtype=bool), 0
    if preprocessor.non_finite == "drop":
        kept = ~bad.any(axis=1)
        return values[kept], kept, 0
    if preprocessor.non_finite == "impute":
        imputed = values.copy()
        imputed[bad] = np.asarray(preprocessor.medians)[np.nonzero(bad)[1]]
        return imputed, np.ones(len(values), dtype=bool), int(bad.sum())
    counts = _non_finite_counts(list(preprocessor.feature_columns), values)
    described = ", ".join(f"{c!r} ({n} values)" for c, n in counts.items())
    first_row = int(np.flatnonzero(bad.any(axis=1))[0])
    raise InputError(
        f"Non-finite values (NaN/inf) in feature columns {described}; first at row position "
        f"{first_row}. Set input.non_finite to 'drop' or 'impute' to handle them."
    )


def _non_finite_counts(columns: list[str], values: np.ndarray) -> dict[str, int]:
    counts = (~np.isfinite(values)).sum(axis=0)
    return {c: int(n) for c, n in zip(columns, counts, strict=True) if n}
