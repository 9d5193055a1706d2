"""Replies by email on the cluster (docs/operations.md, "Replies by email"): the citizen answers
a référent's email at its Reply-To, `reponse+<file_id>.<signature>@<REPLY_DOMAIN>`, which
notification signs and intake's inbound SMTP listener verifies (`guichet_runtime.reply_address`).

- intake listens on `INBOUND_SMTP_PORT` (2525: the pods run as a non-root user without
  capabilities, so no port under 1024), on every address of the pod;
- the Service `intake-smtp` (a LoadBalancer, port 25 to that port) is what the mail relay in
  front, the MX of REPLY_DOMAIN, delivers to; `externalTrafficPolicy: Local` keeps the relay's
  address as the source, which the NetworkPolicy's rule and `loadBalancerSourceRanges` admit
  (MAIL_RELAY_CIDR, a placeholder) on that port only;
- REPLY_ADDRESS_KEY comes to both services from one Secret, REPLY_DOMAIN from one ConfigMap
  (`reply-addresses`): an address notification signs is one intake accepts.
"""

from __future__ import annotations

from typing import Any

from devstack.k8s_workload import Workload, labels

#: intake's listener: unprivileged (the pods cannot bind a port under 1024).
INBOUND_SMTP_PORT = 2525
#: The port the mail relay (or, without a relay, the senders' servers) connects to.
SMTP_PORT = 25
#: Placeholder of the mail relay's addresses, the MX of REPLY_DOMAIN (TEST-NET-1, RFC 5737):
#: replace it with your relay's range (docs/operations.md, "Replies by email").
MAIL_RELAY_CIDR = "192.0.2.0/24"
#: Placeholder of the routing addresses' domain: replace it (its MX is your mail relay).
REPLY_DOMAIN = "reponse.guichet-unique.example.gouv.fr"
#: The ConfigMap both services read REPLY_DOMAIN from, and the Secret of REPLY_ADDRESS_KEY.
REPLY_CONFIG = "reply-addresses"
REPLY_KEY_SECRET = ("reply-address-key", "key")
SERVICE = "intake-smtp"


def signs_reply_addresses(w: Workload) -> Workload:
    """A service making (notification) or verifying (intake) the routing addresses: the
    shared key from its Secret, the shared domain from its ConfigMap."""
    w.secrets["REPLY_ADDRESS_KEY"] = REPLY_KEY_SECRET
    w.shared_settings["REPLY_DOMAIN"] = (REPLY_CONFIG, "REPLY_DOMAIN")
    return w


def receives_replies(w: Workload) -> Workload:
    """intake: listens for the replies on INBOUND_SMTP_PORT, on the pod's addresses."""
    w.smtp_port = INBOUND_SMTP_PORT
    w.settings |= {"INBOUND_SMTP_PORT": str(INBOUND_SMTP_PORT), "INBOUND_SMTP_HOST": "0.0.0.0"}
    return signs_reply_addresses(w)


def reply_config() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": REPLY_CONFIG, "labels": labels(REPLY_CONFIG, "config")},
        "data": {"REPLY_DOMAIN": REPLY_DOMAIN},
    }


def smtp_container_port(port: int) -> dict[str, Any]:
    return {"name": "smtp", "containerPort": port, "protocol": "TCP"}


def smtp_service(w: Workload) -> dict[str, Any]:
    """What the mail relay delivers to: port 25 of a load balancer, to the listener's port of
    intake's ready pods, from the relay's addresses only."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": SERVICE, "labels": labels(w.name, w.component)},
        "spec": {
            "type": "LoadBalancer",
            # The client's address reaches the pod (no SNAT to a node's): the policy's ipBlock
            # can then tell the relay from anyone else.
            "externalTrafficPolicy": "Local",
            "loadBalancerSourceRanges": [MAIL_RELAY_CIDR],
            "selector": {"app.kubernetes.io/name": w.name},
            "ports": [{"name": "smtp", "port": SMTP_PORT, "targetPort": "smtp", "protocol": "TCP"}],
        },
    }


def relay_ingress(port: int) -> dict[str, Any]:
    """The NetworkPolicy's rule: the mail relay's addresses, on the SMTP port only."""
    return {
        "from": [{"ipBlock": {"cidr": MAIL_RELAY_CIDR}}],
        "ports": [{"protocol": "TCP", "port": port}],
    }
