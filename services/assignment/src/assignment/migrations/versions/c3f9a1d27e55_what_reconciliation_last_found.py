"""what reconciliation last found

Revision ID: c3f9a1d27e55
Revises: aed22e33cf69
Create Date: 2026-11-30 09:45:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from guichet_runtime.db import UtcDateTime

# revision identifiers, used by Alembic.
revision: str = "c3f9a1d27e55"
down_revision: str | Sequence[str] | None = "aed22e33cf69"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("legal_clocks", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "checked_at",
                UtcDateTime(),
                nullable=True,
                comment="when reconciliation last asked the agency where the request stands",
            )
        )
        batch_op.add_column(
            sa.Column(
                "check_finding",
                sa.String(length=20),
                nullable=True,
                comment=(
                    "what it found: en_instruction (no decision yet) or echec (no usable answer)"
                ),
            )
        )
        batch_op.add_column(
            sa.Column("checks", sa.Integer(), nullable=True, comment="status queries made so far")
        )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("legal_clocks", schema=None) as batch_op:
        batch_op.drop_column("checks")
        batch_op.drop_column("check_finding")
        batch_op.drop_column("checked_at")
