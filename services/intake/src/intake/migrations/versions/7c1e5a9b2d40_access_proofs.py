"""access proofs: a verified code gives a short-lived proof (only its hash is kept)

Revision ID: 7c1e5a9b2d40
Revises: e2e1fb5caf64
Create Date: 2026-11-30 06:10:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import guichet_runtime.db

# revision identifiers, used by Alembic.
revision: str = "7c1e5a9b2d40"
down_revision: str | Sequence[str] | None = "b7c3e1a90f42"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("access_codes", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "proof_hash",
                sa.String(length=64),
                nullable=True,
                comment="sha256 of the proof given when the code was verified; never the proof",
            )
        )
        batch_op.add_column(
            sa.Column(
                "proof_expires_at", guichet_runtime.db.UtcDateTime(timezone=True), nullable=True
            )
        )
        batch_op.create_index(batch_op.f("ix_access_codes_proof_hash"), ["proof_hash"])


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("access_codes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_access_codes_proof_hash"))
        batch_op.drop_column("proof_expires_at")
        batch_op.drop_column("proof_hash")
