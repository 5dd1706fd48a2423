"""What a user trips over (issue 26): a full disk, Ctrl-C, odd columns and names, quiet
drops. Each test names what the user saw before and checks what they expect instead."""

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml

from recursive_clusters.cli import main
from recursive_clusters.io.store import NAMES_JSON, REPORT_HTML, TreeStore


def _last_line(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert lines, "nothing was printed"
    return lines[-1]


def _mounted_tmpfs(mount: Path, options: str):
    """A real tmpfs at ``mount`` with mount(8) ``options`` (mounting needs root; skipped, with
    the reason, where it cannot be mounted), unmounted afterwards."""
    mount.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def small_disk(tmp_path):
    """A real 40 MB tmpfs: the disk a tree fills."""
    yield from _mounted_tmpfs(tmp_path / "disk", "size=40m")


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


def test_ctrl_c_during_run_leaves_one_line_a_failed_tree_and_no_running_run(
    grown_tree, tmp_path, planted_csv, settings_file, monkeypatch
):
    """Before: exit 1 after 109 lines and 3 tracebacks, the interrupted tree's manifest
    "building" for good. Now: one line saying which tree is still current, the half tree
    marked failed (interrupted), the run it came in canceled."""
    import signal
    import sys
    import time

    from dagster import DagsterInstance

    home = tmp_path / "dagster_home"
    shutil.copytree(grown_tree, home)  # a home with a current tree
    store = TreeStore(home / "recursive_clusters")
    first = store.require_current()
    # the shared home may also hold a tree that an earlier test's bad input failed: wait for
    # one begun by this run (CI: the interrupt came during the CLI's imports, and this test
    # read that earlier tree's manifest)
    earlier = {None, first, store.latest_started()}
    env = {k: v for k, v in os.environ.items() if k != "RECURSIVE_CLUSTERS_STORAGE"}
    env["DAGSTER_HOME"] = str(home)
    command = [sys.executable, "-m", "recursive_clusters.cli", "run", "--input", str(planted_csv)]
    process = subprocess.Popen(
        [*command, "--config", str(settings_file)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while store.latest_started() in earlier:  # the new tree has begun
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.5)
    time.sleep(2)
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    out, err = process.communicate(timeout=120)
    if process.returncode == 0 and store.current() != first:
        # Measured here: about one try in four, the signal reaches the process while Dagster
        # holds SIGINT in a run, and neither the run nor our wakeup descriptor sees it; the
        # tree then completes as if no Ctrl-C had come. Known gap (README), not a pass.
        pytest.xfail("the interrupt was lost inside a Dagster run; the tree completed")

    lines = [line for line in err.splitlines() if line.strip()]
    assert process.returncode == 130, err
    assert lines[-1] == f"error: interrupted; the current tree is still {first}", err
    # Dagster's log-capture helpers (``watch_orphans``) share the terminal's process group
    # and print their own KeyboardInterrupt (two of them at once, their lines interleaved);
    # nothing else may print a trace: every frame printed is theirs.
    frames = [line for line in lines if line.strip().startswith("File ")]
    assert all("watch_orphans" in frame for frame in frames), err
    assert "Traceback" not in out
    assert store.current() == first
    interrupted = store.latest_started()
    manifest = store.manifest(interrupted)
    assert manifest["status"] == "failed" and "interrupted" in manifest["failure"]
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs()
        # none left running: the run the interrupt came in ends canceled (or failed); an
        # interrupt between two runs leaves none to cancel
        assert runs and not [run for run in runs if not run.is_finished]


def test_list_and_struct_columns_are_skipped_and_listed_with_why(
    dagster_home, tmp_path, settings_file, capsys
):
    """Before: "unexpected TypeError: unhashable type: 'numpy.ndarray'", naming neither file
    nor column, even with --feature-columns leaving the column out."""
    from recursive_clusters_tests.conftest import planted_table

    table = planted_table()
    table["tags"] = [[i, i + 1] for i in range(len(table))]
    table["address"] = [{"zip": i, "city": "x"} for i in range(len(table))]
    path = tmp_path / "nested.parquet"
    table.to_parquet(path)
    assert main(["run", "--input", str(path), "--config", str(settings_file)]) == 0
    out = capsys.readouterr().out
    assert "'tags' (lists or structs, not numbers)" in out
    assert "'address' (lists or structs, not numbers)" in out
    store = TreeStore(dagster_home / "recursive_clusters")
    assert len(store.read_table(store.require_current(), "assignments")) == len(table)


def _prepare(frame, **settings):
    from recursive_clusters.core.data import prepare
    from recursive_clusters.core.settings import InputSettings

    return prepare(frame, InputSettings(**settings))


def test_standardize_auto_scales_two_columns_on_different_scales():
    """Before: with two columns the auto rule's ratios could not pass its thresholds, so a
    column of +-3,000 beside one of 1-9 was "kept as is" and the structure lost."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    two = pd.DataFrame(
        {"a": rng.uniform(-3000, 3000, 300), "b": rng.integers(1, 10, 300).astype(float)}
    )
    prepared = _prepare(two)
    assert prepared.report["standardized"] is True, prepared.report["standardize_reason"]
    assert np.allclose(prepared.matrix.std(axis=0), 1.0)


def test_tiny_values_are_scaled_or_named_as_constant():
    """Before: a column of values near 1e-300 was kept "as is" under auto (it is 0 in the
    float32 the models compute in, so it carried nothing), and with scaling on it
    was refused as "Values too large to standardise"."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.uniform(1, 9, 300), "tiny": rng.uniform(1, 9, 300) * 1e-300})
    for standardize in ("auto", True):
        prepared = _prepare(frame, standardize=standardize)
        assert prepared.report["standardized"] is True
        assert np.allclose(prepared.matrix.std(axis=0), 1.0)
        assert np.isfinite(prepared.matrix.astype(np.float32)).all()
    kept = _prepare(frame, standardize=False)
    assert kept.report["dropped_constant_columns"] == ["tiny"]
    assert list(kept.features.columns) == ["a"]


def test_column_names_differing_only_in_case_are_refused_naming_both():
    """Before: DuckDB's features view renamed F0 to F0_1, so SELECT "F0" FROM features
    silently returned f0's values."""
    import pandas as pd

    from recursive_clusters.core.data import InputError

    frame = pd.DataFrame({"f0": [1.0, 2.0, 3.0], "F0": [3.0, 1.0, 2.0], "g": [1.0, 5.0, 2.0]})
    with pytest.raises(InputError, match=r"differ only in case: 'f0' and 'F0'"):
        _prepare(frame)


def test_a_batch_missing_a_feature_column_is_named():
    """Before: "Feature columns missing from the input table: ['f2']" for a batch."""
    import pandas as pd

    from recursive_clusters.core.data import InputError

    frame = pd.DataFrame({"f0": [1.0, 2.0, 3.0], "f1": [3.0, 1.0, 2.0], "f2": [1.0, 5.0, 2.0]})
    preprocessor = _prepare(frame).preprocessor
    with pytest.raises(InputError, match=r"missing from batch 'b1.csv' of batches.path .*'f2'"):
        preprocessor.transform(
            frame.drop(columns="f2"), "batch 'b1.csv' of batches.path '/data/in'"
        )


def test_an_all_nan_table_is_called_empty_not_constant():
    import numpy as np
    import pandas as pd

    from recursive_clusters.core.data import InputError

    frame = pd.DataFrame({"f0": [np.nan] * 4, "f1": [np.nan] * 4})
    with pytest.raises(InputError, match="All feature columns are empty"):
        _prepare(frame, non_finite="impute")


def test_predict_says_how_many_rows_it_left_out_and_which_tree_scored(
    dagster_home, tmp_path, capsys
):
    """Before: 600 rows in, 40 all-NaN under non_finite: drop, "Scored 560 rows" and no word
    about the 40, nor which tree scored them."""
    import numpy as np

    from recursive_clusters_tests.conftest import TEST_SETTINGS, planted_table

    config = tmp_path / "drop.yaml"
    config.write_text(
        yaml.safe_dump({**TEST_SETTINGS, "input": {**TEST_SETTINGS["input"], "non_finite": "drop"}})
    )
    table = planted_table()
    path = tmp_path / "data.parquet"
    table.to_parquet(path)
    assert main(["run", "--input", str(path), "--config", str(config)]) == 0
    tree_id = TreeStore(dagster_home / "recursive_clusters").require_current()
    new = table.copy()
    new.loc[:39, [f"f{i}" for i in range(8)]] = np.nan
    new_path = tmp_path / "new.parquet"
    new.to_parquet(new_path)
    capsys.readouterr()
    output = tmp_path / "scores.parquet"
    assert main(["predict", "--input", str(new_path), "--output", str(output)]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert f"Scored {len(new) - 40} rows with tree {tree_id}" in line
    assert f"40 of {len(new)} rows left out" in line and "'drop'" in line


@pytest.fixture
def read_only_dir(tmp_path):
    """A real read-only tmpfs: as root, ``chmod`` does not stop a write, a read-only mount
    does."""
    yield from _mounted_tmpfs(tmp_path / "read_only", "ro,size=1m")


def _home_with_a_tree(grown_tree, tmp_path, monkeypatch) -> Path:
    home = tmp_path / "dagster_home"
    shutil.copytree(grown_tree, home)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.delenv("RECURSIVE_CLUSTERS_STORAGE", raising=False)
    monkeypatch.delenv("RECURSIVE_CLUSTERS_CONFIG", raising=False)
    return home


def _refused_in_one_line(command, named, capsys) -> str:
    """``command`` ends in exit 2 and one line naming ``named`` (a path or a column)."""
    capsys.readouterr()
    code = main(command)
    line = _last_line(capsys)
    assert code == 2, line
    assert "unexpected" not in line and str(named) in line, line
    return line


@pytest.mark.parametrize("command", ["report", "export", "run"])
def test_a_read_only_destination_is_named_in_one_line(
    command, read_only_dir, grown_tree, tmp_path, monkeypatch, planted_csv, settings_file, capsys
):
    """A write the user's own paths refuse (a read-only mount) ends in one line naming the
    path and the OS's reason, exit 2, never "unexpected"."""
    _home_with_a_tree(grown_tree, tmp_path, monkeypatch)
    target = read_only_dir / "out"
    argv = {
        "report": ["report", "--output", str(read_only_dir / "report.html")],
        "export": ["export", "--output", str(target)],
        "run": ["run", "--input", str(planted_csv), "--config", str(settings_file)],
    }[command]
    if command == "run":
        monkeypatch.setenv("RECURSIVE_CLUSTERS_STORAGE", str(target))
    line = _refused_in_one_line(argv, read_only_dir, capsys)
    assert "read-only file system" in line.lower(), line


@pytest.mark.parametrize("command", ["report", "export", "predict", "run"])
def test_a_destination_under_a_regular_file_is_named_in_one_line(
    command, grown_tree, tmp_path, monkeypatch, planted_csv, settings_file, capsys
):
    """A path under a regular file (ENOTDIR): one line naming the path, never "unexpected"."""
    _home_with_a_tree(grown_tree, tmp_path, monkeypatch)
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    argv = {
        "report": ["report", "--output", str(blocker / "report.html")],
        "export": ["export", "--output", str(blocker / "out")],
        "predict": ["predict", "--input", str(planted_csv), "--output", str(blocker / "s.pq")],
        "run": ["run", "--input", str(planted_csv), "--config", str(settings_file)],
    }[command]
    if command == "run":
        monkeypatch.setenv("RECURSIVE_CLUSTERS_STORAGE", str(blocker / "storage"))
    _refused_in_one_line(argv, blocker, capsys)


def _rename(home: Path, names: dict, tree: str | None = None, capsys=None):
    """Write ``names.yaml`` for the current tree (or ``tree``), run ``report``: its stderr."""
    store = TreeStore(home / "recursive_clusters")
    tree_id = store.require_current()
    (store.base_dir / "names.yaml").write_text(
        yaml.safe_dump({"tree": tree or tree_id, "names": names})
    )
    capsys.readouterr()
    assert main(["report"]) == 0
    return store, tree_id, capsys.readouterr().err


def test_names_yaml_for_a_tree_id_with_a_wrong_digit_is_warned_about(
    grown_tree, tmp_path, monkeypatch, capsys
):
    """Before: a tree id with one wrong digit applied nothing, silently (exit 0)."""
    home = _home_with_a_tree(grown_tree, tmp_path, monkeypatch)
    tree_id = TreeStore(home / "recursive_clusters").require_current()
    wrong = tree_id[:-1] + ("0" if tree_id[-1] != "0" else "1")
    _, _, err = _rename(home, {"root.1": "Night owls"}, tree=wrong, capsys=capsys)
    assert "warning: " in err and repr(wrong) in err and "names.yaml" in err, err
    assert f"tree: {tree_id}" in err, err


def test_names_yaml_for_a_path_the_tree_lacks_is_warned_about(
    grown_tree, tmp_path, monkeypatch, capsys
):
    """Before: ``root.9.9: Ghosts`` applied nothing, silently (exit 0)."""
    home = _home_with_a_tree(grown_tree, tmp_path, monkeypatch)
    store, tree_id, err = _rename(
        home, {"root.9.9": "Ghosts", "root.1": "Night owls"}, capsys=capsys
    )
    assert "warning: " in err and "'root.9.9'" in err and tree_id in err, err
    assert "'root.1'" not in err, err
    assert json.loads(store.read_text(tree_id, NAMES_JSON))["root.1"]["name"] == "Night owls"


def test_an_empty_name_in_names_yaml_keeps_the_automatic_name(
    grown_tree, tmp_path, monkeypatch, capsys
):
    """Before: ``root.1:`` (no value) named the leaf "None" in names.json, the report's
    legend, assignments.parquet and DuckDB."""
    import duckdb

    from recursive_clusters.trees.names import user_names

    home = _home_with_a_tree(grown_tree, tmp_path, monkeypatch)
    store = TreeStore(home / "recursive_clusters")
    tree_id = store.require_current()
    automatic = json.loads(store.read_text(tree_id, NAMES_JSON))
    leaf = next(path for path in automatic if path.count(".") == 1 and "noise" not in path)
    _, _, err = _rename(home, {leaf: None, "root": "  "}, capsys=capsys)
    names = json.loads(store.read_text(tree_id, NAMES_JSON))
    assert names[leaf] == automatic[leaf] and names["root"] == automatic["root"]
    assignments = store.read_table(tree_id, "assignments")
    assert "None" not in set(assignments["leaf_name"])
    with duckdb.connect(str(store.catalog_path), read_only=True) as catalog:
        rows = catalog.execute("SELECT DISTINCT leaf_name FROM assignments").fetchall()
    shown = {row[0] for row in rows}
    assert "None" not in shown
    assert leaf not in user_names(store, tree_id)  # the report's legend: names.json under these


@pytest.mark.parametrize(
    "name", ["leaf_path", "level_1", "level_7", "is_noise", "confidence", "leaf_name", "path"]
)
def test_an_id_column_named_like_an_output_column_is_refused_at_load(name):
    """Before: the tree was grown, then its publishing stopped with pandas' own "cannot insert
    leaf_path, already exists"."""
    import pandas as pd

    from recursive_clusters.core.data import InputError

    frame = pd.DataFrame({name: ["a", "b", "c"], "f0": [1.0, 2.0, 3.0], "f1": [3.0, 1.0, 2.0]})
    with pytest.raises(InputError, match=rf"id column '{name}' .*reserved: leaf_path.*--id-column"):
        _prepare(frame, id_column=name)


def test_run_with_an_id_column_named_leaf_path_ends_in_one_line_naming_it(
    dagster_home, tmp_path, settings_file, capsys
):
    from recursive_clusters_tests.conftest import planted_table

    path = tmp_path / "ids.parquet"
    planted_table().rename(columns={"user_id": "leaf_path"}).to_parquet(path)
    command = ["run", "--input", str(path), "--config", str(settings_file)]
    line = _refused_in_one_line([*command, "--id-column", "leaf_path"], "'leaf_path'", capsys)
    assert "cannot insert" not in line and "reserved" in line and "--id-column" in line, line
    assert TreeStore(dagster_home / "recursive_clusters").current() is None


def test_an_id_column_named_row_is_kept_under_its_name(
    dagster_home, tmp_path, settings_file, capsys
):
    """Before: "cannot insert row, already exists" (the assignments' internal row number)."""
    from recursive_clusters_tests.conftest import planted_table

    table = planted_table().rename(columns={"user_id": "row"})
    path = tmp_path / "ids.parquet"
    table.to_parquet(path)
    command = ["run", "--input", str(path), "--config", str(settings_file), "--id-column", "row"]
    assert main(command) == 0
    store = TreeStore(dagster_home / "recursive_clusters")
    assignments = store.read_table(store.require_current(), "assignments")
    assert list(assignments.columns).count("row") == 1
    assert sorted(assignments["row"]) == sorted(table["row"])
