"""devstack.forkserver: a forked child is set up as `exec` would have set it up (its own
session, its log, its environment, its working directory, its arguments) and ends with its
own exit status; a killed one reports the signal."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

from devstack.forkserver import ForkServer
from devstack.ports import free_ports
from devstack.procs import ServiceProcess

SIMULATOR = str(Path(sys.executable).parent / "agency-simulator")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    fs = ForkServer(tmp_path_factory.mktemp("forkserver") / "forkserver.log")
    yield fs
    fs.close()


def test_a_module_run_with_dash_m_gets_its_arguments_working_directory_and_log(server, tmp_path):
    (tmp_path / "in.json").write_text('{"b": 1, "a": [2]}')
    log = tmp_path / "tool.log"

    child = server.start(
        [sys.executable, "-m", "json.tool", "--sort-keys", "--compact", "in.json"],
        dict(os.environ),
        tmp_path,
        log,
    )

    assert child.wait(30) == 0
    assert log.read_text() == '{"a":[2],"b":1}\n'


def test_a_failing_command_ends_with_its_own_status(server, tmp_path):
    log = tmp_path / "tool.log"

    child = server.start([sys.executable, "-m", "json.tool", "missing.json"], {}, tmp_path, log)

    assert child.wait(30) == 2  # argparse's usage error
    assert "missing.json" in log.read_text()


def test_another_command_is_run_with_exec_in_the_environment_given(server, tmp_path):
    log = tmp_path / "env.log"

    child = server.start(["/usr/bin/env"], {"ONLY_THIS": "là"}, None, log)

    assert child.wait(30) == 0
    assert log.read_text().splitlines() == ["ONLY_THIS=là"]


def test_a_console_script_runs_in_a_session_of_its_own_and_a_kill_reports_the_signal(
    server, tmp_path
):
    (port,) = free_ports(1)
    simulator = ServiceProcess(
        "simulator-caf",
        [SIMULATOR, "--agency", "caf", "--port", str(port)],
        {"CALLBACK_SECRET": "s"},
        tmp_path / "simulator.log",
        health_url=f"http://127.0.0.1:{port}/health",
    )
    simulator.launcher = server
    simulator.start()
    try:
        simulator.wait_healthy(30)
        pid = simulator.proc.pid
        assert os.getsid(pid) == pid  # its own session and process group, as start_new_session
        with open(f"/proc/{pid}/status") as status:
            parent = next(int(line.split()[1]) for line in status if line.startswith("PPid:"))
        assert parent == server.pid  # the fork server's child, not this process's
        assert Path(f"/proc/{pid}/comm").read_text() == "agency-simulato\n"  # as exec names it
    finally:
        simulator.kill()
    assert simulator.returncode == -signal.SIGKILL
    assert not simulator.is_running
