"""Whether a service's database is at its migrations' head, without loading Alembic.

The readiness probe asks it (`guichet_runtime.probes`). Alembic's own answer (its script
directory and migration context, what the tests compare with) loads Alembic into the
service's process, 10 MB of its resident memory once SQLAlchemy is there, for a service that
never migrates anything itself in production (`MIGRATE_AT_START=false`, a Kubernetes Job
migrates before the rollout). Here the scripts' heads are read from the scripts' own
`revision` and `down_revision` assignments (parsed, not imported) and the database's from
Alembic's version table. `tests/unit/test_revisions.py` checks the heads against Alembic's
for every migrations folder of the project. Written by hand (about 40 lines): Alembic has no
part that reads its scripts without importing itself.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

#: Alembic's default version table (this project's migrations do not rename it).
VERSION_TABLE = "alembic_version"


@functools.cache
def script_heads(script_location: Path) -> frozenset[str]:
    """The revisions of `script_location/versions` that no other revision revises (read
    once: the scripts do not change under a running process, the probe asks until the
    database is at head)."""
    revisions: set[str] = set()
    revised: set[str] = set()
    for path in sorted((script_location / "versions").glob("*.py")):
        names = _assignments(path)
        if not isinstance(names.get("revision"), str):
            continue
        revisions.add(names["revision"])
        down = names.get("down_revision")
        revised |= {down} if isinstance(down, str) else set(down or ())
    return frozenset(revisions - revised)


def _assignments(path: Path) -> dict[str, Any]:
    """The module's top-level assignments of literal values (`revision: str = "…"`)."""
    found: dict[str, Any] = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        target: ast.expr | None = node.target if isinstance(node, ast.AnnAssign) else None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        value = getattr(node, "value", None)
        if isinstance(target, ast.Name) and value is not None:
            try:
                found[target.id] = ast.literal_eval(value)
            except ValueError:
                continue
    return found


async def database_heads(engine: AsyncEngine) -> set[str]:
    """The revisions recorded in the database (none before its first migration)."""
    async with engine.connect() as conn:
        if not await conn.run_sync(lambda sync: sa.inspect(sync).has_table(VERSION_TABLE)):
            return set()
        rows = await conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}"))
        return {row[0] for row in rows}


async def at_head(script_location: Path, engine: AsyncEngine) -> bool:
    """Whether the database's revisions are the scripts' heads."""
    return await database_heads(engine) == script_heads(script_location)
