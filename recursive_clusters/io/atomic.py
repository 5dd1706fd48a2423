"""The one way this package writes a file: to a temporary name beside it, renamed over it.

A reader (a sibling run, the report, ``predict``) never sees half a file, and a crash leaves
the previous version. The file gets the mode the process's umask gives new files (0644
under the usual 022), not the temporary file's 0600, so that on a shared volume other users
and pods can read trees, reports and predictions.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _new_file_mode() -> int:
    """0o666 less the umask, read without changing it where Linux tells it (setting it to
    read it would briefly loosen it for other threads)."""
    try:
        status = Path("/proc/self/status").read_text()
        umask = next(
            int(line.split()[1], 8) for line in status.splitlines() if line.startswith("Umask:")
        )
    except (OSError, StopIteration, ValueError, IndexError):
        umask = os.umask(0)
        os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def atomic_path(target: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside ``target`` (same suffix, so writers that choose a format
    by extension choose the same); it replaces ``target`` only when the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.", suffix=f".tmp{target.suffix}"
    )
    os.close(handle)
    try:
        yield Path(temporary)
        os.chmod(temporary, _new_file_mode())
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
