"""The audit trail (guichet_runtime.audit, docs/data-protection.md): entries written in the
action's own transaction, one chain even with two writers, daily anchors, and
`guichet-admin audit verify` finding any altered, removed or reordered entry and any anchor
that does not match: on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner, Result

import assignment
import assignment.tables
from assignment.commands import directory, directory_import
from assignment.settings import DEFAULT_DIRECTORY
from guichet_admin.cli import app
from guichet_runtime import audit, migrations
from guichet_runtime.audit import AuditAction
from guichet_runtime.auth.principal import Principal, PrincipalKind, Role
from guichet_runtime.db import make_engine
from guichet_runtime.refusals import Refused
from tests.unit.conftest import ServiceDb

KEY = b"unit-test-anchor-key"
TODAY = dt.date(2026, 11, 24)
SUPERVISOR = Principal(
    kind=PrincipalKind.AGENT,
    subject="sub-helene",
    client_id="web",
    roles=frozenset({Role.SUPERVISEUR}),
    agent_id="SUP-IDF",
    offices=frozenset({"FS-75-01", "FS-93-01"}),
)


async def cli(*args: str) -> Result:
    # The key only from the options (the tests' environment has one for the services).
    env = {"AUDIT_ANCHOR_KEY": None}
    return await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env)


async def write(db: ServiceDb, n: int, file_id: str = "GU-2026-AUDIT001") -> None:
    for i in range(n):
        uow = db.uow()
        async with uow:
            audit.record(uow, SUPERVISOR, AuditAction.RECORD_READ, file_id=file_id, reason=f"r{i}")
            await uow.commit()


async def entries(db: ServiceDb) -> list[sa.Row]:
    return await db.rows("audit_log", order_by=sa.text("seq"))


async def verdict(db: ServiceDb, key: bytes | None = KEY) -> tuple[int, str]:
    args = ["audit", "verify", "--database", db.url]
    if key:
        args += ["--anchor-key", key.decode()]
    done = await cli(*args)
    return done.exit_code, done.output


async def tamper(db: ServiceDb, *statements: str) -> None:
    async with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":  # past the append-only trigger, as an intruder
            await conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
        for statement in statements:
            await conn.execute(sa.text(statement))


# --------------------------------------------------------------------------- the databases


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
async def trail_db(request, assignment_db: ServiceDb):
    """Assignment's database, on SQLite and on a real PostgreSQL server."""
    if request.param == "sqlite":
        yield assignment_db
        return
    url = request.getfixturevalue("postgres_factory")(f"audit_{abs(hash(request.node.name))}")
    await migrations.upgrade(Path(assignment.__file__).parent / "migrations", url)
    db = ServiceDb(url, make_engine(url), assignment.tables)
    yield db
    await db.engine.dispose()


# --------------------------------------------------------------------------- writing


async def test_an_action_and_its_entry_commit_together(assignment_db: ServiceDb) -> None:
    await directory_import.seed_directory(assignment_db.uow(), DEFAULT_DIRECTORY)
    [seeded] = await entries(assignment_db)
    assert (seeded.action, seeded.actor_kind, seeded.reason) == (
        "directory.imported",
        "system",
        None,
    )
    await directory.declare_absence(
        assignment_db.uow(),
        "AG-75-01-2",
        TODAY,
        TODAY + dt.timedelta(days=3),
        "Congés annuels",
        TODAY,
        by=SUPERVISOR,
    )
    _, entry = await entries(assignment_db)
    assert (entry.seq, entry.action, entry.agent_id, entry.reason) == (
        2,
        "agent.absence.declared",
        "AG-75-01-2",
        "Congés annuels",
    )
    assert (entry.actor_kind, entry.actor_subject, entry.actor_agent_id) == (
        "agent",
        "sub-helene",
        "SUP-IDF",
    )
    assert entry.actor_client_id == "web" and entry.prev_hash == seeded.entry_hash
    # Refused (no reason, a bad date): neither the action nor an entry.
    with pytest.raises(Refused, match="motif"):
        await directory.agent_leaves(assignment_db.uow(), "AG-75-01-2", "  ", by=SUPERVISOR)
    with pytest.raises(Refused):
        await directory.declare_absence(
            assignment_db.uow(), "AG-75-01-2", TODAY, TODAY, "Congés", TODAY + dt.timedelta(1)
        )
    # Rolled back after the entry was queued: nothing written either.
    uow = assignment_db.uow()
    async with uow:
        audit.record(uow, SUPERVISOR, AuditAction.AGENT_RETURNED, agent_id="AG-75-01-2")
    assert len(await entries(assignment_db)) == 2
    assert (await verdict(assignment_db))[0] == 0


async def test_two_writers_keep_one_chain(trail_db: ServiceDb) -> None:
    """Two replicas appending at once: every entry numbered once, each linked to the one
    before (the head row is locked by each writer)."""
    second = make_engine(trail_db.url)
    try:
        other = ServiceDb(trail_db.url, second, trail_db.tables)
        await asyncio.gather(*(write(db, 15) for db in (trail_db, other, trail_db, other)))
    finally:
        await second.dispose()
    rows = await entries(trail_db)
    assert [r.seq for r in rows] == list(range(1, 61))
    assert all(r.prev_hash == p.entry_hash for p, r in itertools.pairwise(rows))
    code, output = await verdict(trail_db)
    assert code == 0 and "intact: 60 entries" in output


# --------------------------------------------------------------------------- tampering


@pytest.mark.parametrize(
    ("attack", "statements", "found"),
    [
        (
            "an entry altered",
            ["UPDATE audit_log SET reason = 'rien à signaler' WHERE seq = 3"],
            "entry 3: altered",
        ),
        ("an entry removed", ["DELETE FROM audit_log WHERE seq = 3"], "entries 3..3 are missing"),
        (
            "two entries swapped",
            [
                "UPDATE audit_log SET seq = -4 WHERE seq = 4",
                "UPDATE audit_log SET seq = 4 WHERE seq = 3",
                "UPDATE audit_log SET seq = 3 WHERE seq = -4",
            ],
            "entry 3: altered",
        ),
        (
            "the end cut",
            ["DELETE FROM audit_log WHERE seq = 5"],
            "the chain's head says entry 5",
        ),
    ],
)
async def test_verify_finds_any_tampering(trail_db, attack, statements, found) -> None:
    await write(trail_db, 5)
    assert (await verdict(trail_db))[0] == 0
    await tamper(trail_db, *statements)
    code, output = await verdict(trail_db)
    assert code == 1, attack
    assert found in output and "TAMPERED" in output, output


async def test_the_append_only_trigger_refuses_updates_on_postgresql(request) -> None:
    pytest.importorskip("asyncpg")
    request.applymarker(pytest.mark.integration)
    url = request.getfixturevalue("postgres_factory")("audit_append_only")
    await migrations.upgrade(Path(assignment.__file__).parent / "migrations", url)
    db = ServiceDb(url, make_engine(url), assignment.tables)
    try:
        await write(db, 1)
        for statement in ("UPDATE audit_log SET reason = 'x'", "DELETE FROM audit_log"):
            with pytest.raises(sa.exc.DBAPIError, match="append-only"):
                async with db.engine.begin() as conn:
                    await conn.execute(sa.text(statement))
    finally:
        await db.engine.dispose()


# --------------------------------------------------------------------------- anchors


async def test_anchors_sign_the_head_and_catch_a_rewritten_end(trail_db: ServiceDb) -> None:
    assert (
        "nothing to anchor"
        in (
            await cli("audit", "anchor", "--database", trail_db.url, "--anchor-key", KEY.decode())
        ).output
    )
    await write(trail_db, 4)
    anchored = await cli("audit", "anchor", "--database", trail_db.url, "--anchor-key", "k")
    assert anchored.exit_code == 0 and "anchored entry 4" in anchored.output
    await write(trail_db, 2)
    code, output = await verdict(trail_db, b"k")
    assert code == 0 and "1 anchors (signatures checked)" in output
    assert (await verdict(trail_db, b"another key"))[0] == 1
    # Without the key the anchors' places are still checked, their signatures not.
    code, output = await verdict(trail_db, None)
    assert code == 0 and "NOT checked" in output

    # An intruder rewrites entries 3.. consistently (hashes and head recomputed): the chain
    # holds, but the anchor signed entry 4 as it was.
    rows = [dict(r._mapping) for r in await entries(trail_db)]
    prev = rows[1]["entry_hash"]
    statements = []
    for row in rows[2:]:
        row["reason"] = "rien" if row["seq"] == 3 else row["reason"]
        row["prev_hash"] = prev
        row["entry_hash"] = prev = audit.entry_hash(row)
        statements.append(
            f"UPDATE audit_log SET reason = '{row['reason']}', prev_hash = '{row['prev_hash']}', "
            f"entry_hash = '{row['entry_hash']}' WHERE seq = {row['seq']}"
        )
    statements.append(f"UPDATE audit_head SET entry_hash = '{prev}'")
    await tamper(trail_db, *statements)
    code, output = await verdict(trail_db, b"k")
    assert code == 1 and "anchor 1" in output and "signed entry 4" in output
    # ...and a forged anchor does not verify without the key.
    await tamper(
        trail_db,
        f"UPDATE audit_anchors SET head_hash = '{rows[3]['entry_hash']}'",
    )
    code, output = await verdict(trail_db, b"k")
    assert code == 1 and "signature does not verify" in output


async def test_the_worker_anchors_once_a_day(assignment_db: ServiceDb) -> None:
    tables = assignment.tables.audit
    await write(assignment_db, 2)
    stopping = asyncio.Event()
    rounds = 0

    async def pause(seconds: float) -> bool:
        nonlocal rounds
        rounds += 1
        if rounds == 2:
            stopping.set()
        return stopping.is_set()

    await audit.anchor_daily(assignment_db.engine, tables, KEY, stopping, pause, 0)
    [anchor] = await assignment_db.rows("audit_anchors")
    assert (anchor.seq, rounds) == (2, 2)  # the second round found today's anchor
    assert anchor.key_id == audit.key_id(KEY)


async def test_verify_reports_as_json(assignment_db: ServiceDb) -> None:
    await write(assignment_db, 3)
    done = await cli("audit", "verify", "--database", assignment_db.url, "--json")
    body = json.loads(done.output)
    assert body | {"ok": True, "entries": 3, "anchors": 0} == body
    missing = await cli("audit", "verify", "--database", "sqlite+aiosqlite:////nowhere/x.db")
    assert missing.exit_code == 1
