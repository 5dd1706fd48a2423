"""What a user trips over (issue 26): a full disk, Ctrl-C, odd columns and names, quiet
drops. Each test names what the user saw before and checks what they expect instead."""

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from recursive_clusters.cli import main
from recursive_clusters.io.store import REPORT_HTML, TreeStore


def _last_line(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert lines, "nothing was printed"
    return lines[-1]


@pytest.fixture
def small_disk(tmp_path):
    """A real 40 MB tmpfs (mounting needs root): the disk a tree fills."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root and mount(8)")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _bytes_on_disk(paths) -> int:
    return sum(-(-p.stat().st_size // 4096) * 4096 for p in paths if p.is_file())


def _fill(disk: Path, leave: int) -> None:
    """Write a ballast file so that ``leave`` bytes stay free on ``disk``."""
    free = shutil.disk_usage(disk).free
    with (disk / f"ballast-{uuid.uuid4().hex}").open("wb") as ballast:
        ballast.truncate(0)
        chunk = b"\0" * 2**20
        remaining = max(0, free - leave)
        while remaining > 0:
            remaining -= ballast.write(chunk[: min(len(chunk), remaining)])


@pytest.mark.parametrize("room", ["all_but_half_the_report", "300_kb"])
def test_a_full_disk_never_publishes_a_broken_tree(
    room, small_disk, tmp_path, monkeypatch, planted_csv, settings_file, capsys
):
    """Before: with ~2.5 MB left, ``run`` ended "unexpected OSError: [Errno 28] No space left
    on device" (no path) and the new tree was current without its report.html; with less,
    SQLite's "database or disk is full" and its SQL. Now: one line naming the path and "no
    space left", the new tree marked failed, the previous tree current with all its files."""
    home = small_disk / "dagster_home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.delenv("RECURSIVE_CLUSTERS_STORAGE", raising=False)
    monkeypatch.delenv("RECURSIVE_CLUSTERS_CONFIG", raising=False)
    command = ["run", "--input", str(planted_csv), "--config", str(settings_file)]
    assert main(command) == 0
    store = TreeStore(home / "recursive_clusters")
    first = store.require_current()
    files = [p for p in store.tree_dir(first).rglob("*") if p.is_file()]
    report = store.tree_dir(first) / REPORT_HTML
    if room == "300_kb":
        leave = 300 * 1024
    else:  # room for every file of the tree but half its report
        leave = _bytes_on_disk(f for f in files if f != report) + _bytes_on_disk([report]) // 2
    _fill(small_disk, leave)
    capsys.readouterr()

    code = main(command)

    line = _last_line(capsys)
    assert code == 2, line
    assert "no space left on device" in line and str(small_disk) in line, line
    assert "unexpected" not in line and "INSERT" not in line and "SELECT" not in line
    assert store.current() == first
    assert all(p.is_file() for p in files)
    for tree in (home / "recursive_clusters" / "trees").iterdir():
        if tree.name != first and (tree / "manifest.json").is_file():
            assert store.status(tree.name) != "complete"
