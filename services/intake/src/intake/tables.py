"""Intake's own database: the file record and the citizen's view of it."""

import sqlalchemy as sa

from guichet_runtime.db import BigIntId, UtcDateTime, messaging_tables, service_metadata

metadata = service_metadata()
outbox, inbox = messaging_tables(metadata)

files = sa.Table(
    "files",
    metadata,
    sa.Column("file_id", sa.String(32), primary_key=True),
    sa.Column("life_event", sa.String(50), nullable=False),
    sa.Column("citizen", sa.JSON, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("urgent", sa.Boolean, nullable=False),
    sa.Column("status", sa.String(30), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("referent", sa.JSON, nullable=True),
    sa.Column("answer", sa.JSON, nullable=True),
    sa.Column("idempotency_key", sa.String(200), nullable=True, unique=True),
    sa.Column("request_digest", sa.String(64), nullable=True),
    sa.Column("referent_change_requested_at", UtcDateTime, nullable=True),
    sa.Column("referent_change_reason", sa.Text, nullable=True),
)

file_agencies = sa.Table(
    "file_agencies",
    metadata,
    sa.Column("file_id", sa.String(32), sa.ForeignKey("files.file_id"), primary_key=True),
    sa.Column("agency", sa.String(30), primary_key=True),
    sa.Column("status", sa.String(30), nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

timeline = sa.Table(
    "timeline",
    metadata,
    sa.Column("id", BigIntId, primary_key=True, autoincrement=True),
    sa.Column("file_id", sa.String(32), sa.ForeignKey("files.file_id"), nullable=False, index=True),
    sa.Column("event_id", sa.String(36), nullable=False, unique=True),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("label", sa.Text, nullable=False),
)

access_codes = sa.Table(
    "access_codes",
    metadata,
    sa.Column("id", BigIntId, primary_key=True, autoincrement=True),
    sa.Column("file_id", sa.String(32), sa.ForeignKey("files.file_id"), nullable=False, index=True),
    sa.Column("code_hash", sa.String(64), nullable=False, comment="sha256 of salt + code; the code is never stored"),
    sa.Column("salt", sa.String(32), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("used_at", UtcDateTime, nullable=True),
)
