"""delivery keys recorded before sending: each attempt's key, and its resends

Revision ID: d8e4b2a7f615
Revises: d8e4b2a7f190
Create Date: 2026-11-30 15:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "d8e4b2a7f615"
down_revision: str | Sequence[str] | None = "d8e4b2a7f190"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "delivery_key",
                sa.String(length=300),
                nullable=True,
                comment="what the receiver recognises the message by (Message-ID, "
                "Idempotency-Key), recorded before the provider is called",
            )
        )
        batch_op.add_column(
            sa.Column(
                "resent",
                sa.Integer(),
                server_default="0",
                nullable=False,
                comment="times the attempt was presented again, same key, after it was cut "
                "between the provider's call and the recording of its outcome",
            )
        )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_column("resent")
        batch_op.drop_column("delivery_key")
