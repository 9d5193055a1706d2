"""The throw-away PostgreSQL server (devstack.postgres) serves SQLAlchemy's asyncpg driver."""

import shutil
import tempfile
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from devstack.postgres import LocalPostgres, postgres_url_from_env

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def postgres():
    # Not tmp_path: as root the server runs as `postgres`, which cannot enter pytest's 0700 tmp root.
    workdir = Path(tempfile.mkdtemp(prefix="guichet-pg-"))
    server = LocalPostgres(ROOT, workdir)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


async def test_select_one_in_created_database(postgres):
    url = postgres.create_database("devstack_test")
    assert postgres.create_database("devstack_test") == url  # idempotent
    assert url == f"{postgres.url}/devstack_test"

    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT 1"))).scalar_one() == 1
            assert (
                await conn.execute(text("SELECT current_database()"))
            ).scalar_one() == "devstack_test"
            assert (await conn.execute(text("SHOW max_connections"))).scalar_one() == "200"
    finally:
        await engine.dispose()


async def test_password_is_checked_over_tcp(postgres):
    engine = create_async_engine(postgres.url.replace(":guichet@", ":wrong@") + "/postgres")
    try:
        with pytest.raises(DBAPIError, match="password"):
            async with engine.connect():
                pass
    finally:
        await engine.dispose()


def test_postgres_url_from_env(monkeypatch):
    monkeypatch.delenv("GUICHET_TEST_POSTGRES_URL", raising=False)
    assert postgres_url_from_env() is None
    monkeypatch.setenv("GUICHET_TEST_POSTGRES_URL", "postgresql+asyncpg://u:p@db:5432")
    assert postgres_url_from_env() == "postgresql+asyncpg://u:p@db:5432"
