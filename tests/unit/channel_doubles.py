"""Real channel back ends for the notification tests, in this process: the SMTP sink
(devstack.smtp_sink, one domain of which bounces) and the SMS / postal simulator
(devstack.providers). Their fixtures are in conftest.py."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from devstack import smtp_sink
from devstack.ports import free_port

SENDER = "Guichet unique <ne-pas-repondre@guichet-unique.gouv.fr>"
BOUNCING = "adresse-inconnue.example"


class Sink:
    def __init__(self, tmp: Path) -> None:
        self.port, self.http_port = free_port(), free_port()
        self.maildir = tmp / "maildir"
        self.stop = asyncio.Event()

    async def start(self) -> None:
        self.task = asyncio.create_task(
            smtp_sink.serve(
                "127.0.0.1", self.port, self.maildir, self.http_port, self.stop, [f"@{BOUNCING}"]
            )
        )
        for _ in range(100):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                return
            except OSError:
                await asyncio.sleep(0.02)

    def mails(self) -> list:
        return smtp_sink.read_maildir(self.maildir)

    def stats(self) -> dict[str, int]:
        return httpx.get(f"http://127.0.0.1:{self.http_port}/stats").json()
