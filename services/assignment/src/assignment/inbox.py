"""Read model of the référent's inbox: the citizens' messages not answered yet across the
files they hold (the files they cover during a colleague's absence included), ordered by
urgency and waiting time. No citizen's words here: the thread is read at intake."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa

from assignment.domain import MessageState, inbox_rank, message_state, promise_lapsed
from assignment.tables import agents, citizen_messages, files
from assignment.views import file_deadlines, no_agent
from guichet_runtime.clock import paris_day_ended_by
from guichet_runtime.db import UnitOfWork, utcnow


async def inbox(uow: UnitOfWork, agent_id: str) -> dict[str, Any]:
    """The agent's files with messages waiting for an answer, most pressing first."""
    titular = agents.alias("titular")
    async with uow:
        name = await uow.conn.scalar(sa.select(agents.c.name).where(agents.c.agent_id == agent_id))
        if name is None:
            raise no_agent(agent_id)
        rows = (
            await uow.conn.execute(
                sa.select(
                    citizen_messages,
                    files.c.urgent,
                    files.c.created_at,
                    files.c.life_event_label,
                    titular.c.name.label("covering_for"),
                )
                .join(files, citizen_messages.c.file_id == files.c.file_id)
                .join(titular, files.c.titular_id == titular.c.agent_id, isouter=True)
                .where(files.c.referent_id == agent_id, citizen_messages.c.answered_at.is_(None))
                .order_by(citizen_messages.c.received_at, citizen_messages.c.message_id)
            )
        ).all()
        held = {
            r.file_id: SimpleNamespace(file_id=r.file_id, created_at=r.created_at) for r in rows
        }
        due = await file_deadlines(uow.conn, list(held.values()))
    now = utcnow()
    by_file: dict[str, dict[str, Any]] = {}
    for r in rows:
        state = message_state(r.read_at, r.answered_at)
        entry = by_file.setdefault(
            r.file_id,
            {
                "file_id": r.file_id,
                "life_event_label": r.life_event_label,
                "urgent": r.urgent,
                "deadline": due[r.file_id]["deadline"],
                "covering_for": r.covering_for,
                "waiting_since": r.received_at,
                "waiting_minutes": int((now - r.received_at).total_seconds() // 60),
                "unread": 0,
                "late": 0,
                "messages": [],
            },
        )
        late = promise_lapsed(r.answer_due_at, now)
        entry["unread"] += state is MessageState.UNREAD
        entry["late"] += late
        entry["messages"].append(
            {
                "message_id": r.message_id,
                "received_at": r.received_at,
                "state": state.value,
                "attachments": r.attachments,
                "answer_due_at": r.answer_due_at,
                "late": late,
            }
        )
    for entry in by_file.values():  # the file's nearest promise
        promised = [m["answer_due_at"] for m in entry["messages"] if m["answer_due_at"]]
        due_at = min(promised, default=None)
        entry["answer_due_at"] = due_at
        entry["answer_due_on"] = None if due_at is None else paris_day_ended_by(due_at)
    ordered = sorted(
        by_file.values(),
        key=lambda f: inbox_rank(f["urgent"], f["deadline"], f["waiting_since"]),
    )
    return {
        "agent_id": agent_id,
        "name": name,
        "unread": sum(f["unread"] for f in ordered),
        "late": sum(f["late"] for f in ordered),
        "waiting": sum(len(f["messages"]) for f in ordered),
        "files": ordered,
    }
