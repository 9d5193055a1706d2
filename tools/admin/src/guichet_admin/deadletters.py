"""The dead-letter use cases: list, show, replay, park (Kafka I/O around guichet_admin.letters).

Idempotent replay: before republishing a letter, the tool reads back `<topic>.dlq.replayed`
(one marker per replayed letter) and `<topic>.parked`; a letter found there is never
republished. The marker is written after the broker acknowledged the republication: a crash in
between leaves the letter pending, and a second replay delivers the same record (same key,
payload, event_id) once more, which the consumers' inboxes skip. See docs/operations.md.
"""

from __future__ import annotations

import datetime as dt
import getpass
from dataclasses import dataclass

from guichet_admin.errors import AdminError
from guichet_admin.kafka_io import Publisher, TopicReader, as_letter, ensure_topic
from guichet_admin.letters import (
    DeadLetter,
    Ledger,
    LetterStatus,
    ParkedNote,
    ReplayMarker,
    decode_headers,
    park_headers,
    replay_headers,
)
from shared_models import topics

DLQ_SUFFIX = ".dlq"


@dataclass(frozen=True)
class Target:
    """Where the tool talks to: the cluster and the stack's topic namespace."""

    bootstrap: str
    namespace: str = ""
    create_topics: bool = True
    #: Who acts, recorded with each replay and park (default: the login).
    operator: str = ""

    def who(self) -> str:
        return self.operator or operator_name()

    def dead_letter_topic(self, name: str) -> str:
        """`files.submitted`, `files.submitted.dlq`, with or without the namespace: the
        dead-letter topic's full name on the cluster."""
        full = name if name.endswith(DLQ_SUFFIX) else topics.dead_letter(name)
        if self.namespace and not full.startswith(self.namespace):
            full = self.namespace + full
        return full


def source_topic(dlq: str) -> str:
    return dlq.removesuffix(DLQ_SUFFIX)


def operator_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return "unknown"


@dataclass
class DeadLetterTopic:
    """One dead-letter topic read in full, with its ledger."""

    name: str
    letters: list[DeadLetter]
    ledger: Ledger

    def counts(self) -> dict[LetterStatus, int]:
        counts = dict.fromkeys(LetterStatus, 0)
        for letter in self.letters:
            counts[self.ledger.status(letter)] += 1
        return counts

    def find(self, partition: int, offset: int) -> DeadLetter:
        for letter in self.letters:
            if (letter.position.partition, letter.position.offset) == (partition, offset):
                return letter
        raise AdminError(
            f"no dead letter at {self.name}:{partition}:{offset} "
            f"(offsets held: {', '.join(str(x.position.offset) for x in self.letters) or 'none'})"
        )


async def load(reader: TopicReader, dlq: str) -> DeadLetterTopic:
    source = source_topic(dlq)
    letters = [as_letter(r) for r in await reader.read(dlq)]
    ledger = Ledger()
    if not letters:  # nothing to account for: spare two reads per empty topic
        return DeadLetterTopic(dlq, letters, ledger)
    for record in await reader.read(topics.replayed(source)):
        try:
            ledger.record_replay(ReplayMarker.from_json(record.value or b""))
        except (ValueError, KeyError) as exc:
            raise AdminError(
                f"unreadable replay marker at {record.topic}:{record.partition}:{record.offset}: "
                f"{exc!r}"
            ) from exc
    for record in await reader.read(topics.parked(source)):
        note = ParkedNote.from_headers(decode_headers(record.headers))
        if note is not None:
            ledger.record_park(note)
    return DeadLetterTopic(dlq, letters, ledger)


async def dead_letter_topics(target: Target) -> list[DeadLetterTopic]:
    """Every dead-letter topic of the namespace, read in full."""
    async with TopicReader(target.bootstrap) as reader:
        names = sorted(
            t
            for t in await reader.topics()
            if t.endswith(DLQ_SUFFIX) and t.startswith(target.namespace)
        )
        return [await load(reader, name) for name in names]


async def one_topic(target: Target, name: str) -> DeadLetterTopic:
    dlq = target.dead_letter_topic(name)
    async with TopicReader(target.bootstrap) as reader:
        if dlq not in await reader.topics():
            raise AdminError(f"no topic {dlq} on {target.bootstrap}")
        return await load(reader, dlq)


@dataclass(frozen=True)
class Outcome:
    """What a replay or a park did to one letter."""

    letter: DeadLetter
    done: bool
    detail: str


def select(
    topic: DeadLetterTopic, partition: int, offset: int | None
) -> tuple[list[DeadLetter], bool]:
    """The letters an operator designated: one by offset (explicit), else every pending one."""
    if offset is not None:
        return [topic.find(partition, offset)], True
    return [x for x in topic.letters if topic.ledger.status(x) is LetterStatus.PENDING], False


async def _ensure(target: Target, name: str) -> None:
    if target.create_topics:
        await ensure_topic(target.bootstrap, name)


async def replay(target: Target, name: str, *, partition: int, offset: int | None) -> list[Outcome]:
    """Republish the designated letters to their original topic, each at most once."""
    topic = await one_topic(target, name)
    letters, explicit = select(topic, partition, offset)
    if not letters:
        return []
    marker_topic = topics.replayed(source_topic(topic.name))
    await _ensure(target, marker_topic)
    outcomes: list[Outcome] = []
    async with Publisher(target.bootstrap) as publisher:
        for letter in letters:
            status = topic.ledger.status(letter)
            if status is LetterStatus.PARKED:
                note = topic.ledger.parked[letter.position]
                raise AdminError(
                    f"{letter.position} is parked ({note.reason!r}, by {note.operator}): "
                    "a parked dead letter is never replayed"
                )
            previous = topic.ledger.replay_of(letter)
            if previous is not None:
                outcomes.append(
                    Outcome(
                        letter,
                        False,
                        f"already replayed to {previous.republished_to} at "
                        f"{previous.replayed_at:%Y-%m-%d %H:%M:%S} UTC: nothing published",
                    )
                )
                continue
            source = letter.source
            if source is None:
                problem = "names no original topic (no dlq_source_* headers): park it instead"
                if explicit:
                    raise AdminError(f"{letter.position} {problem}")
                outcomes.append(Outcome(letter, False, problem))
                continue
            landed = await publisher.publish(
                source.topic, letter.value, letter.key, replay_headers(letter)
            )
            marker = ReplayMarker(
                dead_letter=letter.position,
                source=source,
                event_id=letter.event_id,
                republished_to=landed,
                replayed_at=dt.datetime.now(dt.UTC),
                operator=target.who(),
            )
            await publisher.publish(
                marker_topic, marker.to_json(), str(letter.position).encode(), {}
            )
            topic.ledger.record_replay(marker)
            outcomes.append(Outcome(letter, True, f"republished to {landed}"))
    return outcomes


async def park(
    target: Target, name: str, *, partition: int, offset: int | None, reason: str
) -> list[Outcome]:
    """Copy the designated letters to `<topic>.parked` with the operator's reason; they are no
    longer pending and are never replayed."""
    if not reason.strip():
        raise AdminError("--reason must say why the letter is parked")
    topic = await one_topic(target, name)
    letters, _ = select(topic, partition, offset)
    if not letters:
        return []
    parked_topic = topics.parked(source_topic(topic.name))
    await _ensure(target, parked_topic)
    outcomes: list[Outcome] = []
    now, who = dt.datetime.now(dt.UTC), target.who()
    async with Publisher(target.bootstrap) as publisher:
        for letter in letters:
            status = topic.ledger.status(letter)
            if status is LetterStatus.PARKED:
                outcomes.append(Outcome(letter, False, "already parked: nothing written"))
                continue
            if status is LetterStatus.REPLAYED:
                raise AdminError(f"{letter.position} was replayed already: it cannot be parked")
            headers = park_headers(letter, reason, who, now)
            landed = await publisher.publish(parked_topic, letter.value, letter.key, headers)
            topic.ledger.record_park(ParkedNote(letter.position, reason, now.isoformat(), who))
            outcomes.append(Outcome(letter, True, f"parked at {landed}"))
    return outcomes
