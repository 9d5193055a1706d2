"""The other services, over HTTP: one method per backend call, so each page's needs are
visible in one place."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import httpx
from opentelemetry import propagate
from starlette.requests import HTTPConnection

from guichet_runtime.rate_limits import Network, client_address
from guichet_runtime.tls_context import client_tls

#: The address of the citizen (or agent) whose request the page is serving.
CLIENT_ADDRESS: ContextVar[str | None] = ContextVar("client_address", default=None)


@dataclass
class Credentials:
    """What the person in front of the page proves, forwarded with each call made for them:
    their access token (signed in), and the proofs their one-time codes gave, per file."""

    access_token: str | None = None
    proofs: dict[str, str] = field(default_factory=dict)


#: Filled by the page's guard (web.api.deps) for the request being served.
CREDENTIALS: ContextVar[Credentials | None] = ContextVar("credentials", default=None)

#: A file's routes at intake and assignment: the proof for that very file goes with them.
FILE_PATH = re.compile(r"^/api/files/([^/]+)(?:/|$)")


class BackendError(Exception):
    """A service refused the request; `message` and `errors` are already in French."""

    def __init__(
        self,
        status: int,
        message: str,
        errors: list[dict[str, str]] | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors or []
        self.field = field  # the field a refusal names, when it names one


class ForwardClientAddress:
    """Notes who is calling (the peer, or X-Forwarded-For from a trusted proxy), so the
    calls to intake and assignment carry it in X-Forwarded-For: the services' rate limits
    count the citizen, not the web. Also gives the request an empty `Credentials` the
    page's guard fills. Plain ASGI, so the route runs in the same context."""

    def __init__(self, app: Any, trusted: Sequence[Network] = ()) -> None:
        self.app = app
        self.trusted = list(trusted)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = CLIENT_ADDRESS.set(client_address(HTTPConnection(scope), self.trusted))
        held = CREDENTIALS.set(Credentials())
        try:
            await self.app(scope, receive, send)
        finally:
            CREDENTIALS.reset(held)
            CLIENT_ADDRESS.reset(token)


async def forward_caller(request: httpx.Request) -> None:
    """Every call to a service carries the trace, the client's address and the person's own
    credentials (their token; the proof of the file the call is about)."""
    # One trace per file across every hop: the page's span continues in the service.
    propagate.inject(request.headers)
    address = CLIENT_ADDRESS.get()
    if address:
        request.headers["X-Forwarded-For"] = address
    # The services decide on the person's own credentials, never on the web's word.
    credentials = CREDENTIALS.get()
    if credentials is None:
        return
    if credentials.access_token:
        request.headers["Authorization"] = f"Bearer {credentials.access_token}"
    about = FILE_PATH.match(request.url.path)
    if about and "X-Access-Proof" not in request.headers:
        proof = credentials.proofs.get(about.group(1))
        if proof:
            request.headers["X-Access-Proof"] = proof


#: How long an idle connection to a backend is kept for reuse: below the services' own
#: keep-alive (guichet_runtime.service.KEEP_ALIVE_SECONDS), so that the web closes it first.
KEEPALIVE_EXPIRY = 30.0


def _client(
    base_url: str, timeout: float, transport: httpx.AsyncBaseTransport | None
) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=timeout,
        limits=httpx.Limits(max_keepalive_connections=20, keepalive_expiry=KEEPALIVE_EXPIRY),
        event_hooks={"request": [forward_caller]},
        transport=transport,
        verify=client_tls(),
    )


async def _json(response: httpx.Response, ok: tuple[int, ...] = (200, 201, 202)) -> Any:
    if response.status_code in ok:
        return response.json()
    try:
        body = response.json()
    except ValueError:
        body = {}
    message = body.get("message") if isinstance(body, dict) else None
    detail = body.get("detail") if isinstance(body, dict) else None
    if message is None and response.status_code in (409, 422) and isinstance(detail, str):
        message = detail  # a service's refusal raised as HTTPException (French, its own)
    raise BackendError(
        response.status_code,
        message or "Le service est momentanément indisponible. Réessayez dans quelques instants.",
        body.get("errors") if isinstance(body, dict) else None,
        body.get("field") if isinstance(body, dict) else None,
    )


def with_reason(body: dict[str, Any], access_reason: str | None) -> dict[str, Any]:
    """The body, with the agent's reason for acting when they gave one."""
    return body if access_reason is None else {**body, "access_reason": access_reason}


class Backend:
    """Kept-alive clients of intake, assignment and notification."""

    def __init__(
        self,
        intake_url: str,
        assignment_url: str,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        notification_url: str = "http://127.0.0.1:8002",
    ) -> None:
        self.intake = _client(intake_url, timeout, transport)
        self.assignment = _client(assignment_url, timeout, transport)
        self.notification = _client(notification_url, timeout, transport)

    async def close(self) -> None:
        await self.intake.aclose()
        await self.notification.aclose()
        await self.assignment.aclose()

    # -- intake -----------------------------------------------------------------------
    async def life_events(self) -> list[dict]:
        return await _json(await self.intake.get("/api/life-events"))

    async def submit_file(self, body: dict[str, Any], idempotency_key: str | None = None) -> dict:
        headers = {"Idempotency-Key": idempotency_key or str(uuid.uuid4())}
        return await _json(await self.intake.post("/api/files", json=body, headers=headers))

    async def file_view(self, file_id: str) -> dict:
        return await _json(await self.intake.get(f"/api/files/{file_id}"))

    async def file_record(self, file_id: str, reason: str | None = None) -> dict:
        """The citizen's contact and own words, for the file's agents: intake records the
        reading in its audit trail, with `reason` (the page's purpose; required of agents)."""
        params = {"reason": reason} if reason else None
        return await _json(await self.intake.get(f"/api/files/{file_id}/record", params=params))

    async def file_contact(self, file_id: str) -> dict:
        """The citizen's own contact preferences on the file (FILE_CITIZEN)."""
        return await _json(await self.intake.get(f"/api/files/{file_id}/contact"))

    async def my_files(self) -> list[dict]:
        """The signed-in citizen's files (their token says who)."""
        return await _json(await self.intake.get("/api/me/files"))

    async def my_export(self) -> dict:
        """Everything held about the signed-in citizen ("Mes données", their token says who)."""
        return await _json(await self.intake.get("/api/me/export"))

    async def file_export(self, file_id: str) -> dict:
        """Everything held about the file's citizen (FILE_CITIZEN: token or the code's proof)."""
        return await _json(await self.intake.get(f"/api/files/{file_id}/export"))

    async def export_part(self, service: str, file_id: str) -> dict:
        """The part of the citizen's data `service` (assignment, notification) holds about
        one file; it asks intake whether the credentials are the file's citizen's."""
        client = {"assignment": self.assignment, "notification": self.notification}[service]
        return await _json(await client.get(f"/api/files/{file_id}/export"))

    async def erase_file(self, file_id: str) -> dict:
        """The citizen asks for the erasure of their closed file's personal data (they ticked
        the confirmation on the page)."""
        return await _json(
            await self.intake.post(f"/api/files/{file_id}/erasure", json={"confirm": True})
        )

    async def registered_files(self) -> list[dict]:
        """The files the signed-in front-desk agent registered (their token says who)."""
        return await _json(await self.intake.get("/api/me/registered-files"))

    async def request_referent_change(self, file_id: str, reason: str) -> dict:
        return await _json(
            await self.intake.post(f"/api/files/{file_id}/referent-change", json={"reason": reason})
        )

    async def request_access_code(self, file_id: str) -> dict:
        return await _json(await self.intake.post(f"/api/files/{file_id}/access-codes"))

    async def verify_access_code(self, file_id: str, code: str) -> dict:
        return await _json(
            await self.intake.post(f"/api/files/{file_id}/access-codes/verify", json={"code": code})
        )

    async def change_contact_preferences(
        self, file_id: str, body: dict[str, Any], access_proof: str | None
    ) -> dict:
        """With the proof the verified code gave (intake refuses 401 without a live one)."""
        headers = {"X-Access-Proof": access_proof} if access_proof else {}
        return await _json(
            await self.intake.put(
                f"/api/files/{file_id}/contact-preferences", json=body, headers=headers
            )
        )

    async def upload_document(
        self,
        file_id: str,
        filename: str,
        content: bytes,
        content_type: str,
        agency: str | None = None,
    ) -> dict:
        """The document an agency asked for; intake checks its type and size and forwards it."""
        data = {"agency": agency} if agency else {}
        return await _json(
            await self.intake.post(
                f"/api/files/{file_id}/documents",
                files={"fichier": (filename, content, content_type)},
                data=data,
            )
        )

    async def send_thanks(self, file_id: str, message: str) -> dict:
        return await _json(
            await self.intake.post(f"/api/files/{file_id}/thanks", json={"message": message})
        )

    async def write_to_referent(
        self,
        file_id: str,
        text: str,
        attachments: list[tuple[str, bytes, str]],
        idempotency_key: str,
    ) -> dict:
        """The citizen's message to their référent, with its attachments (intake checks
        them); the same Idempotency-Key sent again does not send it twice."""
        return await _json(
            await self.intake.post(
                f"/api/files/{file_id}/citizen-messages",
                data={"text": text},
                files=[("fichier", a) for a in attachments] or None,
                headers={"Idempotency-Key": idempotency_key},
            )
        )

    async def file_thread(self, file_id: str) -> list[dict]:
        """The file's thread, oldest first: the citizen's messages and the référent's."""
        return await _json(await self.intake.get(f"/api/files/{file_id}/thread"))

    async def thread_attachment(self, file_id: str, attachment_id: str) -> httpx.Response:
        """One document the citizen attached to a message (intake decides who reads it)."""
        response = await self.intake.get(f"/api/files/{file_id}/attachments/{attachment_id}")
        if response.status_code != 200:
            await _json(response)
        return response

    async def citizen_inbox(self, agent_id: str) -> dict:
        """The citizens' messages waiting for the agent's answer (assignment)."""
        return await _json(await self.assignment.get(f"/api/agents/{agent_id}/inbox"))

    async def mark_citizen_messages_read(self, file_id: str) -> dict:
        """The file's référent (or their cover) read the citizen's messages."""
        url = f"/api/files/{file_id}/citizen-messages/read"
        return await _json(await self.assignment.post(url))

    async def agent_thanks(self, agent_id: str) -> dict:
        return await _json(await self.intake.get(f"/api/agents/{agent_id}/thanks"))

    async def answer_survey(self, file_id: str, body: dict[str, Any]) -> dict:
        return await _json(await self.intake.post(f"/api/files/{file_id}/survey", json=body))

    # -- assignment ---------------------------------------------------------------------
    async def assignment_record(self, file_id: str) -> dict:
        return await _json(await self.assignment.get(f"/api/files/{file_id}/assignment"))

    async def agent_card(self, agent_id: str) -> dict:
        return await _json(await self.assignment.get(f"/api/agents/{agent_id}"))

    async def portfolio(self, agent_id: str) -> dict:
        return await _json(await self.assignment.get(f"/api/agents/{agent_id}/portfolio"))

    async def waiting_files(self) -> dict:
        return await _json(await self.assignment.get("/api/supervision/waiting"))

    async def portfolios(self) -> dict:
        return await _json(await self.assignment.get("/api/supervision/portfolios"))

    async def deadlines_at_risk(self, within_days: int) -> dict:
        return await _json(
            await self.assignment.get(
                "/api/supervision/deadlines", params={"within_days": within_days}
            )
        )

    async def stuck_requests(self) -> dict:
        """Agency requests acknowledged without a decision for too long (caller's offices)."""
        return await _json(await self.assignment.get("/api/supervision/stuck-requests"))

    async def file_stuck_requests(self, file_id: str) -> dict:
        """The file's agency requests awaiting a decision, and since when."""
        return await _json(await self.assignment.get(f"/api/files/{file_id}/stuck-requests"))

    # -- appointments with the référent (assignment) ---------------------------------------
    async def file_appointments(self, file_id: str) -> dict:
        """The file's référent, its upcoming appointment and every one, newest first."""
        return await _json(await self.assignment.get(f"/api/files/{file_id}/appointments"))

    async def appointment_slots(
        self, file_id: str, start: dt.date | None = None, days: int | None = None
    ) -> dict:
        """The référent's free slots, per day (days without one left out); from tomorrow
        of assignment's clock unless `start` says."""
        params: dict[str, str] = {}
        if start is not None:
            params["from"] = start.isoformat()
        if days is not None:
            params["days"] = str(days)
        url = f"/api/files/{file_id}/appointments/slots"
        return await _json(await self.assignment.get(url, params=params or None))

    async def book_appointment(
        self, file_id: str, starts_at: str, access_reason: str | None = None
    ) -> dict:
        """Book one of the offered slots; 409 when someone took it first. `access_reason`:
        why the agent books (the front desk of the référent's office must say)."""
        url = f"/api/files/{file_id}/appointments"
        body = with_reason({"starts_at": starts_at}, access_reason)
        return await _json(await self.assignment.post(url, json=body))

    async def move_appointment(
        self, file_id: str, appointment_id: str, starts_at: str, access_reason: str | None = None
    ) -> dict:
        """The appointment moved to another slot: the new one (its own id) comes back."""
        url = f"/api/files/{file_id}/appointments/{appointment_id}/move"
        body = with_reason({"starts_at": starts_at}, access_reason)
        return await _json(await self.assignment.post(url, json=body))

    async def cancel_appointment(
        self,
        file_id: str,
        appointment_id: str,
        reason: str | None,
        access_reason: str | None = None,
    ) -> dict:
        url = f"/api/files/{file_id}/appointments/{appointment_id}/cancel"
        body = with_reason({"reason": reason}, access_reason)
        return await _json(await self.assignment.post(url, json=body))

    async def agent_appointments(self, agent_id: str, day: dt.date | None = None) -> dict:
        """The agent's booked appointments of a day (assignment's today unless `day`)."""
        params = {"day": day.isoformat()} if day is not None else None
        url = f"/api/agents/{agent_id}/appointments"
        return await _json(await self.assignment.get(url, params=params))

    # -- the référent desk and the indicators ------------------------------------------------
    async def send_message_to_citizen(
        self, file_id: str, text: str, idempotency_key: str | None = None
    ) -> dict:
        """A message from the référent to the citizen, through their channel (intake); the
        author is whoever the forwarded token names; the same Idempotency-Key sent again
        does not send it twice."""
        headers = {"Idempotency-Key": idempotency_key or str(uuid.uuid4())}
        return await _json(
            await self.intake.post(
                f"/api/files/{file_id}/messages",
                json={"text": text},
                headers=headers,
            )
        )

    async def messages_to_citizen(self, file_id: str) -> list[dict]:
        """The référent's messages to the citizen, oldest first, with the channel that carried
        each."""
        return await _json(await self.intake.get(f"/api/files/{file_id}/messages"))

    async def add_personal_word(self, file_id: str, text: str) -> dict:
        """The référent's personal word on the coordinated answer, until it leaves (assignment);
        the author is whoever the forwarded token names."""
        return await _json(
            await self.assignment.put(f"/api/files/{file_id}/personal-word", json={"text": text})
        )

    async def indicators(self) -> dict:
        """Published indicators per office, per agency and nationally (delays, deadlines,
        satisfaction)."""
        return await _json(await self.intake.get("/api/indicators"))

    async def indicators_csv(self) -> httpx.Response:
        """The open-data CSV as intake serves it (body and Content-Disposition)."""
        response = await self.intake.get("/api/indicators.csv")
        if response.status_code != 200:
            await _json(response)
        return response
