"""the channel a citizen's message came by (the citizen space, or an email reply)

Revision ID: c5d1e8a2f7b6
Revises: 7f3a2c81d5e4
Create Date: 2026-11-30 22:30:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "c5d1e8a2f7b6"
down_revision: str | Sequence[str] | None = "7f3a2c81d5e4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("citizen_messages") as batch:
        batch.add_column(
            sa.Column(
                "channel",
                sa.String(length=20),
                nullable=True,
                comment="courriel: an email reply to the routing address; else the citizen space",
            )
        )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("citizen_messages") as batch:
        batch.drop_column("channel")
