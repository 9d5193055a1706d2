"""Migration d4a7c2e9b1f3 (assignment's personal texts as JSON, to hold sealed objects): the
rows written before keep their texts, read back as they were, on SQLite and on PostgreSQL;
and the downgrade gives the texts back."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

import assignment
from assignment.tables import assignments, files
from guichet_runtime.db import make_engine
from guichet_runtime.migrations import alembic_config

BEFORE = "b5e2d8f41a07"
SCRIPTS = Path(assignment.__file__).parent / "migrations"
AT = dt.datetime(2026, 11, 30, 12, tzinfo=dt.UTC)
DESCRIPTION = 'J\'ai perdu mon emploi ; "licenciement" économique.'


async def migrate(url: str, revision: str, down: bool = False) -> None:
    step = command.downgrade if down else command.upgrade
    await asyncio.to_thread(step, alembic_config(SCRIPTS, url), revision)


async def execute(url: str, statement: str, **params: object) -> list[sa.Row]:
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            result = await conn.execute(sa.text(statement), params)
            return list(result.all()) if result.returns_rows else []
    finally:
        await engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'assignment.db'}"
    return request.getfixturevalue("postgres_factory")("assignment_sealed_migration")


async def test_texts_written_before_read_back_as_they_were(url):
    await migrate(url, BEFORE)
    await execute(
        url,
        "INSERT INTO offices VALUES ('FS-1', 'Bureau', '1 rue', 'Ville', '93', 48.9, 2.3, 'lundi')",
    )
    await execute(
        url,
        "INSERT INTO agents (agent_id, name, office_id, phone, email, agencies, capacity, "
        "active_files, status) VALUES ('AG-1', 'Agent', 'FS-1', '01', 'a@x.fr', '[]', 10, 1, "
        "'actif')",
    )
    for file_id, word in (("GU-1", "Un mot pour vous."), ("GU-2", None)):
        await execute(
            url,
            "INSERT INTO files (file_id, citizen_key, citizen, agencies, life_event, "
            "life_event_label, description, urgent, status, referent_id, created_at, "
            "personal_word) VALUES (:f, 'email:a@b.fr', '{}', '[]', 'perte_emploi', 'Perte', "
            ":d, false, 'en_cours', 'AG-1', :at, :w)",
            f=file_id,
            d=DESCRIPTION,
            at=AT,
            w=word,
        )
    await execute(
        url,
        "INSERT INTO assignments (file_id, agent_id, rule, explanation, considered, at) "
        "VALUES ('GU-1', 'AG-1', 'proximite', 'Motif : « trop loin »', '[]', :at)",
        at=AT,
    )

    await migrate(url, "head")

    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(sa.select(files).order_by(files.c.file_id))).all()
            [history] = (await conn.execute(sa.select(assignments))).all()
            no_word = await conn.scalar(
                sa.select(sa.func.count()).select_from(files).where(files.c.personal_word.is_(None))
            )
    finally:
        await engine.dispose()
    assert [(r.description, r.personal_word) for r in rows] == [
        (DESCRIPTION, "Un mot pour vous."),
        (DESCRIPTION, None),
    ]
    assert history.explanation == "Motif : « trop loin »"
    assert no_word == 1  # SQL NULL stays NULL

    await migrate(url, BEFORE, down=True)
    back = await execute(url, "SELECT description, personal_word FROM files ORDER BY file_id")
    assert [tuple(r) for r in back] == [(DESCRIPTION, "Un mot pour vous."), (DESCRIPTION, None)]
