"""Dead letters and what operators did with them: pure rules, no Kafka I/O.

A dead letter is a record `guichet_runtime.consumer` wrote to `<topic>.dlq`: the original key,
payload and headers, plus `dlq_*` headers naming the reason, the consumer group and the
original position. Operators either replay it (republish to the original topic; a marker
goes to `<topic>.dlq.replayed`) or park it (copy it to `<topic>.parked` with their reason).
A letter is pending until one of the two happened.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: Headers `guichet_runtime.consumer` adds to a dead letter (never republished).
REASON = "dlq_reason"
CONSUMER = "dlq_consumer"
SOURCE_TOPIC = "dlq_source_topic"
SOURCE_PARTITION = "dlq_source_partition"
SOURCE_OFFSET = "dlq_source_offset"
#: Headers this tool adds: on a replayed record, and on a parked copy.
REPLAYED_FROM = "dlq_replayed_from"
PARKED_FROM = "dlq_parked_from"
PARKED_REASON = "dlq_parked_reason"
PARKED_AT = "dlq_parked_at"
PARKED_BY = "dlq_parked_by"


class LetterStatus(enum.StrEnum):
    PENDING = "pending"
    REPLAYED = "replayed"
    PARKED = "parked"


@dataclass(frozen=True, order=True)
class Position:
    """Where a record sits: topic, partition, offset (written `topic:partition:offset`)."""

    topic: str
    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.topic}:{self.partition}:{self.offset}"

    @classmethod
    def parse(cls, text: str) -> Position:
        """The inverse of str(); Kafka topic names never contain a colon."""
        topic, partition, offset = text.rsplit(":", 2)
        return cls(topic, int(partition), int(offset))


def decode_headers(raw: Iterable[tuple[str, bytes | None]]) -> dict[str, str]:
    return {k: (v or b"").decode("utf-8", errors="replace") for k, v in raw}


@dataclass(frozen=True)
class DeadLetter:
    position: Position
    timestamp: dt.datetime
    key: bytes | None
    value: bytes
    headers: dict[str, str]

    @property
    def reason(self) -> str:
        return self.headers.get(REASON, "")

    @property
    def consumer(self) -> str:
        return self.headers.get(CONSUMER, "")

    @property
    def event_type(self) -> str:
        return self.headers.get("event_type", "")

    @property
    def source(self) -> Position | None:
        """The original record's position, or None when the headers do not name it."""
        try:
            return Position(
                self.headers[SOURCE_TOPIC],
                int(self.headers[SOURCE_PARTITION]),
                int(self.headers[SOURCE_OFFSET]),
            )
        except (KeyError, ValueError):
            return None

    def payload(self) -> Any:
        """The payload as JSON, or as text when it is not JSON."""
        text = self.value.decode("utf-8", errors="replace")
        try:
            return json.loads(text)
        except ValueError:
            return text

    @property
    def event_id(self) -> str:
        body = self.payload()
        return str(body.get("event_id", "")) if isinstance(body, dict) else ""


def replay_headers(letter: DeadLetter) -> dict[str, str]:
    """The original headers (event type, content type, `traceparent`…) without the dead-letter
    ones, plus where the replay comes from."""
    kept = {k: v for k, v in letter.headers.items() if not k.startswith("dlq_")}
    kept[REPLAYED_FROM] = str(letter.position)
    return kept


def park_headers(
    letter: DeadLetter, reason: str, operator: str, now: dt.datetime
) -> dict[str, str]:
    """A parked copy keeps every header of the letter, plus the operator's decision."""
    return {
        **letter.headers,
        PARKED_FROM: str(letter.position),
        PARKED_REASON: reason,
        PARKED_AT: now.isoformat(),
        PARKED_BY: operator,
    }


@dataclass(frozen=True)
class ReplayMarker:
    """One record of `<topic>.dlq.replayed`: this letter was republished there."""

    dead_letter: Position
    source: Position | None
    event_id: str
    republished_to: Position
    replayed_at: dt.datetime
    operator: str

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "dead_letter": str(self.dead_letter),
                "source": str(self.source) if self.source else None,
                "event_id": self.event_id,
                "republished_to": str(self.republished_to),
                "replayed_at": self.replayed_at.isoformat(),
                "operator": self.operator,
            }
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> ReplayMarker:
        data = json.loads(raw)
        return cls(
            dead_letter=Position.parse(data["dead_letter"]),
            source=Position.parse(data["source"]) if data.get("source") else None,
            event_id=data.get("event_id", ""),
            republished_to=Position.parse(data["republished_to"]),
            replayed_at=dt.datetime.fromisoformat(data["replayed_at"]),
            operator=data.get("operator", ""),
        )


@dataclass(frozen=True)
class ParkedNote:
    """What a parked copy says about the letter it came from."""

    dead_letter: Position
    reason: str
    parked_at: str
    operator: str

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> ParkedNote | None:
        try:
            origin = Position.parse(headers[PARKED_FROM])
        except (KeyError, ValueError):
            return None
        return cls(
            origin,
            headers.get(PARKED_REASON, ""),
            headers.get(PARKED_AT, ""),
            headers.get(PARKED_BY, ""),
        )


@dataclass
class Ledger:
    """What was done to the letters of one dead-letter topic, read back from the marker and
    parked topics."""

    replayed: dict[Position, ReplayMarker] = field(default_factory=dict)
    parked: dict[Position, ParkedNote] = field(default_factory=dict)
    replayed_sources: dict[Position, ReplayMarker] = field(default_factory=dict)

    def record_replay(self, marker: ReplayMarker) -> None:
        self.replayed.setdefault(marker.dead_letter, marker)
        if marker.source is not None:
            self.replayed_sources.setdefault(marker.source, marker)

    def record_park(self, note: ParkedNote) -> None:
        self.parked.setdefault(note.dead_letter, note)

    def replay_of(self, letter: DeadLetter) -> ReplayMarker | None:
        """The replay that already carried this letter's record: its own, or that of another
        consumer's letter of the same original record (one republication reaches every
        consumer group, whose inboxes skip what they already handled)."""
        mine = self.replayed.get(letter.position)
        if mine is not None:
            return mine
        source = letter.source
        return self.replayed_sources.get(source) if source is not None else None

    def status(self, letter: DeadLetter) -> LetterStatus:
        if letter.position in self.parked:
            return LetterStatus.PARKED
        if self.replay_of(letter) is not None:
            return LetterStatus.REPLAYED
        return LetterStatus.PENDING


def pending(letters: Iterable[DeadLetter], ledger: Ledger) -> list[DeadLetter]:
    return [letter for letter in letters if ledger.status(letter) is LetterStatus.PENDING]
