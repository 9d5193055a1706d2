"""front-desk agent who registered a file

Revision ID: c3d8f0a1b2e4
Revises: b7c41d2e9f60
Create Date: 2026-11-30 09:40:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "c3d8f0a1b2e4"
down_revision: str | Sequence[str] | None = "b7c41d2e9f60"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "registered_by",
                sa.String(50),
                nullable=True,
                comment="the front-desk agent who registered the file for the citizen",
            )
        )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.drop_column("registered_by")
