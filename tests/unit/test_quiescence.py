"""devstack.quiescence: the wait ends only once nothing is in flight and nothing new was
published for the stable period (the probe of a real stack runs in tests/e2e, e.g.
test_channels.py's redelivery test)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import pytest

from devstack.quiescence import Activity, NotQuiescent, Probe, wait_quiescent

STACK: Any = SimpleNamespace(namespace="ns.", ports=SimpleNamespace(adapters={"caf": 1}))


class Looks:
    """A stack seen through a scripted sequence of looks (the last one repeats)."""

    def __init__(self, *script: Activity) -> None:
        self.script: Iterator[Activity] = iter(script)
        self.last = script[-1]
        self.count = 0

    async def look(self) -> Activity:
        self.count += 1
        self.last = next(self.script, self.last)
        return self.last

    def probe(self, stack: Any) -> Any:
        @asynccontextmanager
        async def opened():
            yield self

        return opened()


IDLE = Activity(ends={"ns.files.submitted[0]": 4})


async def test_waits_for_lag_outbox_and_pending_work_to_clear_then_stays_idle() -> None:
    looks = Looks(
        Activity(lag={"ns.notification ns.files.answered[0]": 1}, ends=IDLE.ends),
        Activity(outbox={"assignment": 2}, ends=IDLE.ends),
        Activity(pending={"notification": 1}, ends=IDLE.ends),
        IDLE,
    )
    found = await wait_quiescent(STACK, stable=0.05, poll=0.01, timeout=5, probe=looks.probe)
    assert found == IDLE and found.busy == {}
    assert looks.count >= 5  # three busy looks, then idle for the stable period


async def test_a_record_published_meanwhile_restarts_the_stable_period() -> None:
    moving = [Activity(ends={"ns.files.submitted[0]": n}) for n in range(4, 30)]
    looks = Looks(*moving)
    found = await wait_quiescent(STACK, stable=0.05, poll=0.01, timeout=5, probe=looks.probe)
    assert found.ends == {"ns.files.submitted[0]": 29}  # only once the topic stopped moving
    assert looks.count > len(moving)


async def test_still_busy_at_the_timeout_is_an_error_naming_what() -> None:
    looks = Looks(Activity(outbox={"intake": 3}))
    with pytest.raises(NotQuiescent, match="outbox intake"):
        await wait_quiescent(STACK, stable=0.05, poll=0.01, timeout=0.2, probe=looks.probe)


def test_the_probe_watches_every_group_of_the_stack_on_its_namespaced_topics() -> None:
    groups = Probe(STACK).groups
    assert set(groups) == {"ns.intake", "ns.assignment", "ns.notification", "ns.adapter-caf"}
    assert "ns.agency.caf.requests" in groups["ns.adapter-caf"]
    assert "ns.files.submitted" in groups["ns.assignment"]
    assert all(t.startswith("ns.") for topics in groups.values() for t in topics)
