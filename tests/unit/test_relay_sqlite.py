"""The outbox relay on SQLite (one connection, one writer): a broker that is slow or down
never holds up the service's own writes, and a batch is deleted only once published."""

from __future__ import annotations

import asyncio
from typing import Any

from guichet_runtime.relay import OutboxRelay
from shared_models import topics
from tests.unit.conftest import ServiceDb
from tests.unit.samples import file_submitted


class HangingBroker:
    """Publishing waits until `release` is set, as a producer does while the broker is
    down; what was handed over is kept."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.handed = asyncio.Event()
        self.sent: list[str] = []

    async def publish(self, payload: bytes, topic: str, **_: Any) -> asyncio.Future[None]:
        self.sent.append(topic)
        self.handed.set()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def confirm() -> None:
            await self.release.wait()
            future.set_result(None)

        asyncio.get_running_loop().create_task(confirm())
        return future


async def emit(db: ServiceDb, file_id: str) -> None:
    async with db.uow() as uow:
        uow.emit(topics.FILES_SUBMITTED, file_submitted(file_id=file_id))
        await uow.commit()


async def test_writes_go_on_while_the_broker_hangs(intake_db: ServiceDb) -> None:
    await emit(intake_db, "GU-2025-RELAYAAA")
    broker = HangingBroker()
    relay = OutboxRelay(intake_db.engine, intake_db.tables.outbox, broker)
    publishing = asyncio.create_task(relay.publish_pending())
    await asyncio.wait_for(broker.handed.wait(), timeout=5)

    # The relay waits on the broker: the service still commits new work, within a second.
    await asyncio.wait_for(emit(intake_db, "GU-2025-RELAYBBB"), timeout=1)
    assert len(await intake_db.outbox()) == 2  # nothing deleted before it is published

    broker.release.set()
    assert await asyncio.wait_for(publishing, timeout=5) == 1
    left = await intake_db.outbox()
    assert len(left) == 1  # the batch published is gone, the row written meanwhile stays
    assert await relay.publish_pending() == 1
    assert await intake_db.outbox() == []
    assert relay.published == 2
