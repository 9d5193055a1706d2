"""The adapters' databases on a sealed stack (issue 13 §4, adapter_sdk.personal), for
tests/e2e/test_crypto_shredding.py: once a sealed file has crossed the path, no column of any
table of any adapter holds one of the citizen's values, and France Travail's decision (taken
from its callback) rests sealed with the file's key; once the key is shredded, the adapter
still answers France Travail's callbacks for the file (nothing to compare: « déjà décidé »)."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from adapter_sdk import signatures, tables
from devstack.stack import Stack
from guichet_runtime.personal_data import open_value
from guichet_runtime.tls_context import client_tls
from shared_models import is_sealed
from tests.personal_data import leaks

#: The probes the adapters' tables are searched for (tests/personal_data.py): name, email,
#: phone in every form, street, city, the description's words.
PROBED = ("given_name", "family_name", "email", "phone", "street", "city", "description")
FRANCE_TRAVAIL = "adapter-france-travail"


async def adapter_rows(url: str) -> dict[str, list[sa.Row[Any]]]:
    """Every row of every table an adapter declares (adapter_sdk.tables), by table."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return {
                table.name: list((await conn.execute(sa.select(table))).all())
                for table in tables.metadata.sorted_tables
            }
    finally:
        await engine.dispose()


def cell_bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


async def adapters_hold_nothing_in_clear(
    stack: Stack, file_id: str, key_id: str, key: bytes, personal: dict[str, str]
) -> None:
    """No probe in any column of any table of any adapter; France Travail's decision sealed
    with the file's key, opening to a decision."""
    adapters = [name for name in stack.database_urls if name.startswith("adapter-")]
    assert FRANCE_TRAVAIL in adapters, adapters
    for name in adapters:
        for table, rows in (await adapter_rows(stack.database_urls[name])).items():
            for row in rows:
                for column, value in row._mapping.items():
                    found = leaks(cell_bytes(value), personal, PROBED)
                    assert not found, f"{name}.{table}.{column}: {found}"
    found = await adapter_rows(stack.database_urls[FRANCE_TRAVAIL])
    [request] = [r for r in found["requests"] if r.file_id == file_id]
    answer = json.loads(request.answer)
    assert is_sealed(answer) and answer["key_id"] == key_id, request.answer
    assert open_value(key, answer, file_id)["decision"] in {"accorde", "refuse"}
    assert (file_id, key_id) in {(r.file_id, r.key_id) for r in found["personal_data_key_refs"]}
    assert all(r.payload is None for r in found["callbacks"] if r.request_id == request.request_id)


async def france_travail_answers_after_shredding(stack: Stack, file_id: str) -> None:
    """A new callback for the file's decided request, signed by France Travail, once the key
    is shredded: answered 200 « déjà décidé » (nothing left to compare with), recorded erased."""
    request_id = f"{file_id}-france_travail"
    callback_id = f"cb-after-shredding-{uuid.uuid4().hex[:8]}"
    body = json.dumps(
        {
            "callback_id": callback_id,
            "request_id": request_id,
            "decision": {
                "decision": "refuse",
                "summary": "Demande d'allocation refusée",
                "agency_reference": "FT-2026-000000000000",
                "reason": "Durée d'affiliation insuffisante.",
            },
        }
    ).encode()
    secret = stack.callback_secrets["france_travail"]
    headers = {
        signatures.HEADER: signatures.sign(secret, body, int(time.time())),
        "Content-Type": "application/json",
    }
    port = stack.ports.adapters["france_travail"]
    async with httpx.AsyncClient(timeout=10, verify=client_tls()) as client:
        reply = await client.post(
            f"http://127.0.0.1:{port}/callbacks", content=body, headers=headers
        )
    assert (reply.status_code, reply.json()) == (200, {"statut": "deja_decide"}), reply.text
    found = await adapter_rows(stack.database_urls[FRANCE_TRAVAIL])
    [taken] = [r for r in found["callbacks"] if r.callback_id == callback_id]
    assert (taken.outcome, taken.payload, taken.answer) == ("efface", None, None)
