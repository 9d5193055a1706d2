"""personal data key refs (crypto-shredding)

Revision ID: b5e2d8f41a07
Revises: c3f9a1d27e55
Create Date: 2026-11-30 12:00:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from guichet_runtime.db import UtcDateTime

# revision identifiers, used by Alembic.
revision: str = "b5e2d8f41a07"
down_revision: str | Sequence[str] | None = "c3f9a1d27e55"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "personal_data_key_refs",
        sa.Column("file_id", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=36), nullable=False),
        sa.Column("recorded_at", UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("file_id", name=op.f("pk_personal_data_key_refs")),
    )
    op.create_index(op.f("ix_personal_data_key_refs_key_id"), "personal_data_key_refs", ["key_id"])


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index(op.f("ix_personal_data_key_refs_key_id"), table_name="personal_data_key_refs")
    op.drop_table("personal_data_key_refs")
