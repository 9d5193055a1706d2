"""Crash points: test-only places where a process can be made to die on purpose.

The crash windows of an at-least-once system (published but not yet marked published,
committed but offset not yet acknowledged, sent but not yet recorded...) are where
duplicates are born. Hitting them by chance (a kill after a sleep) proves little; a crash
point hits them exactly. The code calls `crash_point("relay.after_publish")` at such a
place; a process started with

    GUICHET_CRASH_POINTS_ENABLED=1 GUICHET_CRASH_AT=relay.after_publish

exits hard (`os._exit(137)`, as after a SIGKILL: no cleanup, no flush, no commit) the first
time it passes there; `GUICHET_CRASH_AT=relay.after_publish:3` at the third pass.

Safety: a crash point is armed only when all three hold, so no single variable set by
mistake (or by an attacker who can set one) crashes a production process:
- `GUICHET_CRASH_AT` names a point;
- `GUICHET_CRASH_POINTS_ENABLED` is exactly "1";
- pytest is installed: the production image is built without the dev dependency group
  (`uv sync --no-dev`, deploy/Dockerfile), so there it is never armed.
When not armed, `crash_point` costs one identity test against a cached None.
The settings are read once, at the first call.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from dataclasses import dataclass

log = logging.getLogger(__name__)

#: The exit status of a process that died at a crash point (as after SIGKILL).
EXIT_STATUS = 137

#: Every crash point the code defines (a name outside this set is refused when arming).
POINTS = frozenset(
    {
        # Events committed to the outbox; the relay has not published them yet.
        "relay.before_publish",
        # The outbox relay published a batch (broker acknowledged) but has not deleted it.
        "relay.after_publish",
        # A consumer's handler transaction committed; the Kafka offset is not committed yet.
        "consumer.after_commit_before_ack",
        # A batched consumer applied a record in the batch's transaction (its savepoint
        # released); the batch is not committed yet.
        "consumer.mid_batch",
        # A provider accepted a notification; the row is not marked sent yet.
        "notification.after_send",
        # An agency answered a request; the adapter has not recorded the answer yet.
        "adapter.after_agency_call",
    }
)


@dataclass
class _Armed:
    name: str
    at_pass: int
    passes: int = 0


_UNREAD = object()
_armed: _Armed | object | None = _UNREAD


def parse(value: str) -> tuple[str, int]:
    """`name` or `name:N` -> (name, N), N >= 1 (1 when omitted)."""
    name, _, count = value.strip().partition(":")
    at_pass = int(count) if count else 1
    if name not in POINTS:
        raise ValueError(f"unknown crash point {name!r}; known: {', '.join(sorted(POINTS))}")
    if at_pass < 1:
        raise ValueError(f"crash point pass must be >= 1, got {at_pass}")
    return name, at_pass


def _read_settings() -> _Armed | None:
    value = os.environ.get("GUICHET_CRASH_AT", "")
    if not value:
        return None
    if os.environ.get("GUICHET_CRASH_POINTS_ENABLED") != "1":
        log.warning("GUICHET_CRASH_AT ignored: GUICHET_CRASH_POINTS_ENABLED is not 1")
        return None
    if importlib.util.find_spec("pytest") is None:
        log.warning("GUICHET_CRASH_AT ignored: crash points are for test environments only")
        return None
    try:
        name, at_pass = parse(value)
    except ValueError as exc:  # a test that would silently test nothing: stop it loudly
        sys.stderr.write(f"GUICHET_CRASH_AT invalid: {exc}\n")
        sys.stderr.flush()
        os._exit(2)
    log.warning("crash point armed: %s at pass %d", name, at_pass)
    return _Armed(name, at_pass)


def crash_point(name: str) -> None:
    """Exit the process hard here when the crash point `name` is armed and due."""
    global _armed
    armed = _armed
    if armed is None:
        return
    if armed is _UNREAD:
        armed = _armed = _read_settings()
        if armed is None:
            return
    assert isinstance(armed, _Armed)
    if armed.name != name:
        return
    armed.passes += 1
    if armed.passes == armed.at_pass:
        # Said on stderr, unbuffered: the test reads it in the process's log.
        sys.stderr.write(f"crash point {name} reached (pass {armed.passes}): exiting\n")
        sys.stderr.flush()
        os._exit(EXIT_STATUS)


def reset() -> None:
    """Forget the cached settings (for unit tests)."""
    global _armed
    _armed = _UNREAD
