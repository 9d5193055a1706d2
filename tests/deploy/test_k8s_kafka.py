"""Kafka on the cluster matches the code: every topic has its KafkaTopic, every principal its
KafkaUser with exactly the ACLs its subscriptions and publications need, every consumer its
KEDA ScaledObject on its own consumer group, authenticated as itself."""

from __future__ import annotations

from devstack import k8s
from shared_models import topics, topology
from tests.deploy.support import of_kind

AGENCIES = k8s.deployed_agencies()


def test_every_topic_of_the_code_has_its_kafka_topic(overlay):
    declared = {
        t["spec"]["topicName"]: t["spec"]["partitions"] for t in of_kind(overlay, "KafkaTopic")
    }
    expected = topology.topics_of(AGENCIES)
    assert declared == expected
    assert set(topics.all_topics()) <= set(declared)
    for name in declared:
        if not name.endswith(".dlq"):
            assert declared[topics.dead_letter(name)] == 1, f"{name} has no dead-letter topic"


def granted(user: dict) -> tuple[set[str], set[str], set[str]]:
    """(topics readable, topics writable, groups readable) by a KafkaUser's ACLs."""
    read, write, groups = set(), set(), set()
    for acl in user["spec"]["authorization"]["acls"]:
        resource, operations = acl["resource"], set(acl["operations"])
        assert acl.get("type", "allow") == "allow"
        assert resource["patternType"] == "literal", "no prefix: each name is granted"
        assert operations <= {"Read", "Write", "Describe"}, operations
        if resource["type"] == "topic":
            if "Read" in operations:
                read.add(resource["name"])
            if "Write" in operations:
                write.add(resource["name"])
        elif operations == {"Describe"}:  # the operators watch a group's lag, never join it
            assert resource["type"] == "group"
        else:
            assert resource["type"] == "group" and operations == {"Read"}
            groups.add(resource["name"])
    return read, write, groups


def test_every_principal_has_exactly_the_acls_it_needs(overlay):
    users = {u["metadata"]["name"]: u for u in of_kind(overlay, "KafkaUser")}
    principals = topology.principals(AGENCIES)
    assert set(users) == set(principals) | {topology.OPERATOR}
    for name, principal in principals.items():
        read, write, groups = granted(users[name])
        assert read == principal.consumes, name
        assert write == principal.produces | principal.dead_letters, name
        assert groups == ({principal.group} if principal.group else set()), name
        assert users[name]["spec"]["authentication"] == {"type": "scram-sha-512"}


def test_the_operators_read_dead_letters_and_replay_without_a_group(overlay):
    users = {u["metadata"]["name"]: u for u in of_kind(overlay, "KafkaUser")}
    read, write, groups = granted(users[topology.OPERATOR])
    consumed = {t for p in topology.principals(AGENCIES).values() for t in p.consumes}
    assert read == {topics.dead_letter(t) for t in consumed}
    assert write == consumed and not groups


def test_an_adapter_sees_only_its_own_agency(overlay):
    users = {u["metadata"]["name"]: u for u in of_kind(overlay, "KafkaUser")}
    for agency in AGENCIES:
        read, write, _ = granted(users[topics.adapter_service(agency)])
        for name in read | write:
            if name.startswith("agency."):
                assert name.startswith(f"agency.{agency}."), (agency, name)


def env_of(deployment: dict, configs: dict[str, dict[str, str]]) -> dict[str, object]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env: dict[str, object] = {}
    for source in container.get("envFrom", []):
        env |= configs[source["configMapRef"]["name"]]
    for item in container.get("env", []):
        env[item["name"]] = item.get("value", item.get("valueFrom"))
    return env


def test_each_process_authenticates_as_its_own_principal(overlay):
    configs = {c["metadata"]["name"]: c["data"] for c in of_kind(overlay, "ConfigMap")}
    principals = topology.principals(AGENCIES)
    clients = set()
    for deployment in of_kind(overlay, "Deployment"):
        name = deployment["metadata"]["name"]
        env = env_of(deployment, configs)
        if "KAFKA_BOOTSTRAP" not in env:
            assert name not in principals, f"{name} consumes but has no Kafka settings"
            continue
        clients.add(name)
        assert env["KAFKA_SASL_USERNAME"] == name
        assert env["KAFKA_SASL_PASSWORD"] == {"secretKeyRef": {"name": name, "key": "password"}}
        assert env["CREATE_TOPICS"] == "false"
        assert "TOPIC_NAMESPACE" not in env, "no topic prefix on a cluster"
    assert clients == set(principals)


def test_every_consumer_scales_on_its_own_group_lag(production):
    principals = topology.principals(AGENCIES)
    scaled = {s["spec"]["scaleTargetRef"]["name"]: s for s in of_kind(production, "ScaledObject")}
    auths = {a["metadata"]["name"]: a["spec"] for a in of_kind(production, "TriggerAuthentication")}
    assert set(scaled) == {p.name for p in principals.values() if p.group}
    for name, scaled_object in scaled.items():
        spec = scaled_object["spec"]
        assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"] <= topics.PARTITIONS
        (trigger,) = spec["triggers"]
        assert trigger["type"] == "kafka"
        assert trigger["metadata"]["consumerGroup"] == principals[name].group
        auth = auths[trigger["authenticationRef"]["name"]]
        secrets = {s["parameter"]: s for s in auth["secretTargetRef"]}
        assert secrets["password"]["name"] == name
        assert auth["env"] == [
            {"parameter": "username", "name": "KAFKA_SASL_USERNAME", "containerName": name}
        ]
