"""Profiles: how a cluster differs from the whole population on columns not clustered on.

Numbers by their median, categories by the levels most over-represented in the cluster
(lift = share in the cluster / share overall). The report lays these out; cluster names
take their most telling level.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

# An integer column with at most this many distinct values is profiled as categories.
MAX_CATEGORY_LEVELS = 20
# Over-represented levels shown per categorical profile column.
TOP_LEVELS = 3


def _is_categorical(values: pd.Series) -> bool:
    """Text, booleans and codes (few distinct whole numbers) are categories, not quantities."""
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return True
    present = values.dropna().to_numpy(dtype=float)
    whole = bool(np.all(np.mod(present, 1) == 0))
    return whole and len(np.unique(present)) <= MAX_CATEGORY_LEVELS


@dataclass(frozen=True)
class ProfileColumn:
    """One profile column, prepared once: numbers, or levels as text with their shares."""

    name: str
    values: pd.Series  # numbers, or level names ("(missing)" for missing values)
    overall: pd.Series | float  # level shares, or the overall median

    @classmethod
    def of(cls, name: str, values: pd.Series) -> ProfileColumn:
        if not _is_categorical(values):
            return cls(name, values, float(values.median()))
        levels = values.astype(str).where(values.notna(), "(missing)")
        return cls(name, levels, levels.value_counts(normalize=True))


@dataclass(frozen=True)
class ProfileRow:
    """One line of a cluster's profile: a median, or an over-represented level."""

    column: str
    first_of_column: bool
    statistic: str  # "median" or the level
    is_level: bool
    inside: float
    overall: float

    @property
    def lift(self) -> float:
        return self.inside / self.overall if self.overall else float("nan")


def profile_rows(columns: list[ProfileColumn], inside: np.ndarray) -> list[ProfileRow]:
    """Each profile column in the cluster against the whole population: medians, or the
    levels most over-represented in it (the most common one when none is)."""
    rows: list[ProfileRow] = []
    for column in columns:
        if not isinstance(column.overall, pd.Series):
            here = float(column.values[inside].median())
            rows.append(ProfileRow(column.name, True, "median", False, here, column.overall))
            continue
        here = column.values[inside].value_counts(normalize=True)
        excess = here.sub(column.overall, fill_value=0.0).sort_values(
            ascending=False, kind="stable"
        )
        levels = [level for level in excess.index[:TOP_LEVELS] if excess[level] > 0]
        for position, level in enumerate(levels or list(here.index[:1])):
            rows.append(
                ProfileRow(
                    column.name,
                    position == 0,
                    str(level),
                    True,
                    float(here.get(level, 0.0)),
                    float(column.overall[level]),
                )
            )
    return rows
