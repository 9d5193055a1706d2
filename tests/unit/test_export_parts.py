"""The citizen's export parts served by assignment and notification ("Mes données", RGPD
art. 15; docs/data-protection.md, "The citizen's rights"): what each holds about the file's
citizen, and the citizen recognised by intake on the caller's own credentials
(guichet_runtime.file_citizen)."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest
from starlette.requests import Request

from assignment import citizen_export as assignment_export
from assignment.commands import directory_import
from assignment.projections.files import on_file_submitted
from assignment.settings import DEFAULT_DIRECTORY
from guichet_runtime.auth.principal import Principal, PrincipalKind
from guichet_runtime.file_citizen import INTAKE_UNREACHABLE, FileCitizenCheck
from guichet_runtime.policy import Policy, decide
from guichet_runtime.refusals import RefusalKind, Refused
from notification import citizen_export as notification_export
from tests.unit.samples import decision, file_submitted

FILE = "GU-2026-PARTS001"
MARIE = Principal(kind=PrincipalKind.CITIZEN, subject="sub-marie")


# --------------------------------------------------------------------------- the parts


async def test_assignment_serves_its_copy_the_referents_and_why_the_requests_and_answers(
    assignment_db,
) -> None:
    await directory_import.seed_directory(assignment_db.uow(), DEFAULT_DIRECTORY)
    submitted = file_submitted(FILE, agencies=("caf",))
    await on_file_submitted(submitted, assignment_db.uow(("a", str(submitted.event_id))))
    tables = assignment_db.tables
    await assignment_db.execute(  # the CAF answered
        tables.agency_requests.update()
        .where(tables.agency_requests.c.file_id == FILE)
        .values(
            status="repondu",
            answer=decision("caf", amount_eur=412.5).model_dump(mode="json"),
            answered_at=dt.datetime.now(dt.UTC),
        )
    )

    part = await assignment_export.citizen_part(assignment_db.uow(), FILE)

    assert (part["source"], part["file_id"], part["held"]) == (
        "attribution du référent",
        FILE,
        True,
    )
    assert part["citizen"]["email"] == submitted.citizen.email
    assert part["description"] == submitted.description
    [named] = part["referents"]
    [(assigned,)] = [
        (r,)
        for r in await assignment_db.rows(tables.assignments, tables.assignments.c.file_id == FILE)
    ]
    assert (named["agent_id"], named["rule"], named["why"]) == (
        assigned.agent_id,
        assigned.rule,
        assigned.explanation,
    )
    assert named["name"] and named["office"]
    [request] = part["agency_requests"]
    assert (request["agency"], request["answer"]["amount_eur"]) == ("caf", 412.5)
    assert part["personal_word"] is None
    unknown = await assignment_export.citizen_part(assignment_db.uow(), "GU-2026-NOWHERE1")
    assert unknown["held"] is False and "citizen" not in unknown


async def test_notification_serves_every_message_to_the_citizen_not_those_to_agents(
    notification_db,
) -> None:
    tables = notification_db.tables
    now = dt.datetime.now(dt.UTC)
    common = {
        "file_id": FILE,
        "channel": "email",
        "recipient": "marie@example.fr",
        "subject": "Votre référent",
        "body": "Bonjour Marie, …",
        "referent_name": "Claire Martin",
        "status": "envoye",
        "trace_headers": "{}",
        "next_attempt_at": now,
        "created_at": now,
        "sent_at": now,
    }
    await notification_db.execute(
        tables.notifications.insert().values(
            [
                {
                    **common,
                    "notification_id": "n-citizen",
                    "kind": "referent_assigne",
                    "audience": "citoyen",
                },
                {
                    **common,
                    "notification_id": "n-agent",
                    "kind": "remerciement",
                    "audience": "agent",
                    "recipient": "claire.martin@france-services.gouv.fr",
                },
            ]
        )
    )
    await notification_db.execute(
        tables.deliveries.insert().values(
            notification_id="n-citizen",
            file_id=FILE,
            channel="email",
            recipient="marie@example.fr",
            outcome="envoye",
            at=now,
        )
    )
    await notification_db.execute(
        tables.contacts.insert().values(
            file_id=FILE, citizen='{"given_name": "Marie"}', changed_at=now
        )
    )

    part = await notification_export.citizen_part(notification_db.uow(), FILE)

    assert (part["source"], part["held"], part["contact"]) == (
        "notifications",
        True,
        {"given_name": "Marie"},
    )
    [message] = part["messages"]
    assert (message["kind"], message["address"], message["subject"], message["body"]) == (
        "referent_assigne",
        "marie@example.fr",
        "Votre référent",
        "Bonjour Marie, …",
    )
    assert message["sent_at"] == now and message["status"] == "envoye"
    assert [(a["channel"], a["address"], a["outcome"]) for a in message["attempts"]] == [
        ("email", "marie@example.fr", "envoye")
    ]
    nothing = await notification_export.citizen_part(notification_db.uow(), "GU-2026-NOWHERE1")
    assert (nothing["held"], nothing["messages"]) == (False, [])


# --------------------------------------------------------------------------- who may read them


def request_with(**headers: str) -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    return Request({"type": "http", "headers": raw, "path_params": {"file_id": FILE}})


def intake_answering(status: int, seen: list[httpx.Request], message: str = "") -> FileCitizenCheck:
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = {"file_id": FILE, "citizen": True} if status == 200 else {"message": message}
        return httpx.Response(status, json=body)

    client = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    return FileCitizenCheck("http://intake:8000", client)


async def test_the_files_citizen_is_who_intake_recognises_on_the_callers_credentials() -> None:
    seen: list[httpx.Request] = []
    check = intake_answering(200, seen)
    subject = await check.subject(FILE, request_with(Authorization="Bearer marie"), MARIE)
    decide(Policy.FILE_CITIZEN, MARIE, subject)  # passes
    [asked] = seen
    assert asked.url == f"http://intake:8000/api/files/{FILE}/citizen"
    assert asked.headers["Authorization"] == "Bearer marie"
    # Without an account, with the proof of the file's code: passed on to intake as it came.
    anonymous = Principal.anonymous()
    subject = await check.subject(FILE, request_with(**{"X-Access-Proof": "p"}), anonymous)
    decide(Policy.FILE_CITIZEN, anonymous, subject)
    assert seen[-1].headers["X-Access-Proof"] == "p" and "Authorization" not in seen[-1].headers


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (401, RefusalKind.UNAUTHENTICATED),
        (403, RefusalKind.FORBIDDEN),
        (404, RefusalKind.NOT_FOUND),
    ],
)
async def test_intakes_refusal_is_passed_on_in_french(status, kind) -> None:
    check = intake_answering(status, [], "Vous n'avez pas accès à cette ressource.")
    with pytest.raises(Refused) as refused:
        await check.subject(FILE, request_with(Authorization="Bearer paul"), MARIE)
    assert (refused.value.kind, refused.value.message) == (
        kind,
        "Vous n'avez pas accès à cette ressource.",
    )


async def test_intake_unreachable_or_unknown_is_a_503_never_a_pass() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    for check in (
        FileCitizenCheck(
            "http://intake:8000", httpx.AsyncClient(transport=httpx.MockTransport(down))
        ),
        FileCitizenCheck(None),
        intake_answering(500, []),
    ):
        with pytest.raises(Refused) as refused:
            await check.subject(FILE, request_with(Authorization="Bearer marie"), MARIE)
        assert (refused.value.kind, refused.value.message) == (
            RefusalKind.UNAVAILABLE,
            INTAKE_UNREACHABLE,
        )
