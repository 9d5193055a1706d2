"""Kubernetes probes of a service (routes in `guichet_runtime.service.create_app`).

- live: the process answers (the event loop runs); nothing else, so a database outage
  never makes Kubernetes restart every pod at once.
- ready: the app finished starting and is not stopping; the database answers `SELECT 1`;
  the database is at the migrations' head (checked at start, cached once true, re-checked
  while false: a migration Job may still be running); the consumer has joined its group.
  "Joined" means a first assignment arrived, possibly empty: with more replicas than
  partitions the extra members stay idle, and they must still be ready (readiness gates
  HTTP traffic, not Kafka's; an idle member takes partitions over at the next rebalance).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncEngine

from guichet_runtime import revisions
from guichet_runtime.consumer import EventConsumer
from guichet_runtime.metrics import RuntimeMetrics
from guichet_runtime.policy import Policy, declared

ReadyCheck = Callable[[], Awaitable[tuple[bool, dict[str, Any]]]]

DATABASE_TIMEOUT = 2.0


@dataclass
class Check:
    ok: bool
    detail: str


class Readiness:
    def __init__(
        self, engine: AsyncEngine, migrations_dir: Path, consumer: EventConsumer | None
    ) -> None:
        self.engine = engine
        self.migrations_dir = migrations_dir
        self.consumer = consumer
        self.started = False
        self._at_head = False

    async def database(self) -> Check:
        try:
            async with asyncio.timeout(DATABASE_TIMEOUT):
                async with self.engine.connect() as conn:
                    await conn.execute(sa.text("SELECT 1"))
        except Exception as exc:
            return Check(False, f"unreachable: {type(exc).__name__}: {exc}"[:300])
        return Check(True, "reachable")

    async def migrations(self) -> Check:
        if not self._at_head:
            try:
                self._at_head = await revisions.at_head(self.migrations_dir, self.engine)
            except Exception as exc:
                return Check(False, f"cannot read the revision: {type(exc).__name__}")
        return Check(True, "at head") if self._at_head else Check(False, "not at head")

    def consumer_check(self) -> Check:
        if self.consumer is None or not self.consumer.subscribes:
            return Check(True, "no subscription")
        membership = self.consumer.membership
        if not membership.joined:
            return Check(False, "not yet a member of its consumer group")
        n = len(membership.partitions)
        return Check(True, f"{n} partition(s) assigned" if n else "idle member (no partition)")

    async def check(self) -> tuple[bool, dict[str, Any]]:
        checks = {"started": Check(self.started, "started" if self.started else "not started")}
        if self.started:
            checks["database"] = await self.database()
            checks["migrations"] = await self.migrations()
            checks["consumer"] = self.consumer_check()
        failed = [name for name, c in checks.items() if not c.ok]
        body: dict[str, Any] = {
            "status": "ready" if not failed else "not_ready",
            "checks": {name: {"ok": c.ok, "detail": c.detail} for name, c in checks.items()},
        }
        if failed:
            body["failed"] = failed
        return not failed, body


def started_only(app: FastAPI) -> ReadyCheck:
    """Readiness of a service without database nor consumer (web): started, not stopping.
    Its backends are not checked: one slow backend must not empty every web pod."""

    async def check() -> tuple[bool, dict[str, Any]]:
        ok = bool(app.state.ready)
        detail = "started" if ok else "not started"
        body: dict[str, Any] = {
            "status": "ready" if ok else "not_ready",
            "checks": {"started": {"ok": ok, "detail": detail}},
        }
        if not ok:
            body["failed"] = ["started"]
        return ok, body

    return check


def install_ops_routes(
    app: FastAPI, *, service: str, metrics: RuntimeMetrics, ready: ReadyCheck
) -> None:
    """`/health/live`, `/health/ready` (503 naming the failed checks) and `/metrics`."""

    @app.get(
        "/health/live", tags=["ops"], include_in_schema=False, dependencies=[declared(Policy.OPS)]
    )
    async def live() -> dict[str, str]:
        """The process answers."""
        return {"status": "alive", "service": service}

    @app.get(
        "/health/ready", tags=["ops"], include_in_schema=False, dependencies=[declared(Policy.OPS)]
    )
    async def readiness() -> JSONResponse:
        ok, body = await ready()
        body["service"] = service
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics", tags=["ops"], include_in_schema=False, dependencies=[declared(Policy.OPS)])
    async def prometheus() -> Response:
        """Prometheus text exposition."""
        return Response(await metrics.exposition(), media_type=metrics.content_type)
