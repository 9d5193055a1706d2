"""erasure of a citizen's personal data

Revision ID: a4e9c2d7b1f3
Revises: a41c9e7d2b10
Create Date: 2026-11-30 12:00:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from guichet_runtime.db import UtcDateTime

# revision identifiers, used by Alembic.
revision: str = "a4e9c2d7b1f3"
down_revision: str | Sequence[str] | None = "a41c9e7d2b10"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("files") as batch:
        batch.add_column(
            sa.Column(
                "erased_at",
                UtcDateTime(timezone=True),
                nullable=True,
                comment="when the citizen's personal data was erased (request or retention)",
            )
        )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("files") as batch:
        batch.drop_column("erased_at")
