"""Who reads and writes which topic, per Kafka principal: the source of the brokers' ACLs.

Each process that talks to Kafka is one principal (its KafkaUser in deploy/k8s), named like its
`service_name`, which is also its consumer group (guichet_runtime.consumer.EventConsumer joins
the group `<namespace><service_name>`). A principal needs:
- Read (and Describe) on every topic it consumes, and Read on its consumer group;
- Write (and Describe) on every topic it produces (its outbox relay publishes them);
- Write on the dead-letter topic `<topic>.dlq` of every topic it consumes, where its consumer
  parks what can never be processed.

tests/unit/test_topology.py checks this declaration against the code (the subscriptions each
service registers, the `emit(topics.…)` calls in its sources); `guichet-dev k8s-kafka` turns it
into the KafkaTopic and KafkaUser resources of deploy/k8s, and a test keeps them equal.
The web pages only call intake and assignment over HTTP: they are no Kafka principal.
The operators' CLI (guichet-admin) is one more identity, `operator` below: it joins no group.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from shared_models import topics

#: The operators' principal (guichet-admin), see `operator`.
OPERATOR = "guichet-admin"

_REQUESTS_TOPIC = re.compile(r"^agency\.([a-z][a-z0-9_]*)\.requests$")


@dataclass(frozen=True)
class Principal:
    """One Kafka client identity: what it consumes (with its group) and what it produces."""

    name: str
    consumes: frozenset[str]
    produces: frozenset[str]
    #: False for a reader that assigns partitions itself (no group, no dead letters).
    grouped: bool = True
    #: Consumer groups it may describe (their lag), besides its own.
    watches: frozenset[str] = frozenset()

    @property
    def group(self) -> str | None:
        """Consumer group (the service name, see EventConsumer); None for a producer only."""
        return self.name if self.consumes and self.grouped else None

    @property
    def dead_letters(self) -> frozenset[str]:
        """Dead-letter topics this principal writes to (one per consumed topic)."""
        if not self.grouped:
            return frozenset()
        return frozenset(topics.dead_letter(t) for t in self.consumes)

    @property
    def writes(self) -> frozenset[str]:
        """Every topic the principal needs Write on: its publications and its dead letters."""
        return self.produces | self.dead_letters


def core_agencies() -> list[str]:
    """Agencies the core services route to: those whose topics `topics.all_topics()` declares."""
    found = (_REQUESTS_TOPIC.match(name) for name in topics.all_topics())
    return sorted(m.group(1) for m in found if m)


def _per_agency(agencies: Iterable[str], *kinds: str) -> frozenset[str]:
    makers = {
        "requests": topics.agency_requests,
        "answers": topics.agency_answers,
        "documents": topics.agency_documents,
    }
    return frozenset(makers[kind](agency) for agency in agencies for kind in kinds)


def intake(agencies: Iterable[str]) -> Principal:
    agencies = list(agencies)
    return Principal(
        name="intake",
        consumes=frozenset(
            {
                topics.REFERENTS_ASSIGNED,
                topics.FILES_ANSWERED,
                topics.NOTIFICATIONS_SENT,
                topics.EXCHANGES_RECORDED,
                topics.DEADLINES,
                topics.APPOINTMENTS,
            }
        )
        | _per_agency(agencies, "requests", "answers"),
        produces=frozenset(
            {
                topics.FILES_SUBMITTED,
                topics.REFERENT_CHANGES,
                topics.CONTACT_CHANGES,
                topics.THANKS,
                topics.SURVEYS,
                topics.ACCESS_CODES,
                topics.REFERENT_MESSAGES,
                topics.CITIZEN_MESSAGES,
                topics.CITIZEN_DATA_ERASED,
            }
        )
        | _per_agency(agencies, "documents"),
    )


def assignment(agencies: Iterable[str]) -> Principal:
    agencies = list(agencies)
    return Principal(
        name="assignment",
        consumes=frozenset(
            {
                topics.FILES_SUBMITTED,
                topics.REFERENT_CHANGES,
                topics.LEGAL_CLOCK,
                topics.CITIZEN_DATA_ERASED,
                topics.CITIZEN_MESSAGES,
                topics.REFERENT_MESSAGES,
            }
        )
        | _per_agency(agencies, "answers"),
        produces=frozenset(
            {
                topics.REFERENTS_ASSIGNED,
                topics.FILES_ANSWERED,
                topics.FILES_AWAITING_REFERENT,
                topics.DIRECTORY_CHANGES,
                topics.DOCUMENTS_REQUESTED,
                topics.DEADLINES,
                topics.APPOINTMENTS,
            }
        )
        | _per_agency(agencies, "requests"),
    )


def notification() -> Principal:
    return Principal(
        name="notification",
        consumes=frozenset(
            {
                topics.REFERENTS_ASSIGNED,
                topics.FILES_ANSWERED,
                topics.CONTACT_CHANGES,
                topics.THANKS,
                topics.DOCUMENTS_REQUESTED,
                topics.FILES_AWAITING_REFERENT,
                topics.DEADLINES,
                topics.ACCESS_CODES,
                topics.REFERENT_MESSAGES,
                topics.CITIZEN_DATA_ERASED,
                topics.APPOINTMENTS,
            }
        ),
        produces=frozenset({topics.NOTIFICATIONS_SENT}),
    )


def adapter(agency: str) -> Principal:
    """One agency's adapter: it sees its own agency's topics only."""
    return Principal(
        name=topics.adapter_service(agency),
        consumes=_per_agency([agency], "requests", "documents"),
        produces=_per_agency([agency], "answers") | {topics.EXCHANGES_RECORDED, topics.LEGAL_CLOCK},
    )


def operator(agencies: Iterable[str] | None = None) -> Principal:
    """The operators' principal (guichet-admin): reads every dead-letter topic and the ledgers
    beside it (parked letters, replay markers) without a consumer group, writes the original
    topics back (replay) and the ledgers, describes every group (lag)."""
    agencies = None if agencies is None else list(agencies)
    found = principals(agencies).values()
    declared = topics_of(agencies, operations=False)
    originals = frozenset(n.removesuffix(".dlq") for n in declared if _is_dlq(n))
    ledgers = frozenset(n for t in originals for n in (topics.parked(t), topics.replayed(t)))
    return Principal(
        name=OPERATOR,
        consumes=frozenset(topics.dead_letter(t) for t in originals) | ledgers,
        produces=originals | ledgers,
        grouped=False,
        watches=frozenset(p.group for p in found if p.group),
    )


def principals(agencies: Iterable[str] | None = None) -> dict[str, Principal]:
    """Every principal by name, for these agencies (default: the core's agencies)."""
    codes = sorted(set(core_agencies() if agencies is None else agencies))
    found = [intake(codes), assignment(codes), notification(), *(adapter(a) for a in codes)]
    return {p.name: p for p in found}


def _is_dlq(name: str) -> bool:
    return name.endswith(".dlq")


def operations_topics_of(agencies: Iterable[str] | None = None) -> dict[str, int]:
    """The topics only the operators' CLI writes (one partition each): per dead-letter topic,
    its parked letters and its replay markers (shared_models.topics.parked, replayed)."""
    sources = [n.removesuffix(".dlq") for n in topics_of(agencies, operations=False) if _is_dlq(n)]
    return {name: 1 for s in sources for name in (topics.parked(s), topics.replayed(s))}


def topics_of(agencies: Iterable[str] | None = None, operations: bool = True) -> dict[str, int]:
    """Every topic (name -> partitions) the principals use, dead-letter topics included, and
    (with `operations`) the operators' topics beside each dead-letter topic."""
    agencies = None if agencies is None else list(agencies)
    declared = dict(topics.all_topics())
    for principal in principals(agencies).values():
        for name in principal.consumes | principal.produces:
            declared.setdefault(name, topics.PARTITIONS)
        for name in principal.dead_letters | {topics.dead_letter(t) for t in principal.produces}:
            declared.setdefault(name, 1)
    if operations:
        declared |= operations_topics_of(agencies)
    return dict(sorted(declared.items()))


@dataclass(frozen=True)
class Acl:
    """One ALLOW rule of a principal on one resource (a topic or a consumer group)."""

    resource: Literal["topic", "group"]
    name: str
    operations: tuple[str, ...]  # Kafka's names: Read, Write, Describe


def acls(principal: Principal, namespace: str = "") -> list[Acl]:
    """Exactly the rules the principal needs, on literal resource names under `namespace`
    (the TOPIC_NAMESPACE prefix of its topics and groups): the single derivation behind the
    Strimzi KafkaUsers (devstack.k8s_kafka) and the local broker's ACLs (devstack.kafka)."""
    operations: dict[str, set[str]] = {}
    for name in principal.consumes:
        operations.setdefault(name, set()).update({"Read", "Describe"})
    for name in principal.writes:
        operations.setdefault(name, set()).update({"Write", "Describe"})
    rules = [
        Acl("topic", namespace + name, tuple(sorted(ops)))
        for name, ops in sorted(operations.items())
    ]
    if principal.group:
        rules.append(Acl("group", namespace + principal.group, ("Read",)))
    rules += [Acl("group", namespace + g, ("Describe",)) for g in sorted(principal.watches)]
    return rules
