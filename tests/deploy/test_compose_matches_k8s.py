"""docker-compose.yml and the Kubernetes manifests describe the same system: the same
processes, started by the same commands on the same ports, configured by the same variables
(the cluster adds only its own: Kafka authentication, topics owned by Strimzi, the database
password, secure cookies, the log level, the production overlay's JSON logs, OTLP export
and trace sampling)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.deploy.support import ROOT, build, of_kind

#: What only a cluster sets, and why.
CLUSTER_ONLY = {
    "KAFKA_SASL_USERNAME",  # SCRAM-SHA-512 over TLS: the process's KafkaUser
    "KAFKA_SASL_PASSWORD",
    "KAFKA_CA_FILE",
    "CREATE_TOPICS",  # Strimzi's KafkaTopics own the topics
    "DATABASE_PASSWORD",  # from the role's Secret, inserted into DATABASE_URL
    "MIGRATE_AT_START",  # false: the migration Job migrates, as the database's owner
    "SECURE_COOKIES",  # HTTPS behind the Ingress
    "LOG_LEVEL",
    "LOG_FORMAT",  # production: JSON lines with trace ids (compose keeps text logs)
    "OTEL_EXPORTER_OTLP_ENDPOINT",  # production: the collector in `monitoring`
    "OTEL_TRACES_SAMPLER",  # production: one file in ten traced (compose: every file)
    "OTEL_TRACES_SAMPLER_ARG",
    "PYTHONDONTWRITEBYTECODE",  # read-only root filesystem
}
#: What only compose sets: its services migrate at start, as their database's owner (on the
#: cluster, the migration Job does, and only it holds the owner's password).
COMPOSE_ONLY_VARIABLES = {"MIGRATION_DATABASE_URL"}
#: Compose-only processes: the local stand-ins for the agencies, the SMTP server and the SMS and
#: postal providers, and the infrastructure the operators run on a cluster.
COMPOSE_ONLY_PREFIXES = ("simulator-",)
COMPOSE_ONLY = {"kafka", "postgres", "smtp-sink", "channel-providers"}
#: Compose's one-shot migrations, where the cluster runs a migration Job.
COMPOSE_JOBS = {"web-migrate"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


@pytest.fixture(scope="module")
def cluster() -> dict[str, dict[str, Any]]:
    resources = build("overlays/production")
    configs = {c["metadata"]["name"]: c["data"] for c in of_kind(resources, "ConfigMap")}
    result = {}
    for deployment in of_kind(resources, "Deployment"):
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"] for e in container.get("env", [])}
        for source in container.get("envFrom", []):
            env |= set(configs[source["configMapRef"]["name"]])
        result[deployment["metadata"]["name"]] = {
            "command": container["command"],
            "ports": {p["containerPort"] for p in container["ports"]},
            "env": env,
        }
    return result


def compose_env(service: dict[str, Any]) -> set[str]:
    raw = service.get("environment") or {}
    return set(raw) if isinstance(raw, dict) else {item.split("=", 1)[0] for item in raw}


def test_the_same_processes(compose, cluster):
    local = {
        name
        for name in compose
        if name not in COMPOSE_ONLY | COMPOSE_JOBS and not name.startswith(COMPOSE_ONLY_PREFIXES)
    }
    assert local == set(cluster)


def test_compose_migrates_where_the_cluster_runs_a_job(compose):
    jobs = {j["metadata"]["name"]: j for j in of_kind(build("overlays/production"), "Job")}
    for name in COMPOSE_JOBS:
        (container,) = jobs[name]["spec"]["template"]["spec"]["containers"]
        assert [str(c) for c in compose[name]["command"]] == container["command"], name


def test_the_same_commands_and_ports(compose, cluster):
    for name, deployed in cluster.items():
        service = compose[name]
        assert [str(c) for c in service["command"]] == deployed["command"], name
        ports = {int(str(p).split(":")[-1]) for p in service["ports"]}
        assert ports == deployed["ports"], name


def test_the_same_variables(compose, cluster):
    for name, deployed in cluster.items():
        local = compose_env(compose[name]) - COMPOSE_ONLY_VARIABLES
        assert local <= deployed["env"], f"{name}: compose sets {local - deployed['env']} only"
        extra = deployed["env"] - local - CLUSTER_ONLY
        assert not extra, f"{name}: the cluster sets {extra}, compose does not"
