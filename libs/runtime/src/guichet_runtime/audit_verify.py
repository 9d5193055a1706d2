"""Checking a service's audit trail (`guichet-admin audit verify`): every entry's hash, the
chain's links and numbering, the head, and every anchor's place and signature.

After a retention purge (guichet_runtime.audit_purge) the chain starts after entry 1: it is
accepted only when the chain's latest purge entry (`audit.purged`) names exactly the last
purged entry and its hash, i.e. the first remaining entry's number and previous hash.

Reads the tables by name only, so a tool checks any service's database without importing it.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from guichet_runtime.audit import (
    GENESIS,
    HASHED,
    AuditAction,
    anchor_signature,
    entry_hash,
    key_id,
)
from guichet_runtime.db import UtcDateTime

LOG = sa.table(
    "audit_log",
    *[sa.column(name, UtcDateTime() if name == "at" else None) for name in HASHED],
    sa.column("prev_hash"),
    sa.column("entry_hash"),
)
HEAD = sa.table("audit_head", sa.column("id"), sa.column("seq"), sa.column("entry_hash"))
ANCHORS = sa.table(
    "audit_anchors",
    sa.column("id"),
    sa.column("anchored_at", UtcDateTime()),
    sa.column("seq"),
    sa.column("head_hash"),
    sa.column("key_id"),
    sa.column("signature"),
)


@dataclass
class Verdict:
    """What `verify` found: `problems` empty means the trail holds."""

    entries: int = 0
    anchors: int = 0
    head_seq: int = 0
    signatures_checked: bool = False
    #: The last entry removed by the retention purge (0: the chain starts at entry 1).
    purged_through: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


async def verify(conn: AsyncConnection, key: bytes | None = None) -> Verdict:
    """Walk the chain from its first entry; with `key`, check the anchors' signatures too."""
    verdict = Verdict(signatures_checked=key is not None)
    hashes: dict[int, str] = {}
    expected, prev = 1, GENESIS
    start: tuple[int, str] | None = None  # the first entry's (seq - 1, previous hash)
    purged: tuple[int, str] = (0, GENESIS)  # what the latest purge entry says it removed
    rows = await conn.stream(sa.select(LOG).order_by(LOG.c.seq))
    async for row in rows:
        entry: dict[str, Any] = row._asdict()
        seq = int(entry["seq"])
        verdict.entries += 1
        if start is None:  # the chain's start is checked against its purge entries below
            start = (seq - 1, entry["prev_hash"])
            expected, prev = seq, entry["prev_hash"]
        if seq != expected:
            verdict.problems.append(
                f"entries {expected}..{seq - 1} are missing (removed)"
                if seq > expected
                else f"entry {seq} is out of order"
            )
        if entry["prev_hash"] != prev:
            verdict.problems.append(
                f"entry {seq}: its previous hash does not match the entry before it "
                "(an entry removed, inserted or reordered before it)"
            )
        if entry_hash(entry) != entry["entry_hash"]:
            verdict.problems.append(f"entry {seq}: altered (its hash does not match its content)")
        elif entry["action"] == AuditAction.AUDIT_PURGED:
            purged = purge_point(entry)
        hashes[seq] = entry["entry_hash"]
        prev, expected = entry["entry_hash"], seq + 1
    if start is not None and start != purged:
        verdict.problems.append(
            f"the chain starts at entry {start[0] + 1} ({start[1][:12]}… before it), its latest "
            f"purge removed entries up to {purged[0]} ({purged[1][:12]}…): entries removed "
            "from its start"
        )
    verdict.purged_through = purged[0]
    last_seq = expected - 1
    head = (await conn.execute(sa.select(HEAD.c.seq, HEAD.c.entry_hash))).first()
    head_seq, head_hash = (int(head.seq), head.entry_hash) if head else (0, GENESIS)
    verdict.head_seq = head_seq
    if (head_seq, head_hash) != (last_seq, prev):
        verdict.problems.append(
            f"the chain's head says entry {head_seq} ({head_hash[:12]}…), the table ends at "
            f"entry {last_seq} ({prev[:12]}…): entries cut from the end, or the head altered"
        )
    anchors = await conn.execute(sa.select(ANCHORS).order_by(ANCHORS.c.id))
    for anchor in anchors:
        verdict.anchors += 1
        seq = int(anchor.seq)
        if seq < purged[0]:
            pass  # it signed an entry the retention purge removed
        elif (hashes.get(seq) if seq > purged[0] else purged[1]) != anchor.head_hash:
            verdict.problems.append(
                f"anchor {anchor.id} ({anchor.anchored_at:%Y-%m-%d %H:%M} UTC) signed entry "
                f"{seq} as {anchor.head_hash[:12]}…, the chain has "
                f"{(hashes.get(seq) or 'no such entry')[:12]}"
            )
        if key is None:
            continue
        if anchor.key_id != key_id(key):
            verdict.problems.append(
                f"anchor {anchor.id}: signed with another key ({anchor.key_id})"
            )
            continue
        good = anchor_signature(key, seq, anchor.head_hash, anchor.anchored_at)
        if not hmac.compare_digest(good, anchor.signature):
            verdict.problems.append(f"anchor {anchor.id}: its signature does not verify")
    return verdict


def purge_point(entry: dict[str, Any]) -> tuple[int, str]:
    """The last entry a purge entry says it removed, and that entry's hash."""
    try:
        details = json.loads(entry["details"])
        return int(details["through_seq"]), str(details["through_hash"])
    except (ValueError, KeyError, TypeError):
        return (-1, "a purge entry without its purge point")
