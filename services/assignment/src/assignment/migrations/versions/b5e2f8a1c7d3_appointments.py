"""appointments of citizens with their référents

Revision ID: b5e2f8a1c7d3
Revises: 9c1d4e7a2b58
Create Date: 2026-11-30 21:30:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import guichet_runtime.db

# revision identifiers, used by Alembic.
revision: str = "b5e2f8a1c7d3"
down_revision: str | Sequence[str] | None = "9c1d4e7a2b58"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BOOKED = sa.text("status = 'reserve'")


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "appointments",
        sa.Column("appointment_id", sa.String(length=36), nullable=False),
        sa.Column("file_id", sa.String(length=32), nullable=False),
        sa.Column("agent_id", sa.String(length=30), nullable=False),
        sa.Column("starts_at", guichet_runtime.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("ends_at", guichet_runtime.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("office_address", sa.String(length=400), nullable=False),
        sa.Column(
            "status", sa.String(length=20), nullable=False, comment="reserve, annule, deplace"
        ),
        sa.Column("booked_by", sa.String(length=20), nullable=False, comment="citoyen or agent"),
        sa.Column("booked_by_agent", sa.String(length=30), nullable=True),
        sa.Column("booked_at", guichet_runtime.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("cancelled_by", sa.String(length=20), nullable=True),
        sa.Column("cancelled_by_agent", sa.String(length=30), nullable=True),
        sa.Column("cancel_reason", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("cancelled_at", guichet_runtime.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("reminded_at", guichet_runtime.db.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.agent_id"]),
        sa.ForeignKeyConstraint(["file_id"], ["files.file_id"]),
        sa.PrimaryKeyConstraint("appointment_id"),
    )
    op.create_index("ix_appointments_file_id", "appointments", ["file_id"], unique=False)
    op.create_index(
        "appointments_one_per_slot",
        "appointments",
        ["agent_id", "starts_at"],
        unique=True,
        sqlite_where=BOOKED,
        postgresql_where=BOOKED,
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index("appointments_one_per_slot", table_name="appointments")
    op.drop_index("ix_appointments_file_id", table_name="appointments")
    op.drop_table("appointments")
