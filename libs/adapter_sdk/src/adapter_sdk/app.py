"""One agency's adapter process: its settings (`configure`), its composition root
(`build_app`: the runtime, subscriptions, the callback route, reconciliation) and its console
entry point (`serve`)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from adapter_sdk.callback_gate import missing_secret_problem
from adapter_sdk.config import AdapterConfig
from adapter_sdk.declaration import catalogue_problems, declaration_problems
from adapter_sdk.interface import AgencyAdapter
from adapter_sdk.metrics import AdapterMetrics
from adapter_sdk.runtime import AdapterRuntime
from adapter_sdk.tables import metadata
from adapter_sdk.transport import Transport
from guichet_runtime.kafka_security import client_options
from guichet_runtime.policy import Policy, declared
from guichet_runtime.service import build_runtime, create_app, ensure_topics
from guichet_runtime.service import serve as run_service
from shared_models import AgencyRequestIssued, SupportingDocumentSubmitted, catalogue, topics

log = logging.getLogger(__name__)


def configure(
    adapter_cls: type[AgencyAdapter], config: AdapterConfig | None = None
) -> AdapterConfig:
    """The adapter's settings from the environment, with per-agency defaults."""
    decl = adapter_cls.declaration
    config = config or adapter_cls.Config()
    defaults: dict[str, Any] = {}
    if not config.service_name or config.service_name == "service":
        defaults["service_name"] = topics.adapter_service(decl.agency)
    if not config.database_url:
        defaults["database_url"] = f"sqlite+aiosqlite:///var/data/adapter_{decl.agency}.db"
    return config.model_copy(update=defaults) if defaults else config


def build_app(adapter_cls: type[AgencyAdapter], config: AdapterConfig | None = None) -> FastAPI:
    """Composition root of one agency's adapter process."""
    decl = adapter_cls.declaration
    problems = declaration_problems(decl)
    if problems:
        raise SystemExit(f"déclaration de {decl.agency} invalide :\n- " + "\n- ".join(problems))
    for problem in catalogue_problems(decl, catalogue()):
        # The contract test kit fails on it; a running adapter only says so.
        log.warning("adapter %s and the catalogue disagree: %s", decl.agency, problem)
    config = configure(adapter_cls, config)
    runtime = build_runtime(config, metadata, Path(__file__).parent / "migrations")
    metrics = AdapterMetrics(runtime.metrics.registry)  # served at the runtime's /metrics
    transport = Transport(config, decl.agency, metrics)
    adapter = adapter_cls(config)
    core = AdapterRuntime(adapter, config, runtime.uow, transport, metrics)
    runtime.shutdown.append(transport.close)
    if config.create_topics:

        async def own_topics() -> (
            None
        ):  # an agency the core does not list yet still gets its topics
            names = topics.agency_topics(decl.agency)
            declared = {config.topic_namespace + t: topics.PARTITIONS for t in names}
            declared |= {config.topic_namespace + topics.dead_letter(t): 1 for t in names}
            await ensure_topics(client_options(config), declared)

        runtime.startup.append(own_topics)
    # No batch transaction: the handler calls the agency, which a batch rolled back (a crash,
    # a poison record) would call again for every record before it. The records of different
    # files are handled at once instead, each on its own (guichet_runtime.consumer.
    # ConcurrentConsumption), up to agency_concurrency calls in flight.
    runtime.consumer.batch_max = 1
    runtime.consumer.concurrent_max = config.agency_concurrency
    runtime.consumer.subscribe(
        [topics.agency_requests(decl.agency)], {AgencyRequestIssued: core.on_request}
    )
    runtime.consumer.subscribe(
        [topics.agency_documents(decl.agency)], {SupportingDocumentSubmitted: core.on_document}
    )
    runtime.workers.append(lambda: core.reconciler.run(runtime.stopping))
    app = create_app(runtime, title=f"Guichet unique — adaptateur {decl.label}")
    app.state.adapter = core

    # The callback gate (HMAC signature, timestamp, replay window, the request's own agency)
    # decides on /callbacks; the policy is declared here, enforced there.
    @app.post("/callbacks", tags=["organisme"], dependencies=[declared(Policy.AGENCY_CALLBACK)])
    async def callback(request: Request) -> Any:
        """Where an asynchronous agency delivers its answer."""
        if not decl.asynchronous:
            return JSONResponse(
                status_code=404, content={"message": f"{decl.label} ne rappelle pas."}
            )
        peer = request.client.host if request.client else ""
        status, content = await core.on_callback(await request.body(), dict(request.headers), peer)
        return JSONResponse(status_code=status, content=content)

    @app.get("/declaration", tags=["organisme"], dependencies=[declared(Policy.PUBLIC)])
    async def declaration() -> dict[str, Any]:
        return decl.model_dump(mode="json")

    @app.get("/metrics/overhead", tags=["ops"], dependencies=[declared(Policy.OPS)])
    async def overhead() -> dict[str, Any]:
        """Recent per-request samples, in seconds: time in the adapter runtime (agency
        latency excluded) and time waiting for the agency; for `make bench`."""
        return {
            "runtime_s": list(metrics.overhead_samples),
            "agency_s": list(metrics.agency_samples),
        }

    return app


def serve(adapter_cls: type[AgencyAdapter], argv: list[str] | None = None) -> None:
    """Console entry point of one adapter: settings from the environment, --host/--port override."""
    parser = argparse.ArgumentParser(description=f"adaptateur {adapter_cls.declaration.label}")
    parser.add_argument("--host", help="interface to listen on (HTTP_HOST)")
    parser.add_argument("--port", type=int, help="HTTP port (HTTP_PORT)")
    args = parser.parse_args(argv)
    overrides = {
        k: v for k, v in (("http_host", args.host), ("http_port", args.port)) if v is not None
    }
    config = configure(adapter_cls, adapter_cls.Config(**overrides))
    problem = missing_secret_problem(config, adapter_cls.declaration.asynchronous)
    if problem:
        raise SystemExit(f"adaptateur {adapter_cls.declaration.label} : {problem}")
    run_service(build_app(adapter_cls, config), config)
