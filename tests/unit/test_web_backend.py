"""Issue 18 §4-5: the web's client of intake and assignment (web.backend), against a fake
pair of services over httpx's mock transport: every call goes to its route with the
person's own credentials (token, the proof of that very file), the client's address and the
trace; a refusal comes back as a BackendError carrying the service's French message and
field errors; an answer that is not the service's (a proxy's 502 page, a timeout) becomes
a plain French message."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from web.backend import (
    CLIENT_ADDRESS,
    CREDENTIALS,
    Backend,
    BackendError,
    Credentials,
    ForwardClientAddress,
)

UNAVAILABLE = "Le service est momentanément indisponible. Réessayez dans quelques instants."


class Services:
    """intake and assignment as the web sees them: every request recorded, each answered
    by `answer` (200 with an empty object unless told otherwise)."""

    def __init__(self) -> None:
        self.seen: list[httpx.Request] = []
        self.answer = httpx.Response(200, json={})

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        return self.answer

    @property
    def last(self) -> httpx.Request:
        return self.seen[-1]


@pytest.fixture
async def services() -> AsyncIterator[tuple[Backend, Services]]:
    fake = Services()
    backend = Backend(
        "http://intake.test", "http://assignment.test", transport=httpx.MockTransport(fake)
    )
    yield backend, fake
    await backend.close()


# --------------------------------------------------------------------------- each call's route

CALLS = [
    ("life_events", (), "GET", "intake", "/api/life-events", None),
    ("file_view", ("GU-1",), "GET", "intake", "/api/files/GU-1", None),
    ("file_record", ("GU-1",), "GET", "intake", "/api/files/GU-1/record", None),
    ("file_contact", ("GU-1",), "GET", "intake", "/api/files/GU-1/contact", None),
    ("my_files", (), "GET", "intake", "/api/me/files", None),
    ("registered_files", (), "GET", "intake", "/api/me/registered-files", None),
    (
        "request_referent_change",
        ("GU-1", "Je déménage."),
        "POST",
        "intake",
        "/api/files/GU-1/referent-change",
        {"reason": "Je déménage."},
    ),
    ("request_access_code", ("GU-1",), "POST", "intake", "/api/files/GU-1/access-codes", None),
    (
        "verify_access_code",
        ("GU-1", "123456"),
        "POST",
        "intake",
        "/api/files/GU-1/access-codes/verify",
        {"code": "123456"},
    ),
    (
        "send_thanks",
        ("GU-1", "Merci !"),
        "POST",
        "intake",
        "/api/files/GU-1/thanks",
        {"message": "Merci !"},
    ),
    ("agent_thanks", ("AG-1",), "GET", "intake", "/api/agents/AG-1/thanks", None),
    (
        "answer_survey",
        ("GU-1", {"score": 5}),
        "POST",
        "intake",
        "/api/files/GU-1/survey",
        {"score": 5},
    ),
    ("messages_to_citizen", ("GU-1",), "GET", "intake", "/api/files/GU-1/messages", None),
    ("indicators", (), "GET", "intake", "/api/indicators", None),
    ("assignment_record", ("GU-1",), "GET", "assignment", "/api/files/GU-1/assignment", None),
    ("agent_card", ("AG-1",), "GET", "assignment", "/api/agents/AG-1", None),
    ("portfolio", ("AG-1",), "GET", "assignment", "/api/agents/AG-1/portfolio", None),
    ("waiting_files", (), "GET", "assignment", "/api/supervision/waiting", None),
    ("portfolios", (), "GET", "assignment", "/api/supervision/portfolios", None),
    ("stuck_requests", (), "GET", "assignment", "/api/supervision/stuck-requests", None),
    (
        "file_stuck_requests",
        ("GU-1",),
        "GET",
        "assignment",
        "/api/files/GU-1/stuck-requests",
        None,
    ),
    ("file_appointments", ("GU-1",), "GET", "assignment", "/api/files/GU-1/appointments", None),
    (
        "appointment_slots",
        ("GU-1",),
        "GET",
        "assignment",
        "/api/files/GU-1/appointments/slots",
        None,
    ),
    (
        "book_appointment",
        ("GU-1", "2027-03-02T08:30:00+00:00"),
        "POST",
        "assignment",
        "/api/files/GU-1/appointments",
        {"starts_at": "2027-03-02T08:30:00+00:00"},
    ),
    (
        "move_appointment",
        ("GU-1", "RDV-1", "2027-03-03T08:30:00+00:00"),
        "POST",
        "assignment",
        "/api/files/GU-1/appointments/RDV-1/move",
        {"starts_at": "2027-03-03T08:30:00+00:00"},
    ),
    (
        "cancel_appointment",
        ("GU-1", "RDV-1", None),
        "POST",
        "assignment",
        "/api/files/GU-1/appointments/RDV-1/cancel",
        {"reason": None},
    ),
    ("agent_appointments", ("AG-1",), "GET", "assignment", "/api/agents/AG-1/appointments", None),
    (
        "add_personal_word",
        ("GU-1", "Bonne continuation."),
        "PUT",
        "assignment",
        "/api/files/GU-1/personal-word",
        {"text": "Bonne continuation."},
    ),
]


@pytest.mark.parametrize(
    "method_name, args, verb, service, path, body", CALLS, ids=[c[0] for c in CALLS]
)
async def test_each_call_goes_to_its_route_and_returns_the_services_json(
    services, method_name, args, verb, service, path, body
):
    backend, fake = services
    fake.answer = httpx.Response(200, json={"ok": method_name})

    answer = await getattr(backend, method_name)(*args)

    assert answer == {"ok": method_name}
    sent = fake.last
    assert (sent.method, sent.url.host, sent.url.path) == (verb, f"{service}.test", path)
    assert (json.loads(sent.content) if sent.content else None) == body


async def test_query_parameters_of_the_record_and_the_deadlines(services):
    backend, fake = services
    await backend.file_record("GU-1", reason="instruction du dossier")
    assert fake.last.url.params["reason"] == "instruction du dossier"
    await backend.deadlines_at_risk(7)
    assert fake.last.url.path == "/api/supervision/deadlines"
    assert fake.last.url.params["within_days"] == "7"


async def test_query_parameters_of_the_slots_and_the_day(services):
    backend, fake = services
    await backend.appointment_slots("GU-1")
    assert not fake.last.url.params  # assignment's defaults: from tomorrow, its horizon
    await backend.appointment_slots("GU-1", dt.date(2027, 3, 15), 7)
    assert dict(fake.last.url.params) == {"from": "2027-03-15", "days": "7"}
    await backend.agent_appointments("AG-1", dt.date(2027, 3, 2))
    assert dict(fake.last.url.params) == {"day": "2027-03-02"}
    await backend.cancel_appointment("GU-1", "RDV-1", "Empêchement.")
    assert json.loads(fake.last.content) == {"reason": "Empêchement."}


async def test_a_refusal_raised_as_fastapis_detail_keeps_its_french_message(services):
    backend, fake = services
    taken = "Ce créneau vient d'être réservé par quelqu'un d'autre. Choisissez-en un autre."
    fake.answer = httpx.Response(409, json={"detail": taken})
    with pytest.raises(BackendError) as refused:
        await backend.book_appointment("GU-1", "2027-03-02T08:30:00+00:00")
    assert (refused.value.status, refused.value.message) == (409, taken)
    # Only a refusal's: FastAPI's own "Not Found" is no message for a person.
    fake.answer = httpx.Response(404, json={"detail": "Not Found"})
    with pytest.raises(BackendError) as missing:
        await backend.file_appointments("GU-1")
    assert missing.value.message == UNAVAILABLE


async def test_a_file_and_a_message_carry_an_idempotency_key_the_same_key_when_given(services):
    backend, fake = services
    await backend.submit_file({"life_event": "naissance"}, idempotency_key="form-42")
    assert fake.last.headers["Idempotency-Key"] == "form-42"
    assert json.loads(fake.last.content) == {"life_event": "naissance"}
    await backend.submit_file({"life_event": "naissance"})
    await backend.submit_file({"life_event": "naissance"})
    generated = [r.headers["Idempotency-Key"] for r in fake.seen[-2:]]
    assert len(set(generated)) == 2 and all(len(k) == 36 for k in generated)

    await backend.send_message_to_citizen("GU-1", "Bonjour", idempotency_key="msg-1")
    assert fake.last.url.path == "/api/files/GU-1/messages"
    assert fake.last.headers["Idempotency-Key"] == "msg-1"
    assert json.loads(fake.last.content) == {"text": "Bonjour"}


async def test_a_document_is_sent_as_a_form_with_its_agency(services):
    backend, fake = services
    await backend.upload_document("GU-1", "arret.pdf", b"%PDF-1.4", "application/pdf", "cpam")
    sent = fake.last
    assert (sent.method, sent.url.path) == ("POST", "/api/files/GU-1/documents")
    assert sent.headers["Content-Type"].startswith("multipart/form-data")
    assert b'name="agency"\r\n\r\ncpam' in sent.content
    assert b'filename="arret.pdf"' in sent.content and b"%PDF-1.4" in sent.content
    await backend.upload_document("GU-1", "arret.pdf", b"%PDF-1.4", "application/pdf")
    assert b'name="agency"' not in fake.last.content


async def test_the_contact_change_carries_the_proof_it_is_given(services):
    backend, fake = services
    body = {"preferred_channel": "sms", "phone": "0612345678", "postcode": "93200"}
    await backend.change_contact_preferences("GU-1", body, "preuve-1")
    assert (fake.last.method, fake.last.url.path) == ("PUT", "/api/files/GU-1/contact-preferences")
    assert fake.last.headers["X-Access-Proof"] == "preuve-1"
    assert json.loads(fake.last.content) == body
    await backend.change_contact_preferences("GU-1", body, None)
    assert "X-Access-Proof" not in fake.last.headers


async def test_the_open_data_csv_is_passed_through_and_a_refusal_is_an_error(services):
    backend, fake = services
    fake.answer = httpx.Response(
        200, text="bureau;delai\n", headers={"Content-Disposition": "attachment"}
    )
    csv = await backend.indicators_csv()
    assert csv.text == "bureau;delai\n" and csv.headers["Content-Disposition"] == "attachment"

    fake.answer = httpx.Response(503, json={"message": "Indicateurs en cours de calcul."})
    with pytest.raises(BackendError) as refused:
        await backend.indicators_csv()
    assert (refused.value.status, refused.value.message) == (503, "Indicateurs en cours de calcul.")


# --------------------------------------------------------------------------- refusals


async def test_a_refusal_keeps_the_services_french_message_and_field_errors(services):
    backend, fake = services
    errors = [{"field": "citizen.postcode", "message": "Le code postal doit compter 5 chiffres."}]
    fake.answer = httpx.Response(
        422, json={"message": "Le formulaire contient des erreurs.", "errors": errors}
    )

    with pytest.raises(BackendError) as refused:
        await backend.submit_file({})

    assert refused.value.status == 422
    assert refused.value.message == "Le formulaire contient des erreurs."
    assert str(refused.value) == "Le formulaire contient des erreurs."
    assert refused.value.errors == errors


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(502, text="<html>Bad Gateway</html>"),  # a proxy's page, not JSON
        httpx.Response(500, json=["inattendu"]),  # JSON, but not the services' shape
        httpx.Response(503, json={"detail": "down"}),  # no French message to show
    ],
    ids=["not-json", "not-an-object", "no-message"],
)
async def test_an_answer_that_is_not_the_services_becomes_a_plain_french_message(services, answer):
    backend, fake = services
    fake.answer = answer
    with pytest.raises(BackendError) as refused:
        await backend.file_view("GU-1")
    assert (refused.value.status, refused.value.message) == (answer.status_code, UNAVAILABLE)
    assert refused.value.errors == []


async def test_a_created_or_accepted_answer_is_not_an_error(services):
    backend, fake = services
    fake.answer = httpx.Response(202, json={"message": "Un code vous a été envoyé."})
    assert await backend.request_access_code("GU-1") == {"message": "Un code vous a été envoyé."}
    fake.answer = httpx.Response(204)
    with pytest.raises(BackendError) as refused:  # 204 is no answer a page can show
        await backend.file_view("GU-1")
    assert refused.value.message == UNAVAILABLE


# --------------------------------------------------------------------------- who is calling


async def test_calls_carry_the_persons_token_the_files_own_proof_and_their_address(services):
    backend, fake = services
    address = CLIENT_ADDRESS.set("203.0.113.7")
    held = CREDENTIALS.set(Credentials("jeton-de-marie", {"GU-1": "preuve-1", "GU-2": "p2"}))
    try:
        await backend.file_view("GU-1")
        first = fake.last
        await backend.file_view("GU-3")
        other = fake.last
        await backend.my_files()
        mine = fake.last
        await backend.change_contact_preferences("GU-1", {}, "preuve-explicite")
        explicit = fake.last
    finally:
        CREDENTIALS.reset(held)
        CLIENT_ADDRESS.reset(address)

    assert first.headers["Authorization"] == "Bearer jeton-de-marie"
    assert first.headers["X-Forwarded-For"] == "203.0.113.7"
    assert first.headers["X-Access-Proof"] == "preuve-1"  # the proof of that very file
    assert "X-Access-Proof" not in other.headers  # no proof for GU-3: none sent
    assert "X-Access-Proof" not in mine.headers  # not a file's route
    assert explicit.headers["X-Access-Proof"] == "preuve-explicite"  # the caller's wins


async def test_without_a_person_nothing_but_the_trace_is_added(services, tracer):
    backend, fake = services
    with tracer.start_as_current_span("page") as span:
        await backend.life_events()
        trace_id = format(span.get_span_context().trace_id, "032x")
    sent = fake.last
    assert "Authorization" not in sent.headers and "X-Forwarded-For" not in sent.headers
    assert sent.headers["traceparent"].split("-")[1] == trace_id  # the page's trace goes on


async def test_the_pages_address_comes_from_a_trusted_proxy_only_and_is_reset_after():
    seen: list[tuple[str | None, Credentials | None]] = []

    async def page(scope: Any, receive: Any, send: Any) -> None:
        seen.append((CLIENT_ADDRESS.get(), CREDENTIALS.get()))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    app = ForwardClientAddress(page, trusted=[ipaddress.ip_network("10.0.0.5/32")])
    forwarded = {"X-Forwarded-For": "198.51.100.23"}
    for peer in ("10.0.0.5", "192.0.2.9"):
        transport = httpx.ASGITransport(app=app, client=(peer, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://web") as client:
            assert (await client.get("/", headers=forwarded)).status_code == 200

    assert [address for address, _ in seen] == ["198.51.100.23", "192.0.2.9"]
    assert all(c == Credentials() for _, c in seen)  # an empty one, for the guard to fill
    assert CLIENT_ADDRESS.get() is None and CREDENTIALS.get() is None


async def test_other_protocols_pass_through_untouched():
    calls: list[str] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        calls.append(scope["type"])
        assert CLIENT_ADDRESS.get() is None

    await ForwardClientAddress(inner)({"type": "lifespan"}, None, None)
    assert calls == ["lifespan"]
