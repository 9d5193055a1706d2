"""Real channel back ends for the notification tests, in this process: the SMTP sink
(devstack.smtp_sink, one domain of which bounces) and the SMS / postal simulator
(devstack.providers). Their fixtures are in conftest.py."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from devstack import smtp_sink
from devstack.ports import free_ports
from guichet_runtime.tls_context import client_tls

SENDER = "Guichet unique <ne-pas-repondre@guichet-unique.gouv.fr>"
BOUNCING = "adresse-inconnue.example"


class Sink:
    def __init__(self, tmp: Path) -> None:
        self.port, self.http_port = free_ports(2)
        self.maildir = tmp / "maildir"
        self.stop = asyncio.Event()

    async def start(self, timeout: float = 10) -> None:
        """Serve, and return once the sink greets on its port; raise (never give up silently)
        when it failed to start (its error, e.g. a port taken) or did not greet within `timeout`
        seconds. Whatever else listens on the port does not pass for the sink."""
        self.task = asyncio.create_task(
            smtp_sink.serve(
                "127.0.0.1", self.port, self.maildir, self.http_port, self.stop, [f"@{BOUNCING}"]
            )
        )
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            if self.task.done():
                self.task.result()  # its exception, e.g. a port already in use
                raise RuntimeError("the SMTP sink stopped as it started")
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"the SMTP sink did not greet in {timeout} s")
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                try:
                    greeting = await asyncio.wait_for(reader.readline(), 1)
                finally:
                    writer.close()
                if greeting.startswith(b"220 smtp-sink") and not self.task.done():
                    return
                await asyncio.sleep(0.02)
            except (OSError, TimeoutError):
                await asyncio.sleep(0.02)

    def mails(self) -> list:
        return smtp_sink.read_maildir(self.maildir)

    def stats(self) -> dict[str, int]:
        return httpx.get(f"http://127.0.0.1:{self.http_port}/stats", verify=client_tls()).json()

    def failures(self) -> list[dict]:
        """The messages the sink could not store (it answered them 451)."""
        return httpx.get(f"http://127.0.0.1:{self.http_port}/failures", verify=client_tls()).json()
