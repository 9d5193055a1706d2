"""`with_attempts`: tenacity's schedule (bounded attempts, exponential waits, the last failure
raised) with a plain first call."""

from __future__ import annotations

import asyncio

import pytest

from guichet_runtime import retries
from guichet_runtime.retries import with_attempts


class Flaky:
    """Fails with `errors` in turn, then answers "ok"; counts its calls."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits between attempts, recorded instead of slept (tenacity's too)."""
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(round(seconds, 6))

    monkeypatch.setattr(retries.asyncio, "sleep", sleep)
    monkeypatch.setattr("tenacity.asyncio._portable_async_sleep", sleep)
    return slept


def retry_value_errors(exc: BaseException) -> bool:
    return isinstance(exc, ValueError)


async def test_a_first_success_is_one_call_and_no_wait(waits):
    call = Flaky()

    got = await with_attempts(
        call, attempts=4, first_wait=0.05, max_wait=1, retry=retry_value_errors
    )

    assert (got, call.calls, waits) == ("ok", 1, [])


async def test_failures_are_tried_again_on_the_exponential_schedule(waits):
    call = Flaky(ValueError("1"), ValueError("2"), ValueError("3"))

    got = await with_attempts(
        call, attempts=4, first_wait=0.05, max_wait=1, retry=retry_value_errors
    )

    assert (got, call.calls) == ("ok", 4)
    assert waits == [0.05, 0.1, 0.2]  # as tenacity's wait_exponential(multiplier=0.05)


async def test_the_waits_stop_growing_at_the_maximum(waits):
    call = Flaky(*(ValueError(str(i)) for i in range(5)))

    await with_attempts(call, attempts=6, first_wait=0.5, max_wait=1.5, retry=retry_value_errors)

    assert waits == [0.5, 1.0, 1.5, 1.5, 1.5]


async def test_the_last_failure_is_raised_once_the_attempts_are_spent(waits):
    call = Flaky(ValueError("1"), ValueError("2"), ValueError("3"))

    with pytest.raises(ValueError, match="3"):
        await with_attempts(call, attempts=3, first_wait=0.05, max_wait=1, retry=retry_value_errors)

    assert call.calls == 3 and waits == [0.05, 0.1]


@pytest.mark.parametrize("fails_at", [1, 2])
async def test_a_failure_not_worth_retrying_is_raised_at_once(waits, fails_at):
    call = Flaky(*[ValueError("x")] * (fails_at - 1), KeyError("refusé"))

    with pytest.raises(KeyError):
        await with_attempts(call, attempts=5, first_wait=0.05, max_wait=1, retry=retry_value_errors)

    assert call.calls == fails_at


async def test_one_attempt_means_no_retry(waits):
    call = Flaky(ValueError("1"))

    with pytest.raises(ValueError):
        await with_attempts(call, attempts=1, first_wait=0.05, max_wait=1, retry=retry_value_errors)

    assert (call.calls, waits) == (1, [])


async def test_a_real_wait_happens_between_attempts():
    call = Flaky(ValueError("1"))
    loop = asyncio.get_running_loop()
    started = loop.time()

    await with_attempts(call, attempts=2, first_wait=0.05, max_wait=1, retry=retry_value_errors)

    assert loop.time() - started >= 0.045 and call.calls == 2
