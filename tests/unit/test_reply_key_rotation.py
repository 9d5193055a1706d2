"""Rotating REPLY_ADDRESS_KEY without bouncing the citizens' replies (docs/operations.md,
"Rotating REPLY_ADDRESS_KEY"): while intake has the former key as
REPLY_ADDRESS_KEY_PREVIOUS, an address it signed still verifies; without it, or under any
other key, the address is unknown (550), nothing written."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from guichet_runtime.reply_address import file_of, reply_address
from intake import inbound
from intake.settings import IntakeSettings
from tests.unit.test_email_replies import DOMAIN, free_port, received, reply, smtp
from tests.unit.test_referent_desk import intake_file

OLD = "cle-des-adresses-avant-la-rotation"
NEW = "cle-des-adresses-apres-la-rotation"


def test_an_address_signed_before_the_rotation_verifies_only_with_the_previous_key():
    old_address = reply_address("GU-2026-ABCD2345", OLD, DOMAIN)
    new_address = reply_address("GU-2026-ABCD2345", NEW, DOMAIN)

    assert file_of(old_address, NEW, DOMAIN, previous=OLD) == "GU-2026-ABCD2345"
    assert file_of(new_address, NEW, DOMAIN, previous=OLD) == "GU-2026-ABCD2345"
    assert file_of(old_address, NEW, DOMAIN) is None
    assert (
        file_of(reply_address("GU-2026-ABCD2345", "une-autre-cle", DOMAIN), NEW, DOMAIN, OLD)
        is None
    )
    assert file_of(old_address, NEW, "ailleurs.test", previous=OLD) is None
    assert file_of(old_address, "", DOMAIN, previous=OLD) is None  # no key: no replies at all


def test_intake_reads_the_previous_key_from_its_environment(monkeypatch):
    monkeypatch.setenv("REPLY_ADDRESS_KEY", NEW)
    monkeypatch.setenv("REPLY_ADDRESS_KEY_PREVIOUS", OLD)
    settings = IntakeSettings()
    assert settings.reply_address_key_previous.get_secret_value() == OLD
    monkeypatch.delenv("REPLY_ADDRESS_KEY_PREVIOUS")
    assert IntakeSettings().reply_address_key_previous.get_secret_value() == ""


async def serving(db, settings: inbound.InboundSettings) -> AsyncIterator[int]:
    port = free_port()
    stopping, ready = asyncio.Event(), asyncio.Event()
    handler = inbound.InboundReplies(db.uow, settings)
    task = asyncio.create_task(inbound.serve(handler, "127.0.0.1", port, stopping, ready))
    await asyncio.wait_for(ready.wait(), 5)
    try:
        yield port
    finally:
        stopping.set()
        await task


@pytest.mark.parametrize("previous", [OLD, ""], ids=["previous-kept", "previous-dropped"])
async def test_a_reply_to_an_address_of_the_former_key(intake_db, previous):
    file_id = await intake_file(intake_db)
    settings = inbound.InboundSettings(NEW, DOMAIN, previous_key=previous)
    old_address = reply_address(file_id, OLD, DOMAIN)

    async for port in serving(intake_db, settings):
        answer = await smtp(port, reply(file_id, "Je réponds au courriel d'avant.", to=old_address))

    if previous:
        assert answer == "accepted"
        [row] = await intake_db.rows("citizen_messages")
        assert (row.text, row.channel) == ("Je réponds au courriel d'avant.", "courriel")
        assert len(await received(intake_db)) == 1
    else:
        assert answer == inbound.UNKNOWN_ADDRESS
        assert await intake_db.rows("citizen_messages") == []
        assert await received(intake_db) == []
