"""A service authenticates to Kafka only when it is given a SASL user (its KafkaUser)."""

from faststream.security import SASLScram512

from guichet_runtime.kafka_security import client_options, kafka_security
from guichet_runtime.settings import ServiceSettings


def test_no_user_no_authentication():
    assert kafka_security(ServiceSettings()) is None


def test_a_sasl_user_means_scram_sha_512_over_tls(monkeypatch):
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "intake")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "s3cret")
    security = kafka_security(ServiceSettings())
    assert isinstance(security, SASLScram512)
    assert security.username == "intake" and security.password == "s3cret"
    assert security.use_ssl and security.ssl_context is not None


def test_sasl_plaintext_on_the_local_broker(monkeypatch):
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "intake")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "s3cret")
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    security = kafka_security(ServiceSettings())
    assert isinstance(security, SASLScram512)
    assert not security.use_ssl and security.ssl_context is None
    options = client_options(ServiceSettings())
    assert options["security_protocol"] == "SASL_PLAINTEXT"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "intake" and "ssl_context" not in options


def test_plain_client_options_without_a_user():
    assert client_options(ServiceSettings()) == {"bootstrap_servers": "127.0.0.1:9092"}
