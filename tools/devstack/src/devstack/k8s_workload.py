"""What devstack.k8s generates resources from: one workload of the system and its labels
(apart, so the modules adding a feature to a workload, devstack.k8s_keys and
devstack.k8s_mail, import it without importing the generator)."""

from __future__ import annotations

from dataclasses import dataclass, field

from devstack.stack_migrations import migrations_package

PART_OF = "guichet-unique"


@dataclass
class Workload:
    """One Deployment of the system and what it needs around it."""

    name: str
    port: int
    command: list[str]
    component: str  # service | adapter
    settings: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, tuple[str, str]] = field(default_factory=dict)  # env -> (secret, key)
    #: Variables from a ConfigMap shared with other workloads: env -> (ConfigMap, key).
    shared_settings: dict[str, tuple[str, str]] = field(default_factory=dict)
    database: str | None = None  # database and run-time role name (devstack.k8s_postgres)
    kafka: bool = True
    ingress_from_controller: bool = False
    ingress_from: list[str] = field(default_factory=list)  # workloads calling this one
    egress_to: list[tuple[str, int]] = field(default_factory=list)  # (workload, port)
    external_egress: list[int] = field(default_factory=list)  # ports on EXTERNAL_CIDR
    external_ingress: bool = False  # an agency calls back
    scaling: tuple[int, int] | None = None  # KEDA (min, max) replicas
    identity: dict[str, str] = field(default_factory=dict)  # env -> key (devstack.k8s_identity)
    smtp_port: int | None = None  # the citizens' email replies (devstack.k8s_mail)

    @property
    def migrations(self) -> str | None:
        """The package whose migrations the Job runs (the one list the dev stack uses too)."""
        return migrations_package(self.name) if self.database else None


def labels(name: str, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": PART_OF,
    }
