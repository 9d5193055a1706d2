"""What référents and supervisors read about files, and the référent's personal word."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from assignment import inbox, views
from assignment.api.access import Access
from assignment.commands import audits, desk
from assignment.commands import inbox as inbox_commands
from assignment.domain import ONLY_THE_REFERENT_READS, ONLY_THE_REFERENT_WRITES
from assignment.schemas import PersonalWordIn
from guichet_runtime.auth.principal import Principal
from guichet_runtime.policy import Policy, requires
from guichet_runtime.service import Runtime


def router(runtime: Runtime) -> APIRouter:
    api = APIRouter(prefix="/api")
    access = Access(runtime)
    referent = requires(Policy.FILE_REFERENT, access.file(), forbidden=ONLY_THE_REFERENT_WRITES)
    supervisor = requires(Policy.SUPERVISOR)
    message_reader = requires(
        Policy.FILE_REFERENT, access.file(), forbidden=ONLY_THE_REFERENT_READS
    )

    agent_self = requires(Policy.AGENT_SELF, access.agent())
    file_supervisor = requires(Policy.FILE_SUPERVISOR, access.file())

    @api.get("/agents/{agent_id}/portfolio")
    async def portfolio(agent_id: str, who: Principal = agent_self) -> Any:
        """The référent's open files, urgent first, then by nearest legal deadline (the
        citizens' names: the reading is in the audit trail)."""
        return await audits.read_portfolio(runtime.uow(), agent_id, who)

    @api.get("/agents/{agent_id}/inbox")
    async def citizen_messages_inbox(agent_id: str, who: Principal = agent_self) -> Any:
        """The citizens' messages waiting for the agent's answer, across the files they
        hold (those they cover during an absence included): urgent files first, then the
        nearest legal deadline, then the longest wait."""
        return await inbox.inbox(runtime.uow(), agent_id)

    @api.post("/files/{file_id}/citizen-messages/read")
    async def citizen_messages_read(file_id: str, who: Principal = message_reader) -> Any:
        """The file's référent (or their cover) has read the citizen's messages."""
        return await inbox_commands.mark_read(runtime.uow(), file_id, who.agent_id or "")

    @api.get("/files/{file_id}/audit")
    async def file_audit(file_id: str, who: Principal = file_supervisor) -> Any:
        """The file's audit trail at assignment (who did what, when and why), for a
        supervisor of the référent's office; this reading is recorded too."""
        return await audits.file_audit_trail(runtime.uow(), file_id, who)

    @api.get("/supervision/waiting")
    async def waiting(who: Principal = supervisor) -> Any:
        """Files waiting for a référent because nobody near has room: the supervisors' alert
        (those of the caller's offices' départements)."""
        return await views.waiting_files(runtime.uow(), who.offices)

    @api.get(
        "/files/{file_id}/assignment", dependencies=[requires(Policy.FILE_AGENTS, access.file())]
    )
    async def assignment_record(file_id: str) -> Any:
        """Who is the référent and why: the rule that decided and the candidates considered."""
        return await views.assignment_record(runtime.uow(), file_id)

    @api.put("/files/{file_id}/personal-word")
    async def personal_word(file_id: str, body: PersonalWordIn, who: Principal = referent) -> Any:
        """The référent's (the token's agent) personal word on the coordinated answer, set or
        replaced until the answer leaves (the answer does not wait for it)."""
        return await desk.set_personal_word(
            runtime.uow(), file_id, who.agent_id or "", body.text, by=who
        )

    @api.delete("/files/{file_id}/personal-word")
    async def withdraw_personal_word(file_id: str, who: Principal = referent) -> Any:
        """The référent withdraws their word before the answer leaves."""
        return await desk.remove_personal_word(runtime.uow(), file_id, who.agent_id or "", by=who)

    return api
