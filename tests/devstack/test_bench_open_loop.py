"""The benchmark's open loop, its per-file figures and the report of a whole run (pure, no
broker): files leave on their schedule whatever happens to earlier ones, and a late file is
measured from the time it was due, not from when the client managed to send it."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from devstack import bench, bench_report
from devstack.bench import Measurement


class _Response:
    def __init__(self, file_id: str) -> None:
        self.status_code = 201
        self.text = ""
        self._id = file_id

    def json(self) -> dict[str, str]:
        return {"file_id": self._id}


class SlowIntake:
    """A fake httpx client: the first POST blocks the event loop for `stall` seconds (a client
    falling behind its schedule); every POST then waits until `release` is set, which only
    happens once `count` POSTs are in flight: a closed loop would never get there."""

    def __init__(self, count: int, stall: float) -> None:
        self.count, self.stall = count, stall
        self.sent: list[float] = []
        self.release = asyncio.Event()

    async def post(self, path: str, json: dict, headers: dict) -> _Response:
        assert path == "/api/files"
        self.sent.append(time.monotonic())
        if len(self.sent) == 1:
            time.sleep(self.stall)  # noqa: ASYNC251 (the whole client late, not one POST)
        if len(self.sent) == self.count:
            self.release.set()
        await self.release.wait()
        return _Response(f"F{json['citizen']['family_name']}")


async def test_open_loop_sends_on_schedule_and_measures_from_the_scheduled_time():
    rate, count, stall = 50.0, 6, 0.25
    client = SlowIntake(count, stall)
    m = Measurement(files=count, concurrency=0, life_event="perte_emploi")
    started = time.monotonic()
    await asyncio.wait_for(
        bench.open_loop(client, m, count=count, rate=rate, life_event="perte_emploi"), 10
    )
    assert (m.mode, m.rate, len(m.submitted)) == ("open-loop", rate, count)
    # Every file's submit time is its slot on the schedule (i / rate after the start), even
    # those the stalled client sent 250 ms late.
    scheduled = sorted(m.submitted.values())
    assert scheduled[0] == pytest.approx(started, abs=0.05)
    gaps = [b - a for a, b in itertools.pairwise(scheduled)]
    assert gaps == pytest.approx([1 / rate] * (count - 1), abs=1e-9)
    # The files due during the stall left late, and the report says by how much...
    assert max(m.send_lag_ms) >= stall * 1000 * 0.8
    assert len([lag for lag in m.send_lag_ms if lag >= 100]) >= 3
    # ...and their latency counts from the schedule: a file due at t=20 ms, answered after
    # the 250 ms stall, waited at least 200 ms (a closed loop would have reported ~0).
    m.referent = dict.fromkeys(m.submitted, client.sent[-1] + 0.001)
    waits = bench.latencies_ms(m.submitted, m.referent)
    assert min(waits) >= (stall - (count - 1) / rate) * 1000 * 0.8
    latencies, lags = sorted(m.post_latency_ms), sorted(m.send_lag_ms)
    assert all(lat >= lag for lat, lag in zip(latencies, lags, strict=True))


async def test_open_loop_stops_sending_when_told():
    client = SlowIntake(count=1, stall=0)
    m = Measurement(files=10, concurrency=0, life_event="naissance")
    await bench.open_loop(client, m, count=10, rate=100, life_event="naissance", stop=lambda: "x")
    assert m.submitted == {} and client.sent == []


def test_auto_rate_is_half_the_burst_throughput():
    m = Measurement(files=3, concurrency=2, life_event="perte_emploi")
    m.submitted = {"A": 10.0, "B": 10.5, "C": 11.0}
    m.answer = {"A": 11.0, "B": 12.0, "C": 13.0}
    assert bench.auto_rate(m) == pytest.approx(3 / 3.0 / 2)
    assert bench.auto_rate(Measurement(files=1, concurrency=1, life_event="x")) is None


def test_messages_written_per_topic_and_per_file():
    before = {"files.submitted": 5, "agency.caf.requests": 5}
    after = {"files.submitted": 15, "agency.caf.requests": 15, "notifications.sent": 20}
    written = bench.offsets_delta(before, after)
    assert written == {"files.submitted": 10, "agency.caf.requests": 10, "notifications.sent": 20}
    per_file = bench_report.messages_per_file(written, 10)
    assert per_file["total"] == 4.0
    assert per_file["per_topic"]["notifications.sent"] == 2.0
    assert bench_report.messages_per_file({}, 10) == {"total": None, "per_topic": {}}


def test_processes_are_grouped_apart():
    groups = bench_report.by_group(
        {
            "intake": 10.0,
            "adapter-caf": 2.0,
            "web": 0.5,
            "simulator-caf": 1.0,
            "smtp-sink": 0.5,
            "channel-providers": None,
            "bench client": 3.0,
            "kafka": 4.0,
            "keycloak": 0.1,
        }
    )
    assert groups == {
        "product": 12.5,
        "test doubles": 1.5,
        "bench client": 3.0,
        "kafka": 4.0,
        "keycloak": 0.1,
    }
    assert bench_report.by_group({"postgresql": None}) == {"postgresql": None}


def _phase(mode: str, ids: list[str], start: float, cpu: dict[str, float]) -> Measurement:
    m = Measurement(files=len(ids), concurrency=4, life_event="perte_emploi", mode=mode)
    m.submitted = {i: start + n * 0.1 for n, i in enumerate(ids)}
    m.referent = {i: t + 0.05 for i, t in m.submitted.items()}
    m.answer = {i: t + 0.5 for i, t in m.submitted.items()}
    m.cpu_s = cpu
    m.messages = {"files.submitted": len(ids), "notifications.sent": 2 * len(ids)}
    if mode == "open-loop":
        m.rate, m.send_lag_ms = 10.0, [0.5] * len(ids)
    return m


def _run(product_fps_scale: float = 1.0) -> dict:
    burst = _phase("burst", ["A", "B", "C", "D"], 0.0, {"intake": 0.4, "kafka": 0.2})
    loop = _phase("open-loop", ["E", "F"], 5.0, {"intake": 0.1, "bench client": 0.02})
    chain = {
        "files": 100,
        "completed": 100,
        "files_per_s": 400.0 * product_fps_scale,
        "messages_per_file": 11,
        "reads_per_file": 19,
        "consumer_hops": 5,
        "cpu_ms_per_file": {"bench client": 0.4, "kafka": 0.2},
    }
    return bench_report.run_report(
        [burst, loop], rss_mb={"intake": {"rss": 90.0, "peak": 101.0}}, chain=chain
    )


def test_run_report_holds_both_phases_the_chain_and_the_ratio():
    r = _run()
    assert r["mode"] == "burst" and r["completed"] == 4
    assert r["files_per_s"] == pytest.approx(4 / 0.8)
    assert r["cpu_ms_per_file"]["intake"] == pytest.approx(100.0)
    assert r["cpu_ms_per_file_by_group"] == {"product": 100.0, "kafka": 50.0}
    assert r["messages_per_file"]["total"] == 3.0
    o = r["open_loop"]
    assert o["mode"] == "open-loop" and o["offered_rate_per_s"] == 10.0
    assert o["completed"] == 2 and o["send_lag_ms"]["p99"] == 0.5
    assert o["latency_ms"]["answer"]["p50"] == pytest.approx(500.0)
    assert o["cpu_ms_per_file"]["intake"] == pytest.approx(50.0)
    assert 0 < r["product_vs_bare_chain"] <= 1
    assert r["product_vs_bare_chain"] == pytest.approx(5.0 / 400.0)
    text = bench_report.format_report(r)
    assert "open loop" in text and "bare chain" in text and "product / chain" in text
    assert "0.0125" in text


def test_compare_security_reports_both_brokers_and_the_difference():
    open_run, secure_run = _run(), _run(product_fps_scale=0.5)
    secure_run["files_per_s"] = 4.0
    secure_run["cpu_ms_per_file_by_group"] = {"product": 120.0, "kafka": 75.0}
    c = bench_report.compare_security(open_run, secure_run)
    assert c["plaintext"]["files_per_s"] == pytest.approx(5.0)
    assert c["difference"]["files_per_s"]["difference"] == pytest.approx(-1.0)
    assert c["difference"]["files_per_s"]["percent"] == pytest.approx(-20.0)
    assert c["difference"]["cpu_ms_per_file"]["product"]["difference"] == pytest.approx(20.0)
    assert c["difference"]["cpu_ms_per_file"]["kafka"]["percent"] == pytest.approx(50.0)
    assert c["difference"]["bare_chain_files_per_s"]["percent"] == pytest.approx(-50.0)
    text = bench_report.format_comparison(c)
    assert "PLAINTEXT" in text and "SASL+TLS" in text and "-20.0" in text


def test_a_failed_bare_chain_keeps_the_products_figures():
    burst = _phase("burst", ["A", "B"], 0.0, {"intake": 0.2})
    chain = {"error": "RuntimeError('warm-up')", "files": 100, "completed": 0}
    r = bench_report.run_report([burst], chain=chain)
    assert r["files_per_s"] > 0 and r["product_vs_bare_chain"] is None
    assert r["open_loop"] is None and r["bare_chain"]["error"]
    assert "bare chain         FAILED" in bench_report.format_report(r)
    c = bench_report.compare_security(r, r)
    assert c["difference"]["bare_chain_files_per_s"] == {"difference": None, "percent": None}
