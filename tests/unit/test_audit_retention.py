"""The audit trail's retention purge (guichet_runtime.audit_purge, docs/data-protection.md,
"Audit trail", Retention): with the controllable clock, whole days go 6 years after the
action, nothing before; `guichet-admin audit verify` still proves the remaining chain and still
finds any altered, removed or reordered entry after a purge; on PostgreSQL the run-time role
cannot delete an entry but through the purge. On SQLite and on a real PostgreSQL server, with
the service's two roles (the tables' owner migrates, the run-time role runs the job)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import sqlalchemy as sa

import assignment
import assignment.tables
from guichet_runtime import audit, migrations
from guichet_runtime.audit_purge import purge_cutoff, purge_trail
from guichet_runtime.clock import Clock
from guichet_runtime.db import UnitOfWork, make_engine
from shared_models.retention import DataKind, period
from tests.unit.conftest import ServiceDb
from tests.unit.test_audit_trail import KEY, cli, entries, verdict, write

PERIOD = period(DataKind.AUDIT_TRAIL).delta
#: The run-time role's URL -> the tables' owner's (PostgreSQL).
OWNERS: dict[str, str] = {}


async def tamper(db: ServiceDb, *statements: str) -> None:
    """An intruder with the tables' owner's rights (past the append-only trigger)."""
    owner = OWNERS.get(db.url)
    engine = make_engine(owner) if owner else db.engine
    try:
        async with engine.begin() as conn:
            if owner:
                await conn.execute(sa.text("ALTER TABLE audit_log DISABLE TRIGGER USER"))
            for statement in statements:
                await conn.execute(sa.text(statement))
            if owner:
                await conn.execute(sa.text("ALTER TABLE audit_log ENABLE TRIGGER USER"))
    finally:
        if owner:
            await engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
async def trail_db(request, assignment_db: ServiceDb):
    """Assignment's database; on PostgreSQL migrated by its owner, used by its run-time role."""
    if request.param == "sqlite":
        yield assignment_db
        return
    service = request.getfixturevalue("postgres_factory").service(
        f"purge_{abs(hash(request.node.name))}"
    )
    role = migrations.runtime_role(service.url, service.migration_url)
    await migrations.upgrade(
        Path(assignment.__file__).parent / "migrations", service.migration_url, grant_to=role
    )
    db = ServiceDb(service.url, make_engine(service.url), assignment.tables)
    OWNERS[service.url] = service.migration_url
    yield db
    await db.engine.dispose()


def uow_of(db: ServiceDb) -> UnitOfWork:
    tables = assignment.tables
    return UnitOfWork(db.engine, tables.outbox, tables.inbox, audit=audit.trail_of(tables.metadata))


def clock_on(tmp_path: Path, day: dt.date) -> dt.datetime:
    """Now on `day` through the controllable clock (CLOCK_FILE), as the job reads it."""
    path = tmp_path / "clock"
    path.write_text(day.isoformat(), encoding="utf-8")
    return Clock(path).now()


async def anchor(db: ServiceDb) -> None:
    done = await cli("audit", "anchor", "--database", db.url, "--anchor-key", KEY.decode())
    assert done.exit_code == 0, done.output


async def test_whole_days_go_six_years_after_the_action_and_the_chain_still_verifies(
    trail_db: ServiceDb, tmp_path: Path
) -> None:
    await write(trail_db, 3)
    await anchor(trail_db)
    written = (await entries(trail_db))[-1].at
    day = Clock().today()  # the entries' day (Paris)
    # The last day of the period: nothing goes.
    kept = await purge_trail(uow_of(trail_db), clock_on(tmp_path, day + PERIOD))
    assert kept.purged == 0 and len(await entries(trail_db)) == 3
    assert purge_cutoff(clock_on(tmp_path, day + PERIOD), PERIOD) <= written
    # The next day: the three entries go, a purge entry names the last of them.
    before = [r.entry_hash for r in await entries(trail_db)]
    gone = await purge_trail(uow_of(trail_db), clock_on(tmp_path, day + PERIOD + dt.timedelta(1)))
    assert (gone.purged, gone.through_seq) == (3, 3)
    [purge] = await entries(trail_db)
    details = json.loads(purge.details)
    assert (purge.seq, purge.action, purge.actor_kind, purge.prev_hash) == (
        4,
        "audit.purged",
        "system",
        before[-1],
    )
    assert (details["through_seq"], details["through_hash"], details["purged"]) == (
        3,
        before[-1],
        3,
    )
    assert await trail_db.rows("audit_anchors") == []  # the anchor of a purged entry went too
    code, output = await verdict(trail_db)
    assert code == 0, output
    assert "intact: 1 entries (entries 1..3 purged after their retention period)" in output
    # The chain goes on after it, anchored again, and a second purge keeps it verifiable.
    await write(trail_db, 2)
    await anchor(trail_db)
    assert (await verdict(trail_db))[0] == 0
    again = await purge_trail(uow_of(trail_db), clock_on(tmp_path, day + 2 * PERIOD))
    assert (again.purged, again.through_seq) == (3, 6)
    assert [r.seq for r in await entries(trail_db)] == [7]
    code, output = await verdict(trail_db)
    assert code == 0 and "entries 1..6 purged" in output, output
    body = json.loads((await cli("audit", "verify", "--database", trail_db.url, "--json")).output)
    assert (body["ok"], body["purged_through"], body["head"]) == (True, 6, 7)


@pytest.mark.parametrize(
    ("attack", "statements", "found"),
    [
        (
            "a remaining entry altered",
            ["UPDATE audit_log SET reason = 'rien à signaler' WHERE seq = 6"],
            "entry 6: altered",
        ),
        (
            "the first remaining entry removed",
            ["DELETE FROM audit_log WHERE seq = 4"],
            "the chain starts at entry 5",
        ),
        (
            "more removed from the start than the purge did",
            ["DELETE FROM audit_log WHERE seq <= 5"],
            "the chain starts at entry 6",
        ),
        ("a remaining entry removed", ["DELETE FROM audit_log WHERE seq = 6"], "6..6 are missing"),
        (
            "two remaining entries swapped",
            [
                "UPDATE audit_log SET seq = -6 WHERE seq = 6",
                "UPDATE audit_log SET seq = 6 WHERE seq = 5",
                "UPDATE audit_log SET seq = 5 WHERE seq = -6",
            ],
            "entry 5: altered",
        ),
        (
            "the purge entry's purge point moved",
            [
                "UPDATE audit_log SET details = replace(details, '\"through_seq\": 3', "
                "'\"through_seq\": 4') WHERE seq = 4"
            ],
            "entry 4: altered",
        ),
        ("the end cut", ["DELETE FROM audit_log WHERE seq = 7"], "the chain's head says entry 7"),
    ],
)
async def test_verify_finds_any_tampering_after_a_purge(
    trail_db: ServiceDb, tmp_path: Path, attack, statements, found
) -> None:
    await write(trail_db, 3)
    day = Clock().today()
    await purge_trail(uow_of(trail_db), clock_on(tmp_path, day + PERIOD + dt.timedelta(1)))
    await write(trail_db, 3)  # 4: the purge entry; 5, 6, 7
    assert [r.seq for r in await entries(trail_db)] == [4, 5, 6, 7]
    assert (await verdict(trail_db))[0] == 0
    await tamper(trail_db, *statements)
    code, output = await verdict(trail_db)
    assert code == 1, attack
    assert found in output and "TAMPERED" in output, output


async def test_a_chain_cut_at_its_start_without_a_purge_is_found(trail_db: ServiceDb) -> None:
    await write(trail_db, 4)
    await tamper(trail_db, "DELETE FROM audit_log WHERE seq <= 2")
    code, output = await verdict(trail_db)
    assert code == 1 and "the chain starts at entry 3" in output, output


async def test_on_postgresql_only_the_purge_deletes_entries(request) -> None:
    """The run-time role deletes nothing itself, not even with the purge's own setting; the
    purge function refuses unless the chain's head is the purge entry naming that prefix."""
    pytest.importorskip("asyncpg")
    request.applymarker(pytest.mark.integration)
    service = request.getfixturevalue("postgres_factory").service("purge_only_by_function")
    role = migrations.runtime_role(service.url, service.migration_url)
    await migrations.upgrade(
        Path(assignment.__file__).parent / "migrations", service.migration_url, grant_to=role
    )
    db = ServiceDb(service.url, make_engine(service.url), assignment.tables)
    try:
        await write(db, 3)
        attempts = [
            ["DELETE FROM audit_log WHERE seq <= 2"],
            [
                "SELECT set_config('guichet.audit_purge', 'on', true)",
                "DELETE FROM audit_log WHERE seq <= 2",
            ],
            ["SELECT audit_purge(2)"],  # no purge entry at the head
        ]
        for statements in attempts:
            with pytest.raises(sa.exc.DBAPIError, match=r"append-only|audit_purge"):
                async with db.engine.begin() as conn:
                    for statement in statements:
                        await conn.execute(sa.text(statement))
        assert [r.seq for r in await entries(db)] == [1, 2, 3]
    finally:
        await db.engine.dispose()
