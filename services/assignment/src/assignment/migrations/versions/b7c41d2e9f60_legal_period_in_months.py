"""legal period in months

Revision ID: b7c41d2e9f60
Revises: ee8c34bbd5ec
Create Date: 2026-11-30 05:30:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "b7c41d2e9f60"
down_revision: str | Sequence[str] | None = "ee8c34bbd5ec"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("legal_clocks", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "period_months",
                sa.Integer(),
                nullable=True,
                comment="legal period in calendar months, counted date to date (CRPA L231-1)",
            )
        )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("legal_clocks", schema=None) as batch_op:
        batch_op.drop_column("period_months")
