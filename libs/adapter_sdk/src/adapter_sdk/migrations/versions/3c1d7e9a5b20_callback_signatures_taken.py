"""callback signatures taken, for the replay window

Revision ID: 3c1d7e9a5b20
Revises: 836dcd974532
Create Date: 2026-11-30 06:05:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import guichet_runtime.db

# revision identifiers, used by Alembic.
revision: str = "3c1d7e9a5b20"
down_revision: str | Sequence[str] | None = "836dcd974532"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "callback_signatures",
        sa.Column(
            "signature",
            sa.String(length=64),
            nullable=False,
            comment="HMAC-SHA256 (hex) of a callback taken: the same one again is a replay",
        ),
        sa.Column(
            "signed_at",
            guichet_runtime.db.UtcDateTime(timezone=True),
            nullable=False,
            comment="The signature's timestamp; kept until it is outside the replay window",
        ),
        sa.PrimaryKeyConstraint("signature", name=op.f("pk_callback_signatures")),
    )
    with op.batch_alter_table("callback_signatures", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_callback_signatures_signed_at"), ["signed_at"], unique=False
        )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("callback_signatures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_callback_signatures_signed_at"))
    op.drop_table("callback_signatures")
