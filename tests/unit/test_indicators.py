"""Published indicators: the read model intake keeps from a file's events (redelivery counted
once, reassignments, answers in time, late or by silence), the aggregation on known inputs
(exact medians, percentiles, shares, the small-group rule) on SQLite and PostgreSQL, and the
open-data CSV."""

from __future__ import annotations

import csv
import datetime as dt
import importlib
import io
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from guichet_runtime import migrations
from guichet_runtime.db import AlreadyProcessed, make_engine
from intake import domain, projections
from intake.commands.files import SubmitFile, submit_file
from intake.schemas import FileIn, Indicators
from intake.tables import file_agencies, file_metrics, files, surveys
from intake.views import indicators
from shared_models import (
    AgencyAnswerReceived,
    CoordinatedAnswerIssued,
    DeadlineRule,
    Decision,
    ImplicitDecisionRecorded,
    LegalDeadlineSet,
    NotificationChannel,
    NotificationKind,
    NotificationSent,
    ReferentAssigned,
    RequestedDocument,
)
from tests.unit.conftest import ServiceDb
from tests.unit.samples import AWA_BIRTH_FORM, citizen, decision, referent

FORM = AWA_BIRTH_FORM  # CAF and CPAM
H = dt.timedelta(hours=1)


async def handle(db: ServiceDb, handler, event) -> None:
    await handler(event, db.uow(("intake", str(event.event_id))))


async def metrics_of(db: ServiceDb, file_id: str) -> sa.Row:
    [row] = await db.rows(file_metrics, file_metrics.c.file_id == file_id)
    return row


def sent(file_id: str, at: dt.datetime, kind: NotificationKind, **extra) -> NotificationSent:
    return NotificationSent(
        file_id=file_id,
        occurred_at=at,
        notification_id=f"{file_id}:{kind.value}:{at}",
        kind=kind,
        channel=NotificationChannel.EMAIL,
        subject="Votre dossier",
        referent_name="Yasmine Haddad",
        **extra,
    )


async def test_a_files_delays_office_and_reassignments_are_kept_once_whatever_the_redeliveries(
    intake_db,
):
    file_id, _ = await submit_file(SubmitFile(form=FileIn.model_validate(FORM)), intake_db.uow())
    t0 = (await metrics_of(intake_db, file_id)).submitted_at
    first = ReferentAssigned(
        file_id=file_id,
        occurred_at=t0 + 2 * H,
        referent=referent(),
        rule="proximite",
        explanation="…",
        citizen=citizen(),
    )
    await handle(intake_db, projections.on_referent_assigned, first)
    with pytest.raises(AlreadyProcessed):  # the same event redelivered by the broker
        await handle(intake_db, projections.on_referent_assigned, first)
    other = referent(
        agent_id="AG-93-02-1",
        name="Marc Petit",
        office="France Services Bobigny",
        office_id="FS-93-02",
    )
    for agent, hours in ((referent(), 5), (other, 30)):  # the same référent kept, then a change
        await handle(
            intake_db,
            projections.on_referent_assigned,
            ReferentAssigned(
                file_id=file_id,
                occurred_at=t0 + hours * H,
                referent=agent,
                rule="changement",
                explanation="…",
                citizen=citizen(),
                previous_referent=referent(),
            ),
        )
    # Messages between agents and the access code the citizen asked for are no contact.
    await handle(
        intake_db,
        projections.on_notification_sent,
        sent(file_id, t0 + H, NotificationKind.AGENT_HANDOVER, audience="agent"),
    )
    await handle(
        intake_db,
        projections.on_notification_sent,
        sent(file_id, t0 + 2 * H, NotificationKind.ACCESS_CODE),
    )
    later = sent(file_id, t0 + 9 * H, NotificationKind.REFERENT_CHANGED)
    await handle(intake_db, projections.on_notification_sent, later)
    # A retried earlier message processed after a later one: the earliest stands.
    await handle(
        intake_db,
        projections.on_notification_sent,
        sent(file_id, t0 + 3 * H, NotificationKind.REFERENT_ASSIGNED),
    )
    await handle(
        intake_db,
        projections.on_coordinated_answer_issued,
        CoordinatedAnswerIssued(
            file_id=file_id,
            occurred_at=t0 + dt.timedelta(days=12, hours=6),
            referent=other,
            citizen=citizen(),
            decisions=[],
            text="Bonjour…",
        ),
    )

    row = await metrics_of(intake_db, file_id)
    assert (row.office_id, row.office_name) == (
        "FS-93-01",
        "France Services Saint-Denis",
    )  # the first référent's
    assert (row.referent_delay_s, row.contact_delay_s, row.answer_delay_s) == (
        7200,
        3 * 3600,
        12 * 86400 + 6 * 3600,
    )
    assert (row.reassignments, row.current_agent_id) == (1, "AG-93-02-1")
    assert row.submitted_on == t0.astimezone(ZoneInfo("Europe/Paris")).date()


async def test_agency_answers_in_time_late_by_silence_and_after_a_document_request(intake_db):
    file_id, _ = await submit_file(
        SubmitFile(form=FileIn.model_validate({**FORM, "life_event": "demenagement"})),
        intake_db.uow(),
    )  # CAF, DGFiP, CPAM
    due = dt.date(2026, 12, 15)

    def at(day: int) -> dt.datetime:  # 23:30 UTC is already the next day in Paris
        return dt.datetime(2026, 12, day, 23, 30, tzinfo=dt.UTC)

    for agency, rule in (
        ("caf", DeadlineRule.SILENCE_ACCEPTS),
        ("dgfip", DeadlineRule.SILENCE_REJECTS),
        ("cpam", DeadlineRule.SILENCE_REJECTS),
    ):
        await handle(
            intake_db,
            projections.on_legal_deadline_set,
            LegalDeadlineSet(
                file_id=file_id,
                request_id=f"{file_id}-{agency}",
                agency=agency,
                rule=rule,
                due_on=due,
                state="en_cours",
                why="reception",
            ),
        )
    # The CAF asks for a document (not its answer), then answers on the 14th (15th in Paris:
    # in time).
    piece = RequestedDocument(code="attestation", label="Attestation")
    await handle(
        intake_db,
        projections.on_agency_answer_received,
        AgencyAnswerReceived(
            file_id=file_id,
            request_id=f"{file_id}-caf",
            occurred_at=at(2),
            answer=decision("caf", Decision.DOCUMENT_REQUESTED, requested_document=piece),
        ),
    )
    await handle(
        intake_db,
        projections.on_agency_answer_received,
        AgencyAnswerReceived(
            file_id=file_id, request_id=f"{file_id}-caf", occurred_at=at(14), answer=decision("caf")
        ),
    )
    # The DGFiP answers on the 15th, which is the 16th in Paris: late.
    await handle(
        intake_db,
        projections.on_agency_answer_received,
        AgencyAnswerReceived(
            file_id=file_id,
            request_id=f"{file_id}-dgfip",
            occurred_at=at(15),
            answer=decision("dgfip", Decision.REFUSED),
        ),
    )
    # The CPAM stays silent: implicit rejection; an answer arriving after it changes nothing.
    await handle(
        intake_db,
        projections.on_implicit_decision_recorded,
        ImplicitDecisionRecorded(
            file_id=file_id,
            request_id=f"{file_id}-cpam",
            agency="cpam",
            decision=Decision.IMPLICIT_REJECTION,
            due_on=due,
            decided_on=dt.date(2026, 12, 16),
            referent=referent(),
            citizen=citizen(),
        ),
    )
    await handle(
        intake_db,
        projections.on_agency_answer_received,
        AgencyAnswerReceived(
            file_id=file_id,
            request_id=f"{file_id}-cpam",
            occurred_at=at(17),
            answer=decision("cpam"),
        ),
    )

    rows = {
        r.agency: (r.answered_on, r.decision)
        for r in await intake_db.rows(file_agencies, file_agencies.c.file_id == file_id)
    }
    assert rows == {
        "caf": (dt.date(2026, 12, 15), "accorde"),
        "dgfip": (dt.date(2026, 12, 16), "refuse"),
        "cpam": (dt.date(2026, 12, 16), "rejet_implicite"),
    }
    result = await indicators.compute(intake_db.uow(), min_files=1)
    national = result["national"]
    assert (
        national["deadline_decided"],
        national["deadline_within"],
        national["deadline_share"],
    ) == (3, 1, 0.333)
    assert (national["implicit_acceptances"], national["implicit_rejections"]) == (0, 1)
    by_agency = {
        r["id"]: (r["deadline_within"], r["deadline_decided"], r["implicit_rejections"])
        for r in result["agencies"]
    }
    assert by_agency == {"caf": (1, 1, 0), "dgfip": (0, 1, 0), "cpam": (0, 1, 1)}


# --------------------------------------------------------------------------- aggregation

PARIS_NOON = dt.datetime(2026, 11, 2, 11, 0, tzinfo=dt.UTC)


async def seed(db: ServiceDb) -> None:
    """Office A: 5 files (published); office B: 2 files (not); one file without référent."""
    office_a = [  # (référent hours, contact hours, answer days, reassignments, survey score)
        (1, 2, 10, 0, 5),
        (2, 3, 20, 0, 4),
        (3, 5, 30, 1, 3),
        (4, 8, None, 0, None),
        (10, None, None, 0, None),
    ]
    office_b = [(6, 7, 40, 1, 1), (8, 9, None, 0, 2)]
    specs = (
        [("FS-A", "France Services A", *s) for s in office_a]
        + [("FS-B", "France Services B", *s) for s in office_b]
        + [(None, None, None, None, None, 0, None)]
    )
    async with db.engine.begin() as conn:
        for n, (office, name, ref_h, contact_h, answer_d, moves, score) in enumerate(specs):
            file_id = f"GU-2026-F{n:07d}"
            submitted = PARIS_NOON + dt.timedelta(days=n)  # 2 to 9 November
            await conn.execute(
                files.insert().values(
                    file_id=file_id,
                    life_event="naissance",
                    citizen={},
                    description="…",
                    urgent=False,
                    status="en_cours",
                    created_at=submitted,
                )
            )
            await conn.execute(
                file_metrics.insert().values(
                    file_id=file_id,
                    submitted_at=submitted,
                    submitted_on=submitted.date(),
                    office_id=office,
                    office_name=name,
                    reassignments=moves,
                    current_agent_id=office and "AG",
                    first_referent_at=ref_h and submitted,
                    referent_delay_s=ref_h and ref_h * 3600,
                    first_contact_at=contact_h and submitted,
                    contact_delay_s=contact_h and contact_h * 3600,
                    answered_at=answer_d and submitted,
                    answer_delay_s=answer_d and answer_d * 86400,
                )
            )
            if score:
                await conn.execute(
                    surveys.insert().values(file_id=file_id, score=score, answered_at=submitted)
                )
            # Every file concerns the CAF (in time but for file 1) and, for office A, the CPAM
            # (silence accepted for file 0, no legal rule for the others).
            caf = {
                "deadline_rule": "silence_vaut_rejet",
                "due_on": dt.date(2026, 12, 1),
                "answered_on": dt.date(2026, 12, 2 if n == 1 else 1),
                "decision": "accorde",
            }
            rows = [{"agency": "caf", **caf}]
            if office == "FS-A":
                rows.append(
                    {
                        "agency": "cpam",
                        "deadline_rule": "silence_vaut_acceptation" if n == 0 else "aucune",
                        "due_on": dt.date(2026, 12, 1),
                        "answered_on": dt.date(2026, 12, 2),
                        "decision": "acceptation_implicite" if n == 0 else "accorde",
                    }
                )
            for r in rows:
                await conn.execute(
                    file_agencies.insert().values(
                        file_id=file_id,
                        status="repondu",
                        updated_at=submitted,
                        answered_at=submitted,
                        **r,
                    )
                )


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
async def seeded(request, intake_db, migrated_templates):
    if request.param == "sqlite":
        db = intake_db
    else:  # the same migrations and query on a real PostgreSQL server
        url = request.getfixturevalue("postgres_factory")(f"indicators_{id(request)}")
        await migrations.upgrade(
            Path(importlib.import_module("intake").__file__).parent / "migrations", url
        )
        db = ServiceDb(url, make_engine(url), importlib.import_module("intake.tables"))
    await seed(db)
    yield db
    if db is not intake_db:
        await db.engine.dispose()


async def test_indicators_per_office_agency_and_nation_on_known_inputs(seeded):
    result = await indicators.compute(seeded.uow(), min_files=5)
    Indicators.model_validate(result)  # the documented response shape

    national = result["national"]
    assert (
        national["files"],
        national["referent_count"],
        national["contact_count"],
        national["answer_count"],
    ) == (8, 7, 6, 4)
    # Référent hours 1 2 3 4 6 8 10: median 4, p90 at rank 5.4 -> 8 + 0.4 * 2.
    assert (national["referent_median_hours"], national["referent_p90_hours"]) == (4.0, 8.8)
    # Answer days 10 20 30 40: median 25, p90 at rank 2.7 -> 30 + 0.7 * 10.
    assert (national["answer_median_days"], national["answer_p90_days"]) == (25.0, 37.0)
    assert (national["reassigned"], national["reassignment_rate"]) == (2, round(2 / 7, 3))
    assert (national["satisfaction_answers"], national["satisfaction_mean"]) == (5, 3.0)
    # Legal deadlines: 8 CAF answers, 7 in time; CPAM: 1 implicit acceptance, 4 without rule.
    assert (
        national["deadline_decided"],
        national["deadline_within"],
        national["implicit_acceptances"],
    ) == (9, 7, 1)

    office_a, office_b = result["offices"]
    assert (office_a["label"], office_a["published"], office_a["files"]) == (
        "France Services A",
        True,
        5,
    )
    # Contact hours 2 3 5 8: median 4, p90 at rank 2.7 -> 5 + 0.7 * 3.
    assert (office_a["contact_median_hours"], office_a["contact_p90_hours"]) == (4.0, 7.1)
    assert (office_a["referent_median_hours"], office_a["referent_p90_hours"]) == (3.0, 7.6)
    assert (
        office_a["deadline_decided"],
        office_a["deadline_within"],
        office_a["deadline_share"],
    ) == (6, 4, 0.667)
    assert office_a["reassignment_rate"] == 0.2
    # Only 3 survey answers in office A: the mean is not published, the count is.
    assert (office_a["satisfaction_answers"], office_a["satisfaction_mean"]) == (3, None)
    assert (
        office_b["label"],
        office_b["published"],
        office_b["files"],
        office_b["referent_median_hours"],
    ) == ("France Services B", False, None, None)

    caf, cpam = sorted(result["agencies"], key=lambda r: r["id"])
    assert (caf["id"], caf["files"], caf["deadline_decided"], caf["deadline_within"]) == (
        "caf",
        8,
        8,
        7,
    )
    assert (cpam["id"], cpam["files"], cpam["implicit_acceptances"], cpam["deadline_decided"]) == (
        "cpam",
        5,
        1,
        1,
    )
    assert cpam["referent_median_hours"] == 3.0  # the files the CPAM is concerned by: office A's

    # The period (Paris days of submission): 2 to 4 November holds the first three files.
    early = await indicators.compute(
        seeded.uow(), dt.date(2026, 11, 2), dt.date(2026, 11, 4), min_files=3
    )
    assert (early["national"]["files"], early["national"]["answer_median_days"]) == (3, 20.0)
    assert [o["files"] for o in early["offices"]] == [3]
    empty = await indicators.compute(seeded.uow(), dt.date(2027, 1, 1), None, min_files=1)
    assert (empty["national"]["published"], empty["offices"], empty["agencies"]) == (False, [], [])


def test_percentiles_interpolate_between_the_closest_ranks():
    assert domain.interpolate({0: 7.0}, 1, domain.P90) == 7.0
    assert domain.interpolate({0: 1.0, 1: 3.0}, 2, domain.MEDIAN) == 2.0
    assert domain.interpolate({8: 9.0, 9: 19.0}, 10, domain.P90) == 10.0  # rank 8.1
    assert (
        domain.interpolate({27: 5.0}, 31, domain.P90) == 5.0
    )  # rank 27 exactly: one value fetched


def test_the_open_data_csv_has_french_headers_one_row_per_group_and_hides_small_groups():
    published = {
        "level": "office",
        "id": "FS-A",
        "label": "France Services A ; Saint-Denis",
        "published": True,
        **dict.fromkeys(indicators.FIGURES, 0),
        "files": 12,
        "deadline_share": 0.75,
        "satisfaction_mean": None,
    }
    hidden = {
        "level": "agency",
        "id": "cpam",
        "label": "Assurance Maladie (CPAM)",
        "published": False,
        **dict.fromkeys(indicators.FIGURES),
    }
    national = {**published, "level": "national", "id": None, "label": "France entière"}
    text = indicators.to_csv({"national": national, "offices": [published], "agencies": [hidden]})

    assert text.startswith("niveau;identifiant;libelle;publie;nombre_dossiers;") and text.endswith(
        "\r\n"
    )
    header, *rows = list(csv.reader(io.StringIO(text), delimiter=";"))
    assert len(header) == len(indicators.CSV_COLUMNS) and all(len(r) == len(header) for r in rows)
    by_level = {r[0]: dict(zip(header, r, strict=True)) for r in rows}
    assert list(by_level) == ["national", "espace France Services", "organisme"]
    office = by_level["espace France Services"]
    assert (office["libelle"], office["publie"], office["nombre_dossiers"]) == (
        "France Services A ; Saint-Denis",
        "oui",
        "12",
    )
    assert (office["part_reponses_dans_le_delai_legal"], office["satisfaction_moyenne_sur_5"]) == (
        "0.75",
        "",
    )
    agency = by_level["organisme"]
    assert agency["publie"] == "non" and {agency[c] for c in list(header)[4:]} == {""}
