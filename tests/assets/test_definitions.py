"""The code location reads well in the UI: every asset has a domain group, a description, an owner, kinds
and a code version; sensors and schedules are on by default."""

from dagster import DefaultScheduleStatus, DefaultSensorStatus

from assets.definitions import defs

GROUPS = {
    "raw_transactions": "ingestion",
    "processed_transactions": "processing",
    "fraud_model": "modelling",
    "fraud_flags": "scoring",
    "fraud_report": "reporting",
    "customer_alerts": "reporting",
}


def test_every_asset_is_described_grouped_owned_and_versioned():
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        name = key.to_user_string()
        assert node.group_name == GROUPS[name]
        assert node.description and len(node.description) > 40, name
        assert node.owners, name
        assert any(tag.startswith("dagster/kind/") for tag in node.tags), name
        assert node.code_version, name


def test_automation_is_on_by_default():
    assert defs.sensors and defs.schedules
    assert all(s.default_status == DefaultSensorStatus.RUNNING for s in defs.sensors)
    assert all(s.default_status == DefaultScheduleStatus.RUNNING for s in defs.schedules)
