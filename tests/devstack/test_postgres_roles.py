"""Least privilege on PostgreSQL (issue 13): each service's database has an owner role, which
runs the migrations, and a run-time role, which the service connects as. The run-time role
reads and writes its tables and can do nothing else: no table created, altered or dropped, no
other service's database reached. On the real server (devstack.postgres)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

import intake
from devstack.postgres import ServiceDatabase
from guichet_runtime import migrations, revisions
from tests.unit.test_revisions import alembic_at_head

pytestmark = pytest.mark.integration

INTAKE_MIGRATIONS = Path(intake.__file__).parent / "migrations"


async def run(url: str, *statements: str) -> list[sa.Row]:
    """Run `statements` in one transaction as `url`'s role; the last one's rows."""
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            rows: list[sa.Row] = []
            for statement in statements:
                result = await conn.execute(sa.text(statement))
                rows = list(result) if result.returns_rows else []
            return rows
    finally:
        await engine.dispose()


#: Tables whose rows are never changed nor removed (guichet_runtime.audit: the trail).
APPEND_ONLY = {"audit_log"}


async def assert_refused(url: str, statement: str, reason: str) -> None:
    """`statement`, run as `url`'s role, is refused by PostgreSQL for `reason`."""
    with pytest.raises(DBAPIError, match=reason):
        await run(url, statement)


@pytest.fixture(scope="module")
async def intake_db(postgres_factory) -> ServiceDatabase:
    """Intake's database, migrated at start as a service does (MIGRATION_DATABASE_URL)."""
    # Named as a Stack names it: its namespace (with a dot) before the service's name.
    db = postgres_factory.service(f"roles_{uuid.uuid4().hex[:8]}.intake")
    role = migrations.runtime_role(db.url, db.migration_url)
    assert role == db.name
    await migrations.upgrade(INTAKE_MIGRATIONS, db.migration_url, role)
    return db


def migrated_as_the_job(db: ServiceDatabase, package: str) -> ServiceDatabase:
    """`db` migrated as the Kubernetes Job does: the migrations' command line, as the owner,
    naming the run-time role by a DATABASE_URL without its password."""
    env = {
        **os.environ,
        "MIGRATION_DATABASE_URL": db.migration_url,
        "DATABASE_URL": make_url(db.url).set(password=None).render_as_string(),
    }
    done = subprocess.run(
        [sys.executable, "-m", "guichet_runtime.migrations", "upgrade", package],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return db


@pytest.fixture(scope="module")
def assignment_db(postgres_factory) -> ServiceDatabase:
    """Assignment's database, migrated as the Kubernetes Job does."""
    db = postgres_factory.service(f"roles_{uuid.uuid4().hex[:8]}_assignment")
    return migrated_as_the_job(db, "assignment")


@pytest.fixture(scope="module")
def web_db(postgres_factory) -> ServiceDatabase:
    """The web's database (its sessions, kept server-side), migrated as its Job `web-migrate`
    (and compose's one-shot `web-migrate`) does."""
    db = postgres_factory.service(f"roles_{uuid.uuid4().hex[:8]}_web")
    return migrated_as_the_job(db, "web")


async def test_the_run_time_role_reads_and_writes_every_table(intake_db):
    tables = [
        row.tablename
        for row in await run(
            intake_db.url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        )
    ]
    assert {"files", "outbox", "inbox", "audit_log"} <= set(tables)
    for table in (t for t in tables if t != "alembic_version"):
        column = await first_column(intake_db, table)
        await run(
            intake_db.url,
            f"SELECT count(*) FROM {table}",
            f"INSERT INTO {table} SELECT * FROM {table} WHERE false",
        )
        update = f"UPDATE {table} SET {column} = {column} WHERE false"
        delete = f"DELETE FROM {table} WHERE false"
        if table in APPEND_ONLY:  # the role may write it, a trigger refuses any change
            await assert_refused(intake_db.url, update, "append-only")
            await assert_refused(intake_db.url, delete, "append-only")
        else:
            await run(intake_db.url, update, delete)


async def first_column(db: ServiceDatabase, table: str) -> str:
    rows = await run(
        db.url,
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public'"
        f" AND table_name = '{table}' ORDER BY ordinal_position LIMIT 1",
    )
    return rows[0].column_name


async def test_the_run_time_role_sees_the_migrations_at_head_but_cannot_move_them(intake_db):
    engine = create_async_engine(intake_db.url)
    try:
        assert await alembic_at_head(INTAKE_MIGRATIONS, engine)  # Alembic's own answer
        assert await revisions.at_head(INTAKE_MIGRATIONS, engine)  # the readiness probe's
    finally:
        await engine.dispose()
    await assert_refused(
        intake_db.url, "UPDATE alembic_version SET version_num = 'x'", "permission denied"
    )


async def test_the_run_time_role_cannot_create_alter_or_drop(intake_db):
    await assert_refused(
        intake_db.url, "CREATE TABLE stolen (x int)", "permission denied for schema"
    )
    await assert_refused(intake_db.url, "CREATE TEMP TABLE stolen (x int)", "temporary tables")
    await assert_refused(intake_db.url, "ALTER TABLE files ADD COLUMN x int", "must be owner")
    await assert_refused(intake_db.url, "DROP TABLE files", "must be owner")
    await assert_refused(intake_db.url, "TRUNCATE files", "permission denied")
    await assert_refused(intake_db.url, "CREATE ROLE stolen", "permission denied")
    (me,) = await run(
        intake_db.url,
        "SELECT rolsuper, rolcreatedb, rolcreaterole, rolbypassrls FROM pg_roles"
        " WHERE rolname = current_user",
    )
    assert not any(me)


async def test_the_owner_migrates_but_is_no_superuser(intake_db):
    await run(intake_db.migration_url, "CREATE TABLE scratch (x int)", "DROP TABLE scratch")
    (me,) = await run(
        intake_db.migration_url,
        "SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = current_user",
    )
    assert not any(me)


async def test_no_role_reaches_another_services_database(intake_db, assignment_db):
    def on(db: ServiceDatabase, url: str) -> str:
        return make_url(url).set(database=db.name).render_as_string(hide_password=False)

    for url in (intake_db.url, intake_db.migration_url):
        await assert_refused(on(assignment_db, url), "SELECT 1", "permission denied for database")
    for url in (assignment_db.url, assignment_db.migration_url):
        await assert_refused(on(intake_db, url), "SELECT 1", "permission denied for database")


async def test_the_job_granted_the_run_time_role_its_tables(assignment_db):
    (row,) = await run(assignment_db.url, "SELECT count(*) AS n FROM alembic_version")
    assert row.n == 1
    await assert_refused(assignment_db.url, "CREATE TABLE stolen (x int)", "permission denied")


@pytest.mark.skipif(
    bool(os.environ.get("GUICHET_TEST_POSTGRES_URL")),
    reason="an external server's service databases are created afresh",
)
async def test_a_database_from_before_the_roles_passes_to_its_owner(postgres_factory):
    """`make run-postgres` reusing its workdir: the database and its tables, created by the
    superuser, pass to the owner role, which then grants the run-time role its rights."""
    name = f"roles_{uuid.uuid4().hex[:8]}_old"
    await migrations.upgrade(INTAKE_MIGRATIONS, postgres_factory(name))
    db = postgres_factory.service(name)
    await migrations.upgrade(
        INTAKE_MIGRATIONS, db.migration_url, migrations.runtime_role(db.url, db.migration_url)
    )
    owners = await run(
        db.migration_url,
        "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'",
    )
    assert [row.tableowner for row in owners] == [f"{name}_owner"]
    await run(db.url, "DELETE FROM outbox WHERE false", "SELECT count(*) FROM files")
    await assert_refused(db.url, "CREATE TABLE stolen (x int)", "permission denied")


async def test_the_web_run_time_role_uses_its_sessions_but_cannot_drop_them(web_db):
    (column,) = await run(
        web_db.url,
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public'"
        " AND table_name = 'sessions' ORDER BY ordinal_position LIMIT 1",
    )
    (count,) = await run(
        web_db.url,
        "INSERT INTO sessions SELECT * FROM sessions WHERE false",
        f"UPDATE sessions SET {column.column_name} = {column.column_name} WHERE false",
        "DELETE FROM sessions WHERE false",
        "SELECT count(*) AS n FROM sessions",
    )
    assert count.n == 0  # read, written and deleted as the run-time role, nothing left behind
    await assert_refused(web_db.url, "DROP TABLE sessions", "must be owner")
