"""The retention job (`python -m intake retention`) with the controllable clock: before a
period ends nothing goes; after it, exactly what docs/data-protection.md's table says goes.
And the table is the declaration (shared_models.retention, shared_models.topics)."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from guichet_runtime.clock import PARIS, Clock
from intake.commands.access import issue_access_code
from intake.commands.documents import submit_document
from intake.commands.retention import apply_retention
from shared_models import CitizenDataErased, ErasureCause, topics
from shared_models.retention import PERIODS, DataKind
from tests.unit.samples import KEYRING
from tests.unit.test_gdpr import PDF, close
from tests.unit.test_intake_access import assign, client, filed, stored

__all__ = ["client"]

ROOT = Path(__file__).resolve().parents[2]
ANSWERED = dt.datetime(2026, 1, 15, 10, 0, tzinfo=dt.UTC)


def on(day: str, tmp_path: Path) -> dt.datetime:
    """Now, on the rehearsal date `day` (the clock file every process reads), at 20:00 in
    Paris: the periods run from the answer's instant (10:00 UTC), so the hour the test runs
    at must not decide (`Clock.now()` keeps the real time of day: after midnight in Paris,
    the 90th day was still before 10:00 UTC and the document stayed)."""
    clock_file = tmp_path / "clock"
    clock_file.write_text(day, encoding="utf-8")
    return dt.datetime.combine(Clock(clock_file).today(), dt.time(20), tzinfo=PARIS).astimezone(
        dt.UTC
    )


async def closed_file_with_a_document(client) -> str:
    file_id = await filed(client, life_event="arret_maladie")
    await assign(client.db, file_id)
    agencies = client.db.tables.file_agencies
    await client.db.execute(
        agencies.update()
        .where(agencies.c.file_id == file_id, agencies.c.agency == "cpam")
        .values(
            status="piece_demandee",
            requested_document={"request_id": "r", "code": "c", "label": "Attestation"},
        )
    )
    await submit_document(file_id, "cpam", "arret.pdf", "application/pdf", PDF, client.db.uow())
    await close(client.db, file_id, at=ANSWERED)
    return file_id


async def documents_of(db, file_id: str) -> int:
    return len(await db.rows(db.tables.documents, db.tables.documents.c.file_id == file_id))


async def test_each_kind_goes_exactly_when_its_period_ends(client, tmp_path):
    db = client.db
    closed = await closed_file_with_a_document(client)
    open_file = await filed(client)
    await assign(db, open_file)
    await issue_access_code(open_file, db.uow(), KEYRING)

    # 89 days after the answer: the document stays; the code (15 minutes) is long expired.
    early = await apply_retention(db.uow, on("2026-04-14", tmp_path))
    assert (early.documents, early.erased_files) == (0, [])
    assert await documents_of(db, closed) == 1
    # 90 days: the document goes; the file's personal data stays.
    documents = await apply_retention(db.uow, on("2026-04-15", tmp_path))
    assert (documents.documents, documents.erased_files) == (1, [])
    assert await documents_of(db, closed) == 0
    assert (await stored(db, closed)).citizen["email"] == "awa@example.fr"
    # The day before two years: still kept.
    kept = await apply_retention(db.uow, on("2028-01-14", tmp_path))
    assert kept.erased_files == []
    # Two years after the answer: erased as on the citizen's request, and the others told.
    erased = await apply_retention(db.uow, on("2028-01-15", tmp_path))
    assert erased.erased_files == [closed]
    row = await stored(db, closed)
    assert (row.citizen, row.description, row.status) == ({}, "", "repondu")
    [event] = [e for _, e in await db.outbox_events() if isinstance(e, CitizenDataErased)]
    assert (event.file_id, event.cause) == (closed, ErasureCause.RETENTION)
    # A file still being processed is never touched, whatever its age.
    assert (await stored(db, open_file)).citizen["email"] == "awa@example.fr"
    assert (await apply_retention(db.uow, on("2030-01-01", tmp_path))).erased_files == []
    log = db.tables.audit.log
    actions = [(r.action, r.actor_kind) for r in await db.rows(log, order_by=log.c.seq)]
    assert actions.count(("retention.applied", "system")) == 5
    assert ("file.data.erased", "system") in actions


async def test_access_codes_go_a_day_after_they_expired(client, tmp_path):
    db = client.db
    file_id = await filed(client)
    await issue_access_code(file_id, db.uow(), KEYRING)
    codes = db.tables.access_codes
    [code] = await db.rows(codes)
    today = dt.datetime.now(dt.UTC)

    kept = await apply_retention(db.uow, today)
    gone = await apply_retention(db.uow, code.expires_at + dt.timedelta(days=1))

    assert (kept.access_codes, gone.access_codes) == (0, 1)
    assert await db.rows(codes) == []


# --------------------------------------------------------------------------- the table


def retention_table() -> dict[str, int]:
    """`data kind` -> days, as docs/data-protection.md's retention table says."""
    text = (ROOT / "docs" / "data-protection.md").read_text(encoding="utf-8")
    section = text.split("<!-- retention -->", 1)[1].split("\n\n", 1)[0]
    found = {}
    rows = [line for line in section.splitlines() if line.startswith("|")]
    for line in rows[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        kind = re.search(r"`([a-z-]+)`", cells[0])
        days = re.search(r"(\d+) jours", cells[1])
        assert kind and days, line
        found[kind.group(1)] = int(days.group(1))
    return found


def test_the_documented_table_is_the_declaration_and_topics_follow_it():
    assert retention_table() == {kind.value: period.days for kind, period in PERIODS.items()}
    events = topics.retention(topics.FILES_SUBMITTED).days
    dead = topics.retention(topics.dead_letter(topics.FILES_SUBMITTED)).days
    assert events == PERIODS[DataKind.EVENT_TOPICS].days
    assert dead == PERIODS[DataKind.DEAD_LETTER_TOPICS].days
    # Every topic carrying personal data is an events or dead-letters topic, kept as above.
    for name in topics.all_topics():
        assert topics.topic_kind(name) in (topics.TopicKind.EVENTS, topics.TopicKind.DEAD_LETTERS)
