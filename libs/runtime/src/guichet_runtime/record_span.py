"""A consumed Kafka record read by hand (the batch and concurrent consumers): its string
headers, and the span its handling runs in, in the trace of whoever published it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind


def headers_of(raw: Any) -> dict[str, str]:
    """The record's headers as text (a header without value left out)."""
    return {k: v.decode(errors="replace") for k, v in raw.headers or () if v is not None}


@contextmanager
def processing(tracer: trace.Tracer, raw: Any, headers: dict[str, str]) -> Iterator[None]:
    """The consumer span `<topic> process` of one record, child of the producer's context."""
    parent = propagate.extract(headers)
    with tracer.start_as_current_span(
        f"{raw.topic} process", context=parent, kind=SpanKind.CONSUMER
    ):
        yield
