"""The shared contracts: every field documented, events named as facts, strict and
lossless JSON, and one dead-letter topic per main topic."""

from __future__ import annotations

import json
import time
import typing
import uuid
from collections.abc import Iterator

import pytest
from pydantic import BaseModel, ValidationError

from shared_models import (
    EVENT_TYPES,
    AgencyDecision,
    CitizenContact,
    Referent,
    catalogue,
    parse_event,
    topics,
)
from shared_models.events import time_ordered_id
from tests.unit.event_samples import one_event_of_each_type

PAST_TENSE_ENDINGS = ("ed", "Issued", "Sent", "Received", "Assigned", "Submitted", "Left", "Set")
SAMPLES = {event.event_type: event for event in one_event_of_each_type()}


def _models_in(annotation: object) -> Iterator[type[BaseModel]]:
    """Pydantic models inside an annotation (`X`, `X | None`, `list[X]`, …)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        return
    for arg in typing.get_args(annotation):
        yield from _models_in(arg)


def _documented_fields(
    model: type[BaseModel], seen: set[type[BaseModel]]
) -> Iterator[tuple[str, str | None]]:
    """(`Model.field`, description) of every field of `model` and its nested models."""
    if model in seen:
        return
    seen.add(model)
    for name, field in model.model_fields.items():
        yield f"{model.__name__}.{name}", field.description
        for nested in _models_in(field.annotation):
            yield from _documented_fields(nested, seen)


def test_every_event_type_has_a_sample_so_the_tests_below_cover_it():
    assert set(SAMPLES) == set(EVENT_TYPES)


def test_every_field_of_every_event_and_nested_model_has_a_description():
    seen: set[type[BaseModel]] = set()
    fields = [f for cls in EVENT_TYPES.values() for f in _documented_fields(cls, seen)]

    undocumented = [name for name, description in fields if not (description or "").strip()]
    assert undocumented == []
    # The walk really went into the nested contracts.
    assert {CitizenContact, Referent, AgencyDecision} <= seen
    assert "AgencyDecision.amount_eur" in dict(fields)


def test_the_nested_walk_would_notice_an_undocumented_field():
    class Inner(BaseModel):
        documented: int = 0

    class Outer(BaseModel):
        inner: list[Inner] | None = None

    fields = dict(_documented_fields(Outer, set()))
    assert fields == {"Outer.inner": None, "Inner.documented": None}


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_event_names_state_a_past_fact(event_type):
    assert event_type.endswith(PAST_TENSE_ENDINGS)
    assert EVENT_TYPES[event_type].__name__ == event_type


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_an_event_survives_a_json_round_trip_through_parse_event(event_type):
    event = SAMPLES[event_type]

    from_bytes = parse_event(event_type, event.model_dump_json().encode())
    from_dict = parse_event(event_type, json.loads(event.model_dump_json()))

    assert type(from_bytes) is EVENT_TYPES[event_type]
    assert from_bytes == event
    assert from_dict == event


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_an_event_with_an_unknown_field_is_refused(event_type):
    body = json.loads(SAMPLES[event_type].model_dump_json())
    body["surprise"] = "champ inattendu"

    with pytest.raises(ValidationError) as raised:
        parse_event(event_type, json.dumps(body))
    assert [e["type"] for e in raised.value.errors()] == ["extra_forbidden"]


def test_an_unknown_field_inside_a_nested_contract_is_refused_too():
    body = json.loads(SAMPLES["ReferentAssigned"].model_dump_json())
    body["referent"]["badge"] = "42"

    with pytest.raises(ValidationError) as raised:
        parse_event("ReferentAssigned", body)
    assert raised.value.errors()[0]["loc"] == ("referent", "badge")


def test_parse_event_rejects_an_unknown_type_and_a_body_of_another_type():
    with pytest.raises(KeyError):
        parse_event("FileLost", b"{}")
    with pytest.raises(ValidationError):
        parse_event("ReferentAssigned", SAMPLES["FileSubmitted"].model_dump_json())


def test_events_are_immutable():
    event = SAMPLES["FileSubmitted"]
    with pytest.raises(ValidationError):
        event.urgent = True  # type: ignore[misc]


def _main_topics() -> dict[str, int]:
    return {t: n for t, n in topics.all_topics().items() if not t.endswith(".dlq")}


def test_every_main_topic_has_its_dead_letter_topic():
    declared = topics.all_topics()
    main = _main_topics()

    assert main, "no main topic declared"
    for topic in main:
        assert topics.dead_letter(topic) == f"{topic}.dlq"
        assert f"{topic}.dlq" in declared
    # …and no dead-letter topic without its main topic.
    assert len(declared) == 2 * len(main)


def test_every_main_topic_has_three_partitions():
    assert set(_main_topics().values()) == {3}


def test_the_declared_topics_are_exactly_those_of_the_documented_flows():
    assert set(_main_topics()) == set(topics.flows())


def test_every_agency_has_its_own_request_and_answer_topics():
    main = _main_topics()
    for agency in catalogue().served_agencies():
        assert f"agency.{agency}.requests" in main
        assert f"agency.{agency}.answers" in main


def test_event_ids_are_time_ordered_version_7_uuids():
    """RFC 9562, section 5.7: the Unix time in milliseconds in the first 48 bits, version 7,
    the RFC's variant; ids made in a later millisecond sort after earlier ones (what keeps
    the consumers' inbox index appending), and none repeats."""
    before_ms = time.time_ns() // 1_000_000
    ids = [time_ordered_id() for _ in range(2000)]
    after_ms = time.time_ns() // 1_000_000
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in ids)
    assert all(before_ms <= i.int >> 80 <= after_ms for i in ids)
    assert len(set(ids)) == len(ids)
    by_ms = [i.int >> 80 for i in ids]
    assert by_ms == sorted(by_ms)
    time.sleep(0.002)
    later = time_ordered_id()
    assert all(str(i) < str(later) for i in ids)  # as text too: how the inbox stores them
    assert SAMPLES["FileSubmitted"].event_id.version == 7  # what events get by default
