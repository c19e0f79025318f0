"""The alarm's rules (infra/prometheus/alerts.yml) are wired into Prometheus and name only
metrics the API exports (promtool is not on the machine: this parses what it would load)."""

import re
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from shared.metrics import StateSnapshot, render

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "infra" / "prometheus"


def _rules() -> list[dict[str, Any]]:
    document = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def _exported() -> set[str]:
    state = StateSnapshot(
        tasks_by_status={"queued": 3, "processing": 1},
        oldest_queued_age_s=400.0,
        queued_too_long=2,
        sources_up={"postgres": True, "rabbitmq": True},
    )
    text = render(state).decode()
    return {family.name for family in text_string_to_metric_families(text)}


def test_every_alert_names_only_metrics_the_api_exports() -> None:
    exported = _exported()
    rules = _rules()
    assert {rule["alert"] for rule in rules} >= {
        "CoursewiseWritesQueuedTooLong",
        "CoursewiseOldestQueuedTaskAge",
    }
    for rule in rules:
        assert set(rule) >= {"alert", "expr", "for", "labels", "annotations"}, rule
        named = set(re.findall(r"\bcoursewise_[a-z_]+", rule["expr"]))
        assert named and named <= exported, (rule["alert"], named - exported)


def test_prometheus_loads_the_rules_and_compose_mounts_them() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    assert "/etc/prometheus/alerts.yml" in config["rule_files"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    volumes = compose["services"]["prometheus"]["volumes"]
    assert "./infra/prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro" in volumes


def test_the_queued_too_long_gauge_carries_the_ledger_count() -> None:
    state = StateSnapshot(tasks_by_status={"queued": 5}, oldest_queued_age_s=1.0, queued_too_long=4)
    samples = {
        sample.name: sample.value
        for family in text_string_to_metric_families(render(state).decode())
        for sample in family.samples
    }
    assert samples["coursewise_tasks_queued_too_long"] == 4
