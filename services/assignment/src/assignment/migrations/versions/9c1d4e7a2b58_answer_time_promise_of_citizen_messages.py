"""answer-time promise of the citizen's messages

Revision ID: 9c1d4e7a2b58
Revises: 03bf4bc544ce
Create Date: 2026-11-30 18:00:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import guichet_runtime.db

# revision identifiers, used by Alembic.
revision: str = "9c1d4e7a2b58"
down_revision: str | Sequence[str] | None = "03bf4bc544ce"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("citizen_messages") as batch:
        batch.add_column(
            sa.Column(
                "remind_at",
                guichet_runtime.db.UtcDateTime(timezone=True),
                nullable=True,
                comment="the answer-time promise's last day begins: the answerer is reminded",
            )
        )
        batch.add_column(
            sa.Column(
                "answer_due_at",
                guichet_runtime.db.UtcDateTime(timezone=True),
                nullable=True,
                comment="the answer-time promise ends: the supervisors are alerted",
            )
        )
        batch.add_column(
            sa.Column("reminded_at", guichet_runtime.db.UtcDateTime(timezone=True), nullable=True)
        )
        batch.add_column(
            sa.Column("escalated_at", guichet_runtime.db.UtcDateTime(timezone=True), nullable=True)
        )
        batch.create_index(
            "ix_citizen_messages_promise",
            ["answered_at", "escalated_at", "answer_due_at"],
            unique=False,
        )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("citizen_messages") as batch:
        batch.drop_index("ix_citizen_messages_promise")
        batch.drop_column("escalated_at")
        batch.drop_column("reminded_at")
        batch.drop_column("answer_due_at")
        batch.drop_column("remind_at")
