"""tests/deadline.py: a test's waits end before its pytest timeout does, so the test fails
with its own message and its teardown runs (issue 18: a test waited longer than its timeout)."""

from __future__ import annotations

import time

import pytest

import tests.deadline
from tests.deadline import time_left
from tests.e2e.support import eventually


def test_a_wait_is_bounded_by_the_global_timeout() -> None:
    assert time_left(10_000) <= 300  # pyproject.toml: timeout = 300
    assert time_left(5) == 5


@pytest.mark.timeout(30)
def test_a_timeout_mark_gives_the_test_its_own_deadline_less_a_margin_for_teardown() -> None:
    assert tests.deadline.deadline is not None
    assert 20 < time_left(10_000) <= 27  # 30 s, less a tenth kept for the teardown


@pytest.mark.timeout(3)
async def test_eventually_gives_up_before_the_test_timeout_with_its_own_message() -> None:
    async def never() -> None:
        return None

    started = time.monotonic()
    with pytest.raises(AssertionError, match=r"not reached within .*: nothing, ever"):
        await eventually(never, timeout=600, what="nothing, ever")
    assert time.monotonic() - started < 3
