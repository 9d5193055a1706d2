"""personal columns sealed: description, personal word and history explanation as JSON

The columns hold either the text in clear (a JSON string) or the object sealed with the
file's data key (assignment.personal_columns). Existing texts become JSON strings.

Revision ID: d4a7c2e9b1f3
Revises: b5e2d8f41a07
Create Date: 2026-11-30 15:00:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "d4a7c2e9b1f3"
down_revision: str | Sequence[str] | None = "b5e2d8f41a07"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: (table, column)
COLUMNS = (("files", "description"), ("files", "personal_word"), ("assignments", "explanation"))


def upgrade() -> None:
    """Upgrade schema."""
    if op.get_bind().dialect.name == "postgresql":
        for table, column in COLUMNS:
            op.alter_column(table, column, type_=sa.JSON(), postgresql_using=f"to_json({column})")
        return
    # SQLite: the declared type stays TEXT (its affinity suits JSON text; a batch rebuild
    # would CAST the values to JSON's NUMERIC affinity); the texts become JSON strings.
    for table, column in COLUMNS:
        op.execute(f"UPDATE {table} SET {column} = json_quote({column}) WHERE {column} IS NOT NULL")


def downgrade() -> None:
    """Downgrade schema (a sealed value comes back as its JSON text)."""
    if op.get_bind().dialect.name == "postgresql":
        for table, column in COLUMNS:
            op.alter_column(table, column, type_=sa.Text(), postgresql_using=f"{column} #>> '{{}}'")
        return
    for table, column in COLUMNS:
        op.execute(
            f"UPDATE {table} SET {column} = json_extract({column}, '$') "
            f"WHERE {column} IS NOT NULL AND json_type({column}) = 'text'"
        )
