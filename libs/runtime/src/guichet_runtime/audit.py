"""The audit trail: who did what, on which file, when and why (docs/data-protection.md).

Each service keeps its own trail in its own database: an append-only table of entries,
each chained to the one before by a SHA-256 over a canonical JSON of the entry and the
previous entry's hash, so altering, removing or reordering an entry breaks the chain from
there on. An entry is written in the same transaction as the action it records (the unit
of work queues it with `uow.record(...)` and writes it at commit, like the outbox): the
action and its trace commit together, or neither does.

One chain per database, even with several replicas: the writer locks the chain's head row
(`SELECT … FOR UPDATE` on PostgreSQL; SQLite has one writer, `BEGIN IMMEDIATE`), takes the
next sequence number and the previous hash from it, and moves the head in the same
transaction. The head is locked only at commit, so the lock is held for a few statements.

The head is anchored daily: its sequence number and hash signed with HMAC-SHA256 under
`AUDIT_ANCHOR_KEY` (a required secret outside development) in `audit_anchors`. Someone who
rewrites the whole chain from some entry on, or cuts its end, cannot sign a matching anchor
without the key. `verify(conn, key)` (`guichet-admin audit verify`) checks all of it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from guichet_runtime.auth.principal import Principal, PrincipalKind
from guichet_runtime.db import AUDIT_TRAILS, BigIntId, UnitOfWork, UtcDateTime, utcnow
from guichet_runtime.refusals import RefusalKind, Refused
from guichet_runtime.secrets import required_secret

log = logging.getLogger(__name__)

#: The previous hash of the first entry.
GENESIS = "0" * 64
#: The head row's key (one row).
HEAD_ID = 1
#: The shortest reason taken on a sensitive action (the same as a reassignment's).
MIN_REASON = 5
MAX_REASON = 1000
REASON_NEEDED = (
    "Indiquez le motif de cette action (au moins 5 caractères) : il est conservé dans le "
    "journal d'audit."
)


class AuditAction(StrEnum):
    """What was done; the values are stored in the trail."""

    FILE_REGISTERED = "file.registered"  # the front desk registered a file for a citizen
    RECORD_READ = "file.record.read"  # an agent read the citizen's contact and own words
    FILE_READ = "file.read"  # an agent read the file's view (answer, timeline, ledger)
    MESSAGE_SENT = "file.message.sent"  # the référent wrote to the citizen
    DOCUMENT_ADDED = "file.document.added"  # an agent added a document for the citizen
    AUDIT_READ = "file.audit.read"  # a supervisor read the file's audit trail
    PERSONAL_WORD_SET = "file.personal-word.set"
    PERSONAL_WORD_REMOVED = "file.personal-word.removed"
    FILE_REASSIGNED = "file.reassigned"
    APPOINTMENT_BOOKED = "file.appointment.booked"  # an agent booked a meeting for the citizen
    APPOINTMENT_MOVED = "file.appointment.moved"
    APPOINTMENT_CANCELLED = "file.appointment.cancelled"
    APPOINTMENTS_READ = "agent.appointments.read"  # an agent's day of meetings (names)
    #: The front desk of the référent's office reads a file's appointments (citizen's name).
    FILE_APPOINTMENTS_READ = "file.appointments.read"
    PORTFOLIO_READ = "agent.portfolio.read"  # citizens' names and files of an agent
    REGISTERED_FILES_READ = "agent.registered-files.read"  # the front desk's list (names)
    ABSENCE_DECLARED = "agent.absence.declared"
    AGENT_RETURNED = "agent.returned"
    AGENT_LEFT = "agent.left"
    AGENT_JOINED = "agent.joined"
    DIRECTORY_IMPORTED = "directory.imported"
    #: A citizen's data key was shredded (crypto-shredding: their data erased everywhere).
    PERSONAL_DATA_KEY_SHREDDED = "personal-data-key.shredded"
    DATA_EXPORTED = "citizen.data.exported"  # the citizen downloaded their data (RGPD art. 15)
    DATA_ERASED = "file.data.erased"  # a file's personal data was erased (request, retention)
    RETENTION_APPLIED = "retention.applied"  # the retention job's run (counts only)
    #: The days past the trail's retention removed from its start (guichet_runtime.audit_purge)
    AUDIT_PURGED = "audit.purged"


@dataclass(frozen=True)
class AuditTables:
    log: sa.Table
    head: sa.Table
    anchors: sa.Table


def audit_tables(metadata: sa.MetaData) -> AuditTables:
    """Add the trail's tables to a service's metadata."""
    log_table = sa.Table(
        "audit_log",
        metadata,
        sa.Column("seq", BigIntId, primary_key=True, autoincrement=False),
        sa.Column("at", UtcDateTime, nullable=False),
        sa.Column("actor_kind", sa.String(20), nullable=False),
        sa.Column("actor_subject", sa.String(255)),
        sa.Column("actor_agent_id", sa.String(100)),
        sa.Column("actor_client_id", sa.String(255)),
        sa.Column("action", sa.String(100), nullable=False),
        sa.Column("file_id", sa.String(64), index=True),
        sa.Column("agent_id", sa.String(100), comment="the agent the action is about"),
        sa.Column("reason", sa.Text),
        sa.Column("details", sa.Text, nullable=False, comment="JSON"),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("entry_hash", sa.String(64), nullable=False),
        comment="append-only, hash-chained audit trail",
    )
    head = sa.Table(
        "audit_head",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", BigIntId, nullable=False),
        sa.Column("entry_hash", sa.String(64), nullable=False),
        comment="the chain's last entry (one row, locked by each writer)",
    )
    anchors = sa.Table(
        "audit_anchors",
        metadata,
        sa.Column("id", BigIntId, primary_key=True, autoincrement=True),
        sa.Column("anchored_at", UtcDateTime, nullable=False),
        sa.Column("seq", BigIntId, nullable=False),
        sa.Column("head_hash", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("signature", sa.String(64), nullable=False),
        comment="the chain head signed daily (HMAC-SHA256, AUDIT_ANCHOR_KEY)",
    )
    tables = AuditTables(log_table, head, anchors)
    AUDIT_TRAILS[metadata] = AuditTrail(tables)
    return tables


def tables_of(metadata: sa.MetaData) -> AuditTables | None:
    """The trail's tables in a service's metadata, if it keeps one."""
    found = [metadata.tables.get(n) for n in ("audit_log", "audit_head", "audit_anchors")]
    if any(t is None for t in found):
        return None
    log_table, head, anchors = found
    assert log_table is not None and head is not None and anchors is not None
    return AuditTables(log_table, head, anchors)


def trail_of(metadata: sa.MetaData) -> AuditTrail | None:
    """The trail kept in a service's metadata (None: the service keeps none)."""
    return AUDIT_TRAILS.get(metadata)


# --- the entry and its hash ------------------------------------------------------------------


@dataclass(frozen=True)
class Actor:
    """Who acted, from the verified token."""

    kind: str
    subject: str | None = None
    agent_id: str | None = None
    client_id: str | None = None

    @classmethod
    def of(cls, principal: Principal) -> Actor:
        return cls(
            kind=str(principal.kind),
            subject=principal.subject,
            agent_id=principal.agent_id if principal.kind is PrincipalKind.AGENT else None,
            client_id=principal.client_id,
        )


@dataclass(frozen=True)
class Entry:
    """One line of the trail, before it is chained."""

    actor: Actor
    action: str
    at: dt.datetime
    file_id: str | None = None
    agent_id: str | None = None
    reason: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def row(self, seq: int, prev_hash: str) -> dict[str, Any]:
        row = {
            "seq": seq,
            "at": self.at,
            "actor_kind": self.actor.kind,
            "actor_subject": self.actor.subject,
            "actor_agent_id": self.actor.agent_id,
            "actor_client_id": self.actor.client_id,
            "action": self.action,
            "file_id": self.file_id,
            "agent_id": self.agent_id,
            "reason": self.reason,
            "details": json.dumps(dict(self.details), sort_keys=True, ensure_ascii=False),
            "prev_hash": prev_hash,
        }
        row["entry_hash"] = entry_hash(row)
        return row


HASHED = (
    "seq",
    "at",
    "actor_kind",
    "actor_subject",
    "actor_agent_id",
    "actor_client_id",
    "action",
    "file_id",
    "agent_id",
    "reason",
    "details",
)


def canonical(value: Mapping[str, Any]) -> bytes:
    """The canonical JSON of an entry: sorted keys, no spaces, UTF-8, UTC microseconds."""

    def plain(v: Any) -> Any:
        if isinstance(v, dt.datetime):
            return v.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return v

    body = {k: plain(value[k]) for k in HASHED}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def entry_hash(row: Mapping[str, Any]) -> str:
    """SHA-256 over the previous hash and the entry's canonical JSON."""
    return hashlib.sha256(row["prev_hash"].encode() + b"\n" + canonical(row)).hexdigest()


def record(
    uow: UnitOfWork,
    by: Principal | Actor,
    action: AuditAction,
    *,
    file_id: str | None = None,
    agent_id: str | None = None,
    reason: str | None = None,
    **details: Any,
) -> None:
    """Queue the entry of an action on the unit of work: chained at its commit."""
    actor = by if isinstance(by, Actor) else Actor.of(by)
    uow.record(
        Entry(
            actor=actor,
            action=action,
            at=utcnow(),
            file_id=file_id,
            agent_id=agent_id,
            reason=reason,
            details={k: v for k, v in details.items() if v is not None},
        )
    )


async def file_entries(uow: UnitOfWork, file_id: str) -> list[dict[str, Any]]:
    """A file's entries in the unit of work's service, oldest first (own transaction)."""
    trail = uow.audit_trail
    if trail is None:
        raise RuntimeError("this service keeps no audit trail")
    async with uow:
        found: list[dict[str, Any]] = await trail.entries_of_file(uow.conn, file_id)
    return found


#: The service itself (a scheduled job, or a use case called without a verified caller).
SYSTEM = Actor(kind="system")


def agent_actor(agent_id: str) -> Actor:
    """An agent known by their id only (a command called without the verified principal)."""
    return Actor(kind=PrincipalKind.AGENT, agent_id=agent_id)


def reason_given(reason: str | None, field_name: str = "reason") -> str:
    """The reason a sensitive action must give, trimmed; a French 422 when missing."""
    text = (reason or "").strip()
    if len(text) < MIN_REASON or len(text) > MAX_REASON:
        raise Refused(RefusalKind.INVALID, REASON_NEEDED, field=field_name)
    return text


# --- writing -----------------------------------------------------------------------------------


class AuditTrail:
    """Appends entries to the chain, inside the caller's transaction."""

    def __init__(self, tables: AuditTables) -> None:
        self.tables = tables

    async def append(self, conn: AsyncConnection, entries: list[Entry]) -> None:
        head = self.tables.head
        query = sa.select(head.c.seq, head.c.entry_hash).where(head.c.id == HEAD_ID)
        found = (await conn.execute(query.with_for_update())).first()
        if found is None:  # a database migrated before its first entry: start the chain
            seq, prev = 0, GENESIS
            await conn.execute(head.insert().values(id=HEAD_ID, seq=0, entry_hash=GENESIS))
        else:
            seq, prev = int(found.seq), found.entry_hash
        rows = []
        for entry in entries:
            seq += 1
            row = entry.row(seq, prev)
            prev = row["entry_hash"]
            rows.append(row)
        await conn.execute(self.tables.log.insert(), rows)
        await conn.execute(
            head.update().where(head.c.id == HEAD_ID).values(seq=seq, entry_hash=prev)
        )

    async def entries_of_file(self, conn: AsyncConnection, file_id: str) -> list[dict[str, Any]]:
        """A file's entries, oldest first, for its supervisors."""
        log_table = self.tables.log
        rows = await conn.execute(
            sa.select(log_table).where(log_table.c.file_id == file_id).order_by(log_table.c.seq)
        )
        return [entry_view(r._asdict()) for r in rows]


def entry_view(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "seq": row["seq"],
        "at": row["at"],
        "who": {
            "kind": row["actor_kind"],
            "subject": row["actor_subject"],
            "agent_id": row["actor_agent_id"],
            "client_id": row["actor_client_id"],
        },
        "action": row["action"],
        "file_id": row["file_id"],
        "agent_id": row["agent_id"],
        "reason": row["reason"],
        "details": json.loads(row["details"] or "{}"),
        "entry_hash": row["entry_hash"],
    }


# --- anchoring ---------------------------------------------------------------------------------


def key_id(key: bytes) -> str:
    """A fingerprint of the anchoring key (names it without revealing it)."""
    return hashlib.sha256(b"audit-anchor-key\n" + key).hexdigest()[:16]


def anchor_signature(key: bytes, seq: int, head_hash: str, anchored_at: dt.datetime) -> str:
    message = canonical_anchor(seq, head_hash, anchored_at)
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def canonical_anchor(seq: int, head_hash: str, anchored_at: dt.datetime) -> bytes:
    at = anchored_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    body = {"anchored_at": at, "head_hash": head_hash, "seq": seq}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


async def anchor(conn: AsyncConnection, tables: AuditTables, key: bytes) -> dict[str, Any] | None:
    """Sign the chain's current head into `audit_anchors` (None: the chain is empty). The
    caller commits."""
    head = tables.head
    found = (
        await conn.execute(
            sa.select(head.c.seq, head.c.entry_hash).where(head.c.id == HEAD_ID).with_for_update()
        )
    ).first()
    if found is None or int(found.seq) == 0:
        return None
    now = utcnow()
    row = {
        "anchored_at": now,
        "seq": int(found.seq),
        "head_hash": found.entry_hash,
        "key_id": key_id(key),
        "signature": anchor_signature(key, int(found.seq), found.entry_hash, now),
    }
    await conn.execute(tables.anchors.insert().values(**row))
    return row


async def anchored_since(conn: AsyncConnection, tables: AuditTables, since: dt.datetime) -> bool:
    last = await conn.scalar(sa.select(sa.func.max(tables.anchors.c.anchored_at)))
    if last is None:
        return False
    if last.tzinfo is None:
        last = last.replace(tzinfo=dt.UTC)
    return bool(last >= since)


def anchoring(runtime: Any) -> Callable[[], Awaitable[None]]:
    """The worker a service keeping a trail adds (`runtime.workers.append(...)`): its key is
    AUDIT_ANCHOR_KEY (guichet_runtime.secrets: required outside dev, refused at start)."""
    settings = runtime.settings
    key = required_secret(
        settings.audit_anchor_key, "AUDIT_ANCHOR_KEY", settings.environment, settings.secrets_dir
    ).encode()
    tables = runtime.audit.tables

    def worker() -> Awaitable[None]:
        return anchor_daily(
            runtime.engine,
            tables,
            key,
            runtime.stopping,
            runtime.pause,
            settings.audit_anchor_check_seconds,
        )

    return worker


async def anchor_daily(
    engine: AsyncEngine,
    tables: AuditTables,
    key: bytes,
    stopping: asyncio.Event,
    pause: Callable[[float], Awaitable[bool]],
    every_seconds: float = 3600.0,
    period: dt.timedelta = dt.timedelta(days=1),
) -> None:
    """The service's worker: each round, anchor the head unless an anchor younger than
    `period` exists. Durable: read from the database each round; replicas may both anchor
    (harmless: two signatures of the same or successive heads)."""
    while not stopping.is_set():
        try:
            async with engine.begin() as conn:
                if not await anchored_since(conn, tables, utcnow() - period):
                    made = await anchor(conn, tables, key)
                    if made is not None:
                        log.info("audit chain anchored at entry %s", made["seq"])
        except Exception:
            log.exception("audit anchoring failed; retrying")
        if await pause(every_seconds):
            return
