"""Rate limits of the citizen-facing writes, declared on the routes as dependencies:
`dependencies=[limits.per_client("files_per_client")]`. The counters live in intake's own
database (`rate_counters`), so every replica counts the same hits."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Depends, Request

from guichet_runtime.rate_limits import RateLimit, RateLimiter, client_address
from intake.settings import DEFAULT_RATE_LIMITS
from intake.tables import rate_counters


class Limits:
    def __init__(self, runtime: Any) -> None:
        settings = getattr(runtime, "settings", None)  # tests mount the routes on a bare database
        self.rules: dict[str, RateLimit] = getattr(settings, "rate_limits", None) or {
            k: RateLimit.parse(v) for k, v in DEFAULT_RATE_LIMITS.items()
        }
        self.trusted = getattr(settings, "trusted_proxies", [])
        self.limiter = RateLimiter(runtime.engine, rate_counters)

    def per_client(self, rule: str) -> Any:
        """Count one hit of `rule` for the caller's address."""
        limit = self.rules[rule]

        async def check(request: Request) -> None:
            await self.limiter.hit(f"{rule}:{client_address(request, self.trusted)}", limit)

        return Depends(check)

    def per_file(self, rule: str) -> Any:
        """Count one hit of `rule` for the file of the route's `file_id`."""
        return Depends(self.file_counter(rule))

    def file_counter(self, rule: str) -> Callable[[str], Awaitable[None]]:
        """Counts one hit of `rule` for a file (the routes' `per_file`, and the email
        replies of intake.inbound on the same counter as the space)."""
        limit = self.rules[rule]

        async def check(file_id: str) -> None:
            await self.limiter.hit(f"{rule}:{file_id}", limit)

        return check
