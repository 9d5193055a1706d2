"""Rate limits kept in the service's own database, so every replica counts the same hits:
fixed windows, one row per (key, window start), incremented by one atomic upsert.

`RateLimit.parse("5/hour")` reads a limit; `RateLimiter.hit(key, limit)` counts one hit and
raises `Refused(TOO_MANY)` with `Retry-After` once the window's count passes the limit.
`client_address` finds who is calling (the connection's peer, or `X-Forwarded-For` when the
peer is a trusted proxy)."""

from __future__ import annotations

import ipaddress
import math
import re
import time
from collections.abc import Callable, Iterable, Sequence

import sqlalchemy as sa
from pydantic import BaseModel, model_validator
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import HTTPConnection

from guichet_runtime.refusals import RefusalKind, Refused
from guichet_runtime.statements import param, params, prepared
from guichet_runtime.transactions import transaction

PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_RATE = re.compile(r"\s*(\d+)\s*/\s*(\d*)\s*(second|minute|hour|day)s?\s*")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class RateLimit(BaseModel):
    """At most `count` hits per window of `seconds`; `count` 0 switches the rule off."""

    count: int
    seconds: int

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: object) -> object:
        return cls.parse(value).model_dump() if isinstance(value, str) else value

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        """'5/hour', '3/15minutes', '100/day'."""
        found = _RATE.fullmatch(text)
        if not found:
            raise ValueError(f"not a rate limit (e.g. '5/hour'): {text!r}")
        count, periods, unit = found.groups()
        return cls(count=int(count), seconds=int(periods or 1) * PERIODS[unit])


def rate_counters_table(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        "rate_counters",
        metadata,
        sa.Column("key", sa.String(200), primary_key=True, comment="rule:scope:value"),
        sa.Column("window_start", sa.BigInteger, primary_key=True, comment="epoch seconds"),
        sa.Column("count", sa.Integer, nullable=False),
    )


def too_many_message(retry_after: int) -> str:
    minutes = math.ceil(retry_after / 60)
    wait = f"{minutes} minute{'s' if minutes > 1 else ''}" if retry_after >= 60 else "un instant"
    return f"Trop de demandes en peu de temps : réessayez dans {wait}."


@prepared
def _upsert(dialect: str, t: sa.Table) -> sa.Insert:
    """One statement, atomic on both databases: insert the window or add one to it
    (`params(key=…, window_start=…)`). On PostgreSQL the key's older windows are deleted by
    the same statement (a data-modifying WITH); SQLite has no such WITH: `_older_windows`."""
    row = {"key": param(t.c.key), "window_start": param(t.c.window_start), "count": 1}
    keys, add_one = [t.c.key, t.c.window_start], {"count": t.c.count + 1}
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    upsert = insert(t).values(row).on_conflict_do_update(index_elements=keys, set_=add_one)
    if dialect == "postgresql":
        upsert = upsert.add_cte(_older_windows(t).cte("older_windows"))
    return upsert.returning(t.c.count)


@prepared
def _older_windows(t: sa.Table) -> sa.Delete:
    """The key's windows before this one (`params(key=…, window_start=…)`)."""
    return t.delete().where(t.c.key == param(t.c.key), t.c.window_start < param(t.c.window_start))


class RateLimiter:
    """Counts hits in `table` (see `rate_counters_table`) on `engine`, each in its own
    short transaction."""

    def __init__(
        self, engine: AsyncEngine, table: sa.Table, clock: Callable[[], float] = time.time
    ) -> None:
        self.engine = engine
        self.table = table
        self.clock = clock

    async def hit(self, key: str, limit: RateLimit) -> None:
        """Count one hit on `key`; refuse it (429) when the window already took `limit`."""
        if limit.count <= 0:
            return
        now = self.clock()
        window_start = int(now // limit.seconds) * limit.seconds
        count = await self._count(params(key=key, window_start=window_start))
        if count > limit.count:
            retry_after = max(1, math.ceil(window_start + limit.seconds - now))
            raise Refused(
                RefusalKind.TOO_MANY,
                too_many_message(retry_after),
                headers={"Retry-After": str(retry_after)},
            )

    async def _count(self, values: dict[str, object]) -> int:
        """One more hit in the window's row; its count after it.

        On PostgreSQL one statement, committed as it runs (autocommit): the row is locked
        only while the server executes it. In a transaction of its own (BEGIN, the upsert,
        COMMIT) the row stayed locked from the upsert until the COMMIT came, a turn of this
        process's event loop later; every caller sharing the key (one address: an office's
        network, a proxy) queued behind it. In `make bench` (16 POSTs at once from one
        address) the upsert waited 248 ms on average, and the waiting requests held the
        pool's connections. On SQLite, whose one writer at a time is the whole database,
        the two statements stay in one short transaction, and the key's older windows are
        deleted only by a window's first hit (the others would find none)."""
        if self.engine.dialect.name == "postgresql":
            async with self.engine.connect() as conn:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                result = await conn.execute(_upsert("postgresql", self.table), values)
                return int(result.scalar_one())
        async with transaction(self.engine) as conn:
            count = (await conn.execute(_upsert("sqlite", self.table), values)).scalar_one()
            if count == 1:
                await conn.execute(_older_windows(self.table), values)
        return int(count)

    async def purge(self, rules: Iterable[RateLimit] = ()) -> int:
        """Drop the windows every rule is done with (a housekeeping worker calls it): those
        that started longer ago than the longest of `rules`, and a day at least. A fixed
        day deleted the current window of a longer rule ('3/2days'), starting its count
        again."""
        cutoff = int(self.clock()) - max([PERIODS["day"], *(r.seconds for r in rules)])
        async with self.engine.begin() as conn:
            result = await conn.execute(
                self.table.delete().where(self.table.c.window_start < cutoff)
            )
        return result.rowcount or 0


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def is_trusted(address: str, trusted: Sequence[Network]) -> bool:
    ip = _address(address)
    return ip is not None and any(ip in net for net in trusted)


def client_address(connection: HTTPConnection, trusted: Sequence[Network] = ()) -> str:
    """The caller's address: the connection's peer, unless that peer is a trusted proxy
    (`TRUSTED_PROXIES`, e.g. the Ingress): then the nearest untrusted hop of
    `X-Forwarded-For`, read from the right (what a client wrote itself stays on the left)."""
    peer = connection.client.host if connection.client else "inconnu"
    if not is_trusted(peer, trusted):
        return peer
    hops = [
        hop.strip()
        for header in connection.headers.getlist("x-forwarded-for")
        for hop in header.split(",")
        if hop.strip()
    ]
    for hop in reversed(hops):
        if not is_trusted(hop, trusted):
            return hop
    return hops[0] if hops else peer
