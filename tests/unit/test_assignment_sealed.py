"""Assignment's personal columns sealed with the file's data key (issue 13 §4): the real
SQLite database, real AES-GCM, keys from an in-process `DataKeys` that can shred them.

A file whose record came sealed (the consumer learnt its key: `uow.use_personal_key`) is
stored sealed: the contact, the description, the référent's word, the agencies' answers and
the history's explanations; `citizen_key` is the data key's id. Nothing of the citizen is
left in clear in any column of any table. The use cases and the views open what they need;
once the key is shredded they show the erased form and never crash."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa

from assignment import views
from assignment.commands import desk, directory_import
from assignment.personal_columns import ERASED
from assignment.projections import erasure
from assignment.projections import files as assignment
from assignment.settings import DEFAULT_DIRECTORY
from guichet_runtime.db import UnitOfWork
from guichet_runtime.personal_data import KeyShredded, PersonalData, new_data_key
from shared_models import (
    AgencyAnswerReceived,
    AgencyRequestIssued,
    CitizenDataErased,
    CoordinatedAnswerIssued,
    Decision,
    ReferentAssigned,
    ReferentChangeRequested,
    RequestedDocument,
    is_sealed,
)
from shared_models.events import EVENT_TYPES
from tests.personal_data import PROBED_FIELDS, leaks
from tests.unit.samples import citizen, decision, file_submitted

REASON = "Mon référent ne répond jamais à mes courriels depuis janvier"
WORD = "Courage Madame Quintard-Olivo, votre situation avance bien."
#: The probes: the citizen's values in every form (tests.personal_data), and the reason and
#: word written about them.
CONTACT = citizen(
    given_name="Maëlys",
    family_name="Quintard-Olivo",
    email="maelys.quintard@exemple.fr",
    phone="0781926354",
    street="17 rue des Tanneurs",
    city="Quincieux",
)
PERSONAL = {
    **CONTACT.model_dump(mode="json"),
    "description": "Licenciement chez Tissage Ravinel après onze années : que faire maintenant ?",
}


class Keys:
    """The citizens' data keys, as intake's key service would give them (None: shredded)."""

    def __init__(self) -> None:
        self.keys: dict[str, bytes | None] = {}

    def new(self) -> str:
        key_id, key = new_data_key()
        self.keys[key_id] = key
        return key_id

    async def get(self, key_id: str) -> bytes:
        key = self.keys.get(key_id)
        if key is None:
            raise KeyShredded(key_id)
        return key


class Sealed:
    """Assignment's database with the directory, run with sealing on."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self.keys = Keys()
        self.sealing = PersonalData(self.keys, db.tables.personal_data_key_refs)

    def uow(self, file_id: str | None = None, key_id: str | None = None) -> UnitOfWork:
        """A unit of work as the runtime gives it; with `key_id`, as the consumer hands it
        a record of `file_id` sealed with that key."""
        uow = UnitOfWork(
            self.db.engine, self.db.tables.outbox, self.db.tables.inbox, personal_data=self.sealing
        )
        if file_id is not None and key_id is not None:
            uow.use_personal_key(file_id, key_id)
        return uow

    async def events(self, cls: type) -> list[Any]:
        """The outbox's events of type `cls`, their sealed fields opened."""
        found = []
        for row in await self.db.outbox():
            if row.event_type == cls.event_type:
                event, _ = await self.sealing.open(EVENT_TYPES[row.event_type], row.payload)
                found.append(event)
        return found

    async def dump(self) -> bytes:
        """Every row of every table of the database, as bytes."""
        out = []
        async with self.db.engine.connect() as conn:
            for table in self.db.tables.metadata.sorted_tables:
                for row in (await conn.execute(sa.select(table))).all():
                    out.append(json.dumps([str(v) for v in row], ensure_ascii=False))
        return "\n".join(out).encode()


@pytest.fixture
async def sealed(assignment_db) -> Sealed:
    assert await directory_import.seed_directory(assignment_db.uow(), DEFAULT_DIRECTORY) > 0
    return Sealed(assignment_db)


async def submit(s: Sealed, file_id: str, key_id: str, **overrides: Any) -> ReferentAssigned:
    values = {"citizen": CONTACT, "description": PERSONAL["description"], **overrides}
    event = file_submitted(file_id, **values)
    await assignment.on_file_submitted(event, s.uow(file_id, key_id))
    return next(e for e in await s.events(ReferentAssigned) if e.file_id == file_id)


async def file_row(s: Sealed, file_id: str) -> sa.Row:
    [row] = await s.db.rows("files", s.db.tables.files.c.file_id == file_id)
    return row


async def test_a_sealed_file_leaves_nothing_of_the_citizen_in_clear(sealed):
    key_id = sealed.keys.new()
    assigned = await submit(sealed, "GU-2026-SEALED01", key_id)
    requests = await sealed.events(AgencyRequestIssued)
    # The reason of a change of référent and the référent's word, about the citizen.
    await assignment.on_referent_change_requested(
        ReferentChangeRequested(file_id="GU-2026-SEALED01", requested_by="citoyen", reason=REASON),
        sealed.uow("GU-2026-SEALED01", key_id),
    )
    [_, moved] = await sealed.events(ReferentAssigned)
    await desk.set_personal_word(sealed.uow(), "GU-2026-SEALED01", moved.referent.agent_id, WORD)
    for request in requests[:1]:
        await assignment.on_agency_answer(
            AgencyAnswerReceived(
                file_id=request.file_id,
                request_id=request.request_id,
                answer=decision(request.agency, amount_eur=8127.5, summary="Allocation accordée"),
            ),
            sealed.uow(request.file_id, key_id),
        )

    row = await file_row(sealed, "GU-2026-SEALED01")
    assert is_sealed(row.citizen) and is_sealed(row.description) and is_sealed(row.personal_word)
    assert row.citizen_key == f"key:{key_id}"
    answers = await sealed.db.rows(
        "agency_requests", sealed.db.tables.agency_requests.c.answer.is_not(None)
    )
    assert answers and all(is_sealed(a.answer) for a in answers)
    history = await sealed.db.rows("assignments")
    assert len(history) == 2 and all(is_sealed(h.explanation) for h in history)
    dump = await sealed.dump()
    assert leaks(dump, PERSONAL, PROBED_FIELDS) == []
    for needle in ("référent ne répond jamais", "situation avance", "Allocation", "8127.5"):
        assert needle not in dump.decode(), needle

    # What is sent opens whole: the référent and the agencies get what they did before.
    assert assigned.citizen == CONTACT
    assert requests[0].citizen.family_name == "Quintard-Olivo"
    # The référent's desk reads it opened.
    record = await views.assignment_record(sealed.uow(), "GU-2026-SEALED01")
    assert record["personal_word"]["text"] == WORD
    assert REASON in record["history"][1]["explanation"]
    portfolio = await views.portfolio(sealed.uow(), moved.referent.agent_id)
    assert [f["citizen"] for f in portfolio["files"]] == ["Maëlys Quintard-Olivo"]


async def test_the_coordinated_answer_is_composed_from_the_sealed_columns(sealed):
    key_id = sealed.keys.new()
    assigned = await submit(sealed, "GU-2026-SEALED02", key_id, agencies=("caf", "cpam"))
    await desk.set_personal_word(sealed.uow(), "GU-2026-SEALED02", assigned.referent.agent_id, WORD)
    requests = await sealed.events(AgencyRequestIssued)
    asked = decision(
        "cpam",
        Decision.DOCUMENT_REQUESTED,
        requested_document=RequestedDocument(code="arret_travail", label="Arrêt de travail"),
    )
    by_agency = {r.agency: r for r in requests}
    # The same request for a document, delivered twice: told once (the sealed answer opened
    # to compare).
    for _ in range(2):
        await assignment.on_agency_answer(
            AgencyAnswerReceived(
                file_id="GU-2026-SEALED02",
                request_id=by_agency["cpam"].request_id,
                answer=asked,
            ),
            sealed.uow("GU-2026-SEALED02", key_id),
        )
    for agency in ("caf", "cpam"):
        await assignment.on_agency_answer(
            AgencyAnswerReceived(
                file_id="GU-2026-SEALED02",
                request_id=by_agency[agency].request_id,
                answer=decision(agency, amount_eur=300),
            ),
            sealed.uow("GU-2026-SEALED02", key_id),
        )

    outbox = [r.event_type for r in await sealed.db.outbox()]
    assert outbox.count("SupportingDocumentRequested") == 1
    [answer] = await sealed.events(CoordinatedAnswerIssued)
    assert answer.citizen == CONTACT and answer.personal_word == WORD
    assert sorted(d.agency for d in answer.decisions) == ["caf", "cpam"]
    assert "Bonjour Maëlys Quintard-Olivo" in answer.text


async def test_continuity_follows_the_citizens_data_key(sealed):
    """Same citizen (the same data key: a logged-in citizen's files share it) -> the same
    référent, although nothing of the contact is kept to match them."""
    key_id = sealed.keys.new()
    first = await submit(sealed, "GU-2026-SEALED03", key_id)
    moved = citizen(postcode="75011", email="autre.adresse@example.fr")
    second = await submit(
        sealed, "GU-2026-SEALED04", key_id, citizen=moved, agencies=("caf", "cpam")
    )
    assert second.referent.agent_id == first.referent.agent_id
    assert second.rule == "continuite"
    # Another citizen's key: no continuity, even in the same town.
    other = await submit(sealed, "GU-2026-SEALED05", sealed.keys.new())
    assert other.rule != "continuite"


async def test_once_the_key_is_shredded_the_desk_shows_the_erased_form(sealed):
    key_id = sealed.keys.new()
    await submit(sealed, "GU-2026-SEALED06", key_id)
    await assignment.on_referent_change_requested(
        ReferentChangeRequested(file_id="GU-2026-SEALED06", requested_by="citoyen", reason=REASON),
        sealed.uow("GU-2026-SEALED06", key_id),
    )
    [_, moved] = await sealed.events(ReferentAssigned)
    await desk.set_personal_word(sealed.uow(), "GU-2026-SEALED06", moved.referent.agent_id, WORD)

    sealed.keys.keys[key_id] = None  # intake shreds the key

    portfolio = await views.portfolio(sealed.uow(), moved.referent.agent_id)
    assert [f["citizen"] for f in portfolio["files"]] == [f"{ERASED} {ERASED}"]
    record = await views.assignment_record(sealed.uow(), "GU-2026-SEALED06")
    assert record["personal_word"]["text"] == ERASED
    assert [h["explanation"] for h in record["history"]] == [ERASED, ERASED]
    # A word written now stores nothing personal; the erasure event is handled.
    await desk.set_personal_word(sealed.uow(), "GU-2026-SEALED06", moved.referent.agent_id, WORD)
    assert WORD not in (await sealed.dump()).decode()
    await erasure.on_citizen_data_erased(
        CitizenDataErased(file_id="GU-2026-SEALED06", cause="demande", erased=["contact"]),
        sealed.uow(),
    )
    row = await file_row(sealed, "GU-2026-SEALED06")
    assert row.citizen_key == "erased:GU-2026-SEALED06" and row.personal_word is None


async def test_a_file_without_key_stays_in_clear_and_rows_of_before_read_as_they_are(sealed):
    await assignment.on_file_submitted(
        file_submitted("GU-2026-CLEAR001", citizen=CONTACT), sealed.uow()
    )
    row = await file_row(sealed, "GU-2026-CLEAR001")
    assert row.citizen == CONTACT.model_dump(mode="json")
    assert row.description == file_submitted().description
    assert row.citizen_key == "email:maelys.quintard@exemple.fr"
    [assigned] = await sealed.events(ReferentAssigned)
    assert assigned.citizen == CONTACT
