"""A tiny process supervisor for tests and `make run`.

Each service runs in its own session/process group, so stopping it also stops anything it
spawned, and a Ctrl-C in the terminal reaches only the supervisor, which then stops them in order.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from guichet_runtime.tls_context import client_tls

if TYPE_CHECKING:
    from devstack.forkserver import Forked, ForkServer


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "<no log>"


class ServiceProcess:
    """One service: `argv` run with `env` laid over the current environment, output to
    `log_path`."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str],
        log_path: Path,
        health_url: str | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name, self.argv, self.env, self.health_url, self.cwd = name, argv, env, health_url, cwd
        self.log_path = Path(log_path)
        self.proc: subprocess.Popen[bytes] | Forked | None = None
        #: None: started with `exec` (subprocess.Popen); a ForkServer: forked from it.
        self.launcher: ForkServer | None = None
        self._group_gone = (
            False  # once the group is killed and reaped its id may be reused: never signal it again
        )

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._group_gone = False
        env = {**os.environ, **self.env}
        if self.launcher is not None:
            self.proc = self.launcher.start(self.argv, env, self.cwd, self.log_path)
            return
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                env=env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def log_tail(self, lines: int = 40) -> str:
        return _tail(self.log_path, lines)

    def wait_healthy(self, timeout: float = 30) -> None:
        """Poll `health_url` until it answers 200; raise with the log tail if the process exits
        first or `timeout` passes. Without a health URL, only checks that the process is still
        up."""
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=1.0, verify=client_tls()) as client:
            while True:
                if not self.is_running:
                    raise RuntimeError(
                        f"{self.name} exited with code {self.returncode}:\n{self.log_tail()}"
                    )
                if self.health_url is None:
                    return
                try:
                    if client.get(self.health_url).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass  # not listening yet
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"{self.name} not healthy at {self.health_url} after "
                        f"{timeout}s:\n{self.log_tail()}"
                    )
                time.sleep(0.1)

    def _signal_group(self, sig: int) -> None:
        if self.proc is not None and not self._group_gone:
            # pgid == pid: start_new_session made it a group leader.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL the whole process group (crash simulation, or last resort)."""
        self._signal_group(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait()
            self._group_gone = True

    def terminate(self, grace: float = 10) -> None:
        """SIGTERM the process group, SIGKILL it if the leader is not gone after `grace` seconds."""
        terminate_all([self], grace)

    def ask_to_stop(self) -> None:
        """SIGTERM the process group and return at once (`finish_stop` waits for it)."""
        self._signal_group(signal.SIGTERM)

    def finish_stop(self, deadline: float) -> None:
        """Wait for the leader until `deadline` (time.monotonic()), then SIGKILL the group."""
        if self.proc is None:
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(max(0.0, deadline - time.monotonic()))
        self.kill()  # also reaps children that outlived a clean leader exit


def terminate_all(services: Sequence[ServiceProcess], grace: float = 10) -> None:
    """SIGTERM every service at once, then wait for them together: each gets `grace` seconds
    to stop gracefully, and the whole takes as long as the slowest, not the sum."""
    running = [s for s in services if s.proc is not None]
    for service in running:
        service.ask_to_stop()
    deadline = time.monotonic() + grace
    for service in running:
        service.finish_stop(deadline)


class Supervisor:
    """Several services, started in order and stopped in reverse order."""

    def __init__(self) -> None:
        self.services: list[ServiceProcess] = []

    def add(
        self, service: ServiceProcess, *, start: bool = True, timeout: float = 30
    ) -> ServiceProcess:
        """Register `service`; by default also start it and wait until it is healthy."""
        self.services.append(service)
        if start:
            service.start()
            service.wait_healthy(timeout)
        return service

    def __getitem__(self, name: str) -> ServiceProcess:
        return next(s for s in self.services if s.name == name)

    def watch(self, poll: float = 0.5) -> ServiceProcess:
        """Block until any service exits; return it (for `make run`: stop everything then)."""
        while True:
            for s in self.services:
                if s.proc is not None and not s.is_running:
                    return s
            time.sleep(poll)

    def stop_all(self, grace: float = 10) -> None:
        for s in reversed(self.services):
            s.terminate(grace)

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()
