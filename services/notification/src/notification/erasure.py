"""The projection of `CitizenDataErased` (a module beside projections.py, which is full):
notification erases what it kept of the citizen's messages (recipients, bodies, the contact
as last changed). The record that a message was sent stays: kind, channel, dates, status."""

from __future__ import annotations

from guichet_runtime.db import UnitOfWork
from notification.domain import NotificationStatus
from notification.tables import contacts, deliveries, notifications
from shared_models import CitizenDataErased

ERASED = "(effacé)"


async def on_citizen_data_erased(event: CitizenDataErased, uow: UnitOfWork) -> None:
    async with uow:
        file_id = event.file_id
        # A message still waiting has no one to go to any more.
        await uow.conn.execute(
            notifications.update()
            .where(
                notifications.c.file_id == file_id,
                notifications.c.status.in_(
                    [NotificationStatus.TO_SEND, NotificationStatus.PLANNED]
                ),
            )
            .values(status=NotificationStatus.NO_CHANNEL, last_error="données effacées")
        )
        await uow.conn.execute(
            notifications.update()
            .where(notifications.c.file_id == file_id)
            .values(recipient=None, body=ERASED, content=None, sealed_secret=None)
        )
        await uow.conn.execute(
            deliveries.update().where(deliveries.c.file_id == file_id).values(recipient=None)
        )
        await uow.conn.execute(contacts.delete().where(contacts.c.file_id == file_id))
        await uow.commit()
