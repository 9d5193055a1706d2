"""Notification's own database: every message, pending until handed to its channel."""

import sqlalchemy as sa

from guichet_runtime.db import UtcDateTime, messaging_tables, service_metadata

metadata = service_metadata()
outbox, inbox = messaging_tables(metadata)

notifications = sa.Table(
    "notifications",
    metadata,
    sa.Column("notification_id", sa.String(200), primary_key=True, comment="file id + kind (+ event, recipient): the message's identity"),
    sa.Column("file_id", sa.String(32), nullable=False, index=True),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("channel", sa.String(20), nullable=False),
    sa.Column("recipient", sa.String(300), nullable=True),
    sa.Column("subject", sa.String(300), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("referent_name", sa.String(200), nullable=False),
    sa.Column("status", sa.String(20), nullable=False, index=True),
    sa.Column("trace_headers", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("next_attempt_at", UtcDateTime, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("sent_at", UtcDateTime, nullable=True),
)
