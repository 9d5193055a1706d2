"""Prometheus metrics of one adapter process, in its runtime's registry (one per app),
served with the generic ones at the runtime's `/metrics`."""

from __future__ import annotations

from collections import deque

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class AdapterMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.calls = Counter(
            "adapter_agency_calls",
            "Calls to the agency's system by outcome.",
            ["agency", "outcome"],
            registry=self.registry,
        )
        self.handled = Counter(
            "adapter_deliveries",
            "Requests, documents and callbacks handled, by kind and outcome.",
            ["agency", "kind", "outcome"],
            registry=self.registry,
        )
        self.agency_latency = Histogram(
            "adapter_agency_seconds",
            "Time waiting for the agency's system per call.",
            ["agency"],
            registry=self.registry,
        )
        self.overhead = Histogram(
            "adapter_overhead_seconds",
            "Time per request spent in the adapter runtime, agency latency excluded.",
            ["agency"],
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0),
            registry=self.registry,
        )
        self.callbacks_refused = Counter(
            "adapter_callbacks_refused",
            "Callbacks refused (not acknowledged as received), by reason.",
            ["agency", "reason"],
            registry=self.registry,
        )
        self.status_polls = Counter(
            "adapter_status_polls",
            "Reconciliation: status queries to the agency, by outcome.",
            ["agency", "outcome"],
            registry=self.registry,
        )
        self.awaiting_decision = Gauge(
            "adapter_requests_awaiting_decision",
            "Requests the agency acknowledged that have no decision yet.",
            ["agency"],
            registry=self.registry,
        )
        self.overdue = Gauge(
            "adapter_requests_overdue",
            "Requests acknowledged without a decision for longer than OVERDUE_SECONDS.",
            ["agency"],
            registry=self.registry,
        )
        # Raw recent samples, for exact percentiles in `make bench`.
        self.overhead_samples: deque[float] = deque(maxlen=20_000)
        self.agency_samples: deque[float] = deque(maxlen=20_000)
