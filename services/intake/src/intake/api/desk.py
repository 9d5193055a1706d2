"""Routes of the référent's desk at intake: messages to the citizen, thanks received."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Header
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from guichet_runtime.auth.principal import Principal
from guichet_runtime.policy import Policy, requires
from guichet_runtime.service import Runtime
from intake.api.access import Access
from intake.api.limits import Limits
from intake.commands.messages import send_referent_message
from intake.domain import ONLY_THE_REFERENT_WRITES, unknown_file
from intake.schemas import AgentThanks, MessageIn, MessageOut
from intake.views import files as views


def router(runtime: Runtime, limits: Limits, access: Access) -> APIRouter:
    api = APIRouter()
    referent = requires(Policy.FILE_REFERENT, access.file(), forbidden=ONLY_THE_REFERENT_WRITES)

    @api.get(
        "/agents/{agent_id}/thanks",
        response_model=AgentThanks,
        dependencies=[requires(Policy.AGENT_SELF, access.agent())],
    )
    async def agent_thanks(agent_id: str) -> Any:
        """The thanks a référent received, newest first (their agent space shows them)."""
        return await views.thanks_for_agent(runtime.uow(), agent_id)

    @api.post(
        "/files/{file_id}/messages",
        status_code=201,
        response_model=MessageOut,
        # The guard before the file's count: a refused caller spends none of its quota
        # (FastAPI resolves these in order, and the `who` below reuses the guard's answer).
        dependencies=[
            limits.per_client("messages_per_client"),
            referent,
            limits.per_file("messages_per_file"),
        ],
    )
    async def write_to_citizen(
        file_id: str,
        body: MessageIn,
        idempotency_key: str | None = Header(default=None, alias="Idempotency-Key", max_length=200),
        who: Principal = referent,
    ) -> Any:
        """The file's référent (the token's agent) writes to the citizen: sent on their
        preferred channel (with fallback), signed with the référent's direct contact, shown
        in the file's history."""
        message, created = await send_referent_message(
            file_id, who.agent_id or "", body.text, runtime.uow(), idempotency_key
        )
        headers = {} if created else {"Idempotent-Replayed": "true"}
        return JSONResponse(status_code=201, content=jsonable_encoder(message), headers=headers)

    @api.get(
        "/files/{file_id}/messages",
        response_model=list[MessageOut],
        dependencies=[requires(Policy.FILE_READ, access.file())],
    )
    async def messages_to_citizen(file_id: str) -> Any:
        """The référent's messages to the citizen, oldest first, with the channel that
        delivered each."""
        found = await views.referent_messages_of(runtime.uow(), file_id)
        if found is None:
            raise unknown_file(file_id)
        return found

    return api
