"""Spans sampled as production asks (issue 14 §4): OpenTelemetry's standard variables choose
the sampler; with a parent-based ratio, a file's first span draws and every later span, in
any process, follows the decision the trace context carries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from opentelemetry import propagate
from opentelemetry.trace import SpanKind

from guichet_runtime.telemetry import tracer_provider


def _spans(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _provider(tmp_path: Path, name: str):
    return tracer_provider(name, tmp_path / f"{name}.jsonl")


def test_by_default_every_span_is_recorded(tmp_path, monkeypatch):
    monkeypatch.delenv("OTEL_TRACES_SAMPLER", raising=False)
    monkeypatch.delenv("OTEL_TRACES_SAMPLER_ARG", raising=False)
    provider = _provider(tmp_path, "intake")
    with provider.get_tracer("t").start_as_current_span("POST /api/files"):
        pass
    provider.force_flush()
    assert [s["name"] for s in _spans(tmp_path / "intake.jsonl")] == ["POST /api/files"]


@pytest.mark.parametrize(("ratio", "recorded"), [("0", False), ("1", True)])
def test_a_downstream_service_follows_the_first_spans_decision(
    tmp_path, monkeypatch, ratio, recorded
):
    """The first process draws with the ratio; the second one is set to trace everything on
    its own, yet records exactly when the first one did (the decision travels in the record's
    headers, as the relay and the consumer carry it)."""
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", ratio)
    first = _provider(tmp_path, "intake")
    headers: dict[str, str] = {}
    with first.get_tracer("t").start_as_current_span("POST /api/files") as span:
        assert span.get_span_context().is_valid  # ids exist, recorded or not (logs carry them)
        propagate.inject(headers)
    flags = int(headers["traceparent"].rsplit("-", 1)[1], 16)
    assert bool(flags & 0x01) is recorded  # W3C trace-flags: the "sampled" bit

    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "1")
    second = _provider(tmp_path, "assignment")
    with second.get_tracer("t").start_as_current_span(
        "files.submitted process", context=propagate.extract(headers), kind=SpanKind.CONSUMER
    ):
        pass
    first.force_flush()
    second.force_flush()
    assert len(_spans(tmp_path / "intake.jsonl")) == (1 if recorded else 0)
    downstream = _spans(tmp_path / "assignment.jsonl")
    assert len(downstream) == (1 if recorded else 0)
    if recorded:
        assert downstream[0]["trace_id"] == headers["traceparent"].split("-")[1]
