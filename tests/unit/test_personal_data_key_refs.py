"""The key refs (file id -> data key id) a process knows committed, kept in memory
(guichet_runtime.personal_data.PersonalData.known / learn / file_key)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import sqlalchemy as sa

from guichet_runtime.db import UnitOfWork
from guichet_runtime.personal_data import PersonalData
from shared_models import topics
from tests.unit.test_personal_data import Keys, sealing_service_db, submitted


def test_a_files_key_ref_is_known_to_the_process_once_committed_only(tmp_path: Path):
    """The refs are kept in memory so that every event of a file does not read and write its
    ref again; a ref from a transaction rolled back must not be taken as recorded, or the
    process would skip writing it and, after a restart, emit the file's events unsealed."""

    async def run() -> None:
        engine, outbox, inbox, refs = await sealing_service_db(tmp_path / "s.db")
        keys = Keys()
        data = PersonalData(keys, refs)
        key_id = keys.new()
        statements: list[str] = []
        sa.event.listen(
            engine.sync_engine,
            "before_cursor_execute",
            lambda _c, _cur, statement, *_: statements.append(statement),
        )

        rolled_back = UnitOfWork(engine, outbox, inbox, personal_data=data)
        async with rolled_back:
            rolled_back.use_personal_key("GU-2026-CRYPTO01", key_id)
            rolled_back.emit(topics.FILES_SUBMITTED, submitted())
            await rolled_back._before_commit()  # the ref written, then no commit
        assert data.known("GU-2026-CRYPTO01") is None

        first = UnitOfWork(engine, outbox, inbox, personal_data=data)
        async with first:
            first.use_personal_key("GU-2026-CRYPTO01", key_id)
            first.emit(topics.FILES_SUBMITTED, submitted())
            await first.commit()
        assert data.known("GU-2026-CRYPTO01") == key_id
        async with engine.connect() as conn:
            assert await data.key_of(conn, "GU-2026-CRYPTO01") == key_id

        # Every later event of the file: neither read nor written again, still sealed.
        statements.clear()
        for _ in range(3):
            later = UnitOfWork(engine, outbox, inbox, personal_data=data)
            async with later:
                later.use_personal_key("GU-2026-CRYPTO01", key_id)
                later.emit(topics.FILES_SUBMITTED, submitted())
                await later.commit()
        assert not [s for s in statements if "personal_data_key_refs" in s]

        # Another process (a new PersonalData) reads it once, and knows it after the commit.
        other = PersonalData(keys, refs)
        reading = UnitOfWork(engine, outbox, inbox, personal_data=other)
        async with reading:
            reading.emit(topics.FILES_SUBMITTED, submitted())
            await reading.commit()
        assert other.known("GU-2026-CRYPTO01") == key_id
        async with engine.connect() as conn:
            payloads = [r.payload for r in await conn.execute(sa.select(outbox.c.payload))]
        assert len(payloads) == 5
        assert all(json.loads(p)["citizen"]["key_id"] == key_id for p in payloads)
        await engine.dispose()

    asyncio.run(run())
