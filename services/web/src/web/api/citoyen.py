"""The citizen's pages: declare a life change, follow a file with a one-time code, and the
file page with its actions (documents, contact preferences, thanks, survey, another référent).

A citizen signed in with their account (FranceConnect) opens their files without a code; one
without an account opens a file with a one-time code, whose proof goes with every call about
that file. Intake decides on what is forwarded."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse
from starlette.datastructures import UploadFile

from guichet_runtime.auth.principal import Principal, PrincipalKind
from guichet_runtime.policy import Policy
from web import forms, pages
from web.api import filing
from web.api.deps import BackendClient, Render, Settings, flash, page, redirect
from web.backend import Backend, BackendError
from web.pages import Renderer
from web.settings import WebSettings

log = logging.getLogger(__name__)

NOT_YOURS = (
    "Ce dossier n'est pas rattaché à votre compte : recevez un code pour l'ouvrir, "
    "à l'adresse enregistrée dans le dossier."
)

router = APIRouter()


@router.get("/demarche", response_class=HTMLResponse, dependencies=[page(Policy.SUBMIT_FILE)])
async def new_file_form(request: Request, backend: BackendClient, render: Render) -> HTMLResponse:
    return await filing.new_file_form(request, backend, render, "citizen_new.html", {})


@router.post("/demarche", dependencies=[page(Policy.SUBMIT_FILE)])
async def new_file(request: Request, backend: BackendClient, render: Render) -> Response:
    return await filing.submit(
        request, backend, render, "citizen_new.html", "/demarche/confirmation/{file_id}"
    )


@router.get(
    "/demarche/confirmation/{file_id}",
    response_class=HTMLResponse,
    dependencies=[page(Policy.PUBLIC)],
)
async def submitted(request: Request, file_id: str, render: Render) -> HTMLResponse:
    return render(request, "citizen_submitted.html", {"file_id": file_id})


@router.get("/suivi", response_class=HTMLResponse, dependencies=[page(Policy.ONE_TIME_CODE)])
async def follow_form(request: Request, render: Render, dossier: str = "") -> HTMLResponse:
    return render(request, "citizen_access.html", {"values": {"reference": dossier}, "errors": {}})


@router.post("/suivi", dependencies=[page(Policy.ONE_TIME_CODE)])
async def follow(request: Request, backend: BackendClient, render: Render) -> Response:
    form = await request.form()
    reference = forms.normalise_reference(str(form.get("reference", "")))
    error = forms.reference_error(reference)
    if error is None:
        try:
            await backend.request_access_code(reference)
        except BackendError as refused:
            if refused.status not in (404, 409, 422, 429):
                raise
            error = refused.message
    if error:
        return render(
            request,
            "citizen_access.html",
            {
                "values": {"reference": str(form.get("reference", ""))},
                "errors": {"reference": error},
            },
            status_code=422,
        )
    flash(
        request,
        "Un code à 6 chiffres vient de vous être envoyé par courriel. Il est valable 15 minutes.",
    )
    return redirect(f"/suivi/code?dossier={reference}")


@router.get("/suivi/code", response_class=HTMLResponse, dependencies=[page(Policy.ONE_TIME_CODE)])
async def code_form(request: Request, render: Render, dossier: str = "") -> HTMLResponse:
    return render(request, "citizen_code.html", {"file_id": dossier, "values": {}, "errors": {}})


@router.post("/suivi/code", dependencies=[page(Policy.ONE_TIME_CODE)])
async def code(
    request: Request, backend: BackendClient, render: Render, settings: Settings
) -> Response:
    form = await request.form()
    reference = forms.normalise_reference(str(form.get("reference", "")))
    typed_code = str(form.get("code", ""))
    error = forms.code_error(typed_code)
    if error is None and forms.reference_error(reference):
        return redirect("/suivi")
    verified: dict = {}
    if error is None:
        try:
            verified = await backend.verify_access_code(reference, typed_code)
        except BackendError as refused:
            if refused.status not in (403, 404, 422):
                raise
            error = refused.errors[0]["message"] if refused.errors else refused.message
    if error:
        return render(
            request,
            "citizen_code.html",
            {"file_id": reference, "values": {"code": typed_code}, "errors": {"code": error}},
            status_code=422,
        )
    opened = request.session.setdefault("files", {})
    opened[reference] = time.time() + settings.file_access_minutes * 60
    request.session["files"] = opened
    # Intake's proof that this browser controls the file's channel: changing the contact
    # details needs it.
    proofs = request.session.setdefault("proofs", {})
    proofs[reference] = verified.get("proof")
    request.session["proofs"] = proofs
    return redirect(f"/dossier/{reference}")


@dataclass
class FilePage:
    """The citizen's file page, shown as it is or after one of its forms was refused."""

    request: Request
    file_id: str
    backend: Backend
    render: Renderer
    settings: WebSettings

    @property
    def opened(self) -> bool:
        """Whether the citizen is signed in (intake then says whether the file is theirs), or
        a code opened this file in this browser, not long ago."""
        visitor = getattr(self.request.state, "visitor", None)
        if visitor is not None and visitor.kind is PrincipalKind.CITIZEN:
            return True
        return bool(self.request.session.get("files", {}).get(self.file_id, 0) > time.time())

    @property
    def access_proof(self) -> str | None:
        """The proof of access intake gave when the code was verified in this browser."""
        proof = self.request.session.get("proofs", {}).get(self.file_id)
        return proof if isinstance(proof, str) else None

    def ask_code(self) -> Response:
        return redirect(f"/suivi?dossier={self.file_id}")

    def ask_code_again(self, message: str) -> Response:
        """Intake no longer takes this browser's proof of access: close the file here and
        ask for a new code, saying why."""
        for held in ("files", "proofs"):
            self.request.session[held] = {
                k: v for k, v in self.request.session.get(held, {}).items() if k != self.file_id
            }
        flash(self.request, message, kind="warning")
        return self.ask_code()

    async def show(
        self,
        values: dict[str, str] | None = None,
        errors: dict[str, str] | None = None,
        status: int = 200,
    ) -> HTMLResponse:
        """The page; after a refused form, with the messages and what was typed."""
        backend, file_id = self.backend, self.file_id
        view, record, contact, thread, appointments = await asyncio.gather(
            backend.file_view(file_id),
            backend.assignment_record(file_id),
            backend.file_contact(file_id),
            backend.file_thread(file_id),
            filing.appointments_of(backend, file_id),
            return_exceptions=True,
        )
        if isinstance(view, BaseException):
            raise view
        if isinstance(thread, BaseException):
            log.warning("thread of %s unavailable: %r", file_id, thread)
            thread = None
        deadline = None if isinstance(record, BaseException) else record.get("deadline")
        if isinstance(contact, BaseException):
            log.warning("contact details of %s unavailable: %r", file_id, contact)
            on_record: dict[str, str] = {}
        else:
            on_record = forms.contact_values(contact)
            on_record["phone"] = pages.phone_fr(on_record["phone"])
        return self.render(
            self.request,
            "citizen_file.html",
            {
                "file": view,
                "card": await filing.referent_card(backend, view),
                "deadline": deadline,
                "contact": on_record,
                "values": {
                    "idempotency_key": str(uuid.uuid4()),  # the message form's, kept on refusal
                    **on_record,
                    **(values or {}),
                },
                "thread": thread,
                "appointments": None if isinstance(appointments, BaseException) else appointments,
                "errors": errors or {},
                "thanked": view["thanked"],
                "surveyed": view["survey_answered"],
                "requested": pages.requested_documents(view["agencies"]),
                "document_hint": forms.document_hint(self.settings.document_max_bytes),
            },
            status_code=status,
        )

    async def act(
        self, call: Callable[[], Awaitable[dict]], values: dict[str, str], fields: tuple[str, ...]
    ) -> Response:
        """Send one of the citizen's forms to intake: on success a message on the file page; a
        refusal comes back next to its field (the first one if intake names none), nothing lost."""
        try:
            done = await call()
        except BackendError as refused:
            if refused.status not in (409, 413, 415, 422):
                raise
            errors = (
                forms.file_errors(refused.errors, values, fields)
                if refused.errors
                else {fields[0]: refused.message}
            )
            return await self.show(values, errors, status=refused.status)
        flash(self.request, done["message"])
        return redirect(f"/dossier/{self.file_id}")


def file_page(
    request: Request, file_id: str, backend: BackendClient, render: Render, settings: Settings
) -> FilePage:
    return FilePage(request, file_id, backend, render, settings)


Page = Annotated[FilePage, Depends(file_page)]


@router.get("/mes-dossiers", response_class=HTMLResponse)
async def my_files(
    request: Request,
    backend: BackendClient,
    render: Render,
    visitor: Annotated[Principal, page(Policy.CITIZEN)],
) -> HTMLResponse:
    """The page "Mes dossiers": the files the signed-in citizen submitted with their
    account (intake answers for the forwarded token's citizen only)."""
    return render(request, "citizen_files.html", {"files": await backend.my_files()})


@router.get(
    "/dossier/{file_id}", response_class=HTMLResponse, dependencies=[page(Policy.FILE_READ)]
)
async def citizen_file(file: Page) -> Response:
    if not file.opened:
        return file.ask_code()
    try:
        return await file.show()
    except BackendError as refused:
        if refused.status not in (401, 403):
            raise
        # Not this account's file, or the code's proof is over: a code opens it.
        return file.ask_code_again(NOT_YOURS if refused.status == 403 else refused.message)


@router.post("/dossier/{file_id}/referent", dependencies=[page(Policy.FILE_CITIZEN)])
async def change_referent(request: Request, file_id: str, file: Page) -> Response:
    if not file.opened:
        return file.ask_code()
    values = forms.typed(await request.form(), ("reason",))
    return await file.act(
        lambda: file.backend.request_referent_change(file_id, values["reason"]), values, ("reason",)
    )


@router.post("/dossier/{file_id}/contact", dependencies=[page(Policy.FILE_CITIZEN)])
async def change_contact(request: Request, file_id: str, file: Page) -> Response:
    if not file.opened:
        return file.ask_code()
    values = forms.typed(await request.form(), forms.CONTACT_FIELDS)
    body = forms.contact_body(values)
    try:
        return await file.act(
            lambda: file.backend.change_contact_preferences(file_id, body, file.access_proof),
            values,
            forms.CONTACT_FIELDS,
        )
    except BackendError as refused:
        if refused.status not in (401, 403):
            raise
        return file.ask_code_again(refused.message)


@router.post("/dossier/{file_id}/pieces", dependencies=[page(Policy.FILE_CITIZEN)])
async def upload(request: Request, file_id: str, file: Page) -> Response:
    if not file.opened:
        return file.ask_code()
    form = await request.form()
    values = forms.typed(form, ("agency",))
    document = form.get("document")
    content, name, kind = b"", "", "application/octet-stream"
    if isinstance(document, UploadFile):
        # One byte over the limit is enough for intake to refuse it with its own message.
        content = await document.read(file.settings.document_max_bytes + 1)
        name, kind = document.filename or "", document.content_type or kind
    error = forms.document_error(name, content)
    if error:
        return await file.show(values, {"document": error}, status=422)

    async def send() -> dict:
        try:
            return await file.backend.upload_document(
                file_id, name, content, kind, values["agency"] or None
            )
        except BackendError as refused:
            refused.errors = forms.document_errors(refused.errors, refused.status)
            raise

    return await file.act(send, values, ("document", "agency"))


@router.post("/dossier/{file_id}/merci", dependencies=[page(Policy.FILE_CITIZEN)])
async def thanks(request: Request, file_id: str, file: Page) -> Response:
    if not file.opened:
        return file.ask_code()
    values = forms.typed(await request.form(), ("message",))
    return await file.act(
        lambda: file.backend.send_thanks(file_id, values["message"]), values, ("message",)
    )


@router.post("/dossier/{file_id}/enquete", dependencies=[page(Policy.FILE_CITIZEN)])
async def survey(request: Request, file_id: str, file: Page) -> Response:
    if not file.opened:
        return file.ask_code()
    values = forms.typed(await request.form(), forms.SURVEY_FIELDS)
    body = forms.survey_body(values)
    return await file.act(
        lambda: file.backend.answer_survey(file_id, body), values, forms.SURVEY_FIELDS
    )
