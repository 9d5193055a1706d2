"""The end-to-end lane in two pytest processes side by side (`make test`): the lane mostly
waits on its servers and stacks (a CPU sampled idle 30 to 75 % of the time while it ran
alone), so two halves, each with its own broker, Keycloak and PostgreSQL (the session
fixtures of `tests/conftest.py`), overlap their waits.

`GUICHET_E2E_SHARD=1/2` or `2/2` picks a half; unset, every test runs (one process, as
before). The halves split by what they start, so that neither starts a stack the other
already has: the second takes every test on PostgreSQL (the shared, sealed and dated
PostgreSQL stacks) and the modules with stacks of their own listed below; the first takes
the rest (the SQLite stacks, the pages' stack and Chromium)."""

from __future__ import annotations

import os

import pytest

#: Modules starting stacks or servers of their own, run in the second half to balance it
#: (test_graceful_shutdown.py, on SQLite, stays in the first: the second was the longer by
#: a minute once restarts after a crash no longer waited out the dead process's session).
SECOND_HALF_MODULES = frozenset(
    {
        "test_adapters.py",
        "test_assignment_replicas.py",
        "test_authorization_matrix.py",
        "test_kafka_acls.py",
        "test_runtime_batches.py",
    }
)

SHARD_VARIABLE = "GUICHET_E2E_SHARD"


def half_of(item: pytest.Item) -> int:
    """1 or 2: the half of the lane that runs this test."""
    callspec = getattr(item, "callspec", None)
    if callspec is not None and any(
        isinstance(value, str) and value == "postgresql" for value in callspec.params.values()
    ):
        return 2
    return 2 if item.path.name in SECOND_HALF_MODULES else 1


def chosen_half() -> int | None:
    """The half GUICHET_E2E_SHARD asks for (None: the whole lane); a bad value stops the run."""
    value = os.environ.get(SHARD_VARIABLE, "").strip()
    if not value:
        return None
    if value not in ("1/2", "2/2"):
        raise pytest.UsageError(f"{SHARD_VARIABLE} is 1/2 or 2/2, not {value!r}")
    return int(value[0])


def keep_chosen_half(config: pytest.Config, items: list[pytest.Item], is_e2e) -> None:
    """Deselect the end-to-end tests of the other half (in place); the others stay."""
    half = chosen_half()
    if half is None:
        return
    other = [item for item in items if is_e2e(item) and half_of(item) != half]
    if other:
        config.hook.pytest_deselected(items=other)
        gone = set(map(id, other))
        items[:] = [item for item in items if id(item) not in gone]
