"""Nothing silent, nothing lost: ids round-trip, inputs are never overwritten, options are
never ignored, and every error is one line naming the file, column, row or setting, last."""

import os

import pandas as pd
import pytest

from recursive_clusters.cli import main
from recursive_clusters.core.data import InputError, prepare
from recursive_clusters.core.settings import InputSettings
from recursive_clusters.io.store import TreeStore
from recursive_clusters.io.tables import load_table
from recursive_clusters_tests.conftest import planted_table


def _last_line(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert lines, "nothing was printed"
    return lines[-1]


def test_csv_ids_with_leading_zeros_round_trip_as_written(tmp_path):
    path = tmp_path / "ids.csv"
    path.write_text("user_id,f0\n000123,1.5\n0042,2.5\n7,3.5\n")
    ids = load_table(InputSettings(path=str(path), id_column="user_id"))["user_id"]
    assert ids.tolist() == ["000123", "0042", "7"]
    path.write_text("user_id,f0\n123,1.5\n42,2.5\n")  # canonical integers stay integers
    ids = load_table(InputSettings(path=str(path), id_column="user_id"))["user_id"]
    assert ids.tolist() == [123, 42] and ids.dtype == "int64"


def test_assignments_and_predictions_keep_the_users_ids(
    dagster_home, tmp_path, settings_file, capsys
):
    table = planted_table()
    table["user_id"] = [f"{i:06d}" for i in range(len(table))]  # 000000, 000001, ...
    path = tmp_path / "zeros.csv"
    table.to_csv(path, index=False)
    assert main(["run", "--input", str(path), "--config", str(settings_file)]) == 0
    store = TreeStore(dagster_home / "recursive_clusters")
    assignments = store.read_table(store.require_current(), "assignments")
    assert sorted(assignments["user_id"]) == sorted(table["user_id"])

    output = tmp_path / "scores.parquet"
    assert main(["predict", "--input", str(path), "--output", str(output)]) == 0
    assert sorted(pd.read_parquet(output)["user_id"]) == sorted(table["user_id"])

    before = path.read_bytes()
    assert main(["predict", "--input", str(path), "--output", str(path)]) == 2
    assert "is the input file" in _last_line(capsys)
    assert path.read_bytes() == before  # the user's data is untouched

    without_ids = tmp_path / "no_ids.csv"
    table.drop(columns="user_id").to_csv(without_ids, index=False)
    assert main(["predict", "--input", str(without_ids), "--output", str(output)]) == 2
    assert "no id column 'user_id'" in _last_line(capsys)

    for bad_output, message in [
        (tmp_path, "is a directory"),
        (tmp_path / "missing" / "scores.parquet", "does not exist"),
    ]:
        assert main(["predict", "--input", str(path), "--output", str(bad_output)]) == 2
        assert message in _last_line(capsys)
    assert main(["export", "--output", str(path)]) == 2
    assert "is a file" in _last_line(capsys)


def test_max_depth_zero_is_refused_like_the_same_value_in_a_file(
    dagster_home, tmp_path, settings_file, capsys
):
    path = tmp_path / "data.parquet"
    planted_table().to_parquet(path)
    code = main(["run", "--input", str(path), "--config", str(settings_file), "--max-depth", "0"])
    assert code == 2
    assert "max_depth" in _last_line(capsys)
    assert TreeStore(dagster_home / "recursive_clusters").current() is None


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("settings_not_utf8", "not UTF-8"),
        ("dagster_home_is_a_file", "is a file"),
        ("storage_is_a_file", "RECURSIVE_CLUSTERS_STORAGE"),
    ],
)
def test_environment_errors_are_one_line(
    setup, message, dagster_home, tmp_path, settings_file, capsys, monkeypatch
):
    path = tmp_path / "data.parquet"
    planted_table().to_parquet(path)
    config = settings_file
    if setup == "settings_not_utf8":
        config = tmp_path / "latin1.yaml"
        config.write_bytes("recursion:\n  max_depth: 2 # tiefe \xfc\n".encode("latin-1"))
    elif setup == "storage_is_a_file":
        storage = tmp_path / "storage_file"
        storage.write_text("not a directory")
        monkeypatch.setenv("RECURSIVE_CLUSTERS_STORAGE", str(storage))
    else:
        dagster_home.parent.mkdir(parents=True, exist_ok=True)
        dagster_home.write_text("not a directory")
    assert main(["run", "--input", str(path), "--config", str(config)]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert message in lines[-1] and lines[-1].startswith("error: ")
    assert "Traceback" not in err
    assert lines[-2].startswith("details: ") and os.path.isfile(lines[-2][len("details: ") :])


def test_a_value_beyond_float32_names_its_column_and_row():
    frame = planted_table()
    frame.loc[17, "f3"] = 1e300
    with pytest.raises(InputError, match=r"'f3' holds 1e\+300 at row 17,"):
        prepare(frame, InputSettings(id_column="user_id", profile_columns=["segment", "true_leaf"]))


def test_a_url_whose_filesystem_package_is_missing_names_it():
    """An optional filesystem package (here adlfs, for Azure) is missing: one clear error."""
    with pytest.raises(InputError, match=r"'abfs://container/x.csv'.*adlfs"):
        load_table(InputSettings(path="abfs://container/x.csv"))
