"""Minimisation on the wire (issue 13): an agency's request carries only the citizen fields
the catalogue lists for it (the same its adapter declares); events addressed to agents carry
the citizen's name, never a contact. Events recorded before these rules still read."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from adapter_sdk import discovery
from adapter_sdk.declaration import Declaration, citizen_fields_problems
from adapter_sdk.translation import RequestIncomplete, canonical_request
from assignment.commands import directory_import, housekeeping
from assignment.projections import files as assignment
from assignment.projections import legal_clock
from assignment.settings import DEFAULT_DIRECTORY
from intake import projections as intake
from intake.commands.citizen import thank_referent
from intake.commands.files import SubmitFile, submit_file
from intake.schemas import FileIn
from shared_models import (
    CITIZEN_FIELDS,
    EVENT_TYPES,
    AgencyReceiptAcknowledged,
    AgencyRequestIssued,
    CatalogueInvalid,
    CitizenContact,
    CitizenExtract,
    CitizenName,
    DeadlineRule,
    FileSubmitted,
    ReferentAssigned,
    ReferentThanked,
    catalogue,
    citizen_data_for,
    parse_event,
    select_citizen_data,
)
from shared_models.catalogue import load_catalogue
from tests.personal_data import AGENTS_MAY_RECEIVE, MAY_RECEIVE, PROBED_FIELDS, leaks
from tests.unit.samples import citizen, file_submitted, referent

#: The agencies of the repository, each with an adapter.
AGENCIES = ("caf", "dgfip", "france_travail", "cpam", "ants")
CONTACTS = {"email", "phone", "street", "city", "preferred_channel"}


def full_citizen() -> CitizenContact:
    return citizen(street="3 rue de la Paix", city="Saint-Denis", phone="0612345678")


# ------------------------------------------------------------------ the selection rule


def test_only_the_listed_fields_are_selected_and_the_others_do_not_travel():
    extract = select_citizen_data({"given_name", "postcode"}, full_citizen(), "Ma situation.")

    assert json.loads(extract.model_dump_json()) == {"given_name": "Awa", "postcode": "93200"}
    assert extract.carried() == {"given_name", "postcode"}


def test_a_listed_field_the_citizen_did_not_give_travels_as_null():
    extract = select_citizen_data({"family_name", "email"}, citizen(email=None), "…")

    assert json.loads(extract.model_dump_json()) == {"family_name": "Diallo", "email": None}


def test_the_description_is_a_field_like_the_others():
    extract = select_citizen_data({"description"}, full_citizen(), "Licenciée le mois dernier.")

    assert extract.model_dump() == {"description": "Licenciée le mois dernier."}


def test_an_unknown_field_is_refused():
    with pytest.raises(ValueError, match="champs citoyen inconnus : iban"):
        select_citizen_data({"given_name", "iban"}, full_citizen(), "…")


@pytest.mark.parametrize("agency", AGENCIES)
def test_each_agency_gets_exactly_what_the_policy_allows_it(agency, monkeypatch):
    monkeypatch.delenv("GUICHET_CATALOGUE", raising=False)

    extract = citizen_data_for(agency, full_citizen(), "Ma situation.")

    assert set(json.loads(extract.model_dump_json())) == MAY_RECEIVE[agency]
    assert catalogue().citizen_fields_of(agency) == MAY_RECEIVE[agency]
    assert discovery.load(agency).declaration.citizen_fields == MAY_RECEIVE[agency]


def test_the_shipped_catalogue_sends_no_contact_to_the_dgfip_the_cpam_or_the_ants(monkeypatch):
    monkeypatch.delenv("GUICHET_CATALOGUE", raising=False)
    for agency in ("dgfip", "cpam", "ants"):
        assert catalogue().citizen_fields_of(agency) == {"given_name", "family_name", "postcode"}


# ------------------------------------------------------------------ the request event


def request(citizen_part: CitizenExtract) -> AgencyRequestIssued:
    return AgencyRequestIssued(
        file_id="GU-2025-MINIMISE",
        request_id="GU-2025-MINIMISE-dgfip",
        agency="dgfip",
        life_event="demenagement",
        citizen=citizen_part,
        urgent=False,
    )


def test_the_request_record_holds_only_the_selected_fields():
    event = request(citizen_data_for("dgfip", full_citizen(), "Déménagement à Lyon."))

    record = json.loads(event.model_dump_json())

    assert set(record["citizen"]) == {"given_name", "family_name", "postcode"}
    assert "description" not in record and record["schema_version"] == 3
    assert parse_event("AgencyRequestIssued", event.model_dump_json()) == event


def test_a_request_recorded_before_minimisation_still_reads_and_the_adapter_keeps_its_fields():
    """Version 1 carried the whole contact and the description beside it."""
    old = {
        "event_id": "5f0c3d4e-8a1b-4c2d-9e3f-0a1b2c3d4e5f",
        "occurred_at": "2026-11-01T09:00:00Z",
        "schema_version": 1,
        "file_id": "GU-2025-OLDEVENT",
        "request_id": "GU-2025-OLDEVENT-caf",
        "agency": "caf",
        "life_event": "naissance",
        "citizen": full_citizen().model_dump(mode="json"),
        "description": "Naissance de Léa.",
        "urgent": False,
    }

    event = parse_event("AgencyRequestIssued", json.dumps(old))
    assert isinstance(event, AgencyRequestIssued) and event.schema_version == 1
    declared = discovery.load("caf").declaration.citizen_fields
    seen = canonical_request(event, declared, None).citizen

    assert dict(seen) == {
        "given_name": "Awa",
        "family_name": "Diallo",
        "postcode": "93200",
        "description": "Naissance de Léa.",
    }


def test_a_request_without_a_declared_field_is_not_translated():
    """The catalogue and the adapter disagree: the request goes to the dead letters, named."""
    event = request(select_citizen_data({"given_name", "family_name"}, full_citizen(), "…"))

    with pytest.raises(
        RequestIncomplete, match="ne porte pas les champs citoyen déclarés postcode"
    ):
        canonical_request(event, frozenset({"given_name", "family_name", "postcode"}), None)


@pytest.fixture
async def directory(assignment_db):
    await directory_import.seed_directory(assignment_db.uow(), DEFAULT_DIRECTORY)
    return assignment_db


async def test_assignment_puts_on_each_agency_topic_only_the_catalogue_fields(
    directory, monkeypatch
):
    monkeypatch.delenv("GUICHET_CATALOGUE", raising=False)
    event = file_submitted("GU-2025-MINIASSN", citizen=full_citizen())

    await assignment.on_file_submitted(event, directory.uow(("assignment", str(event.event_id))))

    sent = {}
    for row in await directory.outbox():
        record = json.loads(row.payload)
        if row.topic.startswith("agency."):
            sent[record["agency"]] = record
    assert set(sent) == {"france_travail", "caf", "dgfip"}
    for agency, record in sent.items():
        assert set(record["citizen"]) == MAY_RECEIVE[agency], agency
        assert "description" not in record
    assert sent["caf"]["citizen"]["description"] == event.description
    assert sent["dgfip"]["citizen"] == {
        "given_name": "Awa",
        "family_name": "Diallo",
        "postcode": "93200",
    }


# ------------------------------------------------------------------ the catalogue's lists


def write(tmp_path, text: str):
    path = tmp_path / "catalogue.toml"
    path.write_text(text, encoding="utf-8")
    return path


HEAD = '[agencies]\ncaf = "CAF"\n'


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ("", "l'organisme « caf » ne liste pas les champs citoyen qu'il reçoit"),
        ("[citizen_fields]\ncaf = []\n", "l'organisme « caf » ne liste pas les champs citoyen"),
        (
            '[citizen_fields]\ncaf = ["given_name", "nir"]\n',
            "champs citoyen inconnus pour « caf » : nir",
        ),
        (
            '[citizen_fields]\ncaf = ["given_name"]\nurssaf = ["given_name"]\n',
            "[citizen_fields] liste des organismes absents de [agencies] : urssaf",
        ),
    ],
)
def test_every_agency_lists_known_fields_in_the_catalogue(tmp_path, fields, expected):
    with pytest.raises(CatalogueInvalid) as caught:
        load_catalogue(write(tmp_path, HEAD + fields + "[life_events]\n"))
    assert expected in str(caught.value)


def test_an_adapter_declaring_other_fields_than_the_catalogue_is_told_which(tmp_path):
    listed = load_catalogue(
        write(tmp_path, HEAD + '[citizen_fields]\ncaf = ["given_name", "email"]\n[life_events]\n')
    )
    decl = Declaration(
        agency="caf",
        label="CAF",
        life_events=("naissance",),
        citizen_fields=frozenset({"given_name", "postcode"}),
        deadline_rule=DeadlineRule.NONE,
        legal_basis="Code de la sécurité sociale",
        purpose="Prestations familiales",
    )

    assert citizen_fields_problems(decl, listed) == [
        "Champs citoyen déclarés que le catalogue ne transmet pas à l'organisme : postcode "
        "(ajoutez-les à [citizen_fields] du catalogue, ou retirez-les de citizen_fields).",
        "Champs citoyen transmis par le catalogue que la déclaration ne demande pas : email "
        "(retirez-les de [citizen_fields] du catalogue : ils voyageraient pour rien).",
    ]


def test_the_vocabulary_is_the_contact_and_the_description():
    assert set(CITIZEN_FIELDS) == set(CitizenContact.model_fields) | {"description"}
    assert set(CitizenExtract.model_fields) == set(CITIZEN_FIELDS)


# ------------------------------------------------------------------ a name, not contacts


#: Events whose messages go to agents only: the citizen is named, never reachable.
TO_AGENTS = (
    "ReferentThanked",
    "CitizenMessageReminderIssued",
    "CitizenMessageEscalated",
    "DeadlineWarningIssued",
    "LegalDeadlineBreached",
    "ReferentAssignmentDeferred",
)


@pytest.mark.parametrize("event_type", TO_AGENTS)
def test_events_for_agents_carry_the_citizen_name_only(event_type):
    cls = EVENT_TYPES[event_type]
    assert cls.model_fields["citizen"].annotation is CitizenName
    assert cls.model_fields["schema_version"].default == 3


def test_no_other_event_carries_an_agency_or_agent_message_with_contacts():
    """The events that still carry a contact are those whose message reaches the citizen
    (or that change it); docs/data-protection.md lists them and why."""
    with_contact = {
        name
        for name, cls in EVENT_TYPES.items()
        if any(
            f.annotation in (CitizenContact, CitizenContact | None)
            for f in cls.model_fields.values()
        )
    }
    assert with_contact == {
        "FileSubmitted",
        "ReferentAssigned",
        "SupportingDocumentRequested",
        "CoordinatedAnswerIssued",
        "ReferentMessageSent",
        "AccessCodeIssued",
        "ContactPreferencesChanged",
        "ImplicitDecisionRecorded",
        # The citizen is confirmed, reminded and told of a cancellation on their channel.
        "AppointmentBooked",
        "AppointmentCancelled",
        "AppointmentReminderIssued",
    }


def test_thanks_carry_a_name_and_old_thanks_with_a_contact_still_read():
    event = ReferentThanked(
        file_id="GU-2025-THANKSZZ",
        thanks_id="t-1",
        referent=referent(),
        citizen=CitizenName(given_name="Awa", family_name="Diallo"),
        message="Merci !",
    )
    record = json.loads(event.model_dump_json())
    assert record["citizen"] == {"given_name": "Awa", "family_name": "Diallo"}

    old = {**record, "schema_version": 1, "citizen": full_citizen().model_dump(mode="json")}
    read = parse_event("ReferentThanked", json.dumps(old))
    assert isinstance(read, ReferentThanked)
    assert read.citizen == CitizenName(given_name="Awa", family_name="Diallo")
    assert not CONTACTS & set(json.loads(read.model_dump_json())["citizen"])


# ------------------------------------------------------------------ the bytes that travel

#: What the citizen types in the form: every field, a phone with spaces (intake stores it
#: without), a street and a town no agent's office or name contains.
TYPED = {
    "given_name": "Awa",
    "family_name": "Diallo",
    "email": "awa.diallo@example.fr",
    "phone": "07 98 76 54 32",
    "street": "7 impasse des Glycines",
    "postcode": "93200",
    "city": "Pierrefitte-sur-Seine",
    "preferred_channel": "sms",
}
DESCRIPTION = "Licenciée en octobre, je cherche une formation d'aide-soignante près de chez moi."
PERSONAL = {**TYPED, "description": DESCRIPTION}


async def a_file_through_intake_and_assignment(intake_db, assignment_db) -> FileSubmitted:
    """Submitted to intake as typed; its FileSubmitted, with the five agencies, handled by
    assignment (every agency's request is then in assignment's outbox)."""
    form = FileIn.model_validate(
        {"life_event": "perte_emploi", "citizen": TYPED, "description": DESCRIPTION}
    )
    file_id, _ = await submit_file(SubmitFile(form=form), intake_db.uow())
    [submitted] = [e for _, e in await intake_db.outbox_events() if isinstance(e, FileSubmitted)]
    # Intake stores and sends the phone without its spaces: the probes must see that form.
    assert submitted.citizen.phone == "0798765432"
    submitted = submitted.model_copy(update={"agencies": list(AGENCIES)})
    await directory_import.seed_directory(assignment_db.uow(), DEFAULT_DIRECTORY)
    await assignment.on_file_submitted(
        submitted, assignment_db.uow(("assignment", str(submitted.event_id)))
    )
    assert file_id == submitted.file_id
    return submitted


def test_the_probes_see_every_form_of_the_phone_the_street_and_the_town():
    """The probes themselves: a phone in any of its forms, a town in capitals."""
    for written in ("07 98 76 54 32", "0798765432", "+33798765432", "+33 7 98 76 54 32"):
        found = leaks(f'{{"x": "{written}"}}'.encode(), PERSONAL, PROBED_FIELDS)
        assert [f.split(":")[0] for f in found] == ["phone"], written
    assert leaks(b"PIERREFITTE-SUR-SEINE", PERSONAL, ["city"])
    assert leaks(b'{"s": "7 impasse des glycines"}', PERSONAL, ["street"])
    assert leaks(b'{"d": "aide-soignante"}', PERSONAL, ["description"])
    assert leaks(b'{"e": "awa.diallo@example.fr"}', PERSONAL, ["email"])
    assert not leaks(b'{"life_event": "perte_emploi"}', PERSONAL, PROBED_FIELDS)


async def test_no_request_carries_a_personal_value_the_policy_does_not_allow(
    intake_db, assignment_db, monkeypatch
):
    monkeypatch.delenv("GUICHET_CATALOGUE", raising=False)
    await a_file_through_intake_and_assignment(intake_db, assignment_db)

    sent = {
        json.loads(row.payload)["agency"]: row
        for row in await assignment_db.outbox()
        if row.topic.startswith("agency.")
    }
    assert set(sent) == set(AGENCIES)
    for agency, row in sent.items():
        record = json.loads(row.payload)
        assert set(record["citizen"]) == MAY_RECEIVE[agency], agency
        for field in MAY_RECEIVE[agency]:
            expected = {**PERSONAL, "phone": "0798765432"}[field]
            assert record["citizen"][field] == expected, (agency, field)
        raw = row.payload.encode() if isinstance(row.payload, str) else row.payload
        forbidden = set(PROBED_FIELDS) - MAY_RECEIVE[agency]
        assert leaks(raw, PERSONAL, forbidden) == [], agency


async def test_the_agents_events_carry_the_citizens_name_and_nothing_else_of_theirs(
    intake_db, assignment_db, monkeypatch
):
    """Thanks (intake), J-15 and J-7 warnings and the breach (assignment's legal clock),
    and a file waiting for a référent: probed byte by byte for the contact and the words."""
    monkeypatch.delenv("GUICHET_CATALOGUE", raising=False)
    submitted = await a_file_through_intake_and_assignment(intake_db, assignment_db)
    file_id = submitted.file_id
    [assigned] = [
        e for _, e in await assignment_db.outbox_events() if isinstance(e, ReferentAssigned)
    ]
    await intake.on_referent_assigned(assigned, intake_db.uow(("intake", str(assigned.event_id))))
    await thank_referent(file_id, "Merci pour votre aide précieuse.", intake_db.uow())
    receipt = AgencyReceiptAcknowledged(
        file_id=file_id,
        request_id=f"{file_id}-caf",
        agency="caf",
        agency_reference="CAF-1",
        deadline_rule=DeadlineRule.SILENCE_ACCEPTS,
        deadline_months=2,
        occurred_at=dt.datetime(2026, 12, 31, 10, 0, tzinfo=dt.UTC),
    )
    await legal_clock.on_receipt_acknowledged(
        receipt, assignment_db.uow(("assignment", str(receipt.event_id)))
    )
    for day in (dt.date(2027, 2, 13), dt.date(2027, 2, 21), dt.date(2027, 3, 1)):
        await housekeeping.tick_legal_clocks(assignment_db.uow, day)
    # Nobody has room for a second file of the same citizen: it waits, supervisors alerted.
    await assignment_db.execute(
        assignment_db.tables.agents.update().values(
            active_files=assignment_db.tables.agents.c.capacity
        )
    )
    waiting = submitted.model_copy(update={"file_id": "GU-2026-WAITING1"})
    await assignment.on_file_submitted(waiting, assignment_db.uow(("assignment", "waiting")))

    rows = [*await intake_db.outbox(), *await assignment_db.outbox()]
    to_agents = [
        r
        for r in rows
        if r.event_type
        in (
            "ReferentThanked",
            "DeadlineWarningIssued",
            "LegalDeadlineBreached",
            "ReferentAssignmentDeferred",
        )
    ]
    assert sorted(r.event_type for r in to_agents) == [
        "DeadlineWarningIssued",
        "DeadlineWarningIssued",
        "LegalDeadlineBreached",
        "ReferentAssignmentDeferred",
        "ReferentThanked",
    ]
    for row in to_agents:
        record = json.loads(row.payload)
        assert record["citizen"] == {"given_name": "Awa", "family_name": "Diallo"}, row.event_type
        raw = row.payload.encode() if isinstance(row.payload, str) else row.payload
        forbidden = set(PROBED_FIELDS) - AGENTS_MAY_RECEIVE
        assert leaks(raw, PERSONAL, forbidden) == [], row.event_type
