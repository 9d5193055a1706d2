"""Composition root of one agency's adapter (one deployable per agency: AGENCY=caf …)."""

from __future__ import annotations

from pathlib import Path

import httpx
from fastapi import FastAPI
from pydantic import model_validator

from guichet_runtime.service import build_runtime, create_app
from guichet_runtime.settings import ServiceSettings
from shared_models import Agency, AgencyRequestIssued, topics
from agency_adapter.handlers import make_handler
from agency_adapter.plugins import AgencyPlugin, plugin_for
from agency_adapter.tables import metadata


class AdapterSettings(ServiceSettings):
    agency: Agency
    agency_base_url: str = "http://127.0.0.1:8100"
    agency_timeout_seconds: float = 10.0
    service_name: str = ""
    database_url: str = ""

    @model_validator(mode="after")
    def _per_agency_defaults(self) -> "AdapterSettings":
        if not self.service_name:
            self.service_name = f"adapter-{self.agency.value.replace('_', '-')}"
        if not self.database_url:
            self.database_url = f"sqlite+aiosqlite:///var/data/adapter_{self.agency.value}.db"
        return self


def bootstrap(settings: AdapterSettings | None = None, plugin: AgencyPlugin | None = None) -> FastAPI:
    settings = settings or AdapterSettings()  # type: ignore[call-arg]
    plugin = plugin or plugin_for(settings.agency)
    runtime = build_runtime(settings, metadata, Path(__file__).parent / "migrations")
    client = httpx.AsyncClient(
        base_url=settings.agency_base_url,
        timeout=settings.agency_timeout_seconds,
        limits=httpx.Limits(max_keepalive_connections=20),
    )
    runtime.shutdown.append(client.aclose)
    runtime.consumer.subscribe(
        [topics.agency_requests(settings.agency)], {AgencyRequestIssued: make_handler(plugin, client)}
    )
    return create_app(runtime, title=f"Guichet unique — adaptateur {settings.agency.value}")
