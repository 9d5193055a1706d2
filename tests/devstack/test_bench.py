"""The benchmark's pure functions: statistics, record classification, report."""

from __future__ import annotations

import json

import pytest

from devstack import bench, bench_report, procstats
from devstack.bench import Measurement, Recorder


def test_percentile_interpolates_like_numpy_linear():
    values = [1, 2, 3, 4]
    assert bench.percentile(values, 0) == 1
    assert bench.percentile(values, 100) == 4
    assert bench.percentile(values, 50) == 2.5
    assert bench.percentile(values, 25) == pytest.approx(1.75)
    assert bench.percentile(list(range(1, 101)), 99) == pytest.approx(99.01)


def test_percentile_ignores_input_order_and_handles_edge_cases():
    assert bench.percentile([30, 10, 20], 50) == 20
    assert bench.percentile([7.5], 95) == 7.5
    assert bench.percentile([], 50) is None
    assert bench.percentile(iter([3, 1, 2]), 100) == 3
    with pytest.raises(ValueError):
        bench.percentile([1], 101)


def test_summarize():
    s = bench.summarize([10.0, 20.0, 30.0, 40.0, 1000.0])
    assert s["count"] == 5
    assert s["p50"] == 30.0
    assert s["max"] == 1000.0
    assert s["mean"] == 220.0
    assert s["p95"] == pytest.approx(808.0)
    assert bench.summarize([]) == {
        "count": 0,
        "p50": None,
        "p95": None,
        "p99": None,
        "max": None,
        "mean": None,
    }


def test_latencies_ms_only_for_ids_seen_at_both_ends():
    start = {"a": 1.0, "b": 2.0, "c": 3.0}
    end = {"a": 1.25, "c": 4.0, "zz": 9.0}
    assert bench.latencies_ms(start, end) == pytest.approx([250.0, 1000.0])
    assert bench.latencies_ms(start, end, ["c"]) == pytest.approx([1000.0])


def test_throughput():
    assert bench.throughput(100, 10.0, 30.0) == 5.0
    assert bench.throughput(0, 10.0, 30.0) is None
    assert bench.throughput(5, None, 30.0) is None
    assert bench.throughput(5, 10.0, 10.0) is None


def test_life_event_for():
    assert bench.life_event_for(3) == "perte_emploi"
    assert bench.life_event_for(2) == "naissance"
    with pytest.raises(ValueError, match="choose 2, 3"):
        bench.life_event_for(4)


def test_file_body_is_a_distinct_valid_citizen_per_index():
    a, b = bench.file_body(0, "perte_emploi"), bench.file_body(1, "perte_emploi")
    assert a["life_event"] == "perte_emploi"
    assert a["citizen"]["email"] != b["citizen"]["email"]
    assert a["citizen"]["postcode"] != b["citizen"]["postcode"]
    assert set(a) == {"life_event", "citizen", "description", "urgent"}


def test_classify_records():
    answer = json.dumps({"kind": "answer_ready", "file_id": "F1"}).encode()
    first = json.dumps({"kind": "referent_assigned", "file_id": "F1"}).encode()
    assert bench.classify("ReferentAssigned", b"{}") == "referent"
    assert bench.classify("NotificationSent", answer) == "answer"
    assert bench.classify("NotificationSent", first) is None
    assert bench.classify("NotificationSent", b"not json") is None
    assert bench.classify("NotificationSent", b"[1]") is None
    assert bench.classify("FileSubmitted", b"{}") is None
    assert bench.classify(None, answer) is None


def test_header_lookup():
    headers = [("content-type", b"application/json"), ("event_type", b"ReferentAssigned")]
    assert bench.header(headers, "event_type") == "ReferentAssigned"
    assert bench.header(headers, "missing") is None
    assert bench.header(None, "event_type") is None


def test_recorder_keeps_the_first_arrival_per_file():
    r = Recorder()
    answer = json.dumps({"kind": "answer_ready"}).encode()
    assert r.record("ReferentAssigned", b"F1", b"{}", 1.0) == "referent"
    assert r.record("ReferentAssigned", b"F1", b"{}", 2.0) == "referent"  # redelivered
    assert r.record("NotificationSent", b"F1", answer, 3.0) == "answer"
    assert r.record("NotificationSent", None, answer, 3.5) is None
    assert r.record("AgencyRequestIssued", b"F2", b"{}", 4.0) is None
    assert r.referent == {"F1": 1.0}
    assert r.answer == {"F1": 3.0}
    assert r.records == 5


STATUS = """Name:\tintake
VmPeak:\t  404032 kB
VmHWM:\t  110592 kB
VmRSS:\t  101740 kB
Threads:\t4
"""


def test_parse_vmrss():
    assert procstats.parse_vmrss_mb(STATUS) == pytest.approx(101740 / 1024)
    assert procstats.parse_vmrss_mb(STATUS, "VmHWM") == pytest.approx(108.0)
    assert procstats.parse_vmrss_mb("Name:\tkthreadd\n") is None  # kernel threads have no VmRSS


def test_process_memory_of_self_and_of_a_gone_process():
    mine = procstats.process_memory_mb(__import__("os").getpid())
    assert mine["rss"] > 1 and mine["peak"] >= mine["rss"]
    assert procstats.process_memory_mb(2**22 + 12345) == {"rss": None, "peak": None}


def test_parse_stat_cpu_seconds():
    # comm may hold spaces and parentheses; utime=250, stime=50 ticks (fields 14 and 15)
    stat = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0 123 0 0"
    assert procstats.parse_stat_cpu_seconds(stat, 100) == pytest.approx(3.0)
    assert procstats.parse_stat_cpu_seconds("garbage", 100) is None


def test_process_cpu_seconds_and_deltas():
    import os

    assert procstats.process_cpu_seconds(os.getpid()) > 0
    assert procstats.process_cpu_seconds(2**22 + 12345) is None
    assert procstats.cpu_deltas(
        {"a": 1.0, "b": None, "c": 5.0}, {"a": 3.5, "b": 2.0, "c": 4.0, "d": 1.0}
    ) == {"a": 2.5, "b": None, "c": 0.0, "d": None}


def _measurement() -> Measurement:
    m = Measurement(files=3, concurrency=2, life_event="perte_emploi")
    m.submitted = {"A": 10.0, "B": 10.5, "C": 11.0}
    m.post_latency_ms = [20.0, 30.0, 40.0]
    m.referent = {"A": 11.0, "B": 11.5, "C": 12.0, "warmup": 1.0}
    m.answer = {"A": 13.0, "B": 14.5}
    m.submit_phase_s = 1.5
    m.timed_out = True
    return m


def test_build_report_and_format(tmp_path):
    report = bench_report.build_report(
        _measurement(),
        rss_mb={
            "intake": {"rss": 100.0, "peak": 120.0},
            "assignment": {"rss": 50.0, "peak": 60.0},
            "kafka": {"rss": 300.0, "peak": 310.0},
        },
        cpu_s={"intake": 2.5, "assignment": None, "kafka": 9.0},
        context={"backend": "sqlite", "agencies_per_file": 3},
    )
    assert report["submitted"] == 3 and report["completed"] == 2
    assert report["missing_answer"] == 1 and report["missing_answer_ids"] == ["C"]
    assert report["missing_referent"] == 0
    assert report["wall_time_s"] == pytest.approx(4.5)  # 10.0 -> 14.5
    assert report["files_per_s"] == pytest.approx(2 / 4.5)
    assert report["post_rate_per_s"] == pytest.approx(2.0)
    assert report["latency_ms"]["referent"]["p50"] == pytest.approx(1000.0)
    assert report["latency_ms"]["answer"]["max"] == pytest.approx(4000.0)
    assert report["latency_ms"]["post"]["p50"] == 30.0

    text = bench_report.format_report(report)
    assert "2/3 answers sent" in text and "TIMED OUT" in text
    assert "submit -> answer sent" in text and "4000" in text
    total = next(line for line in text.splitlines() if "total of the stack" in line)
    # RSS MB, CPU s, CPU ms per file (2 completed files), open loop's (none): kafka left out
    assert total.split()[-4:] == ["150", "2.5", "1250.0", "-"]
    assert report["cpu_s"] == {"intake": 2.5, "assignment": None, "kafka": 9.0}
    assert report["cpu_ms_per_file"] == {"intake": 1250.0, "assignment": None, "kafka": 4500.0}

    out = tmp_path / "bench" / "last.json"
    bench_report.write_report(report, out)
    assert json.loads(out.read_text())["completed"] == 2


def test_report_of_an_empty_run_formats_without_figures():
    report = bench_report.build_report(Measurement(files=5, concurrency=1, life_event="naissance"))
    assert report["files_per_s"] is None and report["wall_time_s"] is None
    text = bench_report.format_report(report)
    assert "0/0 answers sent" in text
    json.dumps(report, allow_nan=False)  # valid JSON: no NaN anywhere


# -- helpers of the `guichet-dev` command around the benchmark ---------------------------


def test_demo_curl_is_one_valid_shell_command():
    import shlex

    from devstack.cli import DEMO_FILE, demo_curl, demo_token

    argv = shlex.split(demo_curl("http://127.0.0.1:8000"))
    assert argv[:4] == ["curl", "-s", "-X", "POST"]
    assert "http://127.0.0.1:8000/api/files" in argv
    assert "Authorization: Bearer $TOKEN" in argv  # Marie's token, expanded by the shell
    assert json.loads(argv[argv.index("-d") + 1]) == DEMO_FILE  # the apostrophe of "J'ai" survives
    # $TOKEN comes first, from the Keycloak of `guichet-dev run` (named when not on 8180).
    assert demo_token("http://127.0.0.1:8180") == "TOKEN=$(guichet-dev token marie.dupont)"
    assert demo_token("http://127.0.0.1:4242").endswith(" --url http://127.0.0.1:4242)")


def test_busy_fixed_port_is_detected():
    import socket

    from devstack.cli import fixed_ports, port_is_free
    from devstack.stack import Ports

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert not port_is_free(port)
    names = dict(fixed_ports(Ports()))
    assert (
        names["intake"] == 8000 and names["adapter-france-travail"] == 8013 and names["web"] == 8003
    )
    assert names["channel-providers (SMS, post)"] == 8027
    assert names["intake (inbound SMTP)"] == 8028
    assert names["simulator-cpam"] == 8104
    # Every process of the stack has its own port, none listed twice.
    assert len(names) == 4 + 2 * len(Ports().adapters) + 4 == len(set(names.values()))


async def test_wait_for_reports_progress_then_completion_timeout_or_problem():
    from devstack.bench import _wait_for

    arrived: dict[str, float] = {"a": 1.0}
    said: list[str] = []
    import asyncio
    import time

    async def arrive_later():
        await asyncio.sleep(0.15)
        arrived["b"] = 2.0

    task = asyncio.create_task(arrive_later())
    assert (
        await _wait_for(["a", "b"], arrived, time.monotonic() + 5, None, said.append, every=0.05)
        is None
    )
    await task
    assert said and said[0].endswith("1/2 answered...")
    assert await _wait_for(["a", "zz"], arrived, time.monotonic() + 0.1, None) == "timeout"
    assert (
        await _wait_for(["zz"], arrived, time.monotonic() + 5, lambda: "intake died")
        == "intake died"
    )
