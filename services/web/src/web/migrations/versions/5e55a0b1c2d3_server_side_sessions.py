"""server-side sessions

Revision ID: 5e55a0b1c2d3
Revises:
Create Date: 2026-11-30 08:45:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import guichet_runtime.db

# revision identifiers, used by Alembic.
revision: str = "5e55a0b1c2d3"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "sessions",
        sa.Column(
            "id",
            sa.String(length=64),
            nullable=False,
            comment="HMAC-SHA256 (SECRET_KEY) of the cookie's random id: the table opens no "
            "session",
        ),
        sa.Column(
            "data",
            sa.Text(),
            nullable=False,
            comment="AES-GCM sealed JSON: tokens, files opened with a code, flash, CSRF token",
        ),
        sa.Column(
            "subject",
            sa.String(length=300),
            nullable=True,
            comment="Who signed in (issuer kind:sub), so an operator can revoke a person's "
            "sessions",
        ),
        sa.Column("created_at", guichet_runtime.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column(
            "last_seen_at",
            guichet_runtime.db.UtcDateTime(timezone=True),
            nullable=False,
            comment="idle timeout from here",
        ),
        sa.Column(
            "expires_at",
            guichet_runtime.db.UtcDateTime(timezone=True),
            nullable=False,
            comment="absolute end",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sessions")),
    )
    op.create_index("ix_sessions_subject", "sessions", ["subject"])
    op.create_index("ix_sessions_last_seen_at", "sessions", ["last_seen_at"])


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index("ix_sessions_last_seen_at", table_name="sessions")
    op.drop_index("ix_sessions_subject", table_name="sessions")
    op.drop_table("sessions")
