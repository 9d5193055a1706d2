"""Notifications per second, per channel (`guichet-dev bench` and `guichet-dev bench-channels`).

For each channel, `messages` notifications are recorded in a fresh notification database
(SQLite, migrated with the service's own scripts) by the service's own projection, then the
service's own dispatcher sends them through the real channel: SMTP to the sink process,
HTTP to the SMS gateway process, PDF rendering (fpdf2) and HTTP to the postal process.
The figure is messages / seconds of dispatching, from the first claim to the last "sent"
commit (each includes its delivery row and NotificationSent outbox row). No Kafka: the
broker's cost is in the end-to-end benchmark.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


async def measure_channels(
    workdir: Path,
    smtp_port: int,
    providers_url: str,
    *,
    messages: int = 200,
    log: Callable[[str], None] = print,
) -> dict[str, dict[str, float]]:
    # The service's code, imported here only: the rest of devstack talks to services over the wire.
    import notification
    from guichet_runtime import migrations
    from guichet_runtime.db import UnitOfWork, make_engine
    from notification import projections, tables
    from notification.channels import EmailChannel, LetterChannel, SmsChannel
    from notification.dispatch import dispatch_pending
    from notification.mailer import SmtpMailer
    from shared_models import (
        CitizenContact,
        NotificationChannel,
        PreferredChannel,
        Referent,
        ReferentAssigned,
    )

    workdir.mkdir(parents=True, exist_ok=True)
    url = f"sqlite+aiosqlite:///{workdir / 'notification-bench.db'}"
    await migrations.upgrade(Path(notification.__file__).parent / "migrations", url)
    engine = make_engine(url)
    mailer = SmtpMailer("127.0.0.1", smtp_port)
    sms, post = SmsChannel(providers_url), LetterChannel(providers_url)
    channels = {
        NotificationChannel.EMAIL: EmailChannel(
            mailer, "Guichet unique <ne-pas-repondre@guichet-unique.gouv.fr>"
        ),
        NotificationChannel.SMS: sms,
        NotificationChannel.LETTER: post,
    }
    referent = Referent(
        agent_id="AG-BENCH",
        name="Yasmine Haddad",
        office="France Services Saint-Denis",
        office_id="FS-93-01",
        phone="01 49 33 60 12",
        email="yasmine.haddad@france-services.gouv.fr",
    )
    preferences = {
        "email": PreferredChannel.EMAIL,
        "sms": PreferredChannel.SMS,
        "courrier": PreferredChannel.LETTER,
    }

    def uow(key: tuple[str, str] | None = None) -> UnitOfWork:
        return UnitOfWork(engine, tables.outbox, tables.inbox, inbox_key=key)

    results: dict[str, dict[str, float]] = {}
    run = time.time_ns()
    try:
        for channel, preference in preferences.items():
            t0 = time.perf_counter()
            for i in range(messages):
                event = ReferentAssigned(
                    file_id=f"B{run % 10**9}{channel[0]}{i:06d}",
                    referent=referent,
                    rule="bench",
                    explanation="bench",
                    citizen=CitizenContact(
                        given_name="Awa",
                        family_name=f"Diallo {i}",
                        email=f"awa{i}@example.fr",
                        phone=f"06{i % 10**8:08d}",
                        street="12 rue de la République",
                        postcode="93200",
                        city="Saint-Denis",
                        preferred_channel=preference,
                    ),
                )
                await projections.on_referent_assigned(event, uow(("bench", str(event.event_id))))
            recorded = time.perf_counter() - t0
            t1 = time.perf_counter()
            sent = 0
            while sent < messages:
                n = await dispatch_pending(uow, channels, limit=100)
                if n == 0:
                    raise RuntimeError(
                        f"{channel}: {messages - sent} messages not sent (see the providers)"
                    )
                sent += n
            elapsed = time.perf_counter() - t1
            results[channel] = {
                "messages": messages,
                "per_second": round(messages / elapsed, 1),
                "send_ms_mean": round(elapsed / messages * 1000, 2),
                "record_per_second": round(messages / recorded, 1),
            }
            log(f"{channel}: {results[channel]['per_second']} notifications/s")
    finally:
        await mailer.close()
        await sms.close()
        await post.close()
        await engine.dispose()
    return results


def format_channels(results: dict[str, Any]) -> str:
    lines = [
        "Notifications per channel (handler + dispatcher, real sink / gateway / PDF):",
        f"  {'channel':<10}{'sent/s':>10}{'ms/msg':>10}{'recorded/s':>12}",
    ]
    for channel, r in results.items():
        lines.append(
            f"  {channel:<10}{r['per_second']:>10.1f}{r['send_ms_mean']:>10.2f}{r['record_per_second']:>12.1f}"
        )
    return "\n".join(lines)
