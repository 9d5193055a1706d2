"""an appointment moved keeps its calendar entry

Revision ID: c7a9d3e5f1b2
Revises: b5e2f8a1c7d3
Create Date: 2026-11-30 22:30:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "c7a9d3e5f1b2"
down_revision: str | Sequence[str] | None = "b5e2f8a1c7d3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("appointments") as batch:
        batch.add_column(
            sa.Column(
                "calendar_id",
                sa.String(length=36),
                nullable=True,
                comment="the first appointment of a chain of moves (one calendar entry)",
            )
        )
        batch.add_column(
            sa.Column(
                "revision",
                sa.Integer(),
                nullable=False,
                server_default="0",
                comment="moves so far",
            )
        )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("appointments") as batch:
        batch.drop_column("revision")
        batch.drop_column("calendar_id")
