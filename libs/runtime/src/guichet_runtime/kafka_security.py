"""How a service authenticates to Kafka: SASL SCRAM-SHA-512 as its own principal (Strimzi's
KafkaUser on a cluster, the local broker's user in devstack.kafka; its ACLs from
shared_models.topology), over TLS unless KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT; nothing when no
SASL user is configured (a broker without authentication)."""

from __future__ import annotations

import ssl
from typing import Any

from faststream.security import BaseSecurity, SASLScram512

from guichet_runtime.settings import ServiceSettings

MECHANISM = "SCRAM-SHA-512"


def _tls(settings: ServiceSettings) -> ssl.SSLContext | None:
    if settings.kafka_security_protocol != "SASL_SSL":
        return None
    return ssl.create_default_context(
        cafile=str(settings.kafka_ca_file) if settings.kafka_ca_file else None
    )


def kafka_security(settings: ServiceSettings) -> BaseSecurity | None:
    """SCRAM-SHA-512 (over TLS trusting KAFKA_CA_FILE or the system's authorities, unless
    SASL_PLAINTEXT) when a SASL user is configured; None (no authentication) otherwise."""
    if not settings.kafka_sasl_username:
        return None
    context = _tls(settings)
    return SASLScram512(
        settings.kafka_sasl_username,
        settings.kafka_sasl_password.get_secret_value(),
        ssl_context=context,
        use_ssl=context is not None,
    )


def client_options(settings: ServiceSettings) -> dict[str, Any]:
    """Keyword arguments of a plain aiokafka client (admin, consumer, producer) with the same
    identity as `kafka_security`."""
    options: dict[str, Any] = {"bootstrap_servers": settings.kafka_bootstrap}
    if settings.kafka_sasl_username:
        context = _tls(settings)
        options |= {
            "security_protocol": settings.kafka_security_protocol,
            "sasl_mechanism": MECHANISM,
            "sasl_plain_username": settings.kafka_sasl_username,
            "sasl_plain_password": settings.kafka_sasl_password.get_secret_value(),
            **({"ssl_context": context} if context else {}),
        }
    return options
