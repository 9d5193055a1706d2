"""The file's thread on the pages: the citizen writes to their référent from their file
page (text and attachments), and anyone who may read the file downloads an attachment
(intake decides on the forwarded credentials)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response
from starlette.datastructures import UploadFile

from guichet_runtime.policy import Policy
from web.api.citoyen import Page
from web.api.deps import BackendClient, page
from web.backend import BackendError

router = APIRouter()

#: The fields of the citizen's message form, in the order refusals are placed.
MESSAGE_FIELDS = ("text", "fichier")


def message_field(status: int, message: str) -> str:
    """Where intake's refusal goes on the form: next to the files for a document refused
    (type, size, how many), else next to the text."""
    return "fichier" if status in (413, 415) or "document" in message else "text"


@router.post("/dossier/{file_id}/messages", dependencies=[page(Policy.FILE_CITIZEN)])
async def write_to_referent(request: Request, file_id: str, file: Page) -> Response:
    if not file.opened:
        return file.ask_code()
    form = await request.form()
    text = str(form.get("text", "") or "")
    key = str(form.get("idempotency_key") or uuid.uuid4())
    attachments = []
    for upload in form.getlist("fichier"):
        if isinstance(upload, UploadFile) and upload.filename:
            # One byte over the limit is enough for intake to refuse it with its own message.
            content = await upload.read(file.settings.document_max_bytes + 1)
            kind = upload.content_type or "application/octet-stream"
            attachments.append((upload.filename, content, kind))

    async def send() -> dict:
        try:
            return await file.backend.write_to_referent(file_id, text, attachments, key)
        except BackendError as refused:
            field = message_field(refused.status, refused.message)
            refused.errors = [{"field": field, "message": refused.message}]
            raise

    # The key is kept with the text: sending again after a failure cannot send twice.
    return await file.act(send, {"text": text, "idempotency_key": key}, MESSAGE_FIELDS)


@router.get(
    "/dossier/{file_id}/pieces-jointes/{attachment_id}", dependencies=[page(Policy.FILE_READ)]
)
async def attachment(file_id: str, attachment_id: str, backend: BackendClient) -> Response:
    found = await backend.thread_attachment(file_id, attachment_id)
    return Response(
        content=found.content,
        media_type=found.headers.get("content-type", "application/octet-stream"),
        headers={
            "Content-Disposition": found.headers.get("content-disposition", "attachment"),
            "X-Content-Type-Options": "nosniff",
        },
    )
