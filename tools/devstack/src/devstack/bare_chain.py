"""The bare chain: the product's Kafka topology with no work, the ceiling `guichet-dev bench`
compares the product with.

A file's journey is declared once, as the causal steps between topics (`JOURNEY`): the POST
publishes `files.submitted`; handling it, assignment publishes `referents.assigned` and one
request per agency; each adapter answers its request; assignment publishes `files.answered`
once every agency answered; notification sends one notification per `referents.assigned`
and per `files.answered`. Everything else is derived, so the chain follows the product:

* who publishes each step: the only principal of `shared_models.topology` that consumes the
  step's trigger and produces its topic (an error if there is none or several);
* who reads each message: every principal that consumes its topic (topology), each in its
  own consumer group, as the product's services do, plus the benchmark's watcher;
* how many agencies (hence requests and answers): the catalogue's life event.

`plan()` turns that into messages, reads and consumer hops per file; `run()` drives the
chain on a broker with one aiokafka consumer and producer per principal (each authenticating
as that principal on a SASL broker, with the ACLs `topology.acls` gives it), committing
offsets after the batch's publications are acknowledged, like an at-least-once service.
The records carry the file id as key and a few bytes as value: no parsing, no database.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from devstack import kafka_sasl
from shared_models import topics, topology
from shared_models.catalogue import catalogue

#: Placeholders in `JOURNEY` for the per-agency topics (one message per agency of the file).
REQUESTS, ANSWERS = "<agency>.requests", "<agency>.answers"
#: The benchmark's client, who submits (as intake does on a POST) and watches the answers.
CLIENT = "bench client"

#: (trigger, topic): handling one message of `trigger` publishes one message on `topic`
#: (trigger None: the citizen's POST). `files.answered` waits for every agency's answer.
JOURNEY: tuple[tuple[str | None, str], ...] = (
    (None, topics.FILES_SUBMITTED),
    (topics.FILES_SUBMITTED, topics.REFERENTS_ASSIGNED),
    (topics.FILES_SUBMITTED, REQUESTS),
    (REQUESTS, ANSWERS),
    (ANSWERS, topics.FILES_ANSWERED),
    (topics.REFERENTS_ASSIGNED, topics.NOTIFICATIONS_SENT),
    (topics.FILES_ANSWERED, topics.NOTIFICATIONS_SENT),
)
#: What the watcher waits for: the last step of JOURNEY, the answer's notification; its value
#: is the name of its trigger, so it differs from the référent's notification on that topic.
ANSWER_TOPIC = JOURNEY[-1][1]
ANSWER_VALUE = str(JOURNEY[-1][0]).encode()


@dataclass(frozen=True)
class Step:
    """One message per file on `topic`, published by `producer` once it has handled one
    message of the file on each of `triggers` (none: the POST; several: a join, such as the
    answers of every agency)."""

    triggers: tuple[str, ...]
    topic: str
    producer: str


@dataclass(frozen=True)
class Side:
    """Messages the product writes per file beside the journey (measured, e.g. the exchange
    ledger, the legal clock): `per_file` on `topic`, shared by `producers`, each publishing
    its part when it handles its first journey message of the file. Nobody reacts to them."""

    topic: str
    producers: tuple[str, ...]
    per_file: float


@dataclass(frozen=True)
class Plan:
    """The chain for one life event: its steps, side messages and who reads each topic."""

    life_event: str
    agencies: tuple[str, ...]
    steps: tuple[Step, ...]
    readers: Mapping[str, tuple[str, ...]]  # topic -> principals consuming it
    sides: tuple[Side, ...] = ()
    #: Measured topics no principal of the chain publishes (reported, not reproduced).
    left_out: tuple[str, ...] = ()

    @property
    def messages_per_file(self) -> float:
        return len(self.steps) + sum(s.per_file for s in self.sides)

    @property
    def messages_per_topic(self) -> dict[str, float]:
        counts: dict[str, float] = dict(Counter(s.topic for s in self.steps))
        for side in self.sides:
            counts[side.topic] = counts.get(side.topic, 0) + side.per_file
        return dict(sorted(counts.items()))

    @property
    def reads_per_file(self) -> float:
        """Deliveries to the principals' consumer groups (the watcher's excluded)."""
        return sum(n * len(self.readers[t]) for t, n in self.messages_per_topic.items())

    @property
    def hops(self) -> int:
        """Consumer hops on the longest causal path, the watcher's last read included."""
        depth: dict[str, int] = {}
        for step in self.steps:  # JOURNEY lists triggers before what they trigger
            before = max((depth[t] for t in step.triggers), default=0)
            depth[step.topic] = max(depth.get(step.topic, 0), before + 1)
        return max(depth.values())

    def principals(self) -> list[str]:
        """The chain's consumers, each in its own group: every reader of a step's topic."""
        return sorted({r for rs in self.readers.values() for r in rs})

    def with_measured(self, per_topic: Mapping[str, float]) -> Plan:
        """This plan plus the side messages that make it write, per file, what the product
        was measured writing (`per_topic`, names without namespace): for each topic, the
        excess over the journey, published by the topic's producers in the topology that are
        in the chain (intake's by the client, who stands for its POST), read by its
        consumers. Dead-letter topics are left out: they measure failures, not the flow."""
        found = topology.principals(set(self.agencies) | set(topology.core_agencies()))
        journey = dict(Counter(s.topic for s in self.steps))
        in_chain = {s.producer for s in self.steps} | {"intake"}
        sides, left_out = [], []
        readers = dict(self.readers)
        for topic, count in sorted(per_topic.items()):
            extra = count - journey.get(topic, 0)
            if extra < 0.005 or topic.endswith(".dlq"):
                continue
            producers = sorted(
                CLIENT if p.name == "intake" else p.name
                for p in found.values()
                if topic in p.produces and p.name in in_chain
            )
            if not producers:
                left_out.append(topic)
                continue
            sides.append(Side(topic, tuple(producers), extra))
            readers[topic] = tuple(sorted(p.name for p in found.values() if topic in p.consumes))
        return Plan(
            self.life_event, self.agencies, self.steps, readers, tuple(sides), tuple(left_out)
        )

    def describe(self) -> dict[str, Any]:
        return {
            "life_event": self.life_event,
            "agencies": list(self.agencies),
            "messages_per_file": self.messages_per_file,
            "messages_per_topic": self.messages_per_topic,
            "journey_messages_per_file": len(self.steps),
            "reads_per_file": self.reads_per_file,
            "consumer_hops": self.hops,
            "principals": self.principals(),
            "not_reproduced": list(self.left_out),
        }


def _expand(name: str, agency: str) -> str:
    if name == REQUESTS:
        return topics.agency_requests(agency)
    if name == ANSWERS:
        return topics.agency_answers(agency)
    return name


def _producer(triggers: Sequence[str], topic: str, found: Mapping[str, topology.Principal]) -> str:
    """The principal publishing `topic` on handling `triggers`, from the topology."""
    if not triggers:
        return CLIENT
    names = [
        p.name
        for p in found.values()
        if topic in p.produces and all(t in p.consumes for t in triggers)
    ]
    if len(names) != 1:
        raise ValueError(f"the topology names {names or 'no principal'} for {triggers} -> {topic}")
    return names[0]


def plan(life_event: str, journey: Sequence[tuple[str | None, str]] = JOURNEY) -> Plan:
    """The chain of `life_event`'s files: producers and readers from shared_models.topology,
    agencies from the catalogue."""
    agencies = tuple(catalogue().life_events[life_event].agencies)
    found = topology.principals(set(agencies) | set(topology.core_agencies()))
    per_agency = (REQUESTS, ANSWERS)
    steps: list[Step] = []
    triggers: tuple[str, ...]
    for trigger, topic in journey:
        if topic in per_agency:  # one message per agency, triggered by the same agency's
            for agency in agencies:
                triggers = () if trigger is None else (_expand(trigger, agency),)
                out = _expand(topic, agency)
                steps.append(Step(triggers, out, _producer(triggers, out, found)))
        else:  # one message, after one message of every agency for a per-agency trigger
            if trigger is None:
                triggers = ()
            elif trigger in per_agency:
                triggers = tuple(_expand(trigger, a) for a in agencies)
            else:
                triggers = (trigger,)
            steps.append(Step(triggers, topic, _producer(triggers, topic, found)))
    readers = {
        s.topic: tuple(sorted(p.name for p in found.values() if s.topic in p.consumes))
        for s in steps
    }
    return Plan(life_event, agencies, tuple(steps), readers)


# -- running it ------------------------------------------------------------------------


@dataclass
class ChainResult:
    """Monotonic times of the measured files' submits and answers, the client's CPU."""

    files: int
    submitted: dict[str, float] = field(default_factory=dict)
    answered: dict[str, float] = field(default_factory=dict)
    cpu_s: float | None = None  # this process's CPU from the first submit to the last answer
    timed_out: bool = False

    def files_per_s(self) -> float | None:
        done = [self.answered[k] for k in self.submitted if k in self.answered]
        if not done:
            return None
        span = max(done) - min(self.submitted.values())
        return len(done) / span if span > 0 else None


class Publisher:
    """What publishes side messages: its producer and its share of each side topic."""

    producer: Any
    sides: list[tuple[str, float]]
    credit: dict[str, float]

    def due(self, topic: str, share: float) -> int:
        """Side messages to publish now on `topic` (fractions carried over to later files)."""
        self.credit[topic] = self.credit.get(topic, 0.0) + share
        count = int(self.credit[topic] + 1e-9)
        self.credit[topic] -= count
        return count

    def take_sides(self, name: str, plan_: Plan, ns: str) -> None:
        self.sides = [
            (ns + side.topic, side.per_file / len(side.producers))
            for side in plan_.sides
            if name in side.producers
        ]
        self.credit = {}


class _Client(Publisher):
    """The bench client: publishes each file's `files.submitted` (and intake's side messages)
    as the POST makes intake do."""

    def __init__(self, plan_: Plan, access: kafka_sasl.KafkaAccess, ns: str) -> None:
        from aiokafka import AIOKafkaProducer

        self.producer = AIOKafkaProducer(**access.client_options())
        self.take_sides(CLIENT, plan_, ns)


class _Node(Publisher):
    """One principal of the chain: a consumer in its group, a producer, its reactions."""

    def __init__(self, name: str, plan_: Plan, access: kafka_sasl.KafkaAccess, ns: str) -> None:
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

        options = access.client_options(name if access.sasl else kafka_sasl.ADMIN)
        # trigger topic -> [(topic published, messages of the file it waits for, value)]
        self.reactions: dict[str, list[tuple[str, int, bytes]]] = defaultdict(list)
        for s in plan_.steps:
            if s.producer == name:
                for t in s.triggers:
                    value = s.triggers[0].encode()  # tells the two notifications apart
                    self.reactions[ns + t].append((ns + s.topic, len(s.triggers), value))
        self.pending: Counter[tuple[str, bytes]] = Counter()
        # Side messages: published on the node's first journey trigger, `share` per file.
        firsts = [s.triggers[0] for s in plan_.steps if s.producer == name and s.triggers]
        self.first = ns + firsts[0] if firsts else None
        self.take_sides(name, plan_, ns)
        reads = sorted(t for t, rs in plan_.readers.items() if name in rs)
        self.consumer = AIOKafkaConsumer(
            *(ns + t for t in reads),
            **options,
            group_id=ns + name,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        self.producer = AIOKafkaProducer(**options) if self.reactions else None

    async def start(self) -> None:
        if self.producer is not None:
            await self.producer.start()
        await self.consumer.start()

    async def stop(self) -> None:
        await self.consumer.stop()
        if self.producer is not None:
            await self.producer.stop()

    async def serve(self) -> None:
        """Per batch: publish the reactions, wait for their acknowledgements, commit."""
        while True:
            batches = await self.consumer.getmany(timeout_ms=100, max_records=500)
            sent = []
            for tp, records in batches.items():
                for rec in records:
                    for out, join, value in self.reactions.get(tp.topic, ()):
                        if join > 1:
                            self.pending[(out, rec.key)] += 1
                            if self.pending[(out, rec.key)] < join:
                                continue
                            del self.pending[(out, rec.key)]
                        assert self.producer is not None
                        sent.append(await self.producer.send(out, value, key=rec.key))
                    if tp.topic == self.first:
                        sent += await side_messages(self, rec.key)
            if sent:
                await asyncio.gather(*sent)
            if batches:
                await self.consumer.commit()


async def side_messages(node: Publisher, key: bytes) -> list[Any]:
    """Publish the side messages due on handling one file's first trigger (or, for the
    client, on submitting it); their delivery futures."""
    sent = []
    for topic, share in node.sides:
        for _ in range(node.due(topic, share)):
            sent.append(await node.producer.send(topic, b"", key=key))
    return sent


async def prepare(access: kafka_sasl.KafkaAccess, ns: str, plan_: Plan) -> None:
    """The chain's topics under `ns` and, on a SASL broker, its principals' ACLs."""
    names = sorted({s.topic for s in plan_.steps} | {s.topic for s in plan_.sides})
    await kafka_sasl.create_topics(access, {ns + t: topics.PARTITIONS for t in names})
    if access.sasl:
        found = topology.principals(set(plan_.agencies) | set(topology.core_agencies()))
        rules = {n: topology.acls(found[n], ns) for n in plan_.principals()}
        await kafka_sasl.create_acls(access, rules)


async def run(
    bootstrap: str,
    namespace: str,
    life_event: str,
    *,
    files: int,
    warmup: int = 5,
    timeout: float = 120,
    log: Callable[[str], None] = print,
    probe: Callable[[], None] | None = None,
    plan_: Plan | None = None,
) -> ChainResult:
    """Push `files` files through the bare chain on `bootstrap` as fast as the client can
    publish them (a burst), after `warmup` files that let every consumer join its group.
    `probe` is called right before the first measured file and after the last answer (CPU
    snapshots of other processes, such as the broker). `plan_`: default `plan(life_event)`
    (the journey alone; Plan.with_measured adds what else the product writes)."""
    from aiokafka import AIOKafkaConsumer

    plan_ = plan_ or plan(life_event)
    access = kafka_sasl.access(bootstrap)
    ns = f"{namespace}chain-{uuid.uuid4().hex[:6]}."
    await prepare(access, ns, plan_)
    nodes = [_Node(name, plan_, access, ns) for name in plan_.principals()]
    publisher = _Client(plan_, access, ns)
    client = publisher.producer
    watcher = AIOKafkaConsumer(
        ns + ANSWER_TOPIC,
        **access.client_options(),
        group_id=f"{ns}watcher",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    result = ChainResult(files=files)
    answered: dict[str, float] = {}

    async def watch() -> None:
        while True:
            batches = await watcher.getmany(timeout_ms=100, max_records=1000)
            now = time.monotonic()
            for records in batches.values():
                for rec in records:
                    if rec.value == ANSWER_VALUE and rec.key:
                        answered.setdefault(rec.key.decode(), now)

    async def wait(ids: Sequence[str], deadline: float) -> bool:
        while not all(i in answered for i in ids):
            if time.monotonic() > deadline or any(t.done() for t in tasks):
                return False
            await asyncio.sleep(0.005)
        return True

    async def submit(ids: Sequence[str], at: dict[str, float]) -> None:
        futures = []
        for i in ids:
            at[i] = time.monotonic()
            futures.append(await client.send(ns + topics.FILES_SUBMITTED, b"", key=i.encode()))
            futures += await side_messages(publisher, i.encode())
        await asyncio.gather(*futures)

    tasks: list[asyncio.Task[None]] = []
    await client.start()
    await watcher.start()
    try:
        for node in nodes:
            await node.start()
        tasks = [asyncio.create_task(n.serve()) for n in nodes] + [asyncio.create_task(watch())]
        warm = [f"warm-{i}" for i in range(max(1, warmup))]
        await submit(warm, {})
        if not await wait(warm, time.monotonic() + timeout):
            raise RuntimeError(f"the bare chain's warm-up files went unanswered: {_why(tasks)}")
        log(f"bare chain: {files} files, {plan_.messages_per_file:.1f} messages each...")
        ids = [f"file-{i}" for i in range(files)]
        if probe is not None:
            probe()
        cpu0 = time.process_time()
        await submit(ids, result.submitted)
        result.timed_out = not await wait(ids, time.monotonic() + timeout)
        result.cpu_s = time.process_time() - cpu0
        if probe is not None:
            probe()
        result.answered = {i: answered[i] for i in ids if i in answered}
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for node in nodes:
            await node.stop()
        await watcher.stop()
        await client.stop()
    return result


def _why(tasks: Sequence[asyncio.Task[None]]) -> str:
    errors = [repr(t.exception()) for t in tasks if t.done() and not t.cancelled()]
    return "; ".join(errors) or "timeout"
