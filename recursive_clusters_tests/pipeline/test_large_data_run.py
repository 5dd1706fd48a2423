"""A long run says how far it is, on the console and in the run's log; a tree too big for
the memory is refused before it starts, and the current tree stays."""

import yaml
from dagster import DagsterInstance

from recursive_clusters.cli import main
from recursive_clusters.io.store import TreeStore
from recursive_clusters_tests.conftest import TEST_SETTINGS, planted_table


def _config(tmp_path, name: str, **extra) -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump({**TEST_SETTINGS, **extra}))
    return str(path)


def test_placement_progress_then_a_too_big_tree_refused_keeping_the_current_one(
    dagster_home, tmp_path, capsys
):
    data = tmp_path / "planted.parquet"
    planted_table(per_sub=220).to_parquet(data)  # 1,320 rows: 320 placed past a 1,000 sample
    sampled = _config(tmp_path, "sampled.yaml", embedding={"fit_sample_size": 1000})
    assert main(["run", "--input", str(data), "--config", sampled]) == 0
    out = capsys.readouterr().out
    assert "level 1: root: UMAP fitted on 1,000 of 1,320 rows, the rest placed by transform" in out
    assert "level 1: rows placed on their node's layout: 320 of 320 rows (100%)" in out
    with DagsterInstance.get() as instance:
        logged = [
            entry.user_message
            for run in instance.get_runs()
            for entry in instance.all_logs(run.run_id)
            if entry.dagster_event is None
        ]
    assert any("320 of 320 rows (100%)" in message for message in logged), logged

    store = TreeStore(dagster_home / "recursive_clusters")
    current = store.current()
    too_small = _config(tmp_path, "small.yaml", memory_limit_gb=0.5)
    assert main(["run", "--input", str(data), "--config", too_small]) == 2
    line = [line for line in capsys.readouterr().err.splitlines() if line.strip()][-1]
    assert "1,320 rows x 8 feature columns is estimated to peak at" in line, line
    assert "0.5 GB" in line and "input.feature_columns" in line, line
    assert store.current() == current and store.latest_started() == current
