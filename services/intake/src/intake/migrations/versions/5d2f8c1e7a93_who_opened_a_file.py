"""who opened a file (citizen's subject, front-desk agent, channel); office of a thanked référent

Revision ID: 5d2f8c1e7a93
Revises: 7c1e5a9b2d40
Create Date: 2026-11-30 08:45:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "5d2f8c1e7a93"
down_revision: str | Sequence[str] | None = "7c1e5a9b2d40"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "citizen_subject",
                sa.String(length=255),
                nullable=True,
                comment="the citizen's `sub` when they filed logged in",
            )
        )
        batch_op.add_column(
            sa.Column(
                "registered_by",
                sa.String(length=50),
                nullable=True,
                comment="the front-desk agent who registered it for the citizen",
            )
        )
        batch_op.add_column(
            sa.Column(
                "channel",
                sa.String(length=20),
                nullable=True,
                comment="en_ligne, guichet, telephone, courrier (null: filed before it was kept)",
            )
        )
        batch_op.create_index(batch_op.f("ix_files_citizen_subject"), ["citizen_subject"])
        batch_op.create_index(batch_op.f("ix_files_registered_by"), ["registered_by"])
    with op.batch_alter_table("thanks", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "office_id",
                sa.String(length=50),
                nullable=True,
                comment="the référent's office when thanked: its supervisors may read the thanks",
            )
        )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("thanks", schema=None) as batch_op:
        batch_op.drop_column("office_id")
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_files_registered_by"))
        batch_op.drop_index(batch_op.f("ix_files_citizen_subject"))
        batch_op.drop_column("channel")
        batch_op.drop_column("registered_by")
        batch_op.drop_column("citizen_subject")
