"""OpenTelemetry set-up, done by the composition root (never at import)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

if TYPE_CHECKING:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter


def setup_tracing(
    service_name: str, spans_file: Path | None, otlp_endpoint: str | None = None
) -> TracerProvider:
    """A tracer provider for this process; with `spans_file`, spans go there as JSON lines
    (what tests read across processes); with `otlp_endpoint` (OTEL_EXPORTER_OTLP_ENDPOINT),
    to an OpenTelemetry Collector over OTLP/HTTP. The exporter reads the other standard
    OTEL_EXPORTER_OTLP_* variables (headers, timeout, certificate) itself."""
    provider = tracer_provider(service_name, spans_file, otlp_endpoint)
    trace.set_tracer_provider(provider)
    return provider


def tracer_provider(
    service_name: str, spans_file: Path | None, otlp_endpoint: str | None = None
) -> TracerProvider:
    """The provider `setup_tracing` installs. Its sampler is OpenTelemetry's standard one,
    chosen by OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG (default: parent-based, always
    on). Production sets `parentbased_traceidratio`: a file's first span draws, and every
    span after it, in any service, follows the decision carried by the trace context
    (Kafka headers, HTTP), so a file is traced whole or not at all, and an untraced one costs
    no span export."""
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if otlp_endpoint:
        provider.add_span_processor(BatchSpanProcessor(otlp_exporter(otlp_endpoint)))
    if spans_file is not None:
        spans_file.parent.mkdir(parents=True, exist_ok=True)
        out = spans_file.open("a", encoding="utf-8", buffering=1)
        exporter = ConsoleSpanExporter(out=out, formatter=span_json)
        provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=200))
    return provider


def otlp_exporter(endpoint: str) -> OTLPSpanExporter:
    """OTLP/HTTP to a collector; `endpoint` is the base URL, as OTEL_EXPORTER_OTLP_ENDPOINT
    gives it (the traces path is added), or the full traces URL. The exporter (with protobuf)
    is imported only here: a process without a collector does not load it."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
        OTLPSpanExporter,
    )

    url = endpoint.rstrip("/")
    if not url.endswith("/v1/traces"):
        url += "/v1/traces"
    return OTLPSpanExporter(endpoint=url)


def span_json(span: ReadableSpan) -> str:
    """One line per span; attribute values as text (Kafka keys are bytes)."""
    ctx = span.get_span_context()
    record = {
        "trace_id": format(ctx.trace_id, "032x") if ctx else None,
        "span_id": format(ctx.span_id, "016x") if ctx else None,
        "parent_id": format(span.parent.span_id, "016x") if span.parent else None,
        "name": span.name,
        "kind": span.kind.name,
        "service": span.resource.attributes.get("service.name"),
        "start": span.start_time,
        "end": span.end_time,
        "attributes": {
            k: v.decode(errors="replace") if isinstance(v, bytes) else v
            for k, v in (span.attributes or {}).items()
        },
    }
    return json.dumps(record, default=str) + "\n"


def current_trace_id() -> str | None:
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None
