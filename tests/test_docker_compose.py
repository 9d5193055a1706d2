"""Static checks of docker-compose.yml, deploy/Dockerfile and deploy/postgres/init.sql."""

from __future__ import annotations

import ipaddress
import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

APP_PORTS = {
    "intake": 8000,
    "assignment": 8001,
    "notification": 8002,
    "web": 8003,
    "adapter-caf": 8011,
    "adapter-dgfip": 8012,
    "adapter-france-travail": 8013,
    "adapter-cpam": 8014,
    "adapter-ants": 8015,
    "simulator-caf": 8101,
    "simulator-dgfip": 8102,
    "simulator-france-travail": 8103,
    "simulator-cpam": 8104,
    "simulator-ants": 8105,
}
ADAPTER_AGENCY = {
    "adapter-caf": "caf",
    "adapter-dgfip": "dgfip",
    "adapter-france-travail": "france_travail",
    "adapter-cpam": "cpam",
    "adapter-ants": "ants",
}
DB_SERVICES = {"intake", "assignment", "notification", *ADAPTER_AGENCY}
#: The services whose database another service migrates before they start (their own would
#: migrate as the run-time role, which cannot): `<name>-migrate`, as the cluster's Job.
MIGRATED_BEFORE = {"web"}
TOKEN_VERIFIERS = {"intake", "assignment", *ADAPTER_AGENCY}
BUILT_SERVICES = set(APP_PORTS) | {"smtp-sink", "channel-providers", "web-migrate"}
ALL_SERVICES = BUILT_SERVICES | {"kafka", "postgres"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


def env(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    return {k: str(v) for k, v in raw.items()}


def command(service: dict[str, Any]) -> list[str]:
    cmd = service.get("command")
    return shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]


def container_ports(service: dict[str, Any]) -> set[int]:
    return {int(str(p).split(":")[-1].split("/")[0]) for p in service.get("ports", [])}


def init_sql() -> str:
    return (ROOT / "deploy/postgres/init.sql").read_text()


def created_databases() -> set[str]:
    sql = init_sql()
    return set(re.findall(r"^\s*CREATE\s+DATABASE\s+(\w+)", sql, re.IGNORECASE | re.MULTILINE))


def console_scripts() -> set[str]:
    scripts: set[str] = set()
    for pyproject in ROOT.glob("*/*/pyproject.toml"):
        data = tomllib.loads(pyproject.read_text())
        scripts |= set(data.get("project", {}).get("scripts", {}))
    return scripts


def test_every_service_is_present(services: dict[str, Any]) -> None:
    assert set(services) >= ALL_SERVICES


def test_infrastructure_images(services: dict[str, Any]) -> None:
    assert services["kafka"]["image"] == "apache/kafka:4.1.1"
    assert services["postgres"]["image"] == "postgres:17"
    kafka_env = env(services["kafka"])
    assert kafka_env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "PLAINTEXT://kafka:9092" in kafka_env["KAFKA_ADVERTISED_LISTENERS"]


@pytest.mark.parametrize("name", sorted(BUILT_SERVICES))
def test_built_services_use_the_workspace_dockerfile(services: dict[str, Any], name: str) -> None:
    build = services[name]["build"]
    context = (ROOT / build["context"]).resolve()
    dockerfile = context / build["dockerfile"]
    assert context == ROOT
    assert dockerfile.is_file()
    text = dockerfile.read_text()
    assert "FROM python:3.11-slim" in text
    assert "uv sync --frozen --no-dev" in text
    # every path the Dockerfile copies exists in the build context
    for line in text.splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            *sources, _dest = line.split()[1:]
            for src in sources:
                assert (context / src).exists(), src


def test_every_database_url_names_a_database_created_in_init_sql(
    services: dict[str, Any],
) -> None:
    databases = created_databases()
    seen = set()
    for name, service in services.items():
        url = env(service).get("DATABASE_URL")
        if url is None:
            continue
        seen.add(name)
        parts = urlsplit(url)
        assert parts.scheme == "postgresql+asyncpg"
        assert parts.hostname == "postgres" and parts.port == 5432
        assert parts.path.lstrip("/") in databases, (name, url)
        if name in MIGRATED_BEFORE:  # as its run-time role; `<name>-migrate` as the owner
            assert env(service)["MIGRATE_AT_START"] == "false", name
            assert env(services[f"{name}-migrate"])["DATABASE_URL"] == url, name
            condition = service["depends_on"][f"{name}-migrate"]["condition"]
            assert condition == "service_completed_successfully", name
            assert parts.username == parts.path.lstrip("/"), (name, url)
            continue
        # Least privilege: the service runs as its database's run-time role, migrates as its
        # owner (deploy/postgres/init.sql creates both).
        owner = urlsplit(env(service)["MIGRATION_DATABASE_URL"])
        assert parts.username == parts.path.lstrip("/"), (name, url)
        assert owner.username == f"{parts.username}_owner", name
        assert (owner.hostname, owner.path) == (parts.hostname, parts.path), name
        assert f"CREATE DATABASE {parts.username} OWNER {owner.username};" in init_sql()
        assert f"GRANT CONNECT ON DATABASE {parts.username} TO {parts.username};" in init_sql()
    assert seen == DB_SERVICES | MIGRATED_BEFORE | {f"{n}-migrate" for n in MIGRATED_BEFORE}
    # the init script is mounted where the postgres image runs it
    assert any(
        v.startswith("./deploy/postgres/init.sql:/docker-entrypoint-initdb.d/")
        for v in services["postgres"]["volumes"]
    )
    assert env(services["postgres"])["POSTGRES_USER"] == "guichet"


@pytest.mark.parametrize("name", sorted(APP_PORTS))
def test_commands_ports_and_healthchecks(services: dict[str, Any], name: str) -> None:
    service = services[name]
    cmd = command(service)
    assert cmd[0] in console_scripts(), f"{cmd[0]} is not a declared console script"
    port = APP_PORTS[name]
    assert cmd[cmd.index("--port") + 1] == str(port)
    assert port in container_ports(service)
    check = " ".join(service["healthcheck"]["test"])
    assert f":{port}/health" in check


def test_service_environment(services: dict[str, Any]) -> None:
    for name in DB_SERVICES:
        assert env(services[name])["KAFKA_BOOTSTRAP"] == "kafka:9092", name
    for name, agency in ADAPTER_AGENCY.items():
        e = env(services[name])
        simulator = f"simulator-{agency.replace('_', '-')}"
        assert command(services[name])[0] == name  # the adapter's own package and script
        assert e["AGENCY_BASE_URL"] == f"http://{simulator}:{APP_PORTS[simulator]}"
        cmd = command(services[simulator])
        assert cmd[cmd.index("--agency") + 1] == agency
    assert (
        env(services["adapter-france-travail"])["CALLBACK_BASE_URL"]
        == "http://adapter-france-travail:8013"
    )
    # France Travail signs its callbacks with the secret its adapter checks them with.
    secret = env(services["adapter-france-travail"])["CALLBACK_SECRET"]
    assert secret and secret == env(services["simulator-france-travail"])["CALLBACK_SECRET"]
    web = env(services["web"])  # the pages reach the services by their compose names
    assert (
        web["INTAKE_URL"] == "http://intake:8000"
        and web["ASSIGNMENT_URL"] == "http://assignment:8001"
    )
    assert "KAFKA_BOOTSTRAP" not in web
    # The sessions live in the web's own database, on the shared PostgreSQL server.
    assert urlsplit(web["DATABASE_URL"]).path == "/web"
    assert web["TRUSTED_PROXIES"] == "[]"  # nothing fronts the pages locally
    assert web["PUBLIC_URL"] == "http://127.0.0.1:8003"
    # No identity provider in compose: the issuers come from the caller's environment, and
    # the client secrets with them (never a real secret in the file).
    for audience in ("AGENTS", "CITIZENS"):
        assert web[f"LOGIN_{audience}_ISSUER"] == f"${{LOGIN_{audience}_ISSUER:-}}"
        secret = web[f"LOGIN_{audience}_CLIENT_SECRET"]
        assert secret == f"${{LOGIN_{audience}_CLIENT_SECRET:-}}"
    for name in TOKEN_VERIFIERS:  # tokens meant for this service only, from trusted issuers
        e = env(services[name])
        assert e["OIDC_AUDIENCE"] == name, name
        assert e["OIDC_ISSUERS"] == "${OIDC_ISSUERS:-{}}", name


def test_intake_trusts_the_web_on_the_compose_network(compose: dict[str, Any]) -> None:
    services = compose["services"]
    (subnet,) = [c["subnet"] for c in compose["networks"]["default"]["ipam"]["config"]]
    trusted = json.loads(env(services["intake"])["TRUSTED_PROXIES"])
    assert [ipaddress.ip_network(n) for n in trusted] == [ipaddress.ip_network(subnet)]
    notification = env(services["notification"])
    assert notification["SMTP_HOST"] == "smtp-sink"
    assert notification["SMTP_PORT"] == "8025"


def test_intake_takes_the_replies_to_the_addresses_notification_signs(
    compose: dict[str, Any],
) -> None:
    """docs/operations.md, "Replies by email": intake's inbound SMTP is published, and both
    services read the same key, asked of whoever runs compose like the other keys (never one
    in the file), and the same domain."""
    services = compose["services"]
    intake, notification = env(services["intake"]), env(services["notification"])
    for name in ("REPLY_ADDRESS_KEY", "REPLY_DOMAIN"):
        assert intake[name] == notification[name], name
    assert intake["REPLY_ADDRESS_KEY"].startswith("${REPLY_ADDRESS_KEY:?")
    header = (ROOT / "docker-compose.yml").read_text()
    assert "export REPLY_ADDRESS_KEY=$(openssl rand -base64 32)" in header
    port = int(intake["INBOUND_SMTP_PORT"])
    assert intake["INBOUND_SMTP_HOST"] == "0.0.0.0"
    assert f"127.0.0.1:{port}:{port}" in services["intake"]["ports"]


def test_smtp_sink_listens_where_notification_sends(services: dict[str, Any]) -> None:
    sink = services["smtp-sink"]
    cmd = command(sink)
    assert cmd[:3] == ["python", "-m", "devstack.smtp_sink"]
    assert (ROOT / "tools/devstack/src/devstack/smtp_sink.py").is_file()
    assert cmd[cmd.index("--port") + 1] == env(services["notification"])["SMTP_PORT"]
    assert cmd[cmd.index("--host") + 1] == "0.0.0.0"
    http_port = cmd[cmd.index("--http-port") + 1]
    assert f":{http_port}/health" in " ".join(sink["healthcheck"]["test"])


def test_depends_on_names_existing_services(services: dict[str, Any]) -> None:
    for name, service in services.items():
        deps = service.get("depends_on") or {}
        for dep in deps:
            assert dep in services, (name, dep)
    assert {"kafka", "postgres"} <= set(services["intake"]["depends_on"])


def test_notification_reaches_the_sms_gateway_and_postal_service(services: dict[str, Any]) -> None:
    providers = services["channel-providers"]
    port = int(command(providers)[command(providers).index("--port") + 1])
    assert port in container_ports(providers)
    assert f":{port}/health" in " ".join(providers["healthcheck"]["test"])
    notification = env(services["notification"])
    for key in ("SMS_GATEWAY_URL", "POSTAL_URL"):
        parts = urlsplit(notification[key])
        assert (parts.hostname, parts.port) == ("channel-providers", port)
    assert "channel-providers" in services["notification"]["depends_on"]
