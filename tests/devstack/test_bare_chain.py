"""The bare chain: the product's topology with no work, derived from shared_models.topology
and the catalogue (its plan). It runs on a real broker in
tests/devstack/test_bench_commands.py, inside the system bench (one broker, no extra test)."""

from __future__ import annotations

import pytest

from devstack import bare_chain
from shared_models import topics, topology
from shared_models.catalogue import catalogue


def test_the_plan_of_a_three_agency_file_follows_the_topology():
    plan = bare_chain.plan("perte_emploi")
    agencies = catalogue().life_events["perte_emploi"].agencies
    assert plan.agencies == tuple(agencies) and len(agencies) == 3
    by_topic = {s.topic: s for s in plan.steps if s.topic != topics.NOTIFICATIONS_SENT}
    assert by_topic[topics.FILES_SUBMITTED].producer == bare_chain.CLIENT
    assert by_topic[topics.REFERENTS_ASSIGNED].producer == "assignment"
    for agency in agencies:
        assert by_topic[topics.agency_requests(agency)].producer == "assignment"
        assert by_topic[topics.agency_answers(agency)].producer == topics.adapter_service(agency)
    # One coordinated answer per file, once every agency has answered.
    answered = by_topic[topics.FILES_ANSWERED]
    assert answered.producer == "assignment"
    assert answered.triggers == tuple(topics.agency_answers(a) for a in agencies)
    # Messages: submitted, référent, 3 requests, 3 answers, answer, 2 notifications; hops:
    # assignment, adapter, assignment, notification, then the watcher's read.
    assert plan.messages_per_file == 2 + 2 * len(agencies) + 1 + 2
    assert plan.messages_per_topic[topics.NOTIFICATIONS_SENT] == 2
    assert plan.hops == 5
    # Every message is read by every principal the topology says consumes its topic.
    principals = topology.principals()
    for step in plan.steps:
        readers = {p.name for p in principals.values() if step.topic in p.consumes}
        assert set(plan.readers[step.topic]) == readers, step.topic
    assert plan.reads_per_file == sum(len(plan.readers[s.topic]) for s in plan.steps)
    assert "intake" in plan.principals() and bare_chain.CLIENT not in plan.principals()


def test_the_plan_follows_the_catalogue_and_refuses_an_undeclared_step():
    two = bare_chain.plan("naissance")
    assert two.messages_per_file == 2 + 2 * 2 + 1 + 2 and two.hops == 5
    assert two.describe()["agencies"] == ["caf", "cpam"]
    # A step no principal of the topology performs (notification never publishes requests).
    with pytest.raises(ValueError, match="no principal"):
        bare_chain.plan(
            "naissance",
            [(None, topics.FILES_SUBMITTED), (topics.FILES_ANSWERED, "<agency>.requests")],
        )


def test_the_chain_writes_what_the_product_was_measured_writing():
    plan = bare_chain.plan("perte_emploi")
    agencies = plan.agencies
    measured = {
        topics.FILES_SUBMITTED: 1.0,  # the journey's own: nothing added
        **{topics.agency_requests(a): 1.0 for a in agencies},
        topics.NOTIFICATIONS_SENT: 2.0,
        topics.EXCHANGES_RECORDED: 6.0,  # the adapters' ledger
        topics.DEADLINES: 1.5,  # assignment's
        topics.SURVEYS: 0.25,  # intake's: the client publishes it with the file
        topics.agency_answers("cpam"): 1.0,  # no adapter of the chain publishes it
        topics.dead_letter(topics.FILES_SUBMITTED): 0.5,  # failures, not the flow
    }
    full = plan.with_measured(measured)
    sides = {s.topic: s for s in full.sides}
    assert set(sides) == {topics.EXCHANGES_RECORDED, topics.DEADLINES, topics.SURVEYS}
    assert sides[topics.EXCHANGES_RECORDED].producers == tuple(
        sorted(topics.adapter_service(a) for a in agencies)
    )
    assert sides[topics.EXCHANGES_RECORDED].per_file == 6.0
    assert sides[topics.DEADLINES].producers == ("assignment",)
    assert sides[topics.SURVEYS].producers == (bare_chain.CLIENT,)
    assert full.left_out == (topics.agency_answers("cpam"),)
    assert full.messages_per_file == plan.messages_per_file + 6.0 + 1.5 + 0.25
    assert full.messages_per_topic[topics.EXCHANGES_RECORDED] == 6.0
    # Their readers are the topology's: intake reads the ledger, so it joins the reads.
    assert full.readers[topics.EXCHANGES_RECORDED] == ("intake",)
    assert full.reads_per_file > plan.reads_per_file
    assert full.hops == plan.hops and full.steps == plan.steps


def test_fractions_of_side_messages_carry_over_from_file_to_file():
    publisher = bare_chain.Publisher()
    publisher.credit = {}
    assert [publisher.due("t", 0.5) for _ in range(4)] == [0, 1, 0, 1]
    assert [publisher.due("u", 2.0) for _ in range(2)] == [2, 2]
    assert sum(publisher.due("v", 1 / 3) for _ in range(9)) == 3
