"""Strimzi resources generated from shared_models.topology: one KafkaTopic per topic (and
dead-letter topic), one KafkaUser per principal with exactly the ACLs its subscriptions and
publications need (see devstack.k8s, which writes them into deploy/k8s)."""

from __future__ import annotations

from typing import Any

from shared_models import topology

KAFKA_CLUSTER = "guichet-kafka"
KAFKA_BOOTSTRAP = f"{KAFKA_CLUSTER}-kafka-bootstrap:9093"
KAFKA_CA_SECRET = f"{KAFKA_CLUSTER}-cluster-ca-cert"
#: Retention of the integration topics: a long weekend of outage plus time to replay.
EVENT_RETENTION_MS = 7 * 24 * 3600 * 1000
#: Dead letters wait for an operator to read, fix and replay them.
DEAD_LETTER_RETENTION_MS = 30 * 24 * 3600 * 1000
#: The operators' ledgers (parked letters, replay markers) outlive the dead letters they account
#: for, so a letter still in its dead-letter topic is never replayed twice; parked letters are
#: also the record of what was given up, kept for a quarter.
OPERATIONS_RETENTION_MS = 90 * 24 * 3600 * 1000
OPERATIONS_SUFFIXES = (".parked", ".dlq.replayed")


def kafka_topic(name: str, partitions: int) -> dict[str, Any]:
    if name.endswith(OPERATIONS_SUFFIXES):
        retention = OPERATIONS_RETENTION_MS
    elif name.endswith(".dlq"):
        retention = DEAD_LETTER_RETENTION_MS
    else:
        retention = EVENT_RETENTION_MS
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
                "retention.ms": retention,
                "min.insync.replicas": 2,
                "cleanup.policy": "delete",
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
