"""HTTP routes of intake, thin: parse, call a command or a view. Each declares its access
policy (guichet_runtime.policy) with the facts of `access`; the routes open to anyone
(PUBLIC, ONE_TIME_CODE: rate-limited) only declare it, so a token sent along is not even
verified. Refusals (`Refused`) become HTTP answers in the runtime's app factory."""

from __future__ import annotations

from fastapi import APIRouter

from guichet_runtime.sealing import Keyring
from guichet_runtime.service import Runtime
from intake.api import citizen, desk, files, gdpr, indicators, me, thread
from intake.api.access import Access
from intake.api.limits import Limits


def router(runtime: Runtime, keyring: Keyring) -> APIRouter:
    api = APIRouter(prefix="/api")
    limits = Limits(runtime)
    access = Access(runtime)
    api.include_router(files.router(runtime, limits, access))
    api.include_router(citizen.router(runtime, limits, access, keyring))
    api.include_router(desk.router(runtime, limits, access))
    api.include_router(thread.router(runtime, limits, access))
    api.include_router(me.router(runtime))
    api.include_router(gdpr.router(runtime, access))
    api.include_router(indicators.router(runtime))
    return api
