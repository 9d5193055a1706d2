"""SIGTERM in the middle of a load, on real processes: each of intake, assignment,
notification and one adapter is stopped (SIGTERM, as Kubernetes does) while files are
in flight, then started again. The process must exit by itself within its grace period,
and afterwards every file is answered, nothing is lost and no effect is doubled: one
référent per file, one coordinated answer per file, each email once (distinct
Message-IDs in the sink's maildir, and its duplicates counter at 0)."""

from __future__ import annotations

import asyncio
import collections
import os
import re
import signal
import time
import uuid

import httpx
import pytest

from devstack.stack import Stack
from guichet_runtime.tls_context import client_tls
from tests.e2e.support import (
    LAUNCHER,
    answered_view,
    citizen_client,
    eventually,
    file_body,
    mails_for,
    query,
    read_topic,
)

pytestmark = pytest.mark.integration

GRACE_SECONDS = 12
FILES_PER_ROUND = 3
#: Stopped one at a time, each while a round of files is in flight.
STOPPED = ("assignment", "adapter-caf", "notification", "intake")
#: The runtime's last log line of a graceful stop (guichet_runtime.service.stop_gracefully).
#: The runtime's warning when a worker did not end with the stop and had to be cancelled.
WORKERS_CANCELLED = "workers still running at stop, cancelled"
STOPPED_LINE = r"stopped gracefully in [0-9.]+s \(outbox left: (-?\d+)\)"


@pytest.fixture(scope="module")
def stack(kafka_bootstrap, keycloak, tmp_path_factory):
    namespace = f"e2e-stop-{uuid.uuid4().hex[:6]}."
    st = Stack(
        tmp_path_factory.mktemp("stack-shutdown"),
        kafka_bootstrap,
        namespace=namespace,
        # INFO: the runtime's "stopped gracefully" line is what the test reads in the logs.
        extra_env={"SHUTDOWN_GRACE_SECONDS": str(GRACE_SECONDS), "LOG_LEVEL": "INFO"},
        oidc_issuers=keycloak.issuers,
        launcher=LAUNCHER,
    )
    st.start()
    yield st
    st.stop()


def sigterm_and_wait(stack: Stack, name: str) -> tuple[int | None, float]:
    """SIGTERM the service's process; its exit code and how long it took to exit."""
    proc = stack.processes[name].proc
    assert proc is not None and proc.poll() is None, f"{name} is not running"
    started = time.monotonic()
    os.kill(proc.pid, signal.SIGTERM)
    try:
        code = proc.wait(GRACE_SECONDS + 10)
    except Exception:
        code = None
    return code, time.monotonic() - started


async def submit(client: httpx.AsyncClient, n: int) -> list[str]:
    async def one() -> str:
        response = await client.post("/api/files", json=file_body())
        assert response.status_code == 201, response.text
        return str(response.json()["file_id"])

    return list(await asyncio.gather(*(one() for _ in range(n))))


async def complete_view(client: httpx.AsyncClient, file_id: str) -> dict | None:
    view = await answered_view(client, file_id)
    if view and any(e["kind"] == "referent" for e in view["timeline"]):
        return view
    return None


async def test_sigterm_during_a_load_loses_nothing_and_doubles_nothing(stack: Stack, tokens):
    files: list[str] = []
    exits: dict[str, tuple[int | None, float]] = {}
    async with citizen_client(stack, tokens, timeout=15) as client:  # Marie's files
        for name in STOPPED:
            files += await submit(client, FILES_PER_ROUND)
            await asyncio.sleep(0.3)  # the round's events are on their way through the services
            exits[name] = await asyncio.to_thread(sigterm_and_wait, stack, name)
            await asyncio.to_thread(stack.restart, name, 90)

        for name, (code, seconds) in exits.items():
            # uvicorn re-raises the SIGTERM it caught once the shutdown is done: -15.
            log = stack.processes[name].log_path.read_text(errors="replace")
            assert code in (0, -signal.SIGTERM), f"{name} exited with {code}:\n{log[-3000:]}"
            assert seconds < GRACE_SECONDS + 5, f"{name} took {seconds:.1f}s to stop"
            stopped = re.findall(rf"{name} {STOPPED_LINE}", log)
            assert stopped == ["0"], f"{name}: {stopped}\n{log[-3000:]}"
            # Every worker ended with the stop: none held it until its share of the grace
            # ran out and had to be cancelled (intake's rate-counter purge once did).
            assert WORKERS_CANCELLED not in log, f"{name}:\n{log[-3000:]}"

        # Every file answered, with its référent and both emails reported sent. (Intake
        # consumes its topics in no set order after a restart: the référent may come last.)
        for file_id in files:
            view = await eventually(
                lambda f=file_id: complete_view(client, f), timeout=120, what=f"{file_id} answered"
            )
            kinds = collections.Counter(e["kind"] for e in view["timeline"])
            assert kinds["referent"] == 1 and kinds["reponse_coordonnee"] == 1, (file_id, kinds)

    urls = stack.database_urls
    for file_id in files:
        # One référent: one assignment in the history.
        history = await query(
            urls["assignment"], "SELECT id FROM assignments WHERE file_id = :f", f=file_id
        )
        assert len(history) == 1, file_id
        sent = await query(
            urls["notification"], "SELECT kind FROM notifications WHERE file_id = :f", f=file_id
        )
        assert sorted(r.kind for r in sent) == ["answer_ready", "referent_assigned"], file_id

    # One coordinated answer per file on the topic (distinct event ids: a republished
    # record would be deduplicated, a doubled effect would carry a second id).
    answered = stack.namespace + "files.answered"
    records = await read_topic(
        stack.kafka_bootstrap,
        answered,
        lambda rs: {r["key"] for r in rs} >= set(files),
        timeout=60,
    )
    event_ids: dict[str, set[str]] = collections.defaultdict(set)
    for r in records:
        event_ids[r["key"]].add(r["body"]["event_id"])
    assert all(len(event_ids[f]) == 1 for f in files), {f: event_ids[f] for f in files}

    # Each email once: distinct Message-IDs, two per file, and the sink saw no repeat.
    async def all_mails() -> list | None:
        mails = [m for f in files for m in mails_for(stack.maildir, f)]
        return mails if len(mails) >= 2 * len(files) else None

    mails = await eventually(all_mails, timeout=30, what="every email in the maildir")
    ids = [m["Message-ID"] for m in mails]
    assert len(ids) == len(set(ids)) == 2 * len(files)
    async with httpx.AsyncClient(base_url=stack.smtp_http_url, verify=client_tls()) as sink:
        stats = (await sink.get("/stats")).json()
    assert stats["duplicates"] == 0, stats

    # Nothing left behind: every outbox drained (the web's database holds sessions only).
    for service, url in urls.items():
        if service == "web":
            continue

        async def drained(url: str = url) -> bool:
            return (await query(url, "SELECT count(*) AS n FROM outbox"))[0].n == 0

        await eventually(drained, timeout=30, what=f"{service} outbox drained")


async def test_probes_and_metrics_on_the_real_stack(stack: Stack):
    """After the load: every service and adapter is ready and serves its metrics, with the
    consumer lag read from the real broker."""
    ports = {
        "intake": stack.ports.intake,
        "assignment": stack.ports.assignment,
        "notification": stack.ports.notification,
        "web": stack.ports.web,
        **{f"adapter-{a.replace('_', '-')}": p for a, p in stack.ports.adapters.items()},
    }
    texts = {}
    async with httpx.AsyncClient(timeout=10, verify=client_tls()) as client:
        for name, port in ports.items():
            base = f"http://127.0.0.1:{port}"
            assert (await client.get(f"{base}/health/live")).status_code == 200, name
            ready = await client.get(f"{base}/health/ready")
            assert ready.status_code == 200, (name, ready.text)
            texts[name] = (await client.get(f"{base}/metrics")).text
    for name, text in texts.items():
        assert "# TYPE guichet_http_request_duration_seconds histogram" in text, name
        if name != "web":
            assert f'guichet_outbox_backlog{{service="{name}"}} 0.0' in text, name
            assert "guichet_consumer_lag{" in text, name  # partitions assigned: lag sampled
    assert "guichet_http_request_duration_seconds_bucket{" in texts["intake"]  # the POSTs
    assert "guichet_files_waiting_referent{" in texts["assignment"]
    assert 'guichet_legal_deadlines_at_risk{days="7",service="assignment"}' in texts["assignment"]
    assert "guichet_notifications_total" in texts["notification"]
    assert "adapter_agency_calls_total" in texts["adapter-caf"]
