"""Nothing silently stuck (issue 17 §3): an agency request acknowledged without a decision
for STUCK_REQUEST_DAYS days or more is listed to the supervisors of the file's office, per
agency, and shown on the référent's file; answered, suspended or younger requests are not."""

from __future__ import annotations

import copy
import datetime as dt

import httpx
import pytest
from fastapi import FastAPI
from starlette.requests import Request

from assignment import api, domain
from assignment.commands import directory_import
from assignment.projections import files as assignment
from assignment.projections import legal_clock
from assignment.settings import DEFAULT_DIRECTORY, AssignmentSettings
from guichet_runtime.clock import PARIS
from guichet_runtime.refusals import install_refusals
from shared_models import (
    AgencyAnswerReceived,
    AgencyReceiptAcknowledged,
    AgencyStatusChecked,
    DeadlineRule,
    LegalClockSuspended,
    ReferentAssigned,
    RequestedDocument,
    StatusFinding,
)
from tests.unit import test_web_desk, test_web_indicators
from tests.unit.samples import citizen, decision, file_submitted
from web import pages

TODAY = dt.date(2026, 11, 24)


def test_a_request_is_stuck_from_the_threshold_day_on():
    acknowledged = dt.date(2026, 11, 19)
    assert domain.days_awaiting_decision(acknowledged, TODAY) == 5
    assert domain.is_stuck(acknowledged, TODAY, 5)
    assert not domain.is_stuck(acknowledged, TODAY, 6)
    assert not domain.is_stuck(TODAY, TODAY, 1)
    # a clock that moved back (rehearsal) never counts negative days
    assert domain.days_awaiting_decision(TODAY, acknowledged) == 0


def test_the_threshold_is_a_setting_of_five_days_by_default(monkeypatch):
    assert AssignmentSettings().stuck_request_days == domain.STUCK_REQUEST_DAYS == 5
    monkeypatch.setenv("STUCK_REQUEST_DAYS", "8")
    assert AssignmentSettings().stuck_request_days == 8


def at(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(10), tzinfo=PARIS)


@pytest.fixture
async def client(assignment_db, tokens):
    """Files in Saint-Denis (FS-93-01) and one in Paris (FS-75-01), their France Travail,
    CAF and DGFiP requests acknowledged on various days."""
    db = assignment_db
    await directory_import.seed_directory(db.uow(), DEFAULT_DIRECTORY)
    app = FastAPI()
    install_refusals(app)
    app.include_router(api.views_router(db, lambda: TODAY))
    tokens.install(app, "assignment")

    async def handle(handler, event):
        await handler(event, db.uow(("assignment", str(event.event_id))))

    referents = {}
    for file_id, postcode in (("GU-2026-STUCK093", "93200"), ("GU-2026-STUCK075", "75011")):
        event = file_submitted(
            file_id, citizen=citizen(email=f"{file_id}@example.fr", postcode=postcode)
        )
        await handle(assignment.on_file_submitted, event)
        [named] = [
            e
            for _, e in await db.outbox_events()
            if isinstance(e, ReferentAssigned) and e.file_id == file_id
        ]
        referents[file_id] = named.referent
    acknowledged = {
        ("GU-2026-STUCK093", "france_travail"): 9,  # stuck
        ("GU-2026-STUCK093", "caf"): 6,  # answered since: not stuck
        ("GU-2026-STUCK093", "dgfip"): 2,  # too recent
        ("GU-2026-STUCK075", "france_travail"): 5,  # stuck, on the threshold day
        ("GU-2026-STUCK075", "caf"): 7,  # waits for the citizen's document: not stuck
    }
    for (file_id, agency), days in acknowledged.items():
        await handle(
            legal_clock.on_receipt_acknowledged,
            AgencyReceiptAcknowledged(
                file_id=file_id,
                request_id=f"{file_id}-{agency}",
                agency=agency,
                agency_reference="R",
                deadline_rule=DeadlineRule.SILENCE_REJECTS,
                deadline_months=2,
                occurred_at=at(TODAY - dt.timedelta(days=days)),
            ),
        )
    await handle(
        assignment.on_agency_answer,
        AgencyAnswerReceived(
            file_id="GU-2026-STUCK093",
            request_id="GU-2026-STUCK093-caf",
            answer=decision("caf"),
        ),
    )
    await handle(
        legal_clock.on_clock_suspended,
        LegalClockSuspended(
            file_id="GU-2026-STUCK075",
            request_id="GU-2026-STUCK075-caf",
            agency="caf",
            document=RequestedDocument(code="rib", label="RIB"),
            occurred_at=at(TODAY - dt.timedelta(days=3)),
        ),
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        c.tokens, c.referents, c.handle = tokens, referents, handle
        yield c


async def test_supervisors_see_the_stuck_requests_of_their_offices_per_agency(client):
    saint_denis = client.tokens.supervisor_of("FS-93-01")
    both = client.tokens.supervisor_of("FS-93-01", "FS-75-01")

    mine = (await client.get("/api/supervision/stuck-requests", headers=saint_denis)).json()
    all_of_them = (await client.get("/api/supervision/stuck-requests", headers=both)).json()

    assert mine["threshold_days"] == 5 and mine["count"] == 1
    [request] = mine["requests"]
    assert request["request_id"] == "GU-2026-STUCK093-france_travail"
    assert request["file_id"] == "GU-2026-STUCK093"
    assert request["agency_label"] == "France Travail"
    assert request["acknowledged_on"] == "2026-11-15" and request["days"] == 9
    assert request["referent"] == client.referents["GU-2026-STUCK093"].name
    assert [r["request_id"] for r in all_of_them["requests"]] == [
        "GU-2026-STUCK093-france_travail",
        "GU-2026-STUCK075-france_travail",
    ]
    assert all_of_them["agencies"] == [
        {"agency": "france_travail", "label": "France Travail", "count": 2, "oldest": "2026-11-15"}
    ]


async def test_the_list_is_for_supervisors_only(client):
    tokens = client.tokens
    referent = tokens.agent(client.referents["GU-2026-STUCK093"].agent_id)
    assert (await client.get("/api/supervision/stuck-requests")).status_code == 401
    for caller in (referent, tokens.admin(), tokens.citizen()):
        answer = await client.get("/api/supervision/stuck-requests", headers=caller)
        assert answer.status_code == 403
    elsewhere = tokens.supervisor_of("FS-69-01")
    answer = await client.get("/api/supervision/stuck-requests", headers=elsewhere)
    assert answer.json()["count"] == 0


async def test_the_referent_sees_on_the_file_which_agency_has_not_decided_since_when(client):
    tokens = client.tokens
    url = "/api/files/GU-2026-STUCK093/stuck-requests"
    referent = tokens.agent(client.referents["GU-2026-STUCK093"].agent_id)

    found = (await client.get(url, headers=referent)).json()

    assert [(r["agency"], r["days"], r["stuck"]) for r in found["requests"]] == [
        ("france_travail", 9, True),
        ("dgfip", 2, False),
    ]
    other = tokens.agent(client.referents["GU-2026-STUCK075"].agent_id)
    assert (await client.get(url, headers=other)).status_code == 403
    assert (await client.get(url, headers=tokens.citizen())).status_code == 403
    assert (await client.get(url, headers=tokens.supervisor_of("FS-93-01"))).status_code == 200
    assert (await client.get(url)).status_code == 401
    unknown = "/api/files/GU-0000-INCONNU/stuck-requests"
    assert (await client.get(unknown, headers=referent)).status_code == 404


async def test_the_supervisors_see_what_reconciliation_last_found(client):
    def checked(finding: StatusFinding, checks: int, days_ago: int) -> AgencyStatusChecked:
        return AgencyStatusChecked(
            file_id="GU-2026-STUCK093",
            request_id="GU-2026-STUCK093-france_travail",
            agency="france_travail",
            finding=finding,
            checks=checks,
            occurred_at=at(TODAY - dt.timedelta(days=days_ago)),
        )

    headers = client.tokens.supervisor_of("FS-93-01")
    [before] = (await client.get("/api/supervision/stuck-requests", headers=headers)).json()[
        "requests"
    ]
    await client.handle(legal_clock.on_status_checked, checked(StatusFinding.FAILED, 3, 1))
    await client.handle(legal_clock.on_status_checked, checked(StatusFinding.PENDING, 2, 2))
    [after] = (await client.get("/api/supervision/stuck-requests", headers=headers)).json()[
        "requests"
    ]

    assert before["last_check"] is None
    assert after["last_check"]["finding"] == "echec" and after["last_check"]["checks"] == 3
    assert after["last_check"]["at"].startswith("2026-11-23")


STUCK_FT = {
    "request_id": "GU-2026-STUCK093-france_travail",
    "file_id": "GU-2026-STUCK093",
    "agency": "france_travail",
    "agency_label": "France Travail",
    "acknowledged_on": "2026-11-15",
    "days": 9,
    "due_on": "2027-01-15",
    "life_event_label": "Perte d'emploi",
    "urgent": False,
    "referent": "Camille Martin",
    "office": "Espace France Services de Saint-Denis",
    "last_check": {"at": "2026-11-23T09:00:00+00:00", "finding": "en_instruction", "checks": 3},
}


def test_the_supervision_page_lists_the_stuck_requests_per_agency():
    html = (
        pages.Renderer()
        .env.get_template("supervision.html")
        .render(
            path="/supervision",
            flashes=[],
            waiting={"count": 0, "files": []},
            at_risk={"within_days": 21, "count": 0, "files": []},
            stuck={
                "threshold_days": 5,
                "count": 1,
                "agencies": [
                    {
                        "agency": "france_travail",
                        "label": "France Travail",
                        "count": 1,
                        "oldest": "2026-11-15",
                    }
                ],
                "requests": [STUCK_FT],
            },
            balance={"agents": [], "offices": []},
            chart=pages.load_chart([]),
            indicators={
                "confidentiality": "",
                "min_files": 5,
                "national": test_web_indicators.row("France entière"),
                "offices": [],
                "agencies": [],
            },
            answer_chart=pages.indicator_chart([], "answer_median_days", "j"),
            deadline_chart=pages.indicator_chart([], "deadline_share", "%", maximum=1.0),
        )
    )
    section = html[html.index('id="sans-decision"') : html.index('id="equilibre"')]
    assert "Demandes sans décision depuis 5 jours ou plus : 1" in section
    assert "France Travail (1, la plus ancienne accusée le 15 novembre 2026)" in section
    assert "<td>GU-2026-STUCK093-france_travail</td>" in section and "9 jours" in section
    assert "23 novembre 2026 à 10h00 : toujours en instruction (3 consultations)" in section


def test_the_referents_page_says_since_when_an_agency_has_not_decided():
    context = copy.deepcopy(test_web_desk.FILE)
    context["file"]["agencies"] = [
        {
            "agency": "france_travail",
            "label": "France Travail",
            "status": "transmis",
            "requested_document": None,
        },
        {"agency": "caf", "label": "CAF", "status": "transmis", "requested_document": None},
    ]
    context["stuck"] = {"france_travail": STUCK_FT}
    request = Request({"type": "http", "path": "/", "query_string": b"", "headers": []})
    html = pages.Renderer()(request, "referent_file.html", context).body.decode()

    assert html.count("en attente de décision depuis") == 1
    assert "en attente de décision depuis 9 jours (réception accusée le 15 novembre 2026)" in html
