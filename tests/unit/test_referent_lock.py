"""Issue 18 §4: the référent engine under real concurrency on PostgreSQL, outside the
replicas test. Two engines (two connection pools, as two assignment replicas have) handle
files at the same time; one transaction is held open at its commit while the other runs
into it, and PostgreSQL's own lock tables say what the second one waits for, so each race
is played the same way every time.

- Two files of one citizen: the second waits on the citizen's advisory lock
  (`assignment.referents.lock_citizen`) and goes to the same référent (continuity).
- The last unit of an agent's capacity: exactly one file takes it, the other waits.
- The same file delivered to both replicas: assigned once.
- A handler failing after taking the lock: the lock goes with its transaction.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import assignment
from assignment import tables
from assignment.commands.directory_import import import_directory
from assignment.projections import files as projections
from assignment.referents import lock_citizen
from guichet_runtime import migrations
from guichet_runtime.db import UnitOfWork, make_engine
from shared_models import FileSubmitted, ReferentAssigned, ReferentAssignmentDeferred
from tests.unit.samples import citizen, file_submitted

pytestmark = pytest.mark.integration

OFFICE = {
    "office_id": "FS-93-01",
    "name": "France Services Saint-Denis",
    "address": "3 place du Caquet",
    "commune": "Saint-Denis",
    "departement": "93",
    "latitude": 48.9362,
    "longitude": 2.3574,
    "opening_hours": "Du lundi au vendredi, 9h-12h30 et 13h30-17h",
}


def agent(agent_id: str, name: str, agencies: list[str], capacity: int = 10) -> dict[str, Any]:
    return {
        "agent_id": agent_id,
        "name": name,
        "office_id": "FS-93-01",
        "phone": "01 49 33 00 00",
        "email": f"{agent_id.lower()}@france-services.gouv.fr",
        "agencies": agencies,
        "capacity": capacity,
    }


#: Awa's files go to the CAF and the CPAM (Camille covers both) or to the DGFiP (Nadia's).
CAMILLE = agent("AG-93-01-1", "Camille Martin", ["caf", "cpam"])
NADIA = agent("AG-93-01-2", "Nadia Bernard", ["dgfip"])


class HeldUnitOfWork(UnitOfWork):
    """A unit of work that, at commit, says so and waits to be let go: its transaction
    keeps every lock it took until then."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.at_commit = asyncio.Event()
        self.go = asyncio.Event()

    async def commit(self) -> None:
        self.at_commit.set()
        await self.go.wait()
        await super().commit()


class Replicas:
    """Two engines on one PostgreSQL database, and a third connection to look on."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engines = [make_engine(url), make_engine(url)]

    def uow(self, replica: int, event: FileSubmitted | None = None) -> UnitOfWork:
        key = ("assignment", str(event.event_id)) if event is not None else None
        return UnitOfWork(self.engines[replica], tables.outbox, tables.inbox, inbox_key=key)

    def held(self, replica: int, event: FileSubmitted) -> HeldUnitOfWork:
        key = ("assignment", str(event.event_id))
        return HeldUnitOfWork(self.engines[replica], tables.outbox, tables.inbox, inbox_key=key)

    async def scalar(self, statement: Any, **params: Any) -> Any:
        async with self.engines[0].connect() as conn:
            return await conn.scalar(
                sa.text(statement) if isinstance(statement, str) else statement, params
            )

    async def waiting(self) -> dict[str, int]:
        """Lock requests PostgreSQL has not granted yet, by lock type (advisory, transactionid…)."""
        async with self.engines[0].connect() as conn:
            rows = await conn.execute(
                sa.text(
                    "SELECT l.locktype, count(*) FROM pg_locks l"
                    " JOIN pg_stat_activity a ON a.pid = l.pid"
                    " WHERE NOT l.granted AND a.datname = current_database() GROUP BY l.locktype"
                )
            )
            return {r[0]: r[1] for r in rows}

    async def active_files(self, agent_id: str) -> int:
        return await self.scalar(
            sa.select(tables.agents.c.active_files).where(tables.agents.c.agent_id == agent_id)
        )

    async def referent_of(self, file_id: str) -> tuple[str | None, str | None]:
        async with self.engines[0].connect() as conn:
            row = (
                await conn.execute(
                    sa.select(tables.files.c.referent_id).where(tables.files.c.file_id == file_id)
                )
            ).one()
            rule = await conn.scalar(
                sa.select(tables.assignments.c.rule).where(tables.assignments.c.file_id == file_id)
            )
        return row.referent_id, rule

    async def emitted(self, file_id: str, event_type: str) -> int:
        return await self.scalar(
            sa.select(sa.func.count())
            .select_from(tables.outbox)
            .where(tables.outbox.c.event_type == event_type, tables.outbox.c.key == file_id)
        )

    async def dispose(self) -> None:
        for engine in self.engines:
            await engine.dispose()


@pytest.fixture
async def replicas(postgres_factory) -> AsyncIterator[Replicas]:
    url = postgres_factory(f"assign_lock_{uuid.uuid4().hex[:12]}")
    await migrations.upgrade(Path(assignment.__file__).parent / "migrations", url)
    r = Replicas(url)
    directory = {"version": "test-1", "offices": [OFFICE], "agents": [CAMILLE, NADIA]}
    result = await import_directory(r.uow(0), directory, only_if_empty=True)
    assert result["applied"], result
    yield r
    await r.dispose()


async def until(probe: Callable[[], Awaitable[Any]], what: str, timeout: float = 15) -> Any:
    """Polls `probe` until it returns something true (no fixed sleep decides anything)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        found = await probe()
        if found:
            return found
        await asyncio.sleep(0.02)
    raise AssertionError(f"still waiting for {what} after {timeout} s")


async def race(
    replicas: Replicas, first: FileSubmitted, second: FileSubmitted
) -> tuple[dict[str, int], BaseException | None]:
    """Replica 0 handles `first` up to its commit and holds it there; replica 1 handles
    `second` meanwhile. Returns the locks replica 1 was waiting for (empty if it went
    through without waiting) and what it raised, once both are done."""
    held = replicas.held(0, first)
    one = asyncio.create_task(projections.on_file_submitted(first, held))

    async def at_commit() -> bool:
        return held.at_commit.is_set() or one.done()

    await until(at_commit, "the first at its commit")
    two = asyncio.create_task(projections.on_file_submitted(second, replicas.uow(1, second)))

    async def blocked_or_done() -> dict[str, int] | bool:
        return await replicas.waiting() or two.done()

    waited = await until(blocked_or_done, "the second blocked or done")
    held.go.set()
    await asyncio.wait_for(one, 15)
    try:
        await asyncio.wait_for(two, 15)
    except (TimeoutError, asyncio.CancelledError):
        raise
    except Exception as exc:  # the loser's error, for the test to judge
        return (waited if isinstance(waited, dict) else {}), exc
    return (waited if isinstance(waited, dict) else {}), None


# --------------------------------------------------------------------------- tests


async def test_two_files_of_one_citizen_at_once_wait_on_her_lock_and_share_her_referent(
    replicas: Replicas,
):
    awa = citizen(postcode="93200", email="awa.diallo@example.fr")
    benefits = file_submitted("GU-2026-LOCKAAA1", agencies=("caf", "cpam"), citizen=awa)
    taxes = file_submitted("GU-2026-LOCKAAA2", agencies=("dgfip",), citizen=awa)

    waited, error = await race(replicas, benefits, taxes)

    assert error is None
    assert await replicas.referent_of(benefits.file_id) == ("AG-93-01-1", "proximite")
    # Seen after the lock: the référent of her other file, not Nadia (DGFiP's specialist).
    assert await replicas.referent_of(taxes.file_id) == ("AG-93-01-1", "continuite")
    assert waited == {"advisory": 1}  # the second replica queued behind Awa's lock
    assert await replicas.active_files("AG-93-01-1") == 2
    assert await replicas.active_files("AG-93-01-2") == 0


async def test_the_last_unit_of_capacity_goes_to_exactly_one_of_two_files(replicas: Replicas):
    # Camille alone: 8 files of 10, one unit left for a non-urgent file (10 % kept for urgent
    # ones); Nadia leaves.
    async with replicas.engines[0].begin() as conn:
        await conn.execute(
            tables.agents.update()
            .where(tables.agents.c.agent_id == "AG-93-01-1")
            .values(active_files=8)
        )
        await conn.execute(
            tables.agents.update()
            .where(tables.agents.c.agent_id == "AG-93-01-2")
            .values(status="parti")
        )
    first = file_submitted("GU-2026-LASTAAA1", agencies=("caf",), citizen=citizen(email="a@x.fr"))
    second = file_submitted("GU-2026-LASTAAA2", agencies=("caf",), citizen=citizen(email="b@x.fr"))

    waited, error = await race(replicas, first, second)

    assert error is None
    assert "advisory" not in waited  # two citizens: no lock shared, the row guard decides
    assert await replicas.referent_of(first.file_id) == ("AG-93-01-1", "proximite")
    assert await replicas.referent_of(second.file_id) == (None, None)
    assert await replicas.active_files("AG-93-01-1") == 9  # never above its limit
    assert await replicas.emitted(second.file_id, ReferentAssignmentDeferred.__name__) == 1
    assert await replicas.emitted(second.file_id, ReferentAssigned.__name__) == 0


async def test_the_same_file_delivered_to_both_replicas_is_assigned_once(replicas: Replicas):
    event = file_submitted("GU-2026-TWICEAA1", agencies=("caf", "cpam"))
    # Published twice (the relay after a crash): two event ids for one file.
    again = event.model_copy(update={"event_id": uuid.uuid4()})

    _, error = await race(replicas, event, again)

    # The loser either saw the file, or lost the insert of its row (PostgreSQL makes it wait
    # for the winner, then refuses the duplicate key): the consumer retries it, and the retry
    # finds the file handled.
    if error is not None:
        assert isinstance(error, sa.exc.IntegrityError), repr(error)
        await projections.on_file_submitted(again, replicas.uow(1, again))
    assert await replicas.emitted(event.file_id, ReferentAssigned.__name__) == 1
    assert await replicas.scalar("SELECT count(*) FROM assignments") == 1
    assert await replicas.active_files("AG-93-01-1") == 1


async def test_a_handler_failing_after_the_lock_releases_it_and_takes_nothing(
    replicas: Replicas, monkeypatch: pytest.MonkeyPatch
):
    awa = citizen(email="awa.diallo@example.fr")
    event = file_submitted("GU-2026-FAILAAA1", agencies=("caf",), citizen=awa)

    async def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("panne au milieu du traitement")

    with monkeypatch.context() as patch:
        patch.setattr(projections, "start_file", broken)
        with pytest.raises(RuntimeError):
            await projections.on_file_submitted(event, replicas.uow(0, event))

    # The other replica takes Awa's lock at once (it would wait forever for a lock kept
    # by the first replica's pooled connection).
    async with replicas.uow(1) as uow:
        await uow.conn.execute(sa.text("SET LOCAL lock_timeout = '3s'"))
        await lock_citizen(uow, "email:awa.diallo@example.fr")
    assert await replicas.scalar("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") == 0
    assert await replicas.active_files("AG-93-01-1") == 0  # the capacity went back too
    # Delivered again, the file is assigned normally.
    await projections.on_file_submitted(event, replicas.uow(1, event))
    assert await replicas.referent_of(event.file_id) == ("AG-93-01-1", "proximite")
