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
    done = subprocess.run([GUICHET_DEV, *args], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{args[0]} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


def test_the_system_bench_measures_every_file_and_each_channel(kafka_bootstrap, tmp_path):
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
        "--kafka-bootstrap",
        kafka_bootstrap,
        "--output",
        str(out),
    )
    report = json.loads(out.read_text())
    assert (report["completed"], report["missing_referent"], report["missing_answer"]) == (4, 0, 0)
    assert report["files_per_s"] > 0
    assert set(report["channels"]) == {"email", "sms", "courrier"}
    for channel, figures in report["channels"].items():
        assert figures["messages"] == 5 and figures["per_second"] > 0, channel


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
