"""guichet-admin's pure rules: a dead letter's status from the replay markers and parked copies,
the headers a replay and a park write; the Kafka credentials it takes from the environment."""

from __future__ import annotations

import datetime as dt
import ssl

import pytest

from guichet_admin.deadletters import Target
from guichet_admin.kafka_io import client_options
from guichet_admin.letters import (
    DeadLetter,
    Ledger,
    LetterStatus,
    ParkedNote,
    Position,
    ReplayMarker,
    park_headers,
    pending,
    replay_headers,
)

NOW = dt.datetime(2026, 11, 30, 6, 0, tzinfo=dt.UTC)
DLQ = "files.submitted.dlq"


def letter(offset: int, source_offset: int, consumer: str = "assignment") -> DeadLetter:
    return DeadLetter(
        position=Position(DLQ, 0, offset),
        timestamp=NOW,
        key=b"GU-1",
        value=b'{"event_id": "e-1"}',
        headers={
            "event_type": "FileSubmitted",
            "traceparent": "00-abc-def-01",
            "dlq_reason": "PermanentError: bug",
            "dlq_consumer": consumer,
            "dlq_source_topic": "files.submitted",
            "dlq_source_partition": "2",
            "dlq_source_offset": str(source_offset),
        },
    )


def marker(dead: DeadLetter) -> ReplayMarker:
    return ReplayMarker(
        dead.position, dead.source, dead.event_id, Position("files.submitted", 2, 99), NOW, "ops"
    )


def test_positions_round_trip() -> None:
    assert Position.parse("ns.files.submitted.dlq:0:17") == Position(
        "ns.files.submitted.dlq", 0, 17
    )
    assert str(Position("a.b", 1, 2)) == "a.b:1:2"


def test_a_letter_is_pending_until_replayed_or_parked() -> None:
    first, second, third = letter(0, 10), letter(1, 11), letter(2, 12)
    ledger = Ledger()
    ledger.record_replay(ReplayMarker.from_json(marker(first).to_json()))
    ledger.record_park(ParkedNote.from_headers(park_headers(second, "corrupt", "ops", NOW)))  # type: ignore[arg-type]
    assert [ledger.status(x) for x in (first, second, third)] == [
        LetterStatus.REPLAYED, LetterStatus.PARKED, LetterStatus.PENDING,
    ]  # fmt: skip
    assert pending([first, second, third], ledger) == [third]
    assert ledger.parked[second.position].reason == "corrupt"


def test_another_consumers_letter_of_a_replayed_record_counts_as_replayed() -> None:
    """One republication reaches every consumer group: the record is not republished twice."""
    mine, theirs = letter(0, 10), letter(1, 10, consumer="intake")
    ledger = Ledger()
    ledger.record_replay(marker(mine))
    assert ledger.status(theirs) is LetterStatus.REPLAYED
    assert ledger.replay_of(theirs) == marker(mine)


def test_a_replay_keeps_the_original_headers_but_not_the_dead_letter_ones() -> None:
    assert replay_headers(letter(3, 10)) == {
        "event_type": "FileSubmitted",
        "traceparent": "00-abc-def-01",
        "dlq_replayed_from": "files.submitted.dlq:0:3",
    }


def test_payload_and_source() -> None:
    dead = letter(0, 10)
    assert dead.event_id == "e-1" and dead.reason == "PermanentError: bug"
    assert dead.source == Position("files.submitted", 2, 10)
    odd = DeadLetter(Position(DLQ, 0, 1), NOW, None, b"\xff not json", {})
    assert odd.source is None and odd.event_id == "" and isinstance(odd.payload(), str)


def test_kafka_credentials_come_from_the_services_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD", "KAFKA_CA_FILE"):
        monkeypatch.delenv(name, raising=False)
    assert client_options("kafka:9092") == {"bootstrap_servers": "kafka:9092"}
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "guichet-admin")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "s3cret")
    options = client_options("kafka:9093")
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == (
        "guichet-admin",
        "s3cret",
    )
    assert isinstance(options["ssl_context"], ssl.SSLContext)


def test_topic_names_are_typed_with_or_without_suffix_and_namespace() -> None:
    target = Target("kafka:9092", namespace="stack1.")
    assert target.dead_letter_topic("files.submitted") == "stack1.files.submitted.dlq"
    assert target.dead_letter_topic("files.submitted.dlq") == "stack1.files.submitted.dlq"
    assert target.dead_letter_topic("stack1.files.submitted.dlq") == "stack1.files.submitted.dlq"
    assert Target("kafka:9092").dead_letter_topic("agency.caf.requests") == (
        "agency.caf.requests.dlq"
    )
