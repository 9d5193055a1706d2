"""The audit trail's retention: whole days past their period removed from the chain's start,
the chain still verifiable (docs/data-protection.md, "Audit trail", Retention).

One transaction: the entries to purge are the chain's prefix recorded before the cut-off day
(the start, in Paris, of the day `period` days before today); a purge entry (`audit.purged`)
is appended at the chain's head, naming the last purged entry (`through_seq`) and its hash
(`through_hash`); then the prefix and the anchors of it are deleted. The first remaining
entry's previous hash is `through_hash`: `verify` accepts a chain starting after entry 1
only when the chain's latest purge entry names exactly that start, so removing more entries
than a purge did, or any entry without a purge entry, is still found.

On PostgreSQL the append-only trigger refuses every `DELETE` but one made by the function
`audit_purge(through_seq)` (SECURITY DEFINER, the tables' owner; each service's migration
creates it): it deletes only when the chain's head is the purge entry naming that prefix.
The run-time role cannot delete an entry in any other way.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from guichet_runtime.audit import HEAD_ID, SYSTEM, AuditAction, AuditTables, AuditTrail, Entry
from guichet_runtime.clock import PARIS, paris_day
from guichet_runtime.db import UnitOfWork, utcnow
from shared_models.retention import DataKind, period

log = logging.getLogger(__name__)

#: The trigger and the function that let the purge, and only it, delete entries (PostgreSQL).
#: Created by each service's migration; `audit_purge` runs as the tables' owner.
PURGE_SQL = (
    """
CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE'
       AND current_setting('guichet.audit_purge', true) = 'on'
       AND current_user = (SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = TG_RELID)
    THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only';
END $$
""",
    """
CREATE OR REPLACE FUNCTION audit_purge(through_seq bigint) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
    head_seq bigint;
    purged bigint;
BEGIN
    SELECT seq INTO head_seq FROM audit_head WHERE id = 1 FOR UPDATE;
    IF NOT EXISTS (
        SELECT 1 FROM audit_log
        WHERE seq = head_seq AND action = 'audit.purged'
          AND (details::jsonb ->> 'through_seq')::bigint = through_seq
          AND through_seq < head_seq
    ) THEN
        RAISE EXCEPTION 'audit_purge: the chain''s head is not the purge entry of entry %',
            through_seq;
    END IF;
    PERFORM set_config('guichet.audit_purge', 'on', true);
    DELETE FROM audit_log WHERE seq <= through_seq;
    GET DIAGNOSTICS purged = ROW_COUNT;
    PERFORM set_config('guichet.audit_purge', 'off', true);
    DELETE FROM audit_anchors WHERE seq <= through_seq;
    RETURN purged;
END $$
""",
)

#: What the previous migration had (the downgrade puts it back).
APPEND_ONLY_SQL = """
CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END $$
"""


@dataclass(frozen=True)
class Purge:
    """What one purge removed (`through_seq` 0: nothing was due)."""

    cutoff: dt.datetime
    purged: int = 0
    through_seq: int = 0


def purge_cutoff(now: dt.datetime, period: dt.timedelta) -> dt.datetime:
    """The start (Paris) of the first day still kept: whole days go, never part of one."""
    day = paris_day(now - period)
    return dt.datetime.combine(day, dt.time(), tzinfo=PARIS).astimezone(dt.UTC)


async def purge_expired(
    conn: AsyncConnection, tables: AuditTables, now: dt.datetime, period: dt.timedelta
) -> Purge:
    """Remove the chain's entries of the days past `period` at `now` (the controllable
    clock's), keeping the chain verifiable: a purge entry at the head, in the caller's
    transaction (the caller commits; on SQLite its `BEGIN IMMEDIATE` holds the writers)."""
    cutoff = purge_cutoff(now, period)
    log_table, head = tables.log, tables.head
    # One writer at a time: the head locked before anything is read.
    await conn.execute(sa.select(head.c.seq).where(head.c.id == HEAD_ID).with_for_update())
    first_kept = await conn.scalar(
        sa.select(sa.func.min(log_table.c.seq)).where(log_table.c.at >= cutoff)
    )
    last = sa.select(sa.func.max(log_table.c.seq))
    if first_kept is not None:
        last = last.where(log_table.c.seq < first_kept)
    through_seq = await conn.scalar(last)
    if through_seq is None:
        return Purge(cutoff)
    through_hash = await conn.scalar(
        sa.select(log_table.c.entry_hash).where(log_table.c.seq == through_seq)
    )
    count = int(
        await conn.scalar(sa.select(sa.func.count()).where(log_table.c.seq <= through_seq)) or 0
    )
    entry = Entry(
        actor=SYSTEM,
        action=AuditAction.AUDIT_PURGED,
        at=utcnow(),
        details={
            "through_seq": int(through_seq),
            "through_hash": through_hash,
            "purged": count,
            "before": cutoff.strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
    )
    await AuditTrail(tables).append(conn, [entry])
    if conn.dialect.name == "postgresql":
        await conn.execute(sa.text("SELECT audit_purge(:seq)"), {"seq": int(through_seq)})
    else:
        await conn.execute(log_table.delete().where(log_table.c.seq <= through_seq))
        await conn.execute(tables.anchors.delete().where(tables.anchors.c.seq <= through_seq))
    return Purge(cutoff, count, int(through_seq))


async def purge_trail(uow: UnitOfWork, now: dt.datetime) -> Purge:
    """The retention job's step for the service's own trail (its period:
    `shared_models.retention`, audit-trail); committed."""
    trail = uow.audit_trail
    if trail is None:
        raise RuntimeError("this service keeps no audit trail")
    async with uow:
        done = await purge_expired(uow.conn, trail.tables, now, period(DataKind.AUDIT_TRAIL).delta)
        await uow.commit()
    if done.purged:
        log.info("audit trail: entries 1..%s purged (before %s)", done.through_seq, done.cutoff)
    return done
