"""A service keeps an idle HTTP connection open longer than any of our clients keeps one for
reuse, so that the client always closes first. Otherwise a server closing an idle connection
just as a client sends on it fails the request with "Server disconnected without sending a
response": in a `make test` run the web showed Lucas an error page where intake's refusal
(a code asked for Marie's file) was due."""

from __future__ import annotations

from typing import Any

import httpx
import uvicorn

from guichet_runtime import service
from guichet_runtime.settings import ServiceSettings
from web.backend import KEEPALIVE_EXPIRY


def test_a_service_keeps_idle_connections_longer_than_its_clients(monkeypatch):
    ran: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: ran.update(options))
    service.serve(object(), ServiceSettings())  # type: ignore[arg-type]
    keep_alive = ran["timeout_keep_alive"]
    assert keep_alive == service.KEEP_ALIVE_SECONDS
    # The web's backends, and every client built with httpx's defaults (the services'
    # clients of intake, notification's providers, the adapters' agencies).
    default_expiry = httpx.Limits().keepalive_expiry
    assert keep_alive > KEEPALIVE_EXPIRY and keep_alive > default_expiry
