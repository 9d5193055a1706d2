"""Every topic's retention is declared once (shared_models.topics.RETENTIONS) and the two places
that create topics agree with it: Strimzi's KafkaTopics on a cluster, and (on the real broker,
tests/devstack/test_kafka_retention.py) the runtime's ensure_topics and the development
stack's administrator."""

from __future__ import annotations

import pytest

from devstack import k8s
from shared_models import topics, topology
from tests.deploy.support import build, of_kind

RETAINED = ("cleanup.policy", "retention.ms")


def test_every_kind_of_topic_has_an_explicit_retention():
    assert set(topics.RETENTIONS) == set(topics.TopicKind)
    for retention in topics.RETENTIONS.values():
        assert retention.cleanup_policy == "delete" and retention.days > 0
    every = topology.topics_of(k8s.deployed_agencies())
    kinds = {topics.topic_kind(name) for name in every}
    assert kinds == set(topics.TopicKind), "each kind is used by some topic"
    assert topics.retention("files.submitted") == topics.RETENTIONS[topics.TopicKind.EVENTS]
    assert topics.retention("agency.caf.requests.dlq").days == 30
    assert topics.retention("ns.files.submitted.dlq.replayed").days == 90  # namespaced
    assert topics.retention("agency.caf.answers.parked").days == 90


def test_the_operators_ledgers_outlive_their_dead_letters():
    ledgers = topics.RETENTIONS[topics.TopicKind.OPERATIONS]
    assert ledgers.ms >= topics.RETENTIONS[topics.TopicKind.DEAD_LETTERS].ms


@pytest.mark.parametrize("directory", ["overlays/production", "overlays/dev"])
def test_every_kafka_topic_is_created_with_the_declared_retention(directory):
    kafka_topics = of_kind(build(directory), "KafkaTopic")
    assert {t["spec"]["topicName"] for t in kafka_topics} >= set(
        topology.topics_of(k8s.deployed_agencies())
    )
    for topic in kafka_topics:
        name, config = topic["spec"]["topicName"], topic["spec"]["config"]
        declared = topics.retention(name).configs()
        assert {key: str(config[key]) for key in RETAINED} == declared, name
