"""Strimzi resources generated from shared_models.topology: one KafkaTopic per topic (and
dead-letter topic), one KafkaUser per principal with exactly the ACLs its subscriptions and
publications need (see devstack.k8s, which writes them into deploy/k8s)."""

from __future__ import annotations

from typing import Any

from shared_models import topics, topology

KAFKA_CLUSTER = "guichet-kafka"
KAFKA_BOOTSTRAP = f"{KAFKA_CLUSTER}-kafka-bootstrap:9093"
KAFKA_CA_SECRET = f"{KAFKA_CLUSTER}-cluster-ca-cert"


def kafka_topic(name: str, partitions: int) -> dict[str, Any]:
    """The topic's KafkaTopic, with its retention (shared_models.topics.retention)."""
    retention = topics.retention(name)
    return {
        "apiVersion": "kafka.strimzi.io/v1",
        "kind": "KafkaTopic",
        "metadata": {
            "name": name.replace("_", "-"),  # a resource name has no underscore
            "labels": {"strimzi.io/cluster": KAFKA_CLUSTER},
        },
        "spec": {
            "topicName": name,
            "partitions": partitions,
            "replicas": 3,
            "config": {
                "retention.ms": retention.ms,
                "min.insync.replicas": 2,
                "cleanup.policy": retention.cleanup_policy,
            },
        },
    }


def acls(principal: topology.Principal) -> list[dict[str, Any]]:
    """Strimzi's form of `topology.acls` (the local broker applies the same rules)."""
    return [
        {
            "resource": {"type": acl.resource, "name": acl.name, "patternType": "literal"},
            "operations": list(acl.operations),
        }
        for acl in topology.acls(principal)
    ]


def kafka_user(principal: topology.Principal) -> dict[str, Any]:
    rules = acls(principal)
    return {
        "apiVersion": "kafka.strimzi.io/v1",
        "kind": "KafkaUser",
        "metadata": {"name": principal.name, "labels": {"strimzi.io/cluster": KAFKA_CLUSTER}},
        "spec": {
            "authentication": {"type": "scram-sha-512"},
            "authorization": {"type": "simple", "acls": rules},
        },
    }
