"""devstack.procs.terminate_all: services stopped together take as long as the slowest."""

from __future__ import annotations

import sys
import time

from devstack.procs import ServiceProcess, terminate_all

#: Takes `seconds` to stop after SIGTERM (a graceful drain); "ignore": never stops by itself.
SLOW_STOP = """
import signal, sys, time
mode = sys.argv[1]
def on_term(*_):
    if mode == "ignore":
        return
    time.sleep(float(mode))
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
print("ready", flush=True)
while True:
    time.sleep(0.05)
"""


def started(tmp_path, name: str, mode: str) -> ServiceProcess:
    proc = ServiceProcess(name, [sys.executable, "-c", SLOW_STOP, mode], {}, tmp_path / name)
    proc.start()
    deadline = time.monotonic() + 20
    while "ready" not in proc.log_tail():
        assert time.monotonic() < deadline, proc.log_tail()
        time.sleep(0.05)
    return proc


def test_services_drain_side_by_side_not_one_after_the_other(tmp_path):
    procs = [started(tmp_path, f"svc-{i}", "1.0") for i in range(3)]
    began = time.monotonic()
    terminate_all(procs, grace=10)
    took = time.monotonic() - began
    assert all(p.returncode == 0 for p in procs), [p.returncode for p in procs]  # drained
    assert took < 2.5, took  # one second each, together; one after the other: three


def test_a_service_that_ignores_sigterm_is_killed_after_the_grace(tmp_path):
    stubborn = started(tmp_path, "stubborn", "ignore")
    polite = started(tmp_path, "polite", "0.2")
    began = time.monotonic()
    terminate_all([stubborn, polite], grace=1.0)
    took = time.monotonic() - began
    assert polite.returncode == 0 and stubborn.returncode == -9
    assert 1.0 <= took < 3.0, took
    assert not stubborn.is_running and not polite.is_running
