"""A service authenticates to Kafka only when it is given a SASL user (its KafkaUser)."""

from faststream.security import SASLScram512

from guichet_runtime.kafka_security import kafka_security
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
