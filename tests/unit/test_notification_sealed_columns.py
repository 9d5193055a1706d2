"""Notification's personal columns sealed with the citizen's data key (issue 13 §4): on its
real SQLite database, with real AES-GCM keys, its real channels (the SMTP sink, the SMS
gateway and postal simulator) and events decoded as the consumer decodes them. Once a file's
messages went through (a fallback email → SMS → letter included), no column of any table
holds the citizen's values; the dispatcher opens them at send time; a message whose key is
shredded before it is sent is never sent (recorded as erased, counted); rows in clear still
read and send."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from guichet_runtime.db import UnitOfWork, utcnow
from guichet_runtime.metrics import RuntimeMetrics, metered_channels
from guichet_runtime.personal_data import (
    CannotOpen,
    KeyShredded,
    KeyUnavailable,
    PersonalData,
    new_data_key,
)
from notification import projections
from notification.channels import PermanentFailure
from notification.dispatch import dispatch_pending
from notification.domain import NoPostalAddress
from notification.personal_columns import ERASED, PERSONAL_COLUMNS, Sealing, sealed_in, shown
from shared_models import (
    CitizenName,
    ContactPreferencesChanged,
    CoordinatedAnswerIssued,
    Envelope,
    NotificationSent,
    PreferredChannel,
    ReferentAssigned,
    ReferentMessageSent,
    ReferentThanked,
)
from tests.pdfs import pdf_text
from tests.personal_data import leaks
from tests.unit.channel_doubles import BOUNCING
from tests.unit.samples import citizen, referent

FILE = "GU-2026-SEALED01"
CONTACT: dict[str, Any] = {
    "given_name": "Maëlys",
    "family_name": "Quintard-Olivo",
    "email": f"maelys.quintard@{BOUNCING}",  # refused by the sink: the fallback goes on
    "phone": "0781926354",
    "street": "17 rue des Tanneurs",
    "city": "Quincieux",
    "postcode": "69650",
    "preferred_channel": PreferredChannel.EMAIL,
}
NEW_EMAIL = "m.quintard.olivo@exemple.fr"
WORDS = "Licenciement chez Tissage Ravinel après onze années"
#: What is looked for, in every form (tests.personal_data): the brief's probes (name, email,
#: phone in every form, street, city, the citizen's words); the postcode's five digits
#: could be met by chance in a timestamp.
PROBES = {**CONTACT, "description": WORDS}
PROBED = ("given_name", "family_name", "email", "phone", "street", "city", "description")


class Keys:
    """The key service: real 32-byte keys; a key set to None is shredded; `away` makes every
    fetch fail as the key service would when unreachable."""

    def __init__(self) -> None:
        self.keys: dict[str, bytes | None] = {}
        self.away = False

    def new(self) -> str:
        key_id, key = new_data_key()
        self.keys[key_id] = key
        return key_id

    async def get(self, key_id: str) -> bytes:
        if self.away:
            raise KeyUnavailable("the key service is away")
        key = self.keys.get(key_id)
        if key is None:
            raise KeyShredded(key_id)
        return key


@dataclass
class Sealed:
    """Notification's database with crypto-shredding on: the units of work seal and open."""

    db: Any
    keys: Keys
    personal: PersonalData

    def uow(self, inbox_key: tuple[str, str] | None = None) -> UnitOfWork:
        t = self.db.tables
        return UnitOfWork(
            self.db.engine, t.outbox, t.inbox, inbox_key=inbox_key, personal_data=self.personal
        )

    async def consume(self, handler: Any, event: Envelope, key_id: str | None) -> None:
        """As the consumer does: the record as the emitter sealed it with the file's key,
        opened, the key remembered on the unit of work, then the handler."""
        body = await self.personal.seal(event, key_id) if key_id else event.model_dump_json()
        opened, used = await self.personal.open(type(event), body)
        uow = self.uow(("notification", str(event.event_id)))
        if used is not None:
            uow.use_personal_key(opened.file_id, used)
        await handler(opened, uow)

    async def dispatch_all(self, channels: Any) -> int:
        sent = 0
        while (n := await dispatch_pending(self.uow, channels)) or await self.due():
            sent += n
        return sent

    async def due(self) -> bool:
        rows = await self.db.rows("notifications")
        return any(r.status == "a_envoyer" and r.next_attempt_at <= utcnow() for r in rows)


@pytest.fixture
def sealed(notification_db) -> Sealed:
    keys = Keys()
    return Sealed(
        notification_db, keys, PersonalData(keys, notification_db.tables.personal_data_key_refs)
    )


def assigned(**contact: Any) -> ReferentAssigned:
    return ReferentAssigned(
        file_id=FILE,
        referent=referent(),
        rule="proximite",
        explanation="Yasmine Haddad : bureau dans le département.",
        citizen=citizen(**{**CONTACT, **contact}),
    )


async def every_value(db) -> list[tuple[str, str, str]]:
    """(table, column, value) of every non-empty value of every table."""
    found = []
    for table in db.tables.metadata.sorted_tables:
        for row in await db.rows(table):
            for column, value in row._mapping.items():
                if value is not None and str(value):
                    found.append((table.name, column, str(value)))
    return found


async def test_a_sealed_files_messages_leave_none_of_its_values_in_any_column(
    sealed, channels, gateway, sink
):
    _, client = gateway
    client.post("/admin/faults", json={"refuse_numbers": [CONTACT["phone"]]})
    key_id = sealed.keys.new()
    answer = CoordinatedAnswerIssued(
        file_id=FILE,
        referent=referent(),
        citizen=citizen(**CONTACT),
        decisions=[],
        text=f"Bonjour Maëlys Quintard-Olivo, au sujet de : {WORDS}.",
        personal_word=None,
    )
    # Email refused (550, the address quoted), SMS refused (the number): the letter goes.
    await sealed.consume(projections.on_coordinated_answer_issued, answer, key_id)
    assert await sealed.dispatch_all(channels) == 1
    [letter] = client.get("/api/letters").json()
    text = pdf_text(client.get(f"/api/letters/{letter['id']}.pdf").content)
    assert "17 rue des Tanneurs" in text and "QUINCIEUX" in text  # opened at send time
    [outbox] = await sealed.db.outbox()
    assert '"subject":{"key_id"' in outbox.payload  # NotificationSent, sealed on its way out
    reported, _ = await sealed.personal.open(NotificationSent, outbox.payload)
    assert reported.subject == f"Votre dossier {FILE} : la réponse coordonnée est prête"

    # The contact changes: stored sealed; the next message goes to the new address.
    change = ContactPreferencesChanged(
        file_id=FILE,
        citizen=citizen(**{**CONTACT, "email": NEW_EMAIL}),
        previous_citizen=citizen(**CONTACT),
    )
    await sealed.consume(projections.on_contact_preferences_changed, change, key_id)
    message = ReferentMessageSent(
        file_id=FILE,
        message_id="m-1",
        referent=referent(),
        citizen=citizen(**CONTACT),
        text=f"Je reviens vers vous : {WORDS}.",
    )
    await sealed.consume(projections.on_referent_message_sent, message, key_id)
    name = CitizenName(given_name=CONTACT["given_name"], family_name=CONTACT["family_name"])
    thanks = ReferentThanked(
        file_id=FILE, thanks_id="t-1", referent=referent(), citizen=name, message=f"Merci ! {WORDS}"
    )
    await sealed.consume(projections.on_referent_thanked, thanks, key_id)
    await sealed.db.execute(
        sealed.db.tables.notifications.update().values(next_attempt_at=utcnow())
    )
    assert await sealed.dispatch_all(channels) >= 2
    to = sorted(m["To"] for m in sink.mails())
    assert NEW_EMAIL in to and "yasmine.haddad@france-services.gouv.fr" in to

    values = await every_value(sealed.db)
    found = [(t, c, leaks(v.encode(), PROBES, PROBED)) for t, c, v in values]
    assert not [f for f in found if f[2]], [f for f in found if f[2]]
    for table, columns in PERSONAL_COLUMNS.items():
        stored = [v for t, c, v in values if t == table and c in columns]
        assert stored and all(sealed_in(v) is not None for v in stored), table
        assert {sealed_in(v).key_id for v in stored} == {key_id}  # type: ignore[union-attr]
    path = Path(sealed.db.url.split("///")[1])  # the database's file, and its journal if any
    raw = b"".join(p.read_bytes() for p in path.parent.glob(f"{path.name}*"))
    assert not leaks(raw, PROBES, ("family_name", "street", "city", "description"))


async def test_a_message_whose_key_is_shredded_before_it_is_sent_is_not_sent_but_counted(
    sealed, channels, sink
):
    key_id = sealed.keys.new()
    await sealed.consume(projections.on_referent_assigned, assigned(email="m@exemple.fr"), key_id)
    metrics = RuntimeMetrics("notification")
    metered = metered_channels(channels, metrics, (PermanentFailure, NoPostalAddress))

    sealed.keys.keys[key_id] = None  # intake shreds the key before the dispatcher runs
    assert await dispatch_pending(sealed.uow, metered) == 0
    assert await dispatch_pending(sealed.uow, metered) == 0

    assert sink.mails() == []
    [row] = await sealed.db.rows("notifications")
    assert (row.status, row.last_error, row.recipient, row.content, row.body) == (
        "canal_indisponible",
        "données effacées",
        None,
        None,
        ERASED,
    )
    assert await sealed.db.rows("deliveries") == []
    sample = {"service": "notification", "channel": "email", "outcome": "erased"}
    assert metrics.registry.get_sample_value("guichet_notifications_total", sample) == 1
    assert await sealed.db.outbox() == []  # no NotificationSent: nothing reached anyone


async def test_the_key_service_away_the_message_waits_then_goes(sealed, channels, sink):
    key_id = sealed.keys.new()
    await sealed.consume(projections.on_referent_assigned, assigned(email="m@exemple.fr"), key_id)

    sealed.keys.away = True
    assert await dispatch_pending(sealed.uow, channels) == 0
    [row] = await sealed.db.rows("notifications")
    assert (row.status, row.attempts) == ("a_envoyer", 0)  # leased, not failed

    sealed.keys.away = False
    await sealed.db.execute(
        sealed.db.tables.notifications.update().values(next_attempt_at=utcnow())
    )
    assert await dispatch_pending(sealed.uow, channels) == 1
    [mail] = sink.mails()
    assert mail["To"] == "m@exemple.fr"


async def test_an_altered_sealed_content_is_given_up_not_sent(sealed, channels, sink):
    key_id = sealed.keys.new()
    await sealed.consume(projections.on_referent_assigned, assigned(email="m@exemple.fr"), key_id)
    [row] = await sealed.db.rows("notifications")
    other = Sealing("GU-2026-OTHER001", key_id, sealed.keys.keys[key_id])
    moved = other.seal(Sealing(FILE, key_id, sealed.keys.keys[key_id]).open(row.content))
    await sealed.db.execute(sealed.db.tables.notifications.update().values(content=moved))

    assert await dispatch_pending(sealed.uow, channels) == 0
    assert sink.mails() == []
    [row] = await sealed.db.rows("notifications")
    assert row.status == "echec" and "illisibles" in row.last_error


async def test_a_file_without_a_key_keeps_its_rows_in_clear_and_they_send(sealed, channels, sink):
    await sealed.consume(projections.on_referent_assigned, assigned(email="m@exemple.fr"), None)
    [row] = await sealed.db.rows("notifications")
    assert row.recipient == "m@exemple.fr" and "Maëlys" in row.body

    assert await dispatch_pending(sealed.uow, channels) == 1
    assert sink.mails()[0]["To"] == "m@exemple.fr"
    [delivery] = await sealed.db.rows("deliveries")
    assert delivery.recipient == "m@exemple.fr"


async def test_a_reader_sees_the_text_in_clear_or_sealed_and_the_erased_form_after_shredding(
    sealed,
):
    key_id = sealed.keys.new()
    key = sealed.keys.keys[key_id]
    stored = Sealing(FILE, key_id, key).seal("Bonjour Maëlys")
    assert stored is not None and "Maëlys" not in stored

    assert await shown(sealed.personal, FILE, stored) == "Bonjour Maëlys"
    assert await shown(sealed.personal, FILE, "écrit en clair") == "écrit en clair"
    assert await shown(None, FILE, '{"email": {"to": "m@exemple.fr"}}') == (
        '{"email": {"to": "m@exemple.fr"}}'
    )
    with pytest.raises(CannotOpen):  # a value moved from another file does not open
        Sealing("GU-2026-OTHER001", key_id, key).open(stored)

    sealed.keys.keys[key_id] = None
    assert await shown(sealed.personal, FILE, stored) == ERASED
    written = (await _sealing_after_shredding(sealed, key_id)).seal("Bonjour Maëlys")
    assert written is not None and "Maëlys" not in written
    assert await shown(sealed.personal, FILE, written) == ERASED


async def _sealing_after_shredding(sealed: Sealed, key_id: str) -> Sealing:
    from notification.personal_columns import sealing_of

    async with sealed.uow() as uow:
        uow.use_personal_key(FILE, key_id)
        return await sealing_of(uow, FILE)


async def test_the_contact_is_stored_sealed_and_read_back_for_the_next_message(sealed):
    key_id = sealed.keys.new()
    change = ContactPreferencesChanged(
        file_id=FILE, citizen=citizen(**{**CONTACT, "email": NEW_EMAIL})
    )
    await sealed.consume(projections.on_contact_preferences_changed, change, key_id)
    [stored] = await sealed.db.rows("contacts")
    assert sealed_in(stored.citizen) is not None and NEW_EMAIL not in stored.citizen

    await sealed.consume(projections.on_referent_assigned, assigned(), key_id)
    notifications = sealed.db.tables.notifications
    [row] = await sealed.db.rows(notifications, notifications.c.kind == "referent_assigned")
    assert await shown(sealed.personal, FILE, row.recipient) == NEW_EMAIL
