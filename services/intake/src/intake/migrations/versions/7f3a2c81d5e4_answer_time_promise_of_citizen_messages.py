"""answer-time promise of the citizen's messages

Revision ID: 7f3a2c81d5e4
Revises: 35cd01a7e0d1
Create Date: 2026-11-30 18:00:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import guichet_runtime.db

# revision identifiers, used by Alembic.
revision: str = "7f3a2c81d5e4"
down_revision: str | Sequence[str] | None = "35cd01a7e0d1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("citizen_messages") as batch:
        batch.add_column(
            sa.Column(
                "answer_due_at",
                guichet_runtime.db.UtcDateTime(timezone=True),
                nullable=True,
                comment="the answer-time promise (intake.domain.promise)",
            )
        )
        batch.add_column(
            sa.Column(
                "answered_at",
                guichet_runtime.db.UtcDateTime(timezone=True),
                nullable=True,
                comment="the référent's next message to the citizen",
            )
        )
        batch.add_column(
            sa.Column(
                "answer_delay_s",
                sa.Integer(),
                nullable=True,
                comment="message -> the référent's next message, seconds: the published answer "
                "times",
            )
        )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("citizen_messages") as batch:
        batch.drop_column("answer_delay_s")
        batch.drop_column("answered_at")
        batch.drop_column("answer_due_at")
