"""audit trail: the retention purge, the only delete the append-only trigger lets through

Revision ID: 3b8e5f1c9d27
Revises: a4e9c2d7b1f3
Create Date: 2026-11-30 15:00:00.000000

"""

from collections.abc import Sequence

from alembic import op

from guichet_runtime.audit_purge import APPEND_ONLY_SQL, PURGE_SQL

# revision identifiers, used by Alembic.
revision: str = "3b8e5f1c9d27"
down_revision: str | Sequence[str] | None = "a4e9c2d7b1f3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    if op.get_bind().dialect.name == "postgresql":
        for statement in PURGE_SQL:
            op.execute(statement)


def downgrade() -> None:
    """Downgrade schema."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS audit_purge(bigint)")
        op.execute(APPEND_ONLY_SQL)
