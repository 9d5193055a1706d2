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

from shared_models import topics

_REQUESTS_TOPIC = re.compile(r"^agency\.([a-z][a-z0-9_]*)\.requests$")


@dataclass(frozen=True)
class Principal:
    """One Kafka client identity: what it consumes (with its group) and what it produces."""

    name: str
    consumes: frozenset[str]
    produces: frozenset[str]

    @property
    def group(self) -> str | None:
        """Consumer group (the service name, see EventConsumer); None for a producer only."""
        return self.name if self.consumes else None

    @property
    def dead_letters(self) -> frozenset[str]:
        """Dead-letter topics this principal writes to (one per consumed topic)."""
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
            }
        )
        | _per_agency(agencies, "documents"),
    )


def assignment(agencies: Iterable[str]) -> Principal:
    agencies = list(agencies)
    return Principal(
        name="assignment",
        consumes=frozenset({topics.FILES_SUBMITTED, topics.REFERENT_CHANGES, topics.LEGAL_CLOCK})
        | _per_agency(agencies, "answers"),
        produces=frozenset(
            {
                topics.REFERENTS_ASSIGNED,
                topics.FILES_ANSWERED,
                topics.FILES_AWAITING_REFERENT,
                topics.DIRECTORY_CHANGES,
                topics.DOCUMENTS_REQUESTED,
                topics.DEADLINES,
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


def principals(agencies: Iterable[str] | None = None) -> dict[str, Principal]:
    """Every principal by name, for these agencies (default: the core's agencies)."""
    codes = sorted(set(core_agencies() if agencies is None else agencies))
    found = [intake(codes), assignment(codes), notification(), *(adapter(a) for a in codes)]
    return {p.name: p for p in found}


@dataclass(frozen=True)
class Operator:
    """The operators' CLI (guichet-admin): it reads the dead letters and their ledgers without a
    consumer group, republishes letters to their original topic, writes the ledgers, and
    describes the services' consumer groups (their lag)."""

    name: str
    reads: frozenset[str]
    writes: frozenset[str]
    describes_groups: frozenset[str]


OPERATOR = "guichet-admin"


def operator(agencies: Iterable[str] | None = None) -> Operator:
    """The operators' identity for these agencies' dead-letter topics (default: the core's)."""
    agencies = None if agencies is None else list(agencies)
    found = principals(agencies).values()
    sources = {n for n in topics_of(agencies, operations=False) if not _is_dlq(n)}
    ledgers = {name for s in sources for name in (topics.parked(s), topics.replayed(s))}
    return Operator(
        name=OPERATOR,
        reads=frozenset({topics.dead_letter(s) for s in sources} | ledgers),
        writes=frozenset(sources) | ledgers,
        describes_groups=frozenset(p.group for p in found if p.group),
    )


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
