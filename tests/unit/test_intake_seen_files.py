"""Intake's event handlers ask the database whether a file exists once per file, not once
per event (`intake.records.require_file`, `SeenFiles`): a file row is never deleted and
handlers never insert one, so a file found stays found; an unknown file is asked again
every time (it may be opened later by nobody: the event is dead-lettered, never taken for
known), and the memory is bounded."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from intake import projections
from intake.commands.files import SubmitFile, submit_file
from intake.domain import UnknownFile
from intake.records import SeenFiles
from intake.schemas import FileIn
from shared_models import LegalDeadlineSet
from tests.unit.samples import AWA_FORM

FORM = AWA_FORM


def existence_checks(engine) -> list[str]:
    """The `SELECT files.file_id …` statements the engine sends from now on."""
    seen: list[str] = []

    @sa.event.listens_for(engine.sync_engine, "before_cursor_execute")
    def count(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.startswith("SELECT files.file_id \nFROM files"):
            seen.append(statement)

    return seen


def deadline(file_id: str, day: int) -> LegalDeadlineSet:
    return LegalDeadlineSet.model_validate(
        {
            "file_id": file_id,
            "request_id": "req-1",
            "agency": "caf",
            "due_on": f"2027-03-{day:02d}",
            "rule": "silence_vaut_acceptation",
            "state": "en_cours",
            "why": "reception",
        }
    )


async def test_a_files_events_ask_for_it_once(intake_db):
    file_id, _ = await submit_file(SubmitFile(form=FileIn.model_validate(FORM)), intake_db.uow())
    checks = existence_checks(intake_db.engine)

    for day in (4, 5, 6):
        await projections.on_legal_deadline_set(deadline(file_id, day), intake_db.uow())

    assert len(checks) == 1
    [row] = await intake_db.rows("file_agencies", sa.text("agency = 'caf'"))
    assert row.due_on == dt.date(2027, 3, 6)  # every event applied, the last one wins


async def test_an_unknown_file_is_asked_for_every_time_and_refused(intake_db):
    checks = existence_checks(intake_db.engine)

    for _ in range(2):
        with pytest.raises(UnknownFile, match="dossier inconnu : GU-2027-INCONNU1"):
            await projections.on_legal_deadline_set(
                deadline("GU-2027-INCONNU1", 4), intake_db.uow()
            )

    assert len(checks) == 2


def test_the_memory_forgets_the_oldest_beyond_its_capacity():
    seen = SeenFiles(capacity=2)
    for file_id in ("GU-A", "GU-B", "GU-C"):
        seen.add(file_id)
    assert ("GU-A" in seen, "GU-B" in seen, "GU-C" in seen) == (False, True, True)
