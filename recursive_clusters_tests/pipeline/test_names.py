"""Cluster names in the published tree: automatic, chosen in names.yaml, kept across trees."""

import json

import yaml
from dagster import DagsterInstance

from recursive_clusters.report import write_report
from recursive_clusters.trees.names import rename_tree
from recursive_clusters_tests.conftest import planted_table
from recursive_clusters_tests.pipeline.ticks import first_tree, grow_until_quiet, launch, setup


def test_names_reach_the_assignments_and_a_chosen_name_follows_its_leaf(dagster_home, tmp_path):
    defs, storage = setup(dagster_home, tmp_path, planted_table())
    store = storage.store()
    with DagsterInstance.get() as instance:
        first, cursor = first_tree(defs, instance)
        assignments = store.read_table(first, "assignments")
        names = json.loads(store.read_text(first, "names.json"))
        leaf = assignments["leaf_path"].value_counts().index[0]
        assert (assignments["leaf_name"] == names[leaf]["name"]).any()
        assert names[leaf]["source"] == "auto" and " · " in names[leaf]["name"]

        names_file = store.names_file
        names_file.write_text(yaml.safe_dump({"tree": first, "names": {leaf: "<b>Night owls"}}))
        rename_tree(store, first)  # what `recursive-clusters report` does first
        named = store.read_table(first, "assignments")
        assert set(named.loc[named["leaf_path"] == leaf, "leaf_name"]) == {"<b>Night owls"}
        report = write_report(store, first).read_text(encoding="utf-8")
        assert "&lt;b&gt;Night owls" in report and "<b>Night owls" not in report

        second = launch(defs, instance)  # the same data and seed: every leaf is kept
        grow_until_quiet(defs, instance, cursor)
        assert store.current() == second
        renamed = store.read_table(second, "assignments")
        assert set(renamed.loc[renamed["leaf_path"] == leaf, "leaf_name"]) == {"<b>Night owls"}
        assert json.loads(store.read_text(second, "names.json"))[leaf]["source"] == "override"
