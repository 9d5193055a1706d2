"""Notification's own database: every message with its channel plan, every delivery
attempt on every channel, and the contact preferences citizens changed. Statuses and
outcomes are the values of `domain.NotificationStatus` and `domain.DeliveryOutcome`.

The personal columns (`personal_columns.PERSONAL_COLUMNS`: addresses, subjects, bodies,
contents, providers' errors, the contact) hold their text sealed with the citizen's data key
when the file has one (the JSON `{key_id, nonce, ciphertext}`), in clear otherwise."""

from collections.abc import Sequence

import sqlalchemy as sa

from guichet_runtime.db import BigIntId, UtcDateTime, messaging_tables, service_metadata
from guichet_runtime.personal_data import personal_data_key_refs_table
from shared_models import NotificationChannel

metadata = service_metadata()
outbox, inbox = messaging_tables(metadata)
# Which citizen's data key seals each file's personal data (guichet_runtime.personal_data).
personal_data_key_refs = personal_data_key_refs_table(metadata)

notifications = sa.Table(
    "notifications",
    metadata,
    sa.Column(
        "notification_id",
        sa.String(200),
        primary_key=True,
        comment="file id + kind (+ event, recipient): the message's identity",
    ),
    sa.Column("file_id", sa.String(32), nullable=False, index=True),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("audience", sa.String(10), nullable=False, server_default="citoyen"),  # an Audience
    sa.Column(
        "plan",
        sa.String(60),
        nullable=False,
        server_default="email",
        comment="channels to try, in order, comma separated",
    ),
    sa.Column(
        "step",
        sa.Integer,
        nullable=False,
        server_default="0",
        comment="index in plan of the channel being tried",
    ),
    sa.Column(
        "channel",
        sa.String(20),
        nullable=False,
        comment="channel being tried, or the one that delivered",
    ),
    sa.Column("recipient", sa.Text, nullable=True),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column(
        "content",
        sa.Text,
        nullable=True,
        comment="JSON: the message rendered for each channel of the plan",
    ),
    sa.Column("referent", sa.Text, nullable=True, comment="JSON: the référent signing the message"),
    sa.Column(
        "sealed_secret",
        sa.Text,
        nullable=True,
        comment="JSON SealedSecret put in the text at send time (the access code); "
        "erased once the message is sent or given up",
    ),
    sa.Column("referent_name", sa.String(200), nullable=False),
    sa.Column("status", sa.String(20), nullable=False, index=True),  # a NotificationStatus
    sa.Column("trace_headers", sa.Text, nullable=False),
    sa.Column(
        "attempts", sa.Integer, nullable=False, default=0, comment="attempts on the current channel"
    ),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("next_attempt_at", UtcDateTime, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("sent_at", UtcDateTime, nullable=True),
)

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", BigIntId, primary_key=True, autoincrement=True),
    sa.Column("notification_id", sa.String(200), nullable=False, index=True),
    sa.Column("file_id", sa.String(32), nullable=False, index=True),
    sa.Column("channel", sa.String(20), nullable=False),
    sa.Column("recipient", sa.Text, nullable=True),
    sa.Column(
        "outcome",
        sa.String(20),
        nullable=False,
        comment="envoye, refus_definitif or erreur_temporaire",
    ),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("provider_ref", sa.String(300), nullable=True),
    sa.Column("at", UtcDateTime, nullable=False),
    # An attempt is recorded `envoi_en_cours` with its key before the provider is called,
    # and its outcome replaces that (notification.dispatch).
    sa.Column(
        "delivery_key",
        sa.String(300),
        nullable=True,
        comment="what the receiver recognises the message by (Message-ID, "
        "Idempotency-Key), recorded before the provider is called",
    ),
    sa.Column(
        "resent",
        sa.Integer,
        nullable=False,
        server_default="0",
        comment="times the attempt was presented again, same key, after it was cut "
        "between the provider's call and the recording of its outcome",
    ),
)

contacts = sa.Table(
    "contacts",
    metadata,
    sa.Column("file_id", sa.String(32), primary_key=True),
    sa.Column(
        "citizen", sa.Text, nullable=False, comment="JSON: the citizen's contact as last changed"
    ),
    sa.Column("changed_at", UtcDateTime, nullable=False),
)


def plan_text(plan: Sequence[NotificationChannel]) -> str:
    """A channel plan as the `plan` column stores it: channels comma separated."""
    return ",".join(channel.value for channel in plan)


def plan_of(text: str) -> list[NotificationChannel]:
    """The channel plan the `plan` column holds."""
    return [NotificationChannel(value) for value in text.split(",") if value]
