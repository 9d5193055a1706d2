"""Crypto-shredding on the cluster (docs/data-protection.md): the services that open personal
fields sealed with the citizens' data keys ask intake's key service for them, each as its own
client at the agents' issuer; intake lets exactly them in."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from devstack.k8s_identity import KEY_READER_KEYS
from shared_models import topics

if TYPE_CHECKING:
    from devstack.k8s import Workload

#: intake's HTTP port: its key service serves the citizens' data keys.
INTAKE_PORT = 8000


def reads_personal_data(w: Workload) -> Workload:
    """A service opening sealed personal fields: intake's URL, its client id, its client
    secret (Secret `<name>-key-service`), the token endpoint (identity ConfigMap) and the
    egress to intake."""
    w.settings |= {
        "KEY_SERVICE_URL": f"http://intake:{INTAKE_PORT}",
        "KEY_SERVICE_CLIENT_ID": f"service-{w.name}",
    }
    w.secrets["KEY_SERVICE_CLIENT_SECRET"] = (f"{w.name}-key-service", "client-secret")
    w.identity = {**w.identity, **KEY_READER_KEYS}
    w.egress_to.append(("intake", INTAKE_PORT))
    return w


def key_readers(agencies: Iterable[str]) -> list[str]:
    """The workloads calling intake's key service: assignment, notification, each adapter."""
    return ["assignment", "notification", *map(topics.adapter_service, agencies)]


def with_key_service(agencies: Iterable[str], core: list[Workload]) -> list[Workload]:
    """The core workloads, assignment and notification reading personal data, intake
    reachable from every key reader."""
    for w in core:
        if w.name in ("assignment", "notification"):
            reads_personal_data(w)
        elif w.name == "intake":
            w.ingress_from += [r for r in key_readers(agencies) if r not in w.ingress_from]
    return core
