"""sealed secret of a message: the access code stays sealed until it is sent

Revision ID: b3f7d2e1c9a8
Revises: 420a19bc6220
Create Date: 2026-11-30 06:15:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "b3f7d2e1c9a8"
down_revision: str | Sequence[str] | None = "420a19bc6220"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "sealed_secret",
                sa.Text(),
                nullable=True,
                comment="JSON SealedSecret put in the text at send time (the access code); "
                "erased once the message is sent or given up",
            )
        )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_column("sealed_secret")
