"""Session fixtures: the real Kafka broker, PostgreSQL server and OpenID Connect provider
(Keycloak) the integration tests use; each starts once per session, when a test first asks.

Kafka, in order of preference: an external bootstrap (GUICHET_KAFKA_BOOTSTRAP), then
testcontainers where a Docker daemon answers, then the project's own broker run from
Maven Central jars, with SASL over TLS and ACLs (see devstack.kafka_sasl). PostgreSQL:
GUICHET_TEST_POSTGRES_URL, else a server started from Debian's packages. Keycloak: the
project's own, run from Maven Central's distribution, or one already running at
GUICHET_KEYCLOAK_URL (http://127.0.0.1:<port>, with the project's realms).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import tests.hypothesis_profiles  # noqa: F401  (registers and loads the Hypothesis profile)
from tests.deadline import pytest_runtest_setup  # noqa: F401  (each test's deadline for its waits)

ROOT = Path(__file__).resolve().parents[1]

#: The audit anchors' key of the apps the tests bootstrap (session fixtures too): AUDIT_ANCHOR_KEY
#: is required outside dev, and the settings' default environment is production.
TEST_AUDIT_ANCHOR_KEY = "test-only-audit-anchor-key"
os.environ.setdefault("AUDIT_ANCHOR_KEY", TEST_AUDIT_ANCHOR_KEY)


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    external = os.environ.get("GUICHET_KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    if _docker_answers():
        try:
            from testcontainers.community.kafka import KafkaContainer
        except ImportError:  # older testcontainers layout
            from testcontainers.kafka import KafkaContainer

        with KafkaContainer("apache/kafka:4.1.1").with_kraft() as container:
            yield container.get_bootstrap_server()
        return
    from devstack.kafka import LocalKafka

    # As in production: every client authenticates (SCRAM-SHA-512 over TLS) and is authorised
    # by ACLs. The tests' own clients are the super user (devstack.kafka_sasl.client_options),
    # each Stack's processes their own principals. GUICHET_KAFKA_SASL=0: an open broker;
    # GUICHET_KAFKA_TLS=0: SASL without TLS.
    sasl = os.environ.get("GUICHET_KAFKA_SASL", "1") != "0"
    tls = os.environ.get("GUICHET_KAFKA_TLS", "1") != "0"
    workdir = Path(tempfile.mkdtemp(prefix="guichet-kafka-"))
    with LocalKafka(ROOT, workdir, sasl=sasl, tls=tls) as broker:
        yield broker.bootstrap


@pytest.fixture(scope="session")
def postgres_factory() -> Iterator:
    """A `devstack.postgres.Databases`: `postgres_factory(name)` is the URL of a fresh database
    on PostgreSQL as the superuser; `postgres_factory.service(name)` a service's database with
    its owner and run-time roles (what a Stack gives its processes)."""
    from devstack.postgres import (
        Databases,
        LocalPostgres,
        create_service_database_at,
        postgres_url_from_env,
    )

    external = postgres_url_from_env()
    if external:
        import asyncio

        import asyncpg

        base = external.rstrip("/")

        def create_external(name: str) -> str:
            async def create() -> None:
                conn = await asyncpg.connect(
                    base.replace("postgresql+asyncpg", "postgresql") + "/postgres"
                )
                try:
                    await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
                    await conn.execute(f'CREATE DATABASE "{name}"')
                finally:
                    await conn.close()

            asyncio.run(create())
            return f"{base}/{name}"

        yield Databases(create_external, lambda name: create_service_database_at(base, name))
        return
    # Not pytest's tmp_path: the postgres OS user must be able to enter the folder.
    workdir = Path(tempfile.mkdtemp(prefix="guichet-pg-"))
    server = LocalPostgres(ROOT, workdir)
    server.start()
    try:
        yield Databases(server.create_database, server.create_service_database)
    finally:
        server.stop()
        # Its databases grow to a gigabyte in a session: a developer's /tmp filled up with
        # one such folder per session (57 GB after a few days' runs).
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def keycloak() -> Iterator:
    """A real Keycloak (devstack.keycloak.LocalKeycloak) with the realms citoyens and agents.

    Lazy: only sessions with a test that asks for it pay its start (~15 s; the very first one on
    a machine also fetches and builds it: give that module a longer `pytest.mark.timeout`).
    """
    from devstack.keycloak import LocalKeycloak, running_keycloak

    workdir = Path(tempfile.mkdtemp(prefix="guichet-keycloak-"))
    external = os.environ.get("GUICHET_KEYCLOAK_URL")
    if external:  # one already running (`make test` shares one between its pytest runs)
        try:
            running = running_keycloak(ROOT, workdir, external)
        except ValueError as wrong:
            raise pytest.UsageError(f"GUICHET_KEYCLOAK_URL: {wrong}") from None
        yield running
        return
    with LocalKeycloak(ROOT, workdir) as server:
        yield server


@pytest.fixture(scope="session")
def tokens(keycloak):
    """Real tokens from the session's Keycloak (tests/e2e/auth_support.py: `Tokens`)."""
    from tests.e2e.auth_support import Tokens

    return Tokens(keycloak)
