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
    operations = topology.operations_topics_of(AGENCIES)
    assert set(topics.operations_topics()) <= set(operations) <= set(declared)
    for name in declared:
        if name in operations:
            assert declared[name] == 1, f"{name}: the operators' ledger has one partition"
        elif not name.endswith(".dlq"):
            assert declared[topics.dead_letter(name)] == 1, f"{name} has no dead-letter topic"
            assert declared[topics.parked(name)] == declared[topics.replayed(name)] == 1, name


def test_the_operators_ledgers_outlive_the_dead_letters(overlay):
    retention = {
        t["spec"]["topicName"]: int(t["spec"]["config"]["retention.ms"])
        for t in of_kind(overlay, "KafkaTopic")
    }
    for name in topology.operations_topics_of(AGENCIES):
        source = name.removesuffix(".parked").removesuffix(".dlq.replayed")
        assert retention[name] >= retention[topics.dead_letter(source)], name


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


def test_the_operators_cli_has_exactly_the_acls_it_needs(overlay):
    """guichet-admin reads every dead-letter topic and the ledgers beside it, republishes to
    the original topics, writes the ledgers and describes every consumer group (the lag)."""
    (user,) = [u for u in of_kind(overlay, "KafkaUser") if u["metadata"]["name"] == "guichet-admin"]
    assert user["spec"]["authentication"] == {"type": "scram-sha-512"}
    declared = topology.topics_of(AGENCIES)
    operations = set(topology.operations_topics_of(AGENCIES))
    dead_letters = {n for n in declared if n.endswith(".dlq")}
    sources = {n.removesuffix(".dlq") for n in dead_letters}
    read, write, groups = set(), set(), set()
    for acl in user["spec"]["authorization"]["acls"]:
        resource, ops = acl["resource"], set(acl["operations"])
        assert resource["patternType"] == "literal"
        if resource["type"] == "group":
            assert ops == {"Describe"}, "the CLI joins no group, it only reads their offsets"
            groups.add(resource["name"])
            continue
        assert resource["type"] == "topic" and "Describe" in ops
        assert ops <= {"Read", "Write", "Describe"}
        if "Read" in ops:
            read.add(resource["name"])
        if "Write" in ops:
            write.add(resource["name"])
    assert read == dead_letters | operations
    assert write == sources | operations
    assert set(topics.operations_topics()) <= operations
    principals = topology.principals(AGENCIES).values()
    assert groups == {p.group for p in principals if p.group}


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
