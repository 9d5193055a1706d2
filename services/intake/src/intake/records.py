"""Table operations shared by commands and projections: the citizen's timeline, a file's
existence, an agency's forward-only status."""

from __future__ import annotations

import datetime as dt
import weakref
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from guichet_runtime.clock import paris_day
from guichet_runtime.db import UnitOfWork, insert_ignore, utcnow
from guichet_runtime.statements import param, params, prepared
from intake.domain import (
    AgencyStatus,
    TimelineKind,
    UnknownFile,
    proof_hash,
    statuses_before,
    unknown_file,
)
from intake.tables import access_codes, file_agencies, files, timeline
from shared_models import Decision, Event


async def add_timeline(uow: UnitOfWork, event: Event, kind: TimelineKind, label: str) -> None:
    """One line of the citizen's timeline per event (a redelivered event adds nothing)."""
    await add_timeline_lines(
        uow, event.file_id, [(str(event.event_id), event.occurred_at, kind, label)]
    )


async def add_timeline_lines(
    uow: UnitOfWork, file_id: str, lines: list[tuple[str, dt.datetime, TimelineKind, str]]
) -> None:
    """Lines of the citizen's timeline: (line id, time, kind, label) each, the id unique as
    an event's (a redelivered event adds nothing). Written at commit, with the other lines
    of the transaction (of a batch's records: 17 per three-agency file) in one execution;
    nothing reads them back before."""
    uow.insert_at_commit(
        insert_ignore(uow.conn, timeline),
        [
            {"file_id": file_id, "event_id": line_id, "at": at, "kind": kind, "label": label}
            for line_id, at, kind, label in lines
        ],
    )


@prepared
def _file_id() -> sa.Select[tuple[str]]:
    return sa.select(files.c.file_id).where(files.c.file_id == param(files.c.file_id))


async def file_exists(uow: UnitOfWork, file_id: str) -> bool:
    found = await uow.conn.scalar(_file_id(), params(file_id=file_id))
    return found is not None


async def live_proof(uow: UnitOfWork, file_id: str, proof: str) -> bool:
    """`proof` was given by a code verified for this very file, and still holds."""
    live = await uow.conn.scalar(
        sa.select(sa.func.count())
        .select_from(access_codes)
        .where(
            access_codes.c.file_id == file_id,
            access_codes.c.proof_hash == proof_hash(proof),
            access_codes.c.proof_expires_at > utcnow(),
        )
    )
    return bool(live)


class SeenFiles:
    """File ids an event handler found in the database, the most recent `capacity` of them.

    A file row is inserted by a command's own transaction (a POST, the front desk), never
    by an event handler, and never deleted (an erasure empties its personal fields, the row
    stays): a file found once is there for good, and the events of a file (fourteen per
    three-agency file) no longer ask the database each time. Forgetting is safe (the next
    event asks again), hence the bound."""

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._ids: dict[str, None] = {}

    def __contains__(self, file_id: str) -> bool:
        return file_id in self._ids

    def add(self, file_id: str) -> None:
        if len(self._ids) >= self.capacity:
            del self._ids[next(iter(self._ids))]  # the oldest
        self._ids[file_id] = None


#: One memory per database (a service has one engine; the tests open many).
_SEEN: weakref.WeakKeyDictionary[Engine, SeenFiles] = weakref.WeakKeyDictionary()


def seen_files(engine: Engine) -> SeenFiles:
    seen = _SEEN.get(engine)
    if seen is None:
        seen = _SEEN[engine] = SeenFiles()
    return seen


async def require_file(uow: UnitOfWork, file_id: str) -> None:
    """For event handlers: the file the event names, or UnknownFile."""
    seen = seen_files(uow.conn.sync_engine)
    if file_id in seen:
        return
    if not await file_exists(uow, file_id):
        raise UnknownFile(f"dossier inconnu : {file_id}")
    seen.add(file_id)


async def file_for_update(uow: UnitOfWork, file_id: str) -> sa.Row:
    """For commands: the file's status, citizen and référent, locked; NOT_FOUND otherwise."""
    row = (
        await uow.conn.execute(
            sa.select(
                files.c.status,
                files.c.citizen,
                files.c.referent,
                files.c.covering_for,
                files.c.referent_change_requested_at,
                files.c.erased_at,
            )
            .where(files.c.file_id == file_id)
            .with_for_update()
        )
    ).first()
    if row is None:
        raise unknown_file(file_id)
    return row


async def advance_agency(
    uow: UnitOfWork, file_id: str, agency: str, status: AgencyStatus, at: dt.datetime
) -> None:
    """Move an agency's status forward only: events of different topics may cross."""
    await uow.conn.execute(
        _advance_agency(status),
        params(file_id=file_id, agency=agency, status=status, updated_at=at),
    )


def agency_update() -> sa.Update:
    """An update of one agency's line of a file (`params(file_id=…, agency=…)`), the start
    of the statements built once below and in `projections` and `metrics`."""
    c = file_agencies.c
    return file_agencies.update().where(c.file_id == param(c.file_id), c.agency == param(c.agency))


def moves_forward(status: AgencyStatus) -> sa.ColumnElement[bool]:
    """The line's status is one an agency may move to `status` from (`statuses_before`),
    written out (`status = ? OR …`): an expanding `IN` would be rendered again at every
    execution."""
    c = file_agencies.c
    return sa.or_(sa.false(), *(c.status == before for before in statuses_before(status)))


def not_decided_yet() -> sa.ColumnElement[bool]:
    """No decision recorded on the line: the first one recorded stands."""
    return file_agencies.c.answered_at.is_(None)


@prepared
def _advance_agency(status: AgencyStatus) -> sa.Update:
    """One statement per status (`moves_forward`)."""
    c = file_agencies.c
    return (
        agency_update()
        .where(moves_forward(status))
        .values(status=param(c.status), updated_at=param(c.updated_at))
    )


#: What an agency's decision writes on its line.
DECISION_COLUMNS = ("answered_at", "answered_on", "decision")


async def agency_answered(
    uow: UnitOfWork,
    file_id: str,
    agency: str,
    at: dt.datetime,
    decision: Decision | None,
    *,
    decided_on: dt.date | None = None,
    clear_document: bool,
) -> None:
    """An agency answered, on its line in one statement where three were run: its status
    moves forward to ANSWERED (`moves_forward`), its `decision` is recorded with the day it
    was taken unless one was already (`not_decided_yet`: by word or by silence, the first
    one recorded stands), and, with `clear_document`, the document it had requested is no
    longer awaited. A line with nothing of this to change is left unwritten."""
    values = params(file_id=file_id, agency=agency, status=AgencyStatus.ANSWERED, updated_at=at)
    if decision is not None:
        values |= params(
            answered_at=at, answered_on=decided_on or paris_day(at), decision=decision.value
        )
    await uow.conn.execute(_agency_answered(decision is not None, clear_document), values)


@prepared
def _agency_answered(decides: bool, clear_document: bool) -> sa.Update:
    c = file_agencies.c
    forward, undecided = moves_forward(AgencyStatus.ANSWERED), not_decided_yet()

    def when(condition: sa.ColumnElement[bool], column: sa.Column[Any]) -> sa.Case[Any]:
        # Every SET expression reads the line as it was before the statement.
        return sa.case((condition, param(column)), else_=column)

    changes: dict[str, Any] = {
        "status": when(forward, c.status),
        "updated_at": when(forward, c.updated_at),
    }
    something = [forward]
    if decides:
        changes |= {name: when(undecided, c[name]) for name in DECISION_COLUMNS}
        something.append(undecided)
    if clear_document:
        changes["requested_document"] = sa.null()
        something.append(c.requested_document.is_not(None))
    return agency_update().where(sa.or_(*something)).values(changes)
