"""Routes of the file's thread: the citizen writes to their référent (with attachments),
the citizen and the file's agents read the thread and its attachments."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, File, Form, Header, Response, UploadFile
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from guichet_runtime.clock import Clock
from guichet_runtime.policy import Policy, requires
from guichet_runtime.service import Runtime
from intake.api.access import Access
from intake.api.limits import Limits
from intake.commands.thread import WriteToReferent, write_to_referent
from intake.domain import MAX_DOCUMENT_BYTES
from intake.domain.promise import DEFAULT_WORKING_DAYS
from intake.domain.thread import MAX_ATTACHMENTS, Upload
from intake.schemas import CitizenMessageOut, ThreadEntry
from intake.views import thread as views


def router(runtime: Runtime, limits: Limits, access: Access) -> APIRouter:
    api = APIRouter()
    file_citizen = requires(Policy.FILE_CITIZEN, access.file())
    file_reader = requires(Policy.FILE_READ, access.file())
    settings = getattr(runtime, "settings", None)  # tests mount the routes on a bare database
    promise_days = getattr(settings, "message_answer_working_days", DEFAULT_WORKING_DAYS)
    clock = Clock(getattr(settings, "clock_file", None))

    @api.post(
        "/files/{file_id}/citizen-messages",
        status_code=201,
        response_model=CitizenMessageOut,
        # The guard before the file's count: a refused outsider spends none of its quota.
        dependencies=[
            limits.per_client("citizen_messages_per_client"),
            file_citizen,
            limits.per_file("citizen_messages_per_file"),
        ],
    )
    async def write_to_referent_route(
        file_id: str,
        text: str = Form(default="", description="Le message, en texte simple (2000 caractères)."),
        fichier: list[UploadFile] | None = File(
            default=None,
            description=f"Jusqu'à {MAX_ATTACHMENTS} pièces jointes : PDF, JPEG ou PNG, "
            "512 Ko au plus chacune.",
        ),
        idempotency_key: str | None = Header(default=None, alias="Idempotency-Key", max_length=200),
    ) -> Any:
        """The file's citizen writes to their référent (the agent covering an absence while
        it lasts): the answer says who will answer; the message joins the file's thread."""
        uploads = [
            Upload(f.filename or "piece", f.content_type, await f.read(MAX_DOCUMENT_BYTES + 1))
            for f in (fichier or [])
            if f.filename or f.size
        ]
        message, created = await write_to_referent(
            WriteToReferent(file_id, text, uploads, idempotency_key, promise_days, clock.now()),
            runtime.uow(),
        )
        headers = {} if created else {"Idempotent-Replayed": "true"}
        return JSONResponse(status_code=201, content=jsonable_encoder(message), headers=headers)

    @api.get(
        "/files/{file_id}/thread", response_model=list[ThreadEntry], dependencies=[file_reader]
    )
    async def thread(file_id: str) -> Any:
        """The file's thread, oldest first: the citizen's messages (with who answers them and
        their attachments) and the référent's (with the channel that delivered each)."""
        return await views.thread_of(runtime.uow(), file_id)

    @api.get(
        "/files/{file_id}/attachments/{attachment_id}",
        response_class=Response,
        dependencies=[file_reader],
    )
    async def attachment(file_id: str, attachment_id: str) -> Response:
        """One document the citizen attached to a message, as they sent it."""
        row = await views.attachment_of(runtime.uow(), file_id, attachment_id)
        return Response(
            content=row.content,
            media_type=row.media_type,
            headers={
                "Content-Disposition": f'attachment; filename="{row.attachment_id}"',
                "X-Content-Type-Options": "nosniff",
            },
        )

    return api
