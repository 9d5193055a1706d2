"""Bounded attempts with exponential waits, cheap when the first attempt succeeds.

`with_attempts` runs `call()` up to `attempts` times while `retry(exc)` says a failure is worth
another try, waiting `first_wait`, then twice as long each time (at most `max_wait`), and
raises the last failure. It is tenacity's `AsyncRetrying` (stop after the attempts,
exponential wait, reraise), with one difference: the first attempt is a plain call.

Nearly every consumed record and every agency call succeeds at once, and setting up
tenacity's machinery for it (a retry state, its action list, a `concurrent.futures.Future`
for the outcome) cost about 25 µs each time, ~9 % of a consumer's time per record
(docs/performance.md). tenacity runs the attempts after a failure, its waits shifted by one
attempt so the schedule is the same as if it had run them all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

T = TypeVar("T")


async def with_attempts(
    call: Callable[[], Awaitable[T]],
    *,
    attempts: int,
    first_wait: float,
    max_wait: float,
    retry: Callable[[BaseException], bool],
    failed: BaseException | None = None,
) -> T:
    """`call()`, tried again after a failure `retry` accepts, `attempts` times in all.
    `failed`: the first attempt was made already (elsewhere) and failed so; the attempts
    and waits go on from there."""
    if failed is None:
        try:
            return await call()
        except Exception as exc:
            failed = exc
    if attempts <= 1 or not retry(failed):
        raise failed
    await asyncio.sleep(min(first_wait, max_wait))
    async for attempt in AsyncRetrying(
        stop=stop_after_attempt(attempts - 1),
        wait=wait_exponential(multiplier=first_wait * 2, max=max_wait),
        retry=retry_if_exception(retry),
        reraise=True,
    ):
        with attempt:
            return await call()
    raise AssertionError("unreachable: tenacity reraises the last failure")
