"""The code location loads with its lineage, jobs, sensors, and a stopped schedule."""

from pathlib import Path

import yaml
from dagster import AssetKey, DefaultScheduleStatus

from recursive_clusters.core.settings import parse_settings
from recursive_clusters.defs.definitions import build_definitions, defs

REPO = Path(__file__).resolve().parents[2]


def test_level_lineage_runs_from_source_to_tree():
    graph = defs.resolve_asset_graph()
    assert graph.get(AssetKey("features")).parent_keys == {AssetKey("source_table")}
    assert AssetKey("clusters_l1") in graph.get(AssetKey("embedding_l2")).parent_keys
    assert AssetKey("clusters_l2") in graph.get(AssetKey("embedding_l3")).parent_keys
    assert graph.get(AssetKey("shap_l3")).parent_keys == {AssetKey("classifiers_l3")}
    tree_parents = graph.get(AssetKey("cluster_tree")).parent_keys
    assert {AssetKey(f"clusters_l{level}") for level in (1, 2, 3)} <= tree_parents


def test_depth_sets_the_number_of_levels():
    shallow = build_definitions(parse_settings({"recursion": {"max_depth": 1}}))
    keys = {key.to_user_string() for key in shallow.resolve_asset_graph().get_all_asset_keys()}
    assert "clusters_l1" in keys and "clusters_l2" not in keys


def test_the_schedule_is_always_offered_stopped_with_its_cron_and_timezone():
    """Before, without ``schedule_cron`` no schedule was defined: a user who opened the UI to
    schedule re-clustering found nothing to switch on."""
    schedule = defs.resolve_schedule_def("recluster_schedule")
    assert schedule.default_status == DefaultScheduleStatus.STOPPED
    assert schedule.cron_schedule == "0 3 * * 0"  # Sunday 03:00
    assert schedule.execution_timezone == "UTC"
    assert schedule.job_name == "grow_tree"
    assert "0 3 * * 0" in schedule.description and "UTC" in schedule.description
    assert "schedule_cron" in schedule.description  # says where its cron comes from
    scheduled = build_definitions(parse_settings({"schedule_cron": "0 2 * * *"}))
    schedule = scheduled.resolve_schedule_def("recluster_schedule")
    assert schedule.cron_schedule == "0 2 * * *"
    assert schedule.default_status == DefaultScheduleStatus.STOPPED


def test_the_shipped_dagster_yaml_turns_off_the_first_visit_dialog():
    config = yaml.safe_load((REPO / "dagster.yaml").read_text())
    assert config["nux"] == {"enabled": False}


def test_repo_dagster_yaml_is_the_packaged_instance_template():
    packaged = REPO / "recursive_clusters" / "defs" / "dagster_instance.yaml"
    assert (REPO / "dagster.yaml").read_text() == packaged.read_text()


def test_readme_documents_every_setting():
    from recursive_clusters.core.settings import settings_reference

    readme = (REPO / "docs" / "parameters.md").read_text()
    missing = [key for key, _, _ in settings_reference() if f"`{key}`" not in readme]
    assert not missing


def test_settings_template_parses_to_the_defaults():
    import yaml

    from recursive_clusters.core.settings import Settings, settings_template

    assert parse_settings(yaml.safe_load(settings_template())) == Settings()
