"""Wait until a running stack has nothing in flight, so that a test can then assert that
"nothing more happened" (no second email, no second answer) instead of sleeping a fixed time
and hoping the system had finished.

A stack is *quiescent* when, at one look:

- every consumer group of the stack has committed every record of every topic it reads (lag
  zero: a group commits a record's offset only once its handler's transaction committed,
  guichet_runtime.consumer, so whatever the handler wrote is in its database by then);
- every service's outbox is empty (the relay published every event committed);
- notification has no message left to send (no row ``a_envoyer``: a message sent and not yet
  recorded is one, until its lease ends and it is sent again or recorded);
- no agency simulator has a callback left to deliver or a call held (``GET /admin/pending``);

and it stays so for ``stable`` seconds, with no new record on the stack's topics meanwhile (an
event published between two looks moves a topic's end offset, which restarts the wait). The
lag is read before the databases at each look: a handler that commits after the lag was read
leaves its rows for the database read, or (published already) a moved end offset.

What it cannot see: work a service holds in memory only, and timers (the assignment's
housekeeping, the adapters' reconciliation): a test that waits for one of those waits for its
effect first, then for quiescence, or asks for a `stable` period longer than the timer's.

The stack's groups and topics are those of `shared_models.topology` for its agencies, under its
namespace; the broker is read as the super user (`Stack.kafka`), the databases with the URLs the
services run with (`Stack.database_urls`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Protocol

import httpx
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from guichet_runtime.tls_context import client_tls
from shared_models import topology

if TYPE_CHECKING:
    from devstack.stack import Stack

#: Per service, the work it still has to do besides its outbox: a count over its own tables.
PENDING_WORK: Mapping[str, str] = {
    "notification": "SELECT count(*) FROM notifications WHERE status = 'a_envoyer'",
}

#: Services without an outbox (the pages keep sessions only).
NO_OUTBOX = frozenset({"web"})


class NotQuiescent(AssertionError):
    """The stack still had work in flight when the wait ended."""


@dataclass(frozen=True)
class Activity:
    """What one look at the stack found."""

    #: "group topic[partition]" -> records not yet committed by the group (only those > 0).
    lag: dict[str, int] = field(default_factory=dict)
    #: service -> outbox rows not yet published (only those > 0).
    outbox: dict[str, int] = field(default_factory=dict)
    #: service -> other work still to do (PENDING_WORK; only those > 0).
    pending: dict[str, int] = field(default_factory=dict)
    #: "topic[partition]" -> end offset, on every topic a group of the stack reads.
    ends: dict[str, int] = field(default_factory=dict)

    @property
    def busy(self) -> dict[str, int]:
        """Everything still in flight, by where it is (empty: nothing)."""
        return {
            **{f"lag {k}": v for k, v in self.lag.items()},
            **{f"outbox {k}": v for k, v in self.outbox.items()},
            **{f"pending {k}": v for k, v in self.pending.items()},
        }


def _label(tp: TopicPartition) -> str:
    return f"{tp.topic}[{tp.partition}]"


class Probe:
    """Looks at one stack's groups, topics and databases (``async with Probe(stack)``)."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        agencies = sorted(stack.ports.adapters)
        ns = stack.namespace
        self.groups: dict[str, list[str]] = {
            ns + p.group: sorted(ns + t for t in p.consumes)
            for p in topology.principals(agencies).values()
            if p.group
        }
        self._admin: AIOKafkaAdminClient | None = None
        self._reader: AIOKafkaConsumer | None = None
        self._engines: dict[str, AsyncEngine] = {}
        self._http = httpx.AsyncClient(timeout=10, verify=client_tls())
        self._partitions: list[TopicPartition] = []

    async def __aenter__(self) -> Probe:
        options = self.stack.kafka.client_options()
        self._admin = AIOKafkaAdminClient(**options)
        self._reader = AIOKafkaConsumer(**options, enable_auto_commit=False)
        try:
            await self._admin.start()
            await self._reader.start()
            wanted = sorted({t for group_topics in self.groups.values() for t in group_topics})
            described = {
                t["topic"]: sorted(p["partition"] for p in t["partitions"])
                for t in await self._admin.describe_topics(wanted)
                if t["error_code"] == 0 and t["partitions"]
            }
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        missing = [t for t in wanted if t not in described]
        if missing:
            await self.__aexit__(None, None, None)
            raise NotQuiescent(f"the stack's topics are missing on the broker: {missing}")
        self._partitions = [TopicPartition(t, p) for t in wanted for p in described[t]]
        self._engines = {
            name: create_async_engine(url)
            for name, url in self.stack.database_urls.items()
            if name not in NO_OUTBOX
        }
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for engine in self._engines.values():
            await engine.dispose()
        await self._http.aclose()
        if self._reader is not None:
            await self._reader.stop()
        if self._admin is not None:
            await self._admin.close()

    async def look(self) -> Activity:
        """One look: the topics' ends and each group's lag first, then the databases."""
        assert self._admin is not None and self._reader is not None, "use `async with Probe`"
        ends = await self._reader.end_offsets(self._partitions)
        starts: dict[TopicPartition, int] | None = None
        lag: dict[str, int] = {}
        for group, group_topics in self.groups.items():
            committed = await self._admin.list_consumer_group_offsets(group)
            for tp in (tp for tp in self._partitions if tp.topic in group_topics):
                meta = committed.get(tp)
                if meta is not None and meta.offset >= 0:
                    done = meta.offset
                else:  # nothing committed yet: the group reads from the log's start
                    starts = starts or await self._reader.beginning_offsets(self._partitions)
                    done = starts[tp]
                if ends[tp] > done:
                    lag[f"{group} {_label(tp)}"] = ends[tp] - done
        outbox: dict[str, int] = {}
        pending: dict[str, int] = {}
        for name, engine in self._engines.items():
            async with engine.connect() as conn:
                rows = (await conn.execute(sa.text("SELECT count(*) FROM outbox"))).scalar_one()
                if rows:
                    outbox[name] = int(rows)
                if name in PENDING_WORK:
                    todo = (await conn.execute(sa.text(PENDING_WORK[name]))).scalar_one()
                    if todo:
                        pending[name] = int(todo)
        for agency in self.stack.ports.simulators:
            name = f"simulator-{agency.replace('_', '-')}"
            process = self.stack.processes.get(name)
            if process is None or not process.is_running:
                continue  # a simulator a test stopped (an agency down) has nothing in flight
            url = f"{self.stack.simulator_url(agency)}/admin/pending"
            todo = sum((await self._http.get(url)).raise_for_status().json().values())
            if todo:
                pending[name] = int(todo)
        return Activity(lag, outbox, pending, {_label(tp): ends[tp] for tp in self._partitions})


class Looker(Protocol):
    async def look(self) -> Activity: ...


async def wait_quiescent(
    stack: Stack,
    *,
    timeout: float = 60.0,
    stable: float = 1.0,
    poll: float = 0.2,
    probe: Callable[[Stack], AbstractAsyncContextManager[Looker]] = Probe,
) -> Activity:
    """Return once the stack has had nothing in flight for `stable` seconds (every look idle,
    no topic's end offset moved); raise NotQuiescent, naming what is still busy, after
    `timeout` seconds. (`probe`: how to look, `Probe` but in this module's own tests.)"""
    deadline = time.monotonic() + timeout
    async with probe(stack) as looker:
        idle_since: float | None = None
        quiet: Activity | None = None
        last = Activity()
        while True:
            last = await looker.look()
            now = time.monotonic()
            if last.busy or (quiet is not None and last.ends != quiet.ends):
                idle_since, quiet = None, None
            if not last.busy:
                if quiet is None:
                    idle_since, quiet = now, last
                elif idle_since is not None and now - idle_since >= stable:
                    return last
            if time.monotonic() > deadline:
                raise NotQuiescent(
                    f"stack {stack.namespace!r} not quiescent for {stable}s within {timeout}s; "
                    f"last look: {last.busy or 'idle, but its topics were still moving'}"
                )
            await asyncio.sleep(poll)
