"""rate counters

Revision ID: b7c3e1a90f42
Revises: e2e1fb5caf64
Create Date: 2026-11-30 06:20:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "b7c3e1a90f42"
down_revision: str | Sequence[str] | None = "e2e1fb5caf64"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "rate_counters",
        sa.Column("key", sa.String(length=200), nullable=False, comment="rule:scope:value"),
        sa.Column("window_start", sa.BigInteger(), nullable=False, comment="epoch seconds"),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", "window_start", name=op.f("pk_rate_counters")),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("rate_counters")
