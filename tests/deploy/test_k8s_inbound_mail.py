"""Replies by email on the cluster (docs/operations.md, "Replies by email"; devstack.k8s_mail):
intake listens for the citizens' replies on the port its container exposes, the Service
`intake-smtp` takes the mail relay's connections to it, only the relay's addresses reach it
and only on that port, and intake and notification read one Secret for REPLY_ADDRESS_KEY and
one ConfigMap for REPLY_DOMAIN, so an address notification signs is one intake accepts.

What the processes make of their manifests is asked of the code (their settings, intake's
`inbound_listener`, notification's `reply_to_of`), as in tests/deploy/test_k8s_secrets.py."""

from __future__ import annotations

from typing import Any
from unittest.mock import MagicMock

from devstack import k8s_mail
from guichet_runtime.reply_address import file_of
from tests.deploy.support import environments, of_kind, settings_from

KEY = "la-meme-cle-pour-les-deux-services"
#: Who may deliver mail to intake: the relay in front, the MX of REPLY_DOMAIN (a placeholder).
RELAY = {"ipBlock": {"cidr": k8s_mail.MAIL_RELAY_CIDR}}


def named(resources: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    (found,) = [r for r in of_kind(resources, kind) if r["metadata"]["name"] == name]
    return found


def intake_container(resources: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    (container,) = named(resources, "Deployment", "intake")["spec"]["template"]["spec"][
        "containers"
    ]
    return container


def deployed_settings(resources, name: str, monkeypatch, key: str = KEY) -> Any:
    """The process's settings as its manifest makes them, each Secret holding `key`."""
    plain, secrets = environments(resources)[name]
    return settings_from(name, plain | dict.fromkeys(secrets, key), monkeypatch)


def test_intake_listens_for_replies_on_the_port_its_container_exposes(overlay, monkeypatch):
    container = intake_container(overlay)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": 8000, "smtp": k8s_mail.INBOUND_SMTP_PORT}
    assert k8s_mail.INBOUND_SMTP_PORT >= 1024  # non-root, no capability: no port under 1024
    settings = deployed_settings(overlay, "intake", monkeypatch)
    assert settings.inbound_smtp_port == ports["smtp"]
    assert settings.inbound_smtp_host == "0.0.0.0"  # the pod's addresses, not its loopback
    # The listener starts with the service (intake.bootstrap), bound before it is ready.
    from intake.bootstrap import inbound_listener

    runtime = MagicMock(startup=[], workers=[], shutdown=[])
    inbound_listener(runtime, settings)
    assert len(runtime.startup) == 1
    # The probes stay on HTTP: the listener is part of the process they watch.
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] == "http", probe


def test_the_mail_relay_delivers_to_the_intake_smtp_service(overlay):
    service = named(overlay, "Service", k8s_mail.SERVICE)["spec"]
    assert service["type"] == "LoadBalancer"
    assert service["selector"] == {"app.kubernetes.io/name": "intake"}
    assert service["ports"] == [
        {"name": "smtp", "port": 25, "targetPort": "smtp", "protocol": "TCP"}
    ]
    # The relay's address reaches the pod (no SNAT to a node's), so the policy can admit it.
    assert service["externalTrafficPolicy"] == "Local"
    assert service["loadBalancerSourceRanges"] == [k8s_mail.MAIL_RELAY_CIDR]
    # intake's HTTP stays inside the cluster, and no Ingress (HTTP) leads to the SMTP Service.
    http = named(overlay, "Service", "intake")["spec"]
    assert "type" not in http and [p["port"] for p in http["ports"]] == [8000]
    backends = {
        path["backend"]["service"]["name"]
        for ingress in of_kind(overlay, "Ingress")
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    }
    assert k8s_mail.SERVICE not in backends


def test_only_the_relay_reaches_intake_from_outside_and_only_on_the_smtp_port(overlay):
    smtp = {"protocol": "TCP", "port": k8s_mail.INBOUND_SMTP_PORT}
    rules = named(overlay, "NetworkPolicy", "intake")["spec"]["ingress"]
    from_outside = [r for r in rules if any("ipBlock" in peer for peer in r["from"])]
    assert from_outside == [{"from": [RELAY], "ports": [smtp]}]
    # No other rule of any policy opens the SMTP port, nor admits the relay's range elsewhere.
    for policy in of_kind(overlay, "NetworkPolicy"):
        for rule in policy["spec"].get("ingress", []):
            if rule in from_outside:
                continue
            assert smtp not in rule.get("ports", []), policy["metadata"]["name"]
            assert RELAY not in rule.get("from", []), policy["metadata"]["name"]
    # The system still starts from default deny: the rule above is the only way in for mail.
    deny = named(overlay, "NetworkPolicy", "default-deny-ingress")["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress"]}


def test_intake_and_notification_share_one_reply_key_and_one_domain(overlay):
    found = environments(overlay)
    configs = {c["metadata"]["name"]: c["data"] for c in of_kind(overlay, "ConfigMap")}
    for name in ("intake", "notification"):
        plain, secrets = found[name]
        assert secrets["REPLY_ADDRESS_KEY"] == k8s_mail.REPLY_KEY_SECRET, name
        assert plain["REPLY_DOMAIN"] == k8s_mail.REPLY_DOMAIN, name
        # The domain from the one shared ConfigMap, not from each service's own.
        assert "REPLY_DOMAIN" not in configs[f"{name}-settings"], name
    assert configs[k8s_mail.REPLY_CONFIG] == {"REPLY_DOMAIN": k8s_mail.REPLY_DOMAIN}
    # The key is a Secret's, never a ConfigMap's.
    assert not any("REPLY_ADDRESS_KEY" in data for data in configs.values())
    # Nobody else reads the key.
    readers = {name for name, (_, secrets) in found.items() if "REPLY_ADDRESS_KEY" in secrets}
    assert readers == {"intake", "notification"}


def test_an_address_notification_signs_is_one_intake_accepts(overlay, monkeypatch):
    from notification.bootstrap import reply_to_of

    intake = deployed_settings(overlay, "intake", monkeypatch)
    reply_to = reply_to_of(deployed_settings(overlay, "notification", monkeypatch))
    assert reply_to is not None  # notification puts a Reply-To on the référent's messages
    address = reply_to("GU-2026-000042")
    assert address.endswith(f"@{k8s_mail.REPLY_DOMAIN}")
    key = intake.reply_address_key.get_secret_value()
    assert file_of(address, key, intake.reply_domain) == "GU-2026-000042"
    # Had they read different Secrets, intake would refuse every reply.
    other = deployed_settings(overlay, "notification", monkeypatch, key="une-autre-cle")
    stray = reply_to_of(other)
    assert stray is not None and file_of(stray("GU-2026-000042"), key, intake.reply_domain) is None
