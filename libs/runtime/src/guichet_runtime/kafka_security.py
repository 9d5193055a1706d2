"""How a service authenticates to Kafka: nothing on a laptop, SASL SCRAM-SHA-512 over TLS on a
cluster (Strimzi's KafkaUser of the service, its ACLs from shared_models.topology)."""

from __future__ import annotations

import ssl

from faststream.security import BaseSecurity, SASLScram512

from guichet_runtime.settings import ServiceSettings


def kafka_security(settings: ServiceSettings) -> BaseSecurity | None:
    """SCRAM-SHA-512 over TLS when a SASL user is configured (trusting KAFKA_CA_FILE, or the
    system's authorities); None (plaintext, no authentication) otherwise."""
    if not settings.kafka_sasl_username:
        return None
    context = ssl.create_default_context(
        cafile=str(settings.kafka_ca_file) if settings.kafka_ca_file else None
    )
    return SASLScram512(
        settings.kafka_sasl_username,
        settings.kafka_sasl_password.get_secret_value(),
        ssl_context=context,
        use_ssl=True,
    )
