"""The contract kit's checks of an asynchronous agency's callbacks' authenticity (issue 12):
the sandbox signs its callbacks with the secret shared with the adapter (CALLBACK_SECRET),
and the adapter, on its real runtime and a scratch database, refuses the same callback
unsigned, wrongly signed or replayed (401), and takes it when signed."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from adapter_sdk import signatures, tables
from adapter_sdk.interface import AgencyAdapter
from adapter_sdk.metrics import AdapterMetrics
from adapter_sdk.runtime import AdapterRuntime
from adapter_sdk.transport import Transport
from guichet_runtime import migrations
from guichet_runtime.db import UnitOfWork, make_engine

RULE = "Rappels authentifiés (signés par l'organisme ; non signés ou rejoués refusés : 401)"


def signature_problem(adapter: AgencyAdapter, body: bytes, headers: Mapping[str, str]) -> str:
    """Why the sandbox's callback is not signed as the adapter requires ("" if it is)."""
    config = adapter.config
    secret = config.callback_secret.get_secret_value()
    if not secret:
        return (
            "CALLBACK_SECRET n'est pas configuré : l'organisme signe ses rappels avec ce secret "
            "partagé, donnez-le au kit (variable d'environnement) comme au bac à sable"
        )
    try:
        signatures.verify(
            [secret],
            signatures.header_of(headers),
            body,
            time.time(),
            config.callback_replay_window_seconds,
        )
    except signatures.SignatureRefused as refused:
        return f"le rappel du bac à sable n'est pas accepté : {refused} ({refused.reason.value})"
    return ""


async def door_problems(
    adapter: AgencyAdapter, body: bytes, headers: Mapping[str, str]
) -> list[str]:
    """Deliver the sandbox's callback to the adapter's runtime unsigned, wrongly signed,
    signed, then replayed: only the signed one may be taken."""
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="guichet-kit-") as scratch:
        url = f"sqlite+aiosqlite:///{Path(scratch) / 'adapter.db'}"
        await migrations.upgrade(Path(tables.__file__).parent / "migrations", url)
        engine = make_engine(url)
        metrics = AdapterMetrics()
        transport = Transport(adapter.config, adapter.declaration.agency, metrics)

        def uow(inbox_key: tuple[str, str] | None = None) -> UnitOfWork:
            return UnitOfWork(engine, tables.outbox, tables.inbox, inbox_key=inbox_key)

        core = AdapterRuntime(adapter, adapter.config, uow, transport, metrics)
        try:
            plain = {k: v for k, v in headers.items() if k.lower() != signatures.HEADER.lower()}
            wrong = {**plain, signatures.HEADER: signatures.sign("devine", body, int(time.time()))}
            for what, sent in (("non signé", plain), ("signé d'un autre secret", wrong)):
                status, _ = await core.on_callback(body, sent)
                if status != 401:
                    problems.append(f"un rappel {what} est répondu {status} au lieu de 401")
            fresh = {
                **plain,
                signatures.HEADER: signatures.sign(
                    adapter.config.callback_secret.get_secret_value(), body, int(time.time())
                ),
            }
            status, reply = await core.on_callback(body, fresh)
            if status in (401, 403):
                problems.append(f"un rappel bien signé est refusé ({status}) : {reply}")
            status, _ = await core.on_callback(body, fresh)
            if status != 401:
                problems.append(
                    f"un rappel rejoué à l'identique est répondu {status} au lieu de 401"
                )
        finally:
            await transport.close()
            await engine.dispose()
    return problems
