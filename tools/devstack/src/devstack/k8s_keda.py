"""KEDA resources of a Kafka consumer: it scales on its consumer group's lag, authenticated
as itself (SASL SCRAM-SHA-512 over TLS, the Secrets Strimzi makes for its KafkaUser)."""

from __future__ import annotations

from typing import Any

from devstack.k8s_kafka import KAFKA_BOOTSTRAP, KAFKA_CA_SECRET


def keda_scaling(name: str, low: int, high: int, labels: dict[str, str]) -> list[dict[str, Any]]:
    """A ScaledObject on the consumer group `name`'s lag, and its TriggerAuthentication."""
    auth = f"{name}-kafka"
    scaled = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "scaleTargetRef": {"name": name},
            # min: two replicas survive a node's loss (one for an adapter, whose agency
            # paces it); max: the topics' partitions, a further consumer would sit idle.
            "minReplicaCount": low,
            "maxReplicaCount": high,
            "pollingInterval": 15,
            "cooldownPeriod": 300,
            "triggers": [
                {
                    "type": "kafka",
                    "authenticationRef": {"name": auth},
                    "metadata": {
                        "bootstrapServers": KAFKA_BOOTSTRAP,
                        "consumerGroup": name,
                        # ≈ 15 files/s per replica: 50 records waiting is ~3 s behind.
                        "lagThreshold": "50",
                        "offsetResetPolicy": "earliest",
                        "allowIdleConsumers": "false",
                        "sasl": "scram_sha512",
                        "tls": "enable",
                    },
                }
            ],
        },
    }
    trigger_auth = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "TriggerAuthentication",
        "metadata": {"name": auth, "labels": labels},
        "spec": {
            # The user name from the consumer's own settings, the secrets from Strimzi's.
            "env": [
                {"parameter": "username", "name": "KAFKA_SASL_USERNAME", "containerName": name}
            ],
            "secretTargetRef": [
                {"parameter": "password", "name": name, "key": "password"},
                {"parameter": "ca", "name": KAFKA_CA_SECRET, "key": "ca.crt"},
            ],
        },
    }
    return [scaled, trigger_auth]
