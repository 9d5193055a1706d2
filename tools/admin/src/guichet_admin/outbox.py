"""The outbox backlog of each service database: rows committed but not yet published.

The relay (guichet_runtime.relay) deletes a row once Kafka acknowledged it, so every row still
in `outbox` is pending; its `created_at` is the commit time of the transaction that wrote it.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
import sqlalchemy.exc
from sqlalchemy.ext.asyncio import create_async_engine

from guichet_admin.errors import AdminError
from guichet_runtime.db import UtcDateTime

#: `GUICHET_INTAKE_DATABASE_URL=...` names the intake service's database.
ENV_PATTERN = re.compile(r"^GUICHET_([A-Z0-9_]+)_DATABASE_URL$")

OUTBOX = sa.table("outbox", sa.column("topic", sa.String()), sa.column("created_at", UtcDateTime()))

_ASYNC_DRIVERS = {"postgresql": "postgresql+asyncpg", "sqlite": "sqlite+aiosqlite"}


@dataclass(frozen=True)
class Backlog:
    service: str
    pending: int
    oldest: dt.datetime | None
    by_topic: dict[str, int] = field(default_factory=dict)

    def age_seconds(self, now: dt.datetime) -> float | None:
        return None if self.oldest is None else max((now - self.oldest).total_seconds(), 0.0)


def databases_from_env(environ: Mapping[str, str]) -> dict[str, str]:
    """Service name -> URL from the `GUICHET_<SERVICE>_DATABASE_URL` variables."""
    found = {}
    for name, value in environ.items():
        match = ENV_PATTERN.match(name)
        if match and value:
            found[match.group(1).lower().replace("_", "-")] = value
    return dict(sorted(found.items()))


def parse_database_options(options: Sequence[str]) -> dict[str, str]:
    """`--database-url intake=URL` (or a bare URL, named after its database) -> name -> URL."""
    found: dict[str, str] = {}
    for option in options:
        name, sep, url = option.partition("=")
        if not sep or "://" in name:
            url = option
            name = Path(sa.engine.make_url(url).database or "database").stem
        found[name] = url
    return found


def async_url(url: str) -> sa.URL:
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise AdminError(f"not a database URL: {url!r}") from exc
    driver = _ASYNC_DRIVERS.get(parsed.drivername)
    if driver is not None:
        parsed = parsed.set(drivername=driver)
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database or ""
        if path and path != ":memory:" and not Path(path).is_file():
            raise AdminError(f"no SQLite database at {path}")
    return parsed


async def backlog(service: str, url: str) -> Backlog:
    """Count the service's outbox rows, per topic, with the oldest creation time."""
    engine = create_async_engine(async_url(url))
    query = sa.select(
        OUTBOX.c.topic, sa.func.count().label("rows"), sa.func.min(OUTBOX.c.created_at)
    ).group_by(OUTBOX.c.topic)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(query)).all()
    except (sa.exc.OperationalError, sa.exc.ProgrammingError) as exc:
        raise AdminError(
            f"{service}: cannot read the outbox table ({exc.orig!r}); wrong URL, or the "
            "service's migrations never ran?"
        ) from exc
    except (OSError, sa.exc.InterfaceError) as exc:
        raise AdminError(f"{service}: cannot reach its database: {exc!r}") from exc
    finally:
        await engine.dispose()
    by_topic = {row.topic: int(row.rows) for row in rows}
    oldest = min((row[2] for row in rows if row[2] is not None), default=None)
    return Backlog(service, sum(by_topic.values()), oldest, dict(sorted(by_topic.items())))


def database_targets(
    options: Sequence[str], environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The options' databases, else the environment's; an error when neither names any."""
    found = parse_database_options(options) or databases_from_env(
        os.environ if environ is None else environ
    )
    if not found:
        raise AdminError(
            "no database: pass --database-url SERVICE=URL or set GUICHET_<SERVICE>_DATABASE_URL"
        )
    return found
