"""Output: tables and text for people, JSON (`--json`) for scripts."""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Sequence
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from guichet_admin.deadletters import DeadLetterTopic, Outcome
from guichet_admin.lag import PartitionLag
from guichet_admin.letters import DeadLetter, LetterStatus
from guichet_admin.outbox import Backlog


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    table = Table(title=title, title_justify="left")
    for i, column in enumerate(columns):
        table.add_column(column, overflow="fold", no_wrap=i == 0)
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    # Piped into a file or another tool: no terminal width to fit, so never fold a name.
    Console(width=None if sys.stdout.isatty() else 240).print(table)


def _time(value: dt.datetime | None) -> str | None:
    return None if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


def _key(key: bytes | None) -> str | None:
    return None if key is None else key.decode("utf-8", errors="replace")


# -- dead letters --------------------------------------------------------------------------


def topics_summary(found: Sequence[DeadLetterTopic], namespace: str) -> list[dict[str, Any]]:
    summary = []
    for topic in found:
        counts = topic.counts()
        pending = [x for x in topic.letters if topic.ledger.status(x) is LetterStatus.PENDING]
        summary.append(
            {
                "topic": topic.name.removeprefix(namespace),
                "total": len(topic.letters),
                **{status.value: counts[status] for status in LetterStatus},
                "oldest_pending": _time(min((x.timestamp for x in pending), default=None)),
            }
        )
    return summary


def print_topics(summary: Sequence[dict[str, Any]]) -> None:
    columns = ["topic", "pending", "replayed", "parked", "total", "oldest_pending"]
    print_table("Dead-letter topics", columns, [[row[c] for c in columns] for row in summary])


def letter_json(topic: DeadLetterTopic, letter: DeadLetter) -> dict[str, Any]:
    status = topic.ledger.status(letter)
    data: dict[str, Any] = {
        "position": str(letter.position),
        "partition": letter.position.partition,
        "offset": letter.position.offset,
        "status": status.value,
        "reason": letter.reason,
        "consumer": letter.consumer,
        "source": str(letter.source) if letter.source else None,
        "event_type": letter.event_type,
        "event_id": letter.event_id,
        "timestamp": _time(letter.timestamp),
        "key": _key(letter.key),
        "headers": letter.headers,
        "payload": letter.payload(),
    }
    marker = topic.ledger.replay_of(letter)
    if status is LetterStatus.REPLAYED and marker is not None:
        data["replayed"] = {
            "to": str(marker.republished_to),
            "at": _time(marker.replayed_at),
            "by": marker.operator,
            "via": str(marker.dead_letter),
        }
    note = topic.ledger.parked.get(letter.position)
    if status is LetterStatus.PARKED and note is not None:
        data["parked"] = {"reason": note.reason, "at": note.parked_at, "by": note.operator}
    return data


def print_letter(data: dict[str, Any]) -> None:
    lines = [
        f"dead letter  {data['position']}  ({data['status']})",
        f"reason       {data['reason']}",
        f"consumer     {data['consumer']}",
        f"original     {data['source']}",
        f"event        {data['event_type']} {data['event_id']}",
        f"key          {data['key']}",
        f"written at   {data['timestamp']}",
    ]
    if "replayed" in data:
        done = data["replayed"]
        lines.append(f"replayed     to {done['to']} at {done['at']} by {done['by']}")
    if "parked" in data:
        done = data["parked"]
        lines.append(f"parked       {done['reason']!r} at {done['at']} by {done['by']}")
    lines.append("headers")
    lines += [f"  {k}: {v}" for k, v in sorted(data["headers"].items())]
    lines.append("payload")
    payload = data["payload"]
    lines.append(
        payload if isinstance(payload, str) else json.dumps(payload, indent=2, ensure_ascii=False)
    )
    typer.echo("\n".join(lines))


def outcomes_json(action: str, outcomes: Sequence[Outcome]) -> dict[str, Any]:
    return {
        action: sum(o.done for o in outcomes),
        "skipped": sum(not o.done for o in outcomes),
        "letters": [
            {"position": str(o.letter.position), "done": o.done, "detail": o.detail}
            for o in outcomes
        ],
    }


def print_outcomes(action: str, outcomes: Sequence[Outcome]) -> None:
    if not outcomes:
        typer.echo("no pending dead letter: nothing to do")
        return
    for outcome in outcomes:
        typer.echo(f"{outcome.letter.position}: {outcome.detail}")
    done = sum(o.done for o in outcomes)
    typer.echo(f"{done} {action}, {len(outcomes) - done} skipped")


# -- outbox and lag ------------------------------------------------------------------------


def backlog_json(backlogs: Sequence[Backlog], now: dt.datetime) -> list[dict[str, Any]]:
    return [
        {
            "service": b.service,
            "pending": b.pending,
            "oldest": _time(b.oldest),
            "oldest_age_seconds": b.age_seconds(now),
            "by_topic": b.by_topic,
        }
        for b in backlogs
    ]


def print_backlog(rows: Sequence[dict[str, Any]]) -> None:
    def age(seconds: float | None) -> str:
        return "" if seconds is None else f"{seconds:.0f} s"

    print_table(
        "Outbox backlog (rows not yet published)",
        ["service", "pending", "oldest", "age", "by topic"],
        [
            [
                r["service"],
                r["pending"],
                r["oldest"],
                age(r["oldest_age_seconds"]),
                ", ".join(f"{t}: {n}" for t, n in r["by_topic"].items()),
            ]
            for r in rows
        ],
    )


def lag_json(rows: Sequence[PartitionLag], namespace: str) -> list[dict[str, Any]]:
    return [
        {
            "group": r.group.removeprefix(namespace),
            "state": r.state,
            "members": r.members,
            "topic": r.topic.removeprefix(namespace),
            "partition": r.partition,
            "committed": r.committed,
            "end": r.end,
            "lag": r.lag,
        }
        for r in rows
    ]


def print_lag(rows: Sequence[dict[str, Any]]) -> None:
    if not rows:
        typer.echo("no consumer group has committed an offset")
        return
    columns = ["group", "state", "members", "topic", "partition", "committed", "end", "lag"]
    print_table("Consumer lag", columns, [[r[c] for c in columns] for r in rows])
    total: dict[str, int] = {}
    for r in rows:
        total[r["group"]] = total.get(r["group"], 0) + r["lag"]
    typer.echo("total lag: " + ", ".join(f"{g} {n}" for g, n in total.items()))
