"""Settings the overlays give the processes: who is trusted to name the client in
X-Forwarded-For (rate limits per citizen), and production's JSON logs and OTLP export."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from devstack import k8s
from devstack.k8s_keys import key_readers
from tests.deploy.support import build, of_kind

COLLECTOR = "http://otel-collector.monitoring:4318"


def settings(resources: tuple[dict[str, Any], ...]) -> dict[str, dict[str, str]]:
    """Deployment name -> the variables its ConfigMaps give it."""
    configs = {c["metadata"]["name"]: c["data"] for c in of_kind(resources, "ConfigMap")}
    result = {}
    for deployment in of_kind(resources, "Deployment"):
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        data: dict[str, str] = {}
        for source in container.get("envFrom", []):
            data |= configs[source["configMapRef"]["name"]]
        result[deployment["metadata"]["name"]] = data
    return result


def ingress_peers(
    resources: tuple[dict[str, Any], ...], name: str, port: int
) -> list[dict[str, Any]]:
    """Who the workload's own policy lets reach `port` (its HTTP port: X-Forwarded-For is
    read there only; intake's inbound SMTP has a rule of its own, tests/deploy/
    test_k8s_inbound_mail.py)."""
    (policy,) = [p for p in of_kind(resources, "NetworkPolicy") if p["metadata"]["name"] == name]
    return [
        peer
        for rule in policy["spec"]["ingress"]
        if {"protocol": "TCP", "port": port} in rule["ports"]
        for peer in rule["from"]
    ]


def test_intake_and_the_web_trust_the_pod_network_their_callers_come_from(overlay):
    found = settings(overlay)
    pods = ipaddress.ip_network(k8s.POD_CIDR)
    for name in ("intake", "web"):
        trusted = [ipaddress.ip_network(n) for n in json.loads(found[name]["TRUSTED_PROXIES"])]
        assert trusted == [pods], name

    # Only the callers meant to be trusted reach them: the Ingress controller, and the web;
    # at intake also our own services reading the citizens' data keys from its key service
    # (crypto-shredding: each authenticated by its own token, none a proxy for anyone).
    def pod(name: str) -> dict[str, Any]:
        return {"podSelector": {"matchLabels": {"app.kubernetes.io/name": name}}}

    controller = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}
    }
    readers = [pod(name) for name in key_readers(k8s.deployed_agencies())]
    assert ingress_peers(overlay, "intake", 8000) == [pod("web"), *readers, controller]
    assert {"assignment", "notification", "adapter-caf"} <= set(
        key_readers(k8s.deployed_agencies())
    )
    assert ingress_peers(overlay, "web", 8003) == [controller]
    others = set(found) - {"intake", "web"}
    assert all("TRUSTED_PROXIES" not in found[name] for name in others)


def test_production_logs_json_and_exports_traces_to_the_collector(production):
    for name, data in settings(production).items():
        assert data["LOG_FORMAT"] == "json", name
        assert data["OTEL_EXPORTER_OTLP_ENDPOINT"] == COLLECTOR, name
        # A file's first span draws; every later span follows it (a traced file is whole).
        assert data["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio", name
        assert data["OTEL_TRACES_SAMPLER_ARG"] == "0.1", name


def test_dev_keeps_text_logs():
    for name, data in settings(build("overlays/dev")).items():
        assert data.get("LOG_FORMAT", "text") == "text", name
