"""Crypto-shredding on the cluster (docs/data-protection.md): the services that open personal
fields sealed with the citizens' data keys ask intake's key service for them, each as its own
client at the agents' issuer; intake lets exactly them in. Two of them, assignment and
notification, also ask intake who a file's citizen is for the citizen's export parts
(`with_export_parts`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from devstack.k8s_identity import KEY_READER_KEYS, VERIFIER_KEYS
from shared_models import topics

if TYPE_CHECKING:
    from devstack.k8s_workload import Workload

#: intake's HTTP port: its key service serves the citizens' data keys.
INTAKE_PORT = 8000
NOTIFICATION_PORT = 8002


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
    return with_export_parts(core)


def with_export_parts(core: list[Workload]) -> list[Workload]:
    """The citizen's export parts (docs/data-protection.md, "The citizen's rights"):
    assignment and notification ask intake who a file's citizen is (INTAKE_URL; the egress to
    intake is the key service's), notification verifies the citizen's token, and the web
    reaches it to gather its part."""
    for w in core:
        if w.name in ("assignment", "notification"):
            w.settings["INTAKE_URL"] = f"http://intake:{INTAKE_PORT}"
        if w.name == "notification":
            w.identity = {**w.identity, **VERIFIER_KEYS}  # the citizen's token
            w.ingress_from.append("web")
        if w.name == "web":
            w.settings["NOTIFICATION_URL"] = f"http://notification:{NOTIFICATION_PORT}"
            w.egress_to.append(("notification", NOTIFICATION_PORT))
    return core
