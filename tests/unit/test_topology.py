"""The Kafka topology (shared_models.topology), the source of the brokers' ACLs, says what the
code does: each principal consumes exactly what its process subscribes to, in the group it
joins, and produces exactly the topics its sources emit to."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from guichet_runtime.sealing import new_key
from shared_models import topics, topology

ROOT = Path(__file__).resolve().parents[2]
SOURCES = {
    "intake": [ROOT / "services/intake/src/intake"],
    "assignment": [ROOT / "services/assignment/src/assignment"],
    "notification": [ROOT / "services/notification/src/notification"],
}
ADAPTER_SOURCES = [ROOT / "libs/adapter_sdk/src/adapter_sdk"]
AGENCY_TOPIC_MAKERS = {"agency_requests", "agency_answers", "agency_documents"}
EMIT = re.compile(r"\.emit\(\s*topics\.(\w+)(\()?")
PUBLISH = re.compile(r"\.publish\(|\.publisher\(")


def _app(service: str, tmp_path: Path):
    db = f"sqlite+aiosqlite:///{tmp_path}/{service}.db"
    if service == "intake":
        from intake.bootstrap import IntakeSettings, bootstrap

        return bootstrap(IntakeSettings(database_url=db, access_code_key=new_key()))
    if service == "assignment":
        from assignment.bootstrap import AssignmentSettings, bootstrap

        return bootstrap(AssignmentSettings(database_url=db))
    if service == "notification":
        from notification.bootstrap import NotificationSettings, bootstrap

        return bootstrap(NotificationSettings(database_url=db, access_code_key=new_key()))
    from adapter_sdk import discovery
    from adapter_sdk.app import build_app

    cls = discovery.load(service.removeprefix("adapter-").replace("-", "_"))
    return build_app(cls, cls.Config(database_url=db))


def emitted_topics(roots: list[Path], agencies: list[str]) -> set[str]:
    """Topics named in `emit(topics.X…)` calls under `roots`, agency topics expanded."""
    found: set[str] = set()
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            assert not PUBLISH.search(text), f"{path}: publishes outside the outbox"
            for name, call in EMIT.findall(text):
                value = getattr(topics, name)
                if call:
                    assert name in AGENCY_TOPIC_MAKERS, f"{path}: unknown topic maker {name}"
                    found |= {value(agency) for agency in agencies}
                else:
                    assert isinstance(value, str), f"{path}: topics.{name} is not a topic"
                    found.add(value)
    return found


CORE = topology.core_agencies()
ADAPTERS = [topics.adapter_service(a) for a in CORE]


def test_the_core_agencies_are_those_of_the_declared_topics():
    assert CORE and all(topics.agency_requests(a) in topics.all_topics() for a in CORE)
    assert set(topology.principals()) == {"intake", "assignment", "notification", *ADAPTERS}


@pytest.mark.parametrize("name", ["intake", "assignment", "notification", *ADAPTERS])
def test_consumed_topics_and_group_are_the_subscriptions(name, tmp_path):
    principal = topology.principals()[name]
    subscribers = _app(name, tmp_path).state.runtime.broker.subscribers
    subscribed = {getattr(t, "name", t) for sub in subscribers for t in sub.topics}
    assert subscribed == principal.consumes
    assert {sub.group_id for sub in subscribers} == {principal.group}


@pytest.mark.parametrize("name", ["intake", "assignment", "notification"])
def test_produced_topics_are_what_a_service_emits(name):
    principal = topology.principals()[name]
    assert emitted_topics(SOURCES[name], CORE) == principal.produces


def installed_agencies() -> list[str]:
    from adapter_sdk import discovery

    return sorted(discovery.available())


@pytest.mark.parametrize("agency", installed_agencies())
def test_an_installed_adapter_consumes_what_its_principal_declares(agency, tmp_path):
    principal = topology.adapter(agency)
    subscribers = _app(principal.name, tmp_path).state.runtime.broker.subscribers
    assert {getattr(t, "name", t) for sub in subscribers for t in sub.topics} == principal.consumes
    assert {sub.group_id for sub in subscribers} == {principal.group}


@pytest.mark.parametrize("agency", installed_agencies())
def test_produced_topics_are_what_an_adapter_emits(agency):
    principal = topology.adapter(agency)
    roots = [*ADAPTER_SOURCES, *ROOT.glob(f"adapters/*/src/adapter_{agency}")]
    assert emitted_topics(roots, [agency]) == principal.produces


@pytest.mark.parametrize("name", ["intake", "assignment", "notification", *ADAPTERS])
def test_every_event_type_of_a_consumed_topic_is_handled_or_declared_ignored(name, tmp_path):
    """No event a producer is declared to write on a topic would reach a consumer's dead
    letters as an unknown type; an ignored type is one the topic really carries."""
    consumer = _app(name, tmp_path).state.runtime.consumer
    flows = topics.flows()
    carried: set[str] = set()
    for topic in topology.principals()[name].consumes:
        types = flows[topic][0]
        carried |= {types} if isinstance(types, str) else set(types)
    assert carried <= consumer.handled_types | consumer.ignored_types
    assert consumer.ignored_types <= carried
    assert not consumer.handled_types & consumer.ignored_types


def test_the_topology_agrees_with_the_documented_flows():
    principals = topology.principals()
    for topic, (_, producer, consumers) in topics.flows().items():
        for consumer in consumers:
            assert topic in principals[consumer].consumes, (topic, consumer)
        producers = ADAPTERS if producer == "adapter-<organisme>" else [producer]
        assert any(topic in principals[p].produces for p in producers), (topic, producer)


def test_every_topic_a_principal_uses_is_declared_with_its_dead_letter_topic():
    declared = topology.topics_of()
    for principal in topology.principals().values():
        assert principal.consumes | principal.produces | principal.dead_letters <= set(declared)
    operations = topology.operations_topics_of()
    assert operations == topics.operations_topics()
    for name in list(declared):
        if name in operations:
            assert declared[name] == 1
        elif not name.endswith(".dlq"):
            assert declared[topics.dead_letter(name)] == 1
            assert declared[name] == topics.PARTITIONS


def test_the_operator_reads_every_dead_letter_and_writes_back_and_aside():
    operator = topology.operator()
    declared = topology.topics_of()
    dead_letters = {n for n in declared if n.endswith(".dlq")}
    ledgers = set(topics.operations_topics())
    assert operator.consumes == dead_letters | ledgers
    assert operator.produces == {n.removesuffix(".dlq") for n in dead_letters} | ledgers
    assert operator.watches == {p.group for p in topology.principals().values()}
    assert operator.name not in topology.principals()


def test_an_agency_outside_the_core_gets_its_own_principal_and_topics():
    principals = topology.principals([*CORE, "ants"])
    ants = principals["adapter-ants"]
    assert ants.consumes == {"agency.ants.requests", "agency.ants.documents"}
    assert ants.dead_letters == {"agency.ants.requests.dlq", "agency.ants.documents.dlq"}
    assert "agency.ants.requests" in principals["assignment"].produces
    assert "agency.ants.answers.dlq" in topology.topics_of([*CORE, "ants"])


def test_acls_grant_exactly_what_the_principal_declares_under_its_namespace():
    caf = topology.adapter("caf")
    rules = {(a.resource, a.name): a.operations for a in topology.acls(caf, "ns.")}
    assert rules[("topic", "ns.agency.caf.requests")] == ("Describe", "Read")
    assert rules[("topic", "ns.agency.caf.answers")] == ("Describe", "Write")
    assert rules[("topic", "ns.agency.caf.requests.dlq")] == ("Describe", "Write")
    assert rules[("group", "ns.adapter-caf")] == ("Read",)
    assert not [name for _, name in rules if "dgfip" in name]
    assert all(name.startswith("ns.") for _, name in rules)


def test_the_operator_reads_every_dead_letter_topic_and_writes_the_originals_back():
    operator = topology.operator(["caf"])
    assert operator.group is None and not operator.dead_letters
    assert topics.dead_letter(topics.FILES_SUBMITTED) in operator.consumes
    assert topics.FILES_SUBMITTED in operator.produces
    assert not any(t.endswith(".dlq") for t in operator.produces)
    assert topics.parked(topics.FILES_SUBMITTED) in operator.produces
    rules = {(a.resource, a.name): a.operations for a in topology.acls(operator)}
    assert rules[("group", "assignment")] == ("Describe",)
    assert ("group", topology.OPERATOR) not in rules
