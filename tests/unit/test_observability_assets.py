"""The dashboard and the alerts speak of metrics the code really exposes, and their PromQL
holds together (balanced brackets, known functions, known metric names); the Kubernetes
component's copies of the dashboard and collector config are the raw files."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from adapter_sdk.metrics import AdapterMetrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy/observability/grafana/guichet-flow.json"
COLLECTOR = ROOT / "deploy/observability/otel-collector.yaml"
COMPONENT = ROOT / "deploy/k8s/components/observability"

FUNCTIONS = {
    "sum",
    "max",
    "min",
    "avg",
    "count",
    "topk",
    "bottomk",
    "quantile",
    "stddev",
    "group",
    "rate",
    "irate",
    "increase",
    "delta",
    "idelta",
    "deriv",
    "histogram_quantile",
    "abs",
    "clamp_min",
    "clamp_max",
    "max_over_time",
    "min_over_time",
    "avg_over_time",
    "vector",
    "absent",
    "absent_over_time",
    "sum_over_time",
    "predict_linear",
    "label_replace",
}
KEYWORDS = {
    "by",
    "without",
    "and",
    "or",
    "unless",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
}
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
}


@pytest.fixture(scope="module")
def exposed(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    return exposed_series(tmp_path_factory.mktemp("exposed"))


def exposed_series(tmp_path: Path) -> set[str]:
    """Every series name the services and adapters expose: the runtime's generic metrics
    and assignment's gauges (from a real assignment app's registry), the adapters' own."""
    from assignment.bootstrap import bootstrap
    from assignment.settings import AssignmentSettings

    settings = AssignmentSettings(database_url=f"sqlite+aiosqlite:///{tmp_path}/a.db")
    app = bootstrap(settings)
    registries: list[CollectorRegistry] = [
        app.state.runtime.metrics.registry,
        AdapterMetrics().registry,
    ]
    names = set()
    for registry in registries:
        for family in registry.collect():
            for suffix in SUFFIXES.get(family.type, ("",)):
                names.add(family.name + suffix)
    return names


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load((COMPONENT / "prometheus-rule.yaml").read_text(encoding="utf-8"))
    return [r for g in doc["spec"]["groups"] for r in g["rules"]]


def balanced(expr: str) -> bool:
    pairs, stack = {")": "(", "]": "[", "}": "{"}, []
    text = re.sub(r'"[^"]*"', '""', expr)
    for ch in text:
        if ch in "([{":
            stack.append(ch)
        elif ch in pairs and (not stack or stack.pop() != pairs[ch]):
            return False
    return not stack and text.count('"') % 2 == 0


def metric_names(expr: str) -> tuple[set[str], set[str]]:
    """(metric names, unknown words) of a PromQL expression: strings, label matchers,
    grouping clauses and durations are set aside; what remains is functions, keywords,
    numbers and metric names."""
    text = re.sub(r'"[^"]*"', "", expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    metrics, unknown = set(), set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        word = match.group()
        called = text[match.end() :].lstrip().startswith("(")
        if word in KEYWORDS:
            continue
        if called:
            if word not in FUNCTIONS:
                unknown.add(word)
        else:
            metrics.add(word)
    return metrics, unknown


def all_expressions() -> list[str]:
    return dashboard_expressions() + [r["expr"] for r in rules()]


@pytest.mark.parametrize("expr", all_expressions())
def test_promql_holds_together_and_names_exposed_metrics(expr: str, exposed: set[str]):
    assert balanced(expr), expr
    metrics, unknown = metric_names(expr)
    assert not unknown, f"unknown functions {unknown} in {expr}"
    assert metrics, f"no metric in {expr}"
    missing = metrics - exposed
    assert not missing, f"{expr} names metrics the code does not expose: {missing}"


def test_dashboard_covers_the_flow():
    exprs = " ".join(dashboard_expressions())
    for name in (
        "guichet_events_published_total",
        "guichet_consumer_lag",
        "guichet_handler_duration_seconds_bucket",
        "guichet_outbox_backlog",
        "guichet_dead_letters_total",
        "guichet_notifications_total",
        "guichet_files_waiting_referent",
        "guichet_legal_deadlines_at_risk",
    ):
        assert name in exprs, name


def test_every_alert_has_a_severity_a_summary_and_a_documented_runbook():
    operations = (ROOT / "docs/operations.md").read_text(encoding="utf-8")
    headings = {h.lower() for h in re.findall(r"^#### (\w+)$", operations, re.MULTILINE)}
    names = [r["alert"] for r in rules()]
    assert len(names) == len(set(names))
    assert {
        "GuichetConsumerLagGrowing",
        "GuichetDeadLetters",
        "GuichetOutboxBacklog",
        "GuichetLegalDeadlineBreached",
        "GuichetFilesWaitingForReferent",
    } <= set(names)
    for rule in rules():
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}
        assert rule["annotations"]["summary"]
        anchor = rule["annotations"]["runbook"].split("#")[1]
        assert anchor in headings, f"{rule['alert']}: no section #{anchor} in docs/operations.md"


def test_component_copy_of_the_dashboard_is_the_raw_file():
    copy = COMPONENT / "files" / "guichet-flow.json"
    assert copy.read_bytes() == DASHBOARD.read_bytes()


def test_component_is_a_kustomize_component_listing_existing_files():
    kustomization = yaml.safe_load((COMPONENT / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Component"
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1alpha1"
    for resource in kustomization["resources"]:
        assert (COMPONENT / resource).is_file(), resource
    for generator in kustomization["configMapGenerator"]:
        for entry in generator["files"]:
            assert (COMPONENT / entry.split("=")[-1]).is_file(), entry


def test_collector_receives_otlp_and_exports_traces():
    config = yaml.safe_load(COLLECTOR.read_text())
    assert config["receivers"]["otlp"]["protocols"]["http"]["endpoint"].endswith(":4318")
    pipeline = config["service"]["pipelines"]["traces"]
    assert pipeline["receivers"] == ["otlp"]
    assert set(pipeline["processors"]) <= set(config["processors"])
    assert set(pipeline["exporters"]) <= set(config["exporters"])
    assert pipeline["processors"][0] == "memory_limiter"  # first, as the collector advises
    assert config["service"]["extensions"] == ["health_check"]
