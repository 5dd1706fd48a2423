"""The one way this package writes a file: to a temporary name beside it, renamed over it.

A reader (a sibling run, the report, ``predict``) never sees half a file, and a crash leaves
the previous version. The file gets the mode the process's umask gives new files (0644
under the usual 022), not the temporary file's 0600, so that on a shared volume other users
and pods can read trees, reports and predictions.

A write the file system refuses (a full disk, a read-only mount, no permission) raises
``WriteError``: one line naming the file and the OS's reason, "no space left on device"
where that is the reason, whichever library was writing (pyarrow's own errors name neither).
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class WriteError(OSError):
    """A file could not be written; the message names the file and the OS's reason."""


def os_reason(exc: BaseException) -> str:
    """The OS's reason for ``exc`` in a few words: "no space left on device" for a full disk
    (also when a library reports it only in its message, as pyarrow and SQLite do)."""
    text = str(exc)
    if getattr(exc, "errno", None) == errno.ENOSPC or any(
        marker in text.lower() for marker in ("no space left", "disk is full")
    ):
        return "no space left on device"
    return getattr(exc, "strerror", None) or text


def write_error(exc: OSError, target: Path | str) -> WriteError:
    """``exc`` as a ``WriteError`` naming ``target``."""
    if isinstance(exc, WriteError):
        return exc
    error = WriteError(f"Could not write {target}: {os_reason(exc)}")
    error.errno = exc.errno  # (no filename: OSError would then print its own message)
    return error


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
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.name}.", suffix=f".tmp{target.suffix}"
        )
        os.close(handle)
    except OSError as exc:
        raise write_error(exc, target) from exc
    try:
        yield Path(temporary)
        os.chmod(temporary, _new_file_mode())
        os.replace(temporary, target)
    except OSError as exc:
        raise write_error(exc, target) from exc
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
