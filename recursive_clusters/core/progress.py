"""Progress of long work a user waits for: rows done so far and an estimate of the time left.

Pure bookkeeping; the caller decides where the lines go (the console, Dagster's run log).
"""

from __future__ import annotations

import time
from collections.abc import Callable


def duration(seconds: float) -> str:
    """``42 s``, ``3.5 min`` or ``1.2 h``: short enough for a progress line."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


class RowProgress:
    """Counts the rows of one piece of work (e.g. one tree level's placement) and reports,
    at most every ``every_seconds`` and at the end, how many are done and how long the rest
    should take at the rate so far.

    ``advance(0)`` marks where a stretch of the work begins: the time before it (e.g. a
    node's UMAP fit, between two nodes' placements) is not work on these rows, and counting
    it would inflate the estimate."""

    def __init__(
        self,
        label: str,
        total_rows: int,
        report: Callable[[str], None],
        every_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.total_rows = total_rows
        self.done_rows = 0
        self._report = report
        self._every = every_seconds
        self._clock = clock
        self._working = 0.0  # seconds spent on the rows so far
        self._mark = self._last_report = clock()

    def advance(self, rows: int) -> None:
        """``rows`` more rows are done; report when due (always once all are done)."""
        now = self._clock()
        if rows:
            self._working += now - self._mark
            self.done_rows += rows
        self._mark = now
        if rows and (now - self._last_report >= self._every or self.done_rows >= self.total_rows):
            self._last_report = now
            self._report(self.line(self._working))

    def line(self, working: float) -> str:
        """The progress line after ``working`` seconds spent on the rows."""
        done, total = self.done_rows, max(self.total_rows, 1)
        head = f"{self.label}: {done:,} of {self.total_rows:,} rows ({done / total:.0%})"
        if done >= total:
            return f"{head} in {duration(working)}"
        if done == 0 or working <= 0:
            return f"{head}, {duration(working)} so far"
        left = working * (total - done) / done
        return f"{head}, {duration(working)} so far, about {duration(left)} left"
