"""personal columns sealed: recipients and subjects as text (a sealed value is longer)

Revision ID: d8e4b2a7f190
Revises: c6a1f3e9d274
Create Date: 2026-11-30 15:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "d8e4b2a7f190"
down_revision: str | Sequence[str] | None = "c6a1f3e9d274"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: (table, column, nullable): the personal columns that were VARCHAR(300); sealed with the
#: citizen's data key (notification.personal_columns) they no longer fit.
WIDENED = (
    ("notifications", "recipient", True),
    ("notifications", "subject", False),
    ("deliveries", "recipient", True),
)


def upgrade() -> None:
    """Upgrade schema."""
    for table, column, nullable in WIDENED:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column(
                column,
                existing_type=sa.String(length=300),
                type_=sa.Text(),
                existing_nullable=nullable,
            )


def downgrade() -> None:
    """Downgrade schema (a sealed value longer than 300 characters would not fit)."""
    for table, column, nullable in WIDENED:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column(
                column,
                existing_type=sa.Text(),
                type_=sa.String(length=300),
                existing_nullable=nullable,
            )
