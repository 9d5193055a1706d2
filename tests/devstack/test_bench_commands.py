"""`make bench`'s three commands run end to end at a tiny size (on the session's broker):
a benchmark that cannot run measures nothing. The figures themselves are not asserted
(speed is reported by `make bench`, not tested); what is checked is that every file,
request and decision was measured and every figure is there."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

GUICHET_DEV = str(Path(sys.executable).parent / "guichet-dev")


def run(*args: str, timeout: float = 240) -> None:
    """Run a `guichet-dev` command; past `timeout`, SIGTERM it so that it stops the broker
    clients, services and Keycloak it started (a SIGKILL would leave them running)."""
    proc = subprocess.Popen(
        [GUICHET_DEV, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            out, err = proc.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        pytest.fail(f"{args[0]} still running after {timeout:.0f} s:\n{out[-3000:]}\n{err[-3000:]}")
    assert proc.returncode == 0, f"{args[0]} failed:\n{out[-3000:]}\n{err[-3000:]}"


def test_the_system_bench_measures_every_file_and_each_channel(kafka_bootstrap, keycloak, tmp_path):
    out = tmp_path / "system.json"
    run(
        "bench",
        "--files",
        "4",
        "--warmup",
        "1",
        "--concurrency",
        "2",
        "--channel-messages",
        "5",
        "--rate",
        "2",
        "--rate-files",
        "3",
        "--chain-files",
        "40",
        "--kafka-bootstrap",
        kafka_bootstrap,
        # The session's Keycloak (its CPU is then not measured, and not needed here).
        "--keycloak-url",
        keycloak.url,
        "--output",
        str(out),
        # A stack, the open loop and the bare chain: minutes on a crowded 2-core box.
        timeout=420,
    )
    report = json.loads(out.read_text())
    assert (report["completed"], report["missing_referent"], report["missing_answer"]) == (4, 0, 0)
    assert report["files_per_s"] > 0
    assert set(report["channels"]) == {"email", "sms", "courrier"}
    for channel, figures in report["channels"].items():
        assert figures["messages"] == 5 and figures["per_second"] > 0, channel
    # The open loop: every file answered, latencies counted from each file's scheduled time.
    loop = report["open_loop"]
    assert (loop["mode"], loop["offered_rate_per_s"], loop["completed"]) == ("open-loop", 2, 3)
    assert loop["latency_ms"]["answer"]["count"] == 3 and loop["send_lag_ms"]["count"] == 3
    # The bare chain on the same broker, and the product's fraction of its throughput.
    chain = report["bare_chain"]
    assert (chain["completed"], chain["files"], chain["consumer_hops"]) == (40, 40, 5)
    assert 0 < report["product_vs_bare_chain"] <= 1
    assert chain["files_per_s"] > 0 and chain["cpu_ms_per_file"]["bench client"] > 0
    # What the product wrote per file covers at least the chain's messages, topic by topic.
    written = report["messages_per_file"]["per_topic"]
    for topic, count in chain["messages_per_topic"].items():
        assert written.get(topic, 0) >= count, topic
    # CPU per file of every process, each service and test double apart; peak RSS.
    for phase in (report, loop):
        per_file = phase["cpu_ms_per_file"]
        for name in ("intake", "assignment", "notification", "adapter-caf", "bench client"):
            assert per_file[name] > 0, name
        groups = set(phase["cpu_ms_per_file_by_group"])
        assert {"product", "test doubles", "bench client"} <= groups
        # The Keycloak given by --keycloak-url is not the bench's: its CPU is not counted.
        assert "keycloak" not in groups
    assert "simulator-caf" in report["cpu_ms_per_file"] and "smtp-sink" in report["rss_mb"]
    assert all(report["rss_mb"][n]["peak"] > 0 for n in ("intake", "assignment", "notification"))


def test_the_adapter_bench_measures_every_request(kafka_bootstrap, tmp_path):
    out = tmp_path / "adapter.json"
    run(
        "bench-adapter",
        "--requests",
        "20",
        "--warmup",
        "2",
        "--kafka-bootstrap",
        kafka_bootstrap,
        "--output",
        str(out),
    )
    report = json.loads(out.read_text())
    assert (report["requests"], report["answered"]) == (20, 20)
    assert report["requests_per_s"] > 0 and report["runtime_overhead_ms"]["count"] == 20


def test_the_decision_bench_times_every_directory_size(tmp_path):
    out = tmp_path / "decision.json"
    run(
        "bench-decision",
        "--past-files",
        "200",
        "--decisions",
        "20",
        "--sizes",
        "2:10,4:40",
        "--output",
        str(out),
    )
    rows = json.loads(out.read_text())
    assert [(r["offices"], r["agents"], r["past_files"], r["decisions"]) for r in rows] == [
        (2, 10, 200, 20),
        (4, 40, 200, 20),
    ]
    for row in rows:
        assert 0 < row["p50_ms"] <= row["p99_ms"] <= row["max_ms"], row
