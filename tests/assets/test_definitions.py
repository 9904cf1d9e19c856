"""The code location reads well in the UI: every asset has a domain group, a description, an owner, kinds
and a code version; descriptions render as written; sensors and schedules are on by default."""

import re

from dagster import DefaultScheduleStatus, DefaultSensorStatus

from assets.definitions import defs
from assets.resources import FraudPlatform

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


def _descriptions() -> dict[str, str]:
    graph = defs.resolve_asset_graph()
    found = {key.to_user_string(): graph.get(key).description for key in graph.get_all_asset_keys()}
    found |= {key.name: graph.get_check_spec(key).description for key in graph.asset_check_keys}
    found |= {d.name: d.description for d in [*defs.jobs, *defs.sensors, *defs.schedules]}
    found |= {f"fraud.{n}": f.description for n, f in FraudPlatform.model_fields.items()}
    return {name: text or "" for name, text in found.items()}


def test_descriptions_render_as_written():
    # the UI renders descriptions as Markdown: outside `code`, <timestamp> would be swallowed as an HTML tag
    for name, text in _descriptions().items():
        prose = re.sub(r"`[^`]*`", "", text)
        assert not re.search(r"<[A-Za-z/]", prose), (name, text)
    assert "`reports/<timestamp>/`" in _descriptions()["fraud_report"]
