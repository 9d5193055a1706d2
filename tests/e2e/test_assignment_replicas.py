"""Two replicas of the assignment service share the work on the real broker and on
PostgreSQL; one is killed (kill -9) in the middle of 5,000 files, and comes back later:
two rebalances. Afterwards every file has exactly one référent, nobody is above
capacity, and every citizen's second file went to the référent of their first."""

from __future__ import annotations

import asyncio
import collections
import json
import random
import sys
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from devstack.kafka_sasl import access, client_options
from devstack.ports import free_ports
from devstack.procs import ServiceProcess
from shared_models import CitizenContact, FileSubmitted, catalogue, topics
from tests.e2e.support import LAUNCHER, eventually, query

#: The whole test, start-up of both replicas included (pytest-timeout). Its waits share it:
#: each one may use what is left of it, never more (tests/deadline.py). Ten minutes: on a
#: loaded 2-core machine (load average 20-30) 5,000 files and two rebalances took over five.
TIMEOUT = 600
pytestmark = [pytest.mark.integration, pytest.mark.timeout(TIMEOUT)]

FILES = 5000
SECOND_FILES = 1000  # citizens who submit two files
DEFAULT_DIRECTORY = (
    Path(__file__).resolve().parents[2] / "services/assignment/src/assignment/data/directory.json"
)
# One postcode per office's département, so every file has a local office.
POSTCODES = [
    "75011",
    "93200",
    "69100",
    "13001",
    "59100",
    "33000",
    "31000",
    "44000",
    "23000",
    "20000",
    "97400",
]


def directory_for_the_load(path: Path) -> Path:
    """The versioned directory's offices with ten agents each, trained for every agency,
    with room for the load (continuity needs the first référent to have room)."""
    data = json.loads(DEFAULT_DIRECTORY.read_text(encoding="utf-8"))
    data["version"] = "replicas-test"
    data["agents"] = [
        {
            "agent_id": f"AG-{o['office_id'][3:]}-{i}",
            "name": f"Agent {i} {o['commune']}",
            "office_id": o["office_id"],
            "phone": "01 23 45 67 89",
            "email": f"agent{i}.{o['office_id'].lower()}@france-services.gouv.fr",
            "agencies": list(catalogue().served_agencies()),
            "capacity": 70,
        }
        for o in data["offices"]
        for i in range(10)
    ]
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def submissions(rng: random.Random) -> list[FileSubmitted]:
    citizens = [
        CitizenContact(
            given_name="Prénom",
            family_name=f"Nom{n}",
            email=f"citoyen{n}@example.fr",
            postcode=rng.choice(POSTCODES),
            preferred_channel="email",
        )
        for n in range(FILES - SECOND_FILES)
    ]
    events = []
    for n, who in enumerate(citizens + citizens[:SECOND_FILES]):
        events.append(
            FileSubmitted(
                file_id=f"GU-2026-R{n:07d}",
                life_event="naissance",
                life_event_label="Naissance",
                agencies=["caf", "cpam"],
                citizen=who,
                description="Naissance de notre fille.",
                urgent=rng.random() < 0.1,
            )
        )
    # Second files arrive among the others: a citizen's two files may be handled at the
    # same moment by the two replicas (they are on different partitions).
    head, tail = events[: FILES - 2 * SECOND_FILES], events[FILES - 2 * SECOND_FILES :]
    rng.shuffle(tail)
    return head + tail


@pytest.fixture
def replicas(kafka_bootstrap, postgres_factory, tmp_path):
    namespace = f"rep-{uuid.uuid4().hex[:6]}."
    url = postgres_factory(f"replicas_{uuid.uuid4().hex[:6]}")
    directory = directory_for_the_load(tmp_path / "directory.json")
    kafka = access(kafka_bootstrap)
    if kafka.sasl:  # its topics and ACLs, as a Stack would; each replica is `assignment`
        kafka.prepare_blocking(namespace, ())
    procs = []
    ports = free_ports(2)  # distinct: chosen together
    for name, port in zip(("assignment-a", "assignment-b"), ports, strict=True):
        procs.append(
            ServiceProcess(
                name,
                [str(Path(sys.executable).parent / "assignment")],
                {
                    **kafka.env("assignment"),
                    "TOPIC_NAMESPACE": namespace,
                    "HTTP_PORT": str(port),
                    "DATABASE_URL": url,
                    "DIRECTORY_FILE": str(directory),
                    "LOG_LEVEL": "WARNING",
                },
                tmp_path / f"{name}.log",
                health_url=f"http://127.0.0.1:{port}/health",
                cwd=tmp_path,
            )
        )
    for proc in procs:  # one after the other: both run the same migrations at start
        proc.launcher = LAUNCHER
        proc.start()
        proc.wait_healthy(60)
    yield procs, namespace, url
    for proc in procs:
        proc.terminate()


async def count(url: str, sql: str) -> int:
    return (await query(url, sql))[0][0]


async def test_a_replica_killed_mid_load_loses_no_file_and_breaks_no_rule(
    replicas, kafka_bootstrap
):
    (a, b), namespace, url = replicas
    events = submissions(random.Random(2026))
    producer = AIOKafkaProducer(**client_options(kafka_bootstrap), linger_ms=20)
    await producer.start()
    try:
        for event in events:
            await producer.send(
                namespace + topics.FILES_SUBMITTED,
                event.model_dump_json().encode(),
                key=event.key().encode(),
                headers=[("event_type", b"FileSubmitted")],
            )
        await producer.flush()
    finally:
        await producer.stop()

    await eventually(
        lambda: count_at_least(url, FILES * 3 // 10),
        timeout=TIMEOUT,
        what="30 % of the files handled",
    )
    a.kill()  # kill -9 in the middle of the load: its partitions move to b
    await eventually(
        lambda: count_at_least(url, FILES * 6 // 10),
        timeout=TIMEOUT,
        what="60 % handled by b alone",
    )
    a.start()  # and back: a second rebalance while b works
    await eventually(lambda: count_at_least(url, FILES), timeout=TIMEOUT, what="every file handled")
    assert b.is_running and a.is_running

    # Exactly one référent per file, and exactly one decision recorded and announced.
    assert (
        await count(
            url, "SELECT count(*) FROM files WHERE referent_id IS NULL OR status <> 'en_cours'"
        )
        == 0
    )
    assert (
        await count(
            url,
            "SELECT count(*) FROM (SELECT file_id FROM assignments GROUP BY file_id HAVING "
            "count(*) <> 1) x",
        )
        == 0
    )
    # On the topic: one ReferentAssigned event per file (the relay may publish an event
    # twice after a crash — same event id, which consumers deduplicate — never two decisions).
    announced = await eventually(
        lambda: events_by_file(kafka_bootstrap, namespace + topics.REFERENTS_ASSIGNED),
        timeout=60,
        what="every ReferentAssigned published",
    )
    assert {len(ids) for ids in announced.values()} == {1}
    # Nobody above capacity, and the counters match the files really held.
    assert await count(url, "SELECT count(*) FROM agents WHERE active_files > capacity") == 0
    assert (
        await count(
            url,
            """
        SELECT count(*) FROM agents a
        WHERE a.active_files <> (SELECT count(*) FROM files f
                                 WHERE f.referent_id = a.agent_id AND f.status = 'en_cours')
    """,
        )
        == 0
    )
    # Continuity: every citizen's second file went to the référent of the first.
    pairs = await query(
        url,
        """
        SELECT citizen_key, count(DISTINCT referent_id) AS referents, count(*) AS files
        FROM files GROUP BY citizen_key HAVING count(*) > 1
    """,
    )
    assert len(pairs) == SECOND_FILES and {(r.referents, r.files) for r in pairs} == {(1, 2)}
    rules = await query(url, "SELECT rule, count(*) AS n FROM assignments GROUP BY rule")
    assert {r.rule: r.n for r in rules} == {
        "proximite": FILES - SECOND_FILES,
        "continuite": SECOND_FILES,
    }


async def events_by_file(bootstrap: str, topic: str) -> dict[str, set[str]] | None:
    """file id -> distinct event ids on `topic`, once every file has one."""
    consumer = AIOKafkaConsumer(
        topic,
        **client_options(bootstrap),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    seen: dict[str, set[str]] = collections.defaultdict(set)
    try:
        while batch := await consumer.getmany(timeout_ms=2000, max_records=5000):
            for records in batch.values():
                for r in records:
                    seen[r.key.decode()].add(json.loads(r.value)["event_id"])
    finally:
        await consumer.stop()
    return seen if len(seen) == FILES else None


async def count_at_least(url: str, n: int) -> bool:
    await asyncio.sleep(0.5)
    return await count(url, "SELECT count(*) FROM assignments") >= n
