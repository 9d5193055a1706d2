"""`guichet-admin outbox backlog` on services' real SQLite databases: the rows a unit of work
committed and the relay has not published yet, per service and topic, with the oldest age."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner, Result

from guichet_admin.cli import app
from guichet_admin.outbox import databases_from_env, parse_database_options
from shared_models import topics
from tests.unit.conftest import ServiceDb
from tests.unit.samples import file_submitted


async def cli(*args: str, env: dict[str, str] | None = None) -> Result:
    return await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env)


async def emit(db: ServiceDb, *file_ids: str) -> None:
    for file_id in file_ids:
        async with db.uow() as uow:
            uow.emit(topics.FILES_SUBMITTED, file_submitted(file_id=file_id))
            await uow.commit()


async def test_backlog_counts_pending_rows_and_their_oldest_age(
    intake_db: ServiceDb, assignment_db: ServiceDb
) -> None:
    await emit(intake_db, "GU-2025-BACKLOGA", "GU-2025-BACKLOGB")
    an_hour_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    await intake_db.execute(
        sa.update(intake_db.tables.outbox)
        .where(intake_db.tables.outbox.c.key == "GU-2025-BACKLOGA")
        .values(created_at=an_hour_ago)
    )

    result = await cli(
        "outbox", "backlog", "--json",
        "--database-url", f"intake={intake_db.url}",
        "--database-url", f"assignment={assignment_db.url}",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = {row["service"]: row for row in json.loads(result.stdout)}
    assert rows["intake"]["pending"] == 2
    assert rows["intake"]["by_topic"] == {topics.FILES_SUBMITTED: 2}
    assert 3590 < rows["intake"]["oldest_age_seconds"] < 3700
    assert rows["assignment"] == {
        "service": "assignment", "pending": 0, "oldest": None, "oldest_age_seconds": None,
        "by_topic": {},
    }  # fmt: skip

    human = await cli("outbox", "backlog", "--database-url", f"intake={intake_db.url}")
    assert (
        human.exit_code == 0 and "intake" in human.stdout and "files.submitted: 2" in human.stdout
    )


async def test_databases_come_from_the_environment(intake_db: ServiceDb) -> None:
    await emit(intake_db, "GU-2025-BACKLOGC")
    result = await cli(
        "outbox", "backlog", "--json", env={"GUICHET_INTAKE_DATABASE_URL": intake_db.url}
    )
    assert result.exit_code == 0, result.output
    assert [(r["service"], r["pending"]) for r in json.loads(result.stdout)] == [("intake", 1)]


def test_database_names() -> None:
    assert databases_from_env(
        {"GUICHET_ADAPTER_CAF_DATABASE_URL": "sqlite:///a.db", "GUICHET_TEST_POSTGRES_URL": "x"}
    ) == {"adapter-caf": "sqlite:///a.db"}
    assert parse_database_options(
        ["sqlite+aiosqlite:///var/data/intake.db", "web=sqlite:///w.db"]
    ) == {
        "intake": "sqlite+aiosqlite:///var/data/intake.db",
        "web": "sqlite:///w.db",
    }


async def test_errors_are_plain_messages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.endswith("_DATABASE_URL"):
            monkeypatch.delenv(name)
    missing = await cli("outbox", "backlog", "--database-url", f"x=sqlite:///{tmp_path}/none.db")
    assert missing.exit_code == 1 and "no SQLite database at" in missing.stderr
    empty = tmp_path / "empty.db"
    empty.touch()
    no_table = await cli("outbox", "backlog", "--database-url", f"x=sqlite:///{empty}")
    assert no_table.exit_code == 1 and "cannot read the outbox table" in no_table.stderr
    nothing = await cli("outbox", "backlog", env={})
    assert nothing.exit_code == 1 and "no database" in nothing.stderr
