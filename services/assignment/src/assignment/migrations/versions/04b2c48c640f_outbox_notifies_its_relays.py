"""the outbox notifies its relays itself (PostgreSQL: a trigger instead of a statement
of each writer's)

Revision ID: 04b2c48c640f
Revises: c7a9d3e5f1b2
Create Date: 2026-12-03 19:45:00.000000

"""

from collections.abc import Sequence

from guichet_runtime.migrations import create_outbox_notify, drop_outbox_notify

# revision identifiers, used by Alembic.
revision: str = "04b2c48c640f"
down_revision: str | Sequence[str] | None = "c7a9d3e5f1b2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    create_outbox_notify()


def downgrade() -> None:
    """Downgrade schema."""
    drop_outbox_notify()
