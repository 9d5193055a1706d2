"""Service processes forked from one that has already imported their libraries.

A test run starts some 175 service processes (each stack's services and simulators, and
every restart of the crash tests), and each spent 1.1 to 1.5 s of CPU importing the same
modules (FastAPI, SQLAlchemy, FastStream, aiokafka, OpenTelemetry, the services' own) before
doing anything: about a fifth of a `make test` run's CPU on two cores. A fork server imports
them once; each service is then a `fork()` of it that runs the service's console script as
`exec` would have (its own session, its log on stdout and stderr, its environment, its
arguments), and starts in a fraction of the time.

What stays as with `subprocess.Popen`: each service is a process of its own, in a session of
its own (killed with its group by devstack.procs), reading its settings from its environment
at start (nothing in the project reads the environment at import time), ending with its own
exit status. What differs: its parent is the fork server, so its exit status is asked of it
(`Forked.poll`); it shares the hash seed of its siblings; and its memory counts the modules
of every service (so the bench, which reports each service's RSS, never uses this).

Only the tests use it (`Stack(launcher=…)`); `make run`, the bench and the chaos command start
every process with `exec`. A command that is neither one of the environment's console
scripts nor `python -m devstack.…` is still run with `exec`, from the fork.

Protocol: one JSON object per line on a socket pair; `{"start": {...}}` answers the pid,
`{"poll": pid}` the exit status (None while it runs, negative: killed by that signal).
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import runpy
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

#: Imported once by the fork server: every service's and simulator's entry module (and so
#: their libraries). Modules run with `-m` are left out (runpy warns when running a module
#: already imported); nothing here does work at import time.
PRELOAD = (
    "intake.__main__",
    "assignment.__main__",
    "notification.__main__",
    "web.__main__",
    "adapter_caf",
    "adapter_cpam",
    "adapter_dgfip",
    "adapter_france_travail",
    "adapter_ants",
    "agency_simulator.__main__",
    "aiosmtpd.smtp",
)


@dataclass(frozen=True)
class Launch:
    """What one forked child runs: the command as `exec` would get it."""

    argv: list[str]
    env: dict[str, str]
    cwd: str | None
    log: str


# -- the server ----------------------------------------------------------------------------


def _serve(sock: socket.socket) -> Launch | None:
    """Answer requests until the client goes; return in a forked child with what it runs."""
    statuses: dict[int, int] = {}
    reader = sock.makefile("rb")
    for line in reader:
        request = json.loads(line)
        if "poll" in request:
            pid = int(request["poll"])
            if pid not in statuses:
                with contextlib.suppress(ChildProcessError):
                    done, status = os.waitpid(pid, os.WNOHANG)
                    if done:
                        statuses[pid] = os.waitstatus_to_exitcode(status)
            answer: dict[str, Any] = {"status": statuses.get(pid)}
        else:
            launch = Launch(**request["start"])
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                reader.close()
                sock.close()
                return launch
            answer = {"pid": pid}
        sock.sendall(json.dumps(answer).encode() + b"\n")
    return None


def _become(launch: Launch, scripts: dict[str, str]) -> None:
    """In the forked child: what `Popen(argv, env=…, cwd=…, stdout=log, stderr=STDOUT,
    stdin=DEVNULL, start_new_session=True)` would have set up, then the command."""
    os.setsid()
    log = os.open(launch.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))
    for sig in (signal.SIGTERM, signal.SIGCHLD, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if launch.cwd:
        os.chdir(launch.cwd)
    os.environ.clear()
    os.environ.update(launch.env)
    argv = launch.argv
    bin_dir = Path(sys.executable).parent
    dash_m = len(argv) >= 3 and argv[0] == sys.executable and argv[1] == "-m"
    # Its name in ps, top and process accounting (the fork server's otherwise).
    with contextlib.suppress(OSError), open("/proc/self/comm", "w") as comm:
        comm.write((argv[2] if dash_m else Path(argv[0]).name)[:15])
    if dash_m:
        sys.argv = [argv[2], *argv[3:]]
        sys.path[0] = launch.cwd or os.getcwd()
        runpy.run_module(argv[2], run_name="__main__", alter_sys=True)
        sys.exit(0)
    script = Path(argv[0])
    target = scripts.get(script.name) if script.parent == bin_dir else None
    if target is None:
        os.execve(argv[0], argv, launch.env)
    module, _, attr = target.partition(":")
    sys.argv = list(argv)
    sys.path[0] = str(bin_dir)
    main = importlib.import_module(module)
    for part in attr.split("."):
        main = getattr(main, part)
    sys.exit(main())


def main() -> None:
    """`python -m devstack.forkserver FD`: serve on the socket FD until it closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the client stops it by closing the socket
    sock = socket.socket(fileno=int(sys.argv[1]))
    for module in PRELOAD:
        importlib.import_module(module)
    if threading.active_count() != 1:  # a thread would not survive the fork
        raise RuntimeError(f"a preloaded module started a thread: {threading.enumerate()}")
    # The imported modules' objects live as long as any child: kept out of the collector's
    # sight, a child's collections neither walk them nor touch (and so copy) their pages
    # (the `gc.freeze` documentation's advice for a process forking without exec).
    # The console scripts' entry points, read once here rather than by every child.
    scripts = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
    gc.freeze()
    sock.sendall(b'{"ready": true}\n')
    launch = _serve(sock)
    if launch is not None:
        _become(launch, scripts)


# -- the client ----------------------------------------------------------------------------


class ForkServer:
    """The client side, one per test process: started at the first `start`, stopped by
    `close` (its children keep running, as `Popen`'s do when their parent goes)."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._reader: Any = None
        self._lock = threading.Lock()

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            if self._sock is None:
                self._launch()
            assert self._sock is not None
            self._sock.sendall(json.dumps(request).encode() + b"\n")
            line = self._reader.readline()
        if not line:
            raise RuntimeError(f"the fork server is gone; its log: {self.log_path}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def _launch(self) -> None:
        ours, theirs = socket.socketpair()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "devstack.forkserver", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        theirs.close()
        self._sock, self._reader = ours, ours.makefile("rb")
        if not self._reader.readline():
            raise RuntimeError(f"the fork server did not start; its log: {self.log_path}")

    def start(
        self, argv: list[str], env: dict[str, str], cwd: Path | None, log_path: Path
    ) -> Forked:
        """Fork a child running `argv` (see `Launch`); its handle, as `Popen` would give."""
        launch = {"argv": argv, "env": env, "cwd": str(cwd) if cwd else None, "log": str(log_path)}
        return Forked(self, int(self._ask({"start": launch})["pid"]))

    @property
    def pid(self) -> int | None:
        """The fork server's own pid (None before the first request)."""
        return None if self._proc is None else self._proc.pid

    def status(self, pid: int) -> int | None:
        status = self._ask({"poll": pid})["status"]
        return None if status is None else int(status)

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._reader.close()
                self._sock.close()
                self._sock = None
            if self._proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._proc.wait(10)
                if self._proc.poll() is None:
                    self._proc.kill()
                    self._proc.wait()
                self._proc = None


class Forked:
    """A forked child: what devstack.procs uses of `subprocess.Popen` (pid, poll, wait,
    returncode)."""

    def __init__(self, server: ForkServer, pid: int) -> None:
        self.server, self.pid = server, pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self.server.status(self.pid)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(str(self.pid), timeout or 0)
            time.sleep(0.02)
        return code


if __name__ == "__main__":
    main()
