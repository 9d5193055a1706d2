"""The citizen's messages in the référent's inbox: one row per message (a redelivered
event adds nothing), answered by the référent's next message to the citizen."""

from __future__ import annotations

from assignment.tables import citizen_messages
from guichet_runtime.db import UnitOfWork, insert_ignore
from shared_models import CitizenMessageReceived, ReferentMessageSent


async def on_citizen_message_received(event: CitizenMessageReceived, uow: UnitOfWork) -> None:
    async with uow:
        await uow.conn.execute(
            insert_ignore(uow.conn, citizen_messages).values(
                message_id=event.message_id,
                file_id=event.file_id,
                received_at=event.occurred_at,
                addressed_to=event.referent.agent_id,
                attachments=event.attachments,
                remind_at=event.remind_at,
                answer_due_at=event.answer_due_at,
            )
        )
        await uow.commit()


async def on_referent_message_sent(event: ReferentMessageSent, uow: UnitOfWork) -> None:
    """The référent (or their cover) wrote to the citizen: every message received before
    is answered (a redelivered event changes nothing more)."""
    async with uow:
        await uow.conn.execute(
            citizen_messages.update()
            .where(
                citizen_messages.c.file_id == event.file_id,
                citizen_messages.c.answered_at.is_(None),
                citizen_messages.c.received_at <= event.occurred_at,
            )
            .values(answered_at=event.occurred_at, answered_by=event.referent.agent_id)
        )
        await uow.commit()
