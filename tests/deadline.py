"""The running test's deadline, so that no wait of a test outlasts the test: `time_left(n)` is
`n` seconds, or less when the test's pytest timeout (its `timeout` mark, else the `timeout` of
pyproject.toml) ends sooner, minus a margin for its teardown. A wait bounded by it fails with
its own message ("not reached within …") and the test's teardown still stops what it started,
instead of pytest-timeout cutting the test short wherever it stands.

The hook below is imported by tests/conftest.py; tests/e2e/support.py's `eventually` (and
every helper built on it) takes its timeouts through `time_left`.
"""

from __future__ import annotations

import time

import pytest

#: Seconds kept, at most, for a test's teardown after its last wait (a tenth of short timeouts).
TEARDOWN_MARGIN = 20.0

#: When the running test's waits must be over (time.monotonic()); None: no pytest timeout.
deadline: float | None = None


def pytest_timeout_of(item: pytest.Item) -> float | None:
    """The item's pytest timeout in seconds: its closest `timeout` mark, else the ini's."""
    mark = item.get_closest_marker("timeout")
    if mark is not None:
        value = mark.args[0] if mark.args else mark.kwargs.get("timeout")
    else:
        value = item.config.getini("timeout")
    return float(value) if value not in (None, "") and float(value) > 0 else None


def time_left(wanted: float) -> float:
    """`wanted`, or what is left before the running test's deadline if that is sooner."""
    if deadline is None:
        return wanted
    return max(0.0, min(wanted, deadline - time.monotonic()))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """The test's clock starts with its set-up, as pytest-timeout's does."""
    global deadline
    timeout = pytest_timeout_of(item)
    margin = None if timeout is None else min(TEARDOWN_MARGIN, timeout / 10)
    deadline = None if timeout is None else time.monotonic() + timeout - margin
