"""Supervisors are alerted when a file waits for a référent and when an agency lets its
legal deadline pass (notification service, on its real SQLite database)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from guichet_runtime.db import AlreadyProcessed
from notification import projections as notification
from shared_models import (
    DeadlineRule,
    LegalDeadlineBreached,
    ReferentAssignmentDeferred,
    SupervisorContact,
)
from tests.unit.samples import citizen, referent

SUPERVISORS = [
    SupervisorContact(
        supervisor_id="SUP-IDF",
        name="Hélène Marchand",
        email="helene.marchand@example.fr",
        phone="01 40 10 21 00",
    ),
    SupervisorContact(
        supervisor_id="SUP-IDF-2",
        name="Paul Girard",
        email="paul.girard@example.fr",
        phone="01 40 10 21 01",
    ),
]


async def handle(db, handler, event) -> None:
    await handler(event, db.uow(("notification", str(event.event_id))))


async def test_each_supervisor_is_alerted_once_when_a_file_waits(notification_db):
    event = ReferentAssignmentDeferred(
        file_id="GU-2026-WAITALRT",
        departement="93",
        urgent=True,
        life_event_label="Perte d'emploi",
        reason="Aucun agent n'a de place pour ce nouveau dossier.",
        citizen=citizen(),
        supervisors=SUPERVISORS,
    )

    await handle(notification_db, notification.on_referent_assignment_deferred, event)
    with pytest.raises(AlreadyProcessed):  # redelivered: the inbox knows it
        await handle(notification_db, notification.on_referent_assignment_deferred, event)
    # handled again under another consumer key: the notification ids still dedupe
    await notification.on_referent_assignment_deferred(event, notification_db.uow(("replay", "1")))

    rows = await notification_db.rows(
        "notifications", order_by=notification_db.tables.notifications.c.recipient
    )
    assert [(r.kind, r.recipient, r.status) for r in rows] == [
        ("supervisor_alert", "helene.marchand@example.fr", "a_envoyer"),
        ("supervisor_alert", "paul.girard@example.fr", "a_envoyer"),
    ]
    email = json.loads(rows[0].content)["email"]
    assert email["subject"] == "Dossier GU-2026-WAITALRT en attente d'un référent"
    assert "URGENT" in email["text"] and "Aucun agent n'a de place" in email["text"]
    assert "Contact pour ce dossier — Supervision des référents" in email["text"]


async def test_a_breached_deadline_alerts_supervisors_naming_the_referent(notification_db):
    event = LegalDeadlineBreached(
        file_id="GU-2026-BREACH01",
        request_id="GU-2026-BREACH01-caf",
        agency="caf",
        due_on=dt.date(2026, 12, 31),
        rule=DeadlineRule.SILENCE_ACCEPTS,
        referent=referent(),
        citizen=citizen(),
        supervisors=SUPERVISORS[:1],
    )

    await handle(notification_db, notification.on_legal_deadline_breached, event)

    [row] = await notification_db.rows("notifications")
    text = json.loads(row.content)["email"]["text"]
    assert row.recipient == "helene.marchand@example.fr"
    assert "31/12/2026" in text and "acceptation" in text
    assert referent().name in text and referent().phone in text
