"""personal columns sealed with the file's data key: their comments say so

The columns keep their types: a sealed value is the JSON of a `SealedPersonalData` object, in
the same text (`answer`) or binary (`payload`) column; rows in clear stay readable
(adapter_sdk.personal). Only the comments change (PostgreSQL keeps them; SQLite has none).

Revision ID: 5e7a1c9d3b42
Revises: d8b4a2c7e913
Create Date: 2026-11-30 15:15:00.000000

"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "5e7a1c9d3b42"
down_revision: str | Sequence[str] | None = "d8b4a2c7e913"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: (table, column, type, new comment, previous comment)
COMMENTS: list[tuple[str, str, sa.types.TypeEngine[Any], str, str]] = [
    (
        "requests",
        "answer",
        sa.Text(),
        "JSON of the decision applied (a repeated decision from a conflicting one), sealed "
        "with the file's data key (adapter_sdk.personal) when the file has one",
        "JSON of the decision applied (a repeated decision from a conflicting one)",
    ),
    (
        "callbacks",
        "outcome",
        sa.String(length=20),
        "applique, identique, conflit, en_attente, efface",
        "applique, identique, conflit, en_attente",
    ),
    (
        "callbacks",
        "payload",
        sa.LargeBinary(),
        "Exact bytes of a held callback, sealed with the file's data key (JSON of the sealed "
        "object) when the file has one",
        "Exact bytes of a held callback",
    ),
    (
        "callbacks",
        "answer",
        sa.Text(),
        "JSON of a held callback's decision, sealed like the payload",
        "JSON of a held callback's decision",
    ),
]


def _comment(new: bool) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column, type_, comment, previous in COMMENTS:
        op.alter_column(
            table,
            column,
            existing_type=type_,
            comment=comment if new else previous,
            existing_comment=previous if new else comment,
        )


def upgrade() -> None:
    """Upgrade schema."""
    _comment(new=True)


def downgrade() -> None:
    """Downgrade schema."""
    _comment(new=False)
