"""The web's own database: the sessions, kept server-side (the browser holds a random id)."""

from __future__ import annotations

import sqlalchemy as sa

from guichet_runtime.db import UtcDateTime, service_metadata

metadata = service_metadata()

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column(
        "id",
        sa.String(64),
        primary_key=True,
        comment="HMAC-SHA256 (SECRET_KEY) of the cookie's random id: the table opens no session",
    ),
    sa.Column(
        "data",
        sa.Text,
        nullable=False,
        comment="AES-GCM sealed JSON: tokens, files opened with a code, flash, CSRF token",
    ),
    sa.Column(
        "subject",
        sa.String(300),
        nullable=True,
        comment="Who signed in (issuer kind:sub), so an operator can revoke a person's sessions",
    ),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("last_seen_at", UtcDateTime, nullable=False, comment="idle timeout from here"),
    sa.Column("expires_at", UtcDateTime, nullable=False, comment="absolute end"),
    sa.Index("ix_sessions_subject", "subject"),
    sa.Index("ix_sessions_last_seen_at", "last_seen_at"),
)
