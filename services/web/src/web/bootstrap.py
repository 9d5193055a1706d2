"""Composition root of the web service: server-rendered pages (DSFR) over the other
services' HTTP APIs. Every page works without JavaScript: plain forms, POST then redirect.

The backend client, the renderer, the login (OIDC clients) and the settings live on
`app.state`; routes reach them through the dependencies of `web.api.deps`. The web's own
database holds the server-side sessions (`web.sessions`), migrated at start."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from sqlalchemy.ext.asyncio import create_async_engine

from guichet_runtime.body_limit import MULTIPART_OVERHEAD_BYTES, BodySizeLimit
from guichet_runtime.logs import setup_logging
from guichet_runtime.metrics import HttpMetrics, RuntimeMetrics
from guichet_runtime.probes import Readiness, install_ops_routes
from guichet_runtime.secrets import required_secret
from guichet_runtime.service import TraceIdHeader, migrate_at_start
from guichet_runtime.telemetry import setup_tracing
from web import pages
from web.api import (
    citoyen,
    connexion,
    donnees,
    fil,
    guichet,
    guichet_rendez_vous,
    referent,
    rendez_vous,
    shared,
    supervision,
)
from web.backend import Backend, ForwardClientAddress
from web.login import Login
from web.security import SecurityHeaders, content_security_policy
from web.sessions import ServerSessions, SessionPolicy, SessionStore
from web.settings import WebSettings

MIGRATIONS = Path(__file__).parent / "migrations"


def bootstrap(settings: WebSettings | None = None) -> FastAPI:
    settings = settings or WebSettings()
    # First: without its secret outside development, the service does not start at all.
    secret_key = required_secret(
        settings.secret_key, "SECRET_KEY", settings.environment, settings.secrets_dir
    )
    setup_logging(settings.service_name, settings.log_level, settings.log_format)
    tracer_provider = setup_tracing(
        settings.service_name, settings.otel_spans_file, settings.otel_exporter_otlp_endpoint
    )
    # The providers' client secrets too: a provider configured without one stops the start.
    login = Login(settings)
    metrics = RuntimeMetrics(settings.service_name)
    engine = create_async_engine(settings.database_url)
    store = SessionStore(engine, secret_key)
    # Ready: started, its database reachable and migrated to head (no consumer).
    readiness = Readiness(engine, MIGRATIONS, None)
    backend = Backend(
        settings.intake_url,
        settings.assignment_url,
        settings.backend_timeout_seconds,
        notification_url=settings.notification_url,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await migrate_at_start(settings, MIGRATIONS)
        app.state.ready = readiness.started = True
        try:
            yield
        finally:
            app.state.ready = readiness.started = False
            await backend.close()
            await engine.dispose()
            tracer_provider.shutdown()

    app = FastAPI(title="Guichet unique — pages", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.ready = False
    app.state.settings = settings
    app.state.backend = backend
    app.state.renderer = pages.Renderer()
    app.state.login = login
    app.state.sessions = store

    install_ops_routes(app, service=settings.service_name, metrics=metrics, ready=readiness.check)
    shared.mount_static(app, settings)
    shared.add_error_pages(app)
    for router in (
        shared.router,
        connexion.router,
        citoyen.router,
        fil.router,
        donnees.router,
        guichet.router,
        guichet_rendez_vous.router,
        referent.router,
        rendez_vous.router,
        supervision.router,
    ):
        app.include_router(router)

    app.add_middleware(
        ServerSessions,
        store=store,
        policy=SessionPolicy(
            idle=timedelta(minutes=settings.session_idle_minutes),
            lifetime=timedelta(hours=settings.session_lifetime_hours),
            secure=settings.secure_cookies,
        ),
    )
    app.add_middleware(ForwardClientAddress, trusted=settings.trusted_proxies)
    app.add_middleware(SecurityHeaders, csp=content_security_policy(login.origins()))
    app.add_middleware(TraceIdHeader)
    app.add_middleware(HttpMetrics, metrics=metrics)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_body_bytes,
        # A document a little too large still gets the form's precise message.
        overrides=[
            (r"/dossier/[^/]+/pieces", 2 * settings.document_max_bytes + MULTIPART_OVERHEAD_BYTES)
        ],
    )
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=tracer_provider,
        excluded_urls="health,dsfr,static,metrics",
        exclude_spans=["receive", "send"],  # as every service (guichet_runtime.service)
    )
    return app
