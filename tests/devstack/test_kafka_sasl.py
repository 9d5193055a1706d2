"""The local broker's authentication settings (devstack.kafka_sasl), without a broker: the
refusals themselves are tested on the real broker in tests/e2e/test_kafka_acls.py."""

from __future__ import annotations

import json
import os
from pathlib import Path

from devstack import kafka_sasl
from devstack.kafka_sasl import ADMIN, KafkaAccess
from shared_models import topology

ROOT = Path(__file__).resolve().parents[2]


def test_every_service_adapter_and_the_operators_are_users():
    users = kafka_sasl.default_users(ROOT)
    assert {"intake", "assignment", "notification", topology.OPERATOR, ADMIN} <= set(users)
    assert {"adapter-caf", "adapter-france-travail", "adapter-ants"} <= set(users)


def test_passwords_are_per_user_and_stable(tmp_path):
    first = kafka_sasl.passwords(tmp_path, ["intake", "adapter-caf"])
    assert first == kafka_sasl.passwords(tmp_path, ["adapter-caf", "intake"])
    assert first["intake"] != first["adapter-caf"]
    assert (tmp_path / ".sasl-secret").stat().st_mode & 0o077 == 0


def test_the_listener_takes_scram_and_denies_what_no_acl_allows():
    props = kafka_sasl.listener_properties(9092, 9093, "pw")
    assert props["listener.security.protocol.map"] == (
        "CLIENT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT"
    )
    assert props["listener.name.client.sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["super.users"] == "User:admin"
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["authorizer.class.name"].endswith("StandardAuthorizer")
    assert kafka_sasl.scram_arguments({"intake": "x"}) == [
        "--add-scram",
        "SCRAM-SHA-512=[name=intake,password=x]",
    ]


def test_a_process_connects_as_its_own_principal_and_creates_no_topic():
    access = KafkaAccess("127.0.0.1:1", {"intake": "s3cret", ADMIN: "root"})
    assert access.env("intake") == {
        "KAFKA_BOOTSTRAP": "127.0.0.1:1",
        "KAFKA_SASL_USERNAME": "intake",
        "KAFKA_SASL_PASSWORD": "s3cret",
        "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "CREATE_TOPICS": "false",
    }
    assert access.client_options()["sasl_plain_username"] == ADMIN
    assert KafkaAccess("127.0.0.1:1").env("intake") == {"KAFKA_BOOTSTRAP": "127.0.0.1:1"}
    assert KafkaAccess("127.0.0.1:1").client_options() == {"bootstrap_servers": "127.0.0.1:1"}


def test_a_registered_broker_is_announced_to_child_processes(tmp_path, monkeypatch):
    monkeypatch.delenv(kafka_sasl.ENV, raising=False)
    passwords = kafka_sasl.passwords(tmp_path, ["intake", ADMIN])
    kafka_sasl.register(KafkaAccess("127.0.0.1:2", passwords), tmp_path)
    try:
        announced = json.loads(os.environ[kafka_sasl.ENV])["127.0.0.1:2"]
        assert announced == {"cache": str(tmp_path), "users": ["admin", "intake"], "ca_file": None}
        assert kafka_sasl.access("127.0.0.1:2").passwords == passwords
    finally:
        kafka_sasl.unregister("127.0.0.1:2")
    assert not kafka_sasl.access("127.0.0.1:2").sasl
    assert "127.0.0.1:2" not in json.loads(os.environ[kafka_sasl.ENV])


def test_a_child_process_derives_the_credentials_from_the_environment(tmp_path, monkeypatch):
    passwords = kafka_sasl.passwords(tmp_path, ["intake", ADMIN])
    announced = {"127.0.0.1:3": {"cache": str(tmp_path), "users": ["admin", "intake"]}}
    monkeypatch.setenv(kafka_sasl.ENV, json.dumps(announced))
    assert kafka_sasl.access("127.0.0.1:3").passwords == passwords
    assert kafka_sasl.client_options("127.0.0.1:3")["sasl_plain_password"] == passwords[ADMIN]


def test_over_tls_the_listener_has_a_certificate_its_clients_trust(tmp_path):
    from devstack.kafka_tls import broker_certificates

    certificates = broker_certificates(tmp_path)
    props = kafka_sasl.listener_properties(9092, 9093, "pw", certificates)
    assert props["listener.security.protocol.map"] == "CLIENT:SASL_SSL,CONTROLLER:SASL_PLAINTEXT"
    assert props["listener.name.client.ssl.keystore.location"] == str(certificates.keystore)
    access = KafkaAccess("127.0.0.1:1", {"intake": "s3cret"}, str(certificates.ca_file))
    assert access.env("intake")["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert access.env("intake")["KAFKA_CA_FILE"] == str(certificates.ca_file)
    assert access.client_options("intake")["ssl_context"] is not None
    assert broker_certificates(tmp_path) == certificates  # made once
