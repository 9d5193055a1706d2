"""personal data keys (crypto-shredding)

Revision ID: a41c9e7d2b10
Revises: 7d1fa454295e
Create Date: 2026-11-30 12:00:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from guichet_runtime.db import UtcDateTime

# revision identifiers, used by Alembic.
revision: str = "a41c9e7d2b10"
down_revision: str | Sequence[str] | None = "7d1fa454295e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "personal_data_keys",
        sa.Column("key_id", sa.String(length=36), nullable=False, comment="a random UUID"),
        sa.Column(
            "subject",
            sa.String(length=255),
            nullable=True,
            comment="the logged-in citizen's `sub`; null: the key of one file",
        ),
        sa.Column(
            "wrapped_key",
            sa.LargeBinary(),
            nullable=True,
            comment="AES-256-GCM under PERSONAL_DATA_KEK (nonce + ciphertext); null once shredded",
        ),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("shredded_at", UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_personal_data_keys")),
        sa.UniqueConstraint("subject", name=op.f("uq_personal_data_keys_subject")),
    )
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
    op.drop_table("personal_data_keys")
